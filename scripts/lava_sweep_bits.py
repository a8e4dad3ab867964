#!/usr/bin/env python
"""Sweep the weight bit width of a Loihi deployment and report accuracy against bits.

For each width B the model is quantized to B-bit weights (Lava ``Dense(num_weight_bits=B)``:
the low ``8 - B`` bits -- one more for mixed-sign weights -- are dropped, the per-layer
``weight_exp`` keeps the range) and evaluated on the test samples with neurocredit's emulator,
which reproduces Lava's fixed-point LIF and Dense bit for bit and runs a whole test set in
seconds. Lava itself runs the first ``--lava-samples`` samples at every width
(``Loihi2SimCfg(select_tag='fixed_pt')``, one compiled network for all of them) and the script
checks that its spikes are identical to the emulator's, so the table is Lava's accuracy.

Example::

    python scripts/lava_sweep_bits.py models/out/digits-dfa-snn.h5 --bits 1 2 3 4 5 6 8 --lava-samples 20
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

# Lava's runtime must be imported before anything fixes the multiprocessing start method.
import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("model", help="spiking network file (.h5) written by `neurocredit train`")
    parser.add_argument("--bits", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6, 7, 8], help="widths to try")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N test samples")
    parser.add_argument("--lava-samples", type=int, default=10,
                        help="samples also run through Lava at every width (0: emulator only)")
    parser.add_argument("--data", default=None, help="data set (default: the one the model was trained on)")
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    args = parser.parse_args(argv)

    from neurocredit.data import load_dataset
    from neurocredit.deploy import emulator, lava_backend
    from neurocredit.deploy.quantize import quantize
    from neurocredit.errors import NeurocreditError
    from neurocredit.io import load_network
    from neurocredit.sim import encode_inputs, simulate

    try:
        network = load_network(args.model)
        dataset = load_dataset(args.data or str(network.provenance.get("data", "digits")))
        x, y = dataset.x_test[: args.limit], dataset.y_test[: args.limit]
        float_accuracy = simulate(network, x, y, backend="reference").accuracy
        inputs = encode_inputs(network, x)
        rows = []
        for bits in args.bits:
            quantized = quantize(network, weight_bits=bits)
            emulated = emulator.run(network, inputs, {"spikes"} if args.lava_samples else (), quantized=quantized)
            row = {"bits": bits, "accuracy": float(np.mean(emulated.predictions == y)),
                   "weight_rms_relative_error": max(layer["weight_rms_relative_error"]
                                                    for layer in quantized.report()["layers"])}
            if args.lava_samples:
                k = min(args.lava_samples, len(y))
                lava = lava_backend.run_lava(network, inputs[:, :k], "fixed_pt", {"spikes"}, quantized=quantized)
                row["lava_samples"] = k
                row["lava_identical"] = all(np.array_equal(a[:, :k], b) for a, b in zip(emulated.spikes, lava.spikes))
            rows.append(row)
    except NeurocreditError as error:
        print(f"lava_sweep_bits: error: {error}", file=sys.stderr)
        return 2
    result = {"model": args.model, "samples": int(len(y)), "float_accuracy": float_accuracy, "rows": rows}
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0
    print(f"{args.model}: {len(y)} test samples, float accuracy {float_accuracy:.2%}")
    print("| weight bits | accuracy | drop (points) | worst layer weight rms error | Lava = emulator |")
    print("|---:|---:|---:|---:|:--|")
    for row in rows:
        check = f"{row['lava_identical']} ({row['lava_samples']} samples)" if "lava_identical" in row else "not run"
        print(f"| {row['bits']} | {row['accuracy']:.2%} | {(float_accuracy - row['accuracy']) * 100:+.2f} | "
              f"{row['weight_rms_relative_error']:.2%} | {check} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
