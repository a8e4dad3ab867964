"""Emulator vs Lava fixed point, seconds per sample, on one conv SNN, in one run.

Usage: python benchmarks/bench_conv_emulator.py MODEL.h5 [--lava-samples 48] [--emulator-samples 359]
       [--no-record]

MODEL.h5 is a convolutional LIF model (e.g. `make demo` writes models/out/digits-bptt-conv-snn.h5).
Both backends get the same encoded test samples (the model's data set) and the same quantized
network; the spikes of the Lava samples must be identical. Lava's time includes compiling the
graph and starting its runtime (one graph for all samples, conv layers as lanes of grouped Convs).
Prints one JSON line and, unless --no-record, records the run in RESULTS.md / history.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: E402,F401  (before anything fixes the start method)

from common import append_results  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--lava-samples", type=int, default=48)
    parser.add_argument("--emulator-samples", type=int, default=359)
    parser.add_argument("--no-record", action="store_true", help="do not write RESULTS.md / history.md")
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
    lanes = lava_backend.choose_lanes(network, args.lava_samples)
    result = {"model": args.model, "summary": network.summary(), "steps": int(inputs.shape[0]),
              "emulator_s_per_sample": emulator_s, "lava_fixed_pt_s_per_sample": lava_s,
              "ratio": lava_s / emulator_s, "lava_samples": args.lava_samples, "lava_lanes": lanes,
              "emulator_samples": args.emulator_samples, "spikes_identical": identical}
    print(json.dumps(result))
    if not args.no_record:
        figures = (
            f"| backend | samples | ms per sample |\n|---|---|---|\n"
            f"| emulator | {args.emulator_samples} | {emulator_s * 1e3:.2f} |\n"
            f"| Lava fixed_pt ({lanes} lanes, compile included) | {args.lava_samples} | {lava_s * 1e3:.1f} |\n\n"
            f"Model: {network.summary()}. Lava / emulator: **{lava_s / emulator_s:.0f}x**; spikes identical on "
            f"the Lava samples: {'yes' if identical else 'NO'}."
        )
        append_results("Conv SNN: emulator vs Lava fixed point", figures, summary=(
            f"conv SNN ({network.summary().split(' lif net')[0]}, {inputs.shape[0]} steps), ms per sample: emulator "
            f"{emulator_s * 1e3:.2f}, Lava fixed_pt {lava_s * 1e3:.1f} ({lava_s / emulator_s:.0f}x); spikes identical: "
            f"{'yes' if identical else 'no'}"))
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
