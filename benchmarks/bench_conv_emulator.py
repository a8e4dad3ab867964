"""Emulator vs Lava fixed point, seconds per sample, on one small conv SNN, in one run.

Usage: python benchmarks/bench_conv_emulator.py MODEL.h5 [--lava-samples 8] [--emulator-samples 300]

Both backends get the same encoded digits test samples and the same quantized network; the
spikes of the Lava samples are checked to be identical. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--lava-samples", type=int, default=8)
    parser.add_argument("--emulator-samples", type=int, default=300)
    args = parser.parse_args()
    from neurocredit.data import load_dataset
    from neurocredit.deploy import emulator, lava_backend
    from neurocredit.deploy.quantize import quantize
    from neurocredit.io import load_network
    from neurocredit.sim import encode_inputs

    network = load_network(args.model)
    dataset = load_dataset(str(network.provenance.get("data", "digits")))
    quantized = quantize(network)
    inputs = encode_inputs(network, dataset.x_test[: max(args.lava_samples, args.emulator_samples)])
    emulator.run(network, inputs[:, :2], quantized=quantized)  # warm-up (imports)
    began = time.perf_counter()
    emulated = emulator.run(network, inputs[:, : args.emulator_samples], {"spikes"}, quantized=quantized)
    emulator_s = (time.perf_counter() - began) / args.emulator_samples
    began = time.perf_counter()
    lava = lava_backend.run(network, inputs[:, : args.lava_samples], {"spikes"}, mode="fixed_pt",
                            quantized=quantized, target="none")
    lava_s = (time.perf_counter() - began) / args.lava_samples
    identical = all(np.array_equal(a[:, : args.lava_samples], b) for a, b in zip(emulated.spikes, lava.spikes))
    print(json.dumps({"model": args.model, "summary": network.summary(), "steps": int(inputs.shape[0]),
                      "emulator_s_per_sample": emulator_s, "lava_fixed_pt_s_per_sample": lava_s,
                      "ratio": lava_s / emulator_s, "lava_samples": args.lava_samples,
                      "emulator_samples": args.emulator_samples, "spikes_identical": identical}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
