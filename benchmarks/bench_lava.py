"""Lava deployment speed: the bit-exact emulator against Lava fixed point, same samples, same run.

Network: 784-100-10 LIF, 64 steps, Bernoulli code (p = pixel), converted from a ReLU network
trained for a few epochs on Fashion-MNIST (neurocredit.convert.converted_relu_network: du 1, dv 0.02, vth 1),
quantized to 8-bit Loihi fixed point. Contenders, all on the first test samples:

(a) Lava fixed_pt, a graph built, compiled, run and stopped for every sample;
(b) Lava fixed_pt, one compiled graph, samples back to back in one long input buffer, one lane;
(c) the same with the default number of lanes (samples side by side, block-diagonal Dense);
(d) Lava floating_pt, long buffer, default lanes (checked against Norse spike for spike);
(e) the emulator (batched numpy integer arithmetic), on the whole test set.

Every Lava raster is compared with the emulator's for the same samples (fixed point) or with
Norse's (floating point). Wall-clock and CPU time (this process plus its Lava workers) are both
reported because the machine is shared. Accuracy: float model (Norse) and emulator on the whole
test set.

    nice -n 10 python benchmarks/bench_lava.py [--fresh 5] [--single-lane 40] [--lanes-samples 200] [--limit N]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: E402,F401  (before anything fixes the start method)

from common import append_results  # noqa: E402


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (Lava workers are joined on stop)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(function):
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = function()
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", type=int, default=5, help="samples for (a), one graph each")
    parser.add_argument("--single-lane", type=int, default=40, help="samples for (b)")
    parser.add_argument("--lanes-samples", type=int, default=200, help="samples for (c) and (d)")
    parser.add_argument("--limit", type=int, default=None, help="test samples for (e) and accuracy (default: all)")
    parser.add_argument("--epochs", type=int, default=3, help="ReLU training epochs before conversion")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--print-only", action="store_true", help="print the figures, do not record the run")
    args = parser.parse_args()

    import numpy as np

    from neurocredit.compare import spike_agreement
    from neurocredit.data import load_dataset
    from neurocredit.deploy import emulator, lava_backend
    from neurocredit.convert import converted_relu_network
    from neurocredit.deploy.quantize import quantize
    from neurocredit.sim import encode_inputs, simulate

    load_before = os.getloadavg()[0]
    dataset = load_dataset("fashion-mnist", args.data_dir)
    network = converted_relu_network("fashion-mnist", steps=64, epochs=args.epochs, hidden=(100,),
                                     data_dir=args.data_dir)
    quantized = quantize(network)
    x, y = dataset.x_test[: args.limit], dataset.y_test[: args.limit]
    largest = max(args.fresh, args.single_lane, args.lanes_samples)
    inputs = encode_inputs(network, x[:largest])
    reference = emulator.run(network, inputs, {"spikes"}, quantized=quantized)

    def identical(record, count):
        return all(np.array_equal(a[:, :count], b) for a, b in zip(reference.spikes, record.spikes))

    rows = []
    # (a) one graph per sample
    fresh_ok = True
    began_wall, began_cpu = time.perf_counter(), cpu_seconds()
    for sample in range(args.fresh):
        record = lava_backend.run_lava(network, inputs[:, sample : sample + 1], "fixed_pt", {"spikes"},
                                       quantized=quantized, lanes=1)
        fresh_ok &= all(np.array_equal(a[:, sample : sample + 1], b) for a, b in zip(reference.spikes, record.spikes))
    wall, cpu = time.perf_counter() - began_wall, cpu_seconds() - began_cpu
    rows.append(("(a) Lava fixed_pt, graph built + compiled + stopped per sample", args.fresh, wall, cpu, fresh_ok))
    fresh_ms = wall / args.fresh * 1e3
    # (b) one compiled graph, long buffer, one lane
    record, wall, cpu = timed(lambda: lava_backend.run_lava(network, inputs[:, : args.single_lane], "fixed_pt",
                                                            {"spikes"}, quantized=quantized, lanes=1))
    rows.append(("(b) Lava fixed_pt, one graph, long input buffer, 1 lane", args.single_lane, wall, cpu,
                 identical(record, args.single_lane)))
    # (c) default lanes
    lanes = lava_backend.choose_lanes(network, args.lanes_samples)
    record, wall, cpu = timed(lambda: lava_backend.run_lava(network, inputs[:, : args.lanes_samples], "fixed_pt",
                                                            {"spikes"}, quantized=quantized))
    rows.append((f"(c) Lava fixed_pt, one graph, long input buffer, {lanes} lanes", args.lanes_samples, wall, cpu,
                 identical(record, args.lanes_samples)))
    buffer_ms = wall / args.lanes_samples * 1e3
    lava_fixed_accuracy = float(np.mean(record.predictions == y[: args.lanes_samples]))
    # (d) floating point against Norse
    record, wall, cpu = timed(lambda: lava_backend.run_lava(network, inputs[:, : args.lanes_samples], "floating_pt",
                                                            {"spikes"}))
    norse = simulate(network, x[: args.lanes_samples], backend="norse", record={"spikes"})
    float_agreement = spike_agreement(norse, record)["overall"]
    rows.append((f"(d) Lava floating_pt, one graph, long input buffer, {lanes} lanes", args.lanes_samples, wall, cpu,
                 f"Norse agreement {float_agreement:.2%}"))
    # (e) emulator on the whole test set (and the same samples as (c)); encoding is not timed
    same, wall_same, _ = timed(lambda: emulator.run(network, inputs[:, : args.lanes_samples], quantized=quantized))
    predictions, wall, cpu = [], 0.0, 0.0
    for start in range(0, len(y), 1000):
        chunk = encode_inputs(network, x[start : start + 1000], offset=start)
        part, chunk_wall, chunk_cpu = timed(lambda: emulator.run(network, chunk, quantized=quantized))
        predictions.append(part.predictions)
        wall, cpu = wall + chunk_wall, cpu + chunk_cpu
    emulator_accuracy = float(np.mean(np.concatenate(predictions) == y))
    rows.append(("(e) emulator, batches of 1000, whole test split", len(y), wall, cpu, "reference"))
    emulator_ms = wall / len(y) * 1e3
    float_record = simulate(network, x, y, backend="norse")
    load_after = os.getloadavg()[0]

    table = ["| contender | samples | ms per sample (wall) | CPU ms per sample | spikes identical to emulator |",
             "|---|---:|---:|---:|---|"]
    for name, count, wall, cpu, check in rows:
        check_text = check if isinstance(check, str) else ("yes" if check else "**no**")
        table.append(f"| {name} | {count} | {wall / count * 1e3:.2f} | {cpu / count * 1e3:.2f} | {check_text} |")
    figures = "\n".join(table) + (
        f"\n\nEmulator speed-up per sample (wall): **{fresh_ms / emulator_ms:.0f}x** vs (a) Lava graph per sample, "
        f"**{buffer_ms / emulator_ms:.0f}x** vs (c) Lava long buffer; on the {args.lanes_samples} samples of (c) alone "
        f"the emulator took {wall_same / args.lanes_samples * 1e3:.2f} ms per sample.\n\n"
        f"Accuracy on {len(y)} Fashion-MNIST test samples: float (Norse, float64) {float_record.accuracy:.2%}, "
        f"emulator (Loihi fixed point) {emulator_accuracy:.2%}, drop {(float_record.accuracy - emulator_accuracy) * 100:+.2f} "
        f"points; Lava fixed_pt on the first {args.lanes_samples}: {lava_fixed_accuracy:.2%} "
        f"(emulator on the same: {float(np.mean(same.predictions == y[: args.lanes_samples])):.2%}).\n\n"
        f"Network: 784-100-10 LIF converted from a ReLU MLP ({args.epochs} epochs of Adam), du 1, dv 0.02, vth 1, "
        f"64 steps, Bernoulli code; weight_exp per layer {[layer.weight_exp for layer in quantized.layers]}. "
        f"Load average {load_before:.1f} before, {load_after:.1f} after (2 cores shared with other jobs)."
    )
    title = "Lava deployment: emulator vs Lava fixed point, 784-100-10 LIF, 64 steps"
    if args.print_only:
        print(f"## {title}\n\n{figures}")
    else:
        append_results(title, figures, summary=(
            f"ms per sample: emulator {emulator_ms:.2f}, Lava fixed_pt {buffer_ms:.2f} (long buffer, "
            f"{fresh_ms / emulator_ms:.0f}x / {buffer_ms / emulator_ms:.0f}x slower than the emulator with a graph "
            f"per sample / a long buffer); accuracy float {float_record.accuracy:.2%}, emulator "
            f"{emulator_accuracy:.2%}"))


if __name__ == "__main__":
    main()
