"""A convolutional SNN through every backend, in one run: accuracy, spike agreement, speed.

Usage: python benchmarks/bench_conv.py MODEL.h5 [--samples 500] [--float-samples 32]
       [--brian2-samples 16] [--no-record]

MODEL.h5 is a trained convolutional LIF model (e.g. `neurocredit train
models/fmnist-bptt-conv-small-snn.yaml`). Every backend gets the same encoded test samples (the
first ``--samples`` of the model's data set; one encoding) and the fixed-point backends the same
quantized network:

* accuracy through Norse, the emulator and Lava fixed point, and the float -> fixed drop;
* spike agreement with the reference backend: Norse (all samples), Lava floating point
  (``--float-samples``), Brian2 (``--brian2-samples``); the emulator against Lava fixed point
  (bit for bit, all samples);
* seconds per sample: the emulator and Lava fixed point on the same samples (Lava's time includes
  compiling the graph and starting its runtime: one graph for all samples, conv layers as lanes
  of grouped Convs; the emulator's is the median of 3 calls after a first one, which also pays
  torch's one-off set-up of each conv shape and is reported too), and Brian2 against Norse on the
  same Brian2 samples.

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


def timed(run, samples: int):
    """``run()`` and its wall time per sample."""
    began = time.perf_counter()
    result = run()
    return result, (time.perf_counter() - began) / samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--samples", type=int, default=500, help="test samples (Norse, emulator, Lava fixed point)")
    parser.add_argument("--float-samples", type=int, default=32, help="samples through Lava floating point")
    parser.add_argument("--brian2-samples", type=int, default=16, help="samples through Brian2 (and Norse for its time)")
    parser.add_argument("--no-record", action="store_true", help="do not write RESULTS.md / history.md")
    args = parser.parse_args()
    from neurocredit.compare import spike_agreement
    from neurocredit.data import load_dataset
    from neurocredit.deploy import emulator, lava_backend
    from neurocredit.deploy.quantize import quantize
    from neurocredit.io import load_network
    from neurocredit.sim import encode_inputs, get_backend

    network = load_network(args.model)
    dataset = load_dataset(str(network.provenance.get("data", "digits")))
    samples = min(args.samples, len(dataset.y_test))
    labels = dataset.y_test[:samples]
    inputs = encode_inputs(network, dataset.x_test[:samples])
    quantized = quantize(network)
    spikes = {"spikes"}

    norse, norse_s = timed(lambda: get_backend("norse").run(network, inputs, spikes), samples)
    reference = get_backend("reference").run(network, inputs, spikes)
    emulator.run(network, inputs[:, :2], quantized=quantized)  # warm-up (imports, numba)
    # the first call at these shapes also pays torch's one-off set-up of each conv shape (oneDNN
    # primitives): reported as "cold"; the speed is the median of 3 calls after it
    emulated, emulator_cold_s = timed(lambda: emulator.run(network, inputs, spikes, quantized=quantized), samples)
    emulator_s = float(np.median([timed(lambda: emulator.run(network, inputs, spikes, quantized=quantized),
                                        samples)[1] for _ in range(3)]))
    lava_fixed, lava_s = timed(lambda: lava_backend.run(network, inputs, spikes, mode="fixed_pt", quantized=quantized,
                                                        target="none"), samples)
    few = min(args.float_samples, samples)
    lava_float = lava_backend.run(network, inputs[:, :few], spikes, mode="floating_pt", target="none")
    some = min(args.brian2_samples, samples)
    brian2, brian2_s = timed(lambda: get_backend("brian2").run(network, inputs[:, :some], spikes), some)
    _, norse_some_s = timed(lambda: get_backend("norse").run(network, inputs[:, :some], spikes), some)

    def accuracy(record):
        return float(np.mean(record.predictions == labels[: record.samples]))

    identical = all(np.array_equal(a, b) for a, b in zip(emulated.spikes, lava_fixed.spikes))
    result = {
        "model": args.model, "summary": network.summary(), "steps": int(inputs.shape[0]), "samples": samples,
        "provenance": {key: network.provenance.get(key) for key in ("epochs", "max_batches", "test_accuracy")},
        "accuracy": {"norse": accuracy(norse), "reference": accuracy(reference), "emulator": accuracy(emulated),
                     "lava_fixed_pt": accuracy(lava_fixed)},
        "agreement_with_reference": {
            "norse": spike_agreement(reference, norse)["overall"],
            "lava_floating_pt": spike_agreement(reference.head(few), lava_float)["overall"],
            "brian2": spike_agreement(reference.head(some), brian2)["overall"],
        },
        "float_samples": few, "brian2_samples": some,
        "emulator_equals_lava_fixed_pt": identical,
        "ms_per_sample": {"emulator": emulator_s * 1e3, "emulator_cold": emulator_cold_s * 1e3,
                          "lava_fixed_pt": lava_s * 1e3, "norse": norse_s * 1e3,
                          "brian2": brian2_s * 1e3, "norse_on_brian2_samples": norse_some_s * 1e3},
        "lava_lanes": lava_backend.choose_lanes(network, samples),
    }
    result["float_to_fixed_drop_points"] = 100 * (result["accuracy"]["norse"] - result["accuracy"]["lava_fixed_pt"])
    result["lava_over_emulator"] = lava_s / emulator_s
    result["lava_over_emulator_cold"] = lava_s / emulator_cold_s
    result["brian2_over_norse"] = brian2_s / norse_some_s
    print(json.dumps(result))
    if not args.no_record:
        acc, agree, ms = result["accuracy"], result["agreement_with_reference"], result["ms_per_sample"]
        trained = result["provenance"]
        figures = (
            f"Model: {network.summary()} ({args.model}; trained {trained['epochs']} epoch(s)"
            f"{', ' + str(trained['max_batches']) + ' batches each' if trained['max_batches'] else ''}); the first "
            f"{samples} test samples.\n\n"
            f"| backend | samples | accuracy | spike agreement with the reference | ms per sample |\n"
            f"|---|---|---|---|---|\n"
            f"| reference (numpy float64) | {samples} | {acc['reference']:.2%} | - | - |\n"
            f"| Norse | {samples} | {acc['norse']:.2%} | {agree['norse']:.4%} | {ms['norse']:.2f} |\n"
            f"| Lava floating_pt | {few} | - | {agree['lava_floating_pt']:.4%} | - |\n"
            f"| Brian2 | {some} | - | {agree['brian2']:.4%} | {ms['brian2']:.1f} (Norse on these: "
            f"{ms['norse_on_brian2_samples']:.2f}) |\n"
            f"| emulator | {samples} | {acc['emulator']:.2%} | - | {ms['emulator']:.3f} (first call: "
            f"{ms['emulator_cold']:.3f}) |\n"
            f"| Lava fixed_pt ({result['lava_lanes']} lanes, compile included) | {samples} | "
            f"{acc['lava_fixed_pt']:.2%} | - | {ms['lava_fixed_pt']:.1f} |\n\n"
            f"Float -> fixed drop (Norse - Lava fixed_pt): **{result['float_to_fixed_drop_points']:.2f} points**; "
            f"emulator = Lava fixed_pt bit for bit: **{'yes' if identical else 'NO'}**; Lava / emulator per sample: "
            f"**{result['lava_over_emulator']:.0f}x** ({result['lava_over_emulator_cold']:.0f}x against the emulator's "
            f"first call); Lava fixed_pt: **{lava_s:.3f} s per sample**; Brian2 / Norse "
            f"per sample: **{result['brian2_over_norse']:.0f}x**."
        )
        append_results("Conv SNN through every backend", figures, summary=(
            f"{network.summary().split(' lif net')[0]}, {samples} test samples: accuracy Norse {acc['norse']:.2%}, "
            f"emulator {acc['emulator']:.2%}, Lava fixed {acc['lava_fixed_pt']:.2%} (drop "
            f"{result['float_to_fixed_drop_points']:.2f} pt); spike agreement with the reference: Norse "
            f"{agree['norse']:.2%}, Lava float {agree['lava_floating_pt']:.2%}, Brian2 {agree['brian2']:.2%}; "
            f"emulator = Lava fixed: {'yes' if identical else 'no'}; ms/sample emulator {ms['emulator']:.3f}, Lava "
            f"fixed {ms['lava_fixed_pt']:.0f} ({result['lava_over_emulator']:.0f}x; first call "
            f"{ms['emulator_cold']:.3f}, {result['lava_over_emulator_cold']:.0f}x), Brian2 {ms['brian2']:.0f} vs "
            f"Norse {ms['norse_on_brian2_samples']:.1f}"))
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
