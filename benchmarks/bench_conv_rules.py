"""Forward-only rules on a convolutional SNN against conv BPTT, Fashion-MNIST (issue 16 targets).

Contenders, all on the architecture, neuron, encoder (T) and batch of
``models/fmnist-bptt-conv-snn.yaml`` (1x28x28 -> conv16@5x5 -> pool2 -> conv32@5x5 -> pool2 -> 10),
except spiking DFA's LIF ``du`` (1.0 against 0.5 since 2026-12-06) and spiking sigprop's channels (32/64
against 16/32 since 2026-12-07), each chosen on validation (their configs' comments); spiking sigprop
also trains on BPTT's layers (16/32 channels, the row "sigprop (BPTT's layers)") and BPTT on
spiking sigprop's (32/64, the row "bptt (sigprop's layers)"), so each spiking rule's seconds per
epoch is also compared with BPTT's on the same layers (column "s/epoch vs BPTT, same layers"), the
like-for-like figure of the speed target:

* spiking: BPTT with Norse's surrogate (the baseline), online spiking DFA, surrogate-free sigprop
  (``models/fmnist-{bptt,dfa,sigprop}-conv-snn.yaml``);
* rate twins: ``models/fmnist-{dfa,sigprop}-conv-rate.yaml`` (DFA with 32/64, sigprop with 48/96 channels, chosen on
  validation: their configs' comments).

All are trained in one process with their epochs interleaved (so they see the same machine load),
optionally on the first ``--batches`` batches of each epoch (a subset: the figures then say so).
Test accuracy: the saved network through the backend ``neurocredit eval`` uses (``norse``, float64,
for LIF networks; ``rate`` otherwise) on the first ``--test-samples`` test images (default all
10000). Seconds per epoch: training only. Float -> Loihi fixed point: the spiking models through the
bit-exact emulator (``deploy``'s quantization) against Norse on the first ``--emulator-samples``.
Peak RSS of spiking training at two values of T: one fresh process per rule and T.

Targets (issue 16): spiking sigprop >= 90.0 %, spiking DFA >= 89.5 %, rate sigprop >= 91 %, rate
DFA >= 90 %; s/epoch <= 0.6x conv BPTT's; peak memory T=100 <= 1.2x T=25; float -> fixed drop
<= 1 point. Records its row in benchmarks/RESULTS.md and a section in history.md::

    python benchmarks/bench_conv_rules.py --epochs 1 --batches 100
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import config_with, publish, run_child, run_worker, training_memory  # noqa: E402

MODELS = ROOT / "models"
SPIKING = {"bptt": "fmnist-bptt-conv-snn", "dfa": "fmnist-dfa-conv-snn", "sigprop": "fmnist-sigprop-conv-snn"}
RATE = {"dfa (rate)": "fmnist-dfa-conv-rate", "sigprop (rate)": "fmnist-sigprop-conv-rate"}
SAME_LAYERS = "sigprop (BPTT's layers)"
BPTT_SIGPROP_LAYERS = "bptt (sigprop's layers)"
TARGETS = {"dfa": 0.895, "sigprop": 0.90, "dfa (rate)": 0.90, "sigprop (rate)": 0.91}


def worker_train(args) -> dict:
    """Train every contender, epochs interleaved; accuracy, s/epoch, float -> fixed drop."""
    import dataclasses

    import numpy as np
    import torch

    from neurocredit.data import load_dataset
    from neurocredit.sim import simulate
    from neurocredit.train import TrainingSession

    torch.set_num_threads(args.threads)
    names = {**SPIKING, **({} if args.skip_rate else RATE)}
    configs = {label: config_with(MODELS / f"{name}.yaml", epochs=args.epochs) for label, name in names.items()}
    # the speed target compares rules on one architecture: sigprop also on BPTT's layers
    sigprop, bptt_layers = configs["sigprop"], configs["bptt"].network.layers
    if sigprop.network.layers != bptt_layers:
        configs[SAME_LAYERS] = dataclasses.replace(
            sigprop, network=dataclasses.replace(sigprop.network, layers=bptt_layers))
        names[SAME_LAYERS] = f"{SPIKING['sigprop']}-bptt-layers"
        configs[BPTT_SIGPROP_LAYERS] = dataclasses.replace(
            configs["bptt"], network=dataclasses.replace(configs["bptt"].network, layers=sigprop.network.layers))
        names[BPTT_SIGPROP_LAYERS] = f"{SPIKING['bptt']}-sigprop-layers"
    if args.validation is not None:  # a smaller validation split: its per-epoch evaluation is not free
        configs = {label: dataclasses.replace(config, data=dataclasses.replace(config.data, validation=args.validation))
                   for label, config in configs.items()}
    dataset = load_dataset("fashion-mnist", args.data_dir)
    sessions = {label: TrainingSession(config, dataset=dataset) for label, config in configs.items()}
    for _ in range(args.epochs):
        for label, session in sessions.items():
            stats = session.run_epoch(progress=False, max_batches=args.batches)
            print(f"{label} epoch {stats.epoch}: loss {stats.loss:.4f} val {stats.validation_accuracy:.2%} "
                  f"{stats.seconds:.1f} s", file=sys.stderr, flush=True)
    x_test, y_test = dataset.x_test[: args.test_samples], dataset.y_test[: args.test_samples]
    result = {}
    for label, session in sessions.items():
        network = session.network()
        if args.save_dir:
            from neurocredit.io import save_network

            save_network(network, Path(args.save_dir) / f"{names[label]}.h5")
        began = time.perf_counter()
        record = simulate(network, x_test, y_test)
        row = {
            "config": names[label], "layers": repr(configs[label].network.layers),
            "spiking": bool(network.neuron.spiking), "backend": record.backend, "accuracy": float(record.accuracy),
            "eval_steps": int(record.steps), "training_steps": int(network.provenance.get("training_steps", record.steps)),
            "samples": int(record.samples), "eval_seconds": time.perf_counter() - began,
            "epoch_seconds": [stats.seconds for stats in session.history],
            "validation": [stats.validation_accuracy for stats in session.history],
        }
        row["seconds_per_epoch"] = float(np.mean(row["epoch_seconds"]))
        if network.neuron.spiking and args.emulator_samples:
            count = args.emulator_samples
            floating = simulate(network, x_test[:count], y_test[:count], backend="norse")
            fixed = simulate(network, x_test[:count], y_test[:count], backend="emulator")
            row.update(emulator_samples=count, float_accuracy=float(floating.accuracy),
                       fixed_accuracy=float(fixed.accuracy))
        print(f"{label}: {json.dumps(row)}", file=sys.stderr, flush=True)
        result[label] = row
    return result


def worker_memory(args) -> dict:
    import dataclasses

    import torch

    torch.set_num_threads(args.threads)
    config = config_with(MODELS / f"{args.config}.yaml", steps=args.steps)
    # a smaller batch keeps BPTT at T=100 within this machine's memory; the ratio is per rule
    config = dataclasses.replace(config, training=dataclasses.replace(config.training,
                                                                       batch_size=args.memory_batch_size))
    return training_memory(config, args.data_dir, args.memory_batches)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batches", type=int, default=None, help="train only this many batches per epoch")
    parser.add_argument("--test-samples", type=int, default=10000)
    parser.add_argument("--validation", type=float, default=None,
                        help="data.validation for every contender (default: the configs'; a count >= 1 or a fraction)")
    parser.add_argument("--emulator-samples", type=int, default=500)
    parser.add_argument("--memory-steps", type=int, nargs=2, default=[25, 100], metavar=("T1", "T2"))
    parser.add_argument("--memory-batches", type=int, default=2)
    parser.add_argument("--memory-batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--skip-rate", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--save-dir", default=None, help="save the trained networks here")
    parser.add_argument("--no-append", action="store_true", help="print only, do not record the run")
    parser.add_argument("--worker", choices=["train", "memory"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--config", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    if run_worker(args, {"train": worker_train, "memory": worker_memory}):
        return 0

    began = time.perf_counter()
    common = ["--threads", str(args.threads)] + (["--data-dir", args.data_dir] if args.data_dir else [])
    command = [__file__, "--worker", "train", "--epochs", str(args.epochs), "--test-samples", str(args.test_samples),
               "--emulator-samples", str(args.emulator_samples), *common]
    if args.batches:
        command += ["--batches", str(args.batches)]
    if args.validation is not None:
        command += ["--validation", str(args.validation)]
    if args.skip_rate:
        command.append("--skip-rate")
    if args.save_dir:
        command += ["--save-dir", args.save_dir]
    trained = run_child(command)
    bptt = trained["bptt"]
    held_out = "" if args.validation is None else f", validation split {args.validation:g}"
    subset = (f"{args.batches} batches of 64 per epoch ({args.batches * 64} of the 54000 training images)"
              if args.batches else "the full training split (54000 images)")
    lines = [
        f"{args.epochs} epoch(s) of {subset}{held_out}; test accuracy on {bptt['samples']} test images "
        f"(`{bptt['backend']}` backend for LIF networks, `rate` for rate networks):",
        "",
        "| rule | T (training / test) | test accuracy | target | s/epoch | s/epoch vs BPTT | "
        "s/epoch vs BPTT, same layers | validation after each epoch | float -> fixed (emulator) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    # BPTT's seconds per epoch on each set of layers it trained on (its own, and spiking sigprop's)
    bptt_on = {row["layers"]: row["seconds_per_epoch"] for label, row in trained.items()
               if label in ("bptt", BPTT_SIGPROP_LAYERS)}
    headline = []
    for label, row in trained.items():
        target = TARGETS.get(label)
        ratio = row["seconds_per_epoch"] / bptt["seconds_per_epoch"]
        same = bptt_on.get(row["layers"]) if row["spiking"] else None
        same_ratio = "" if same is None else f"{row['seconds_per_epoch'] / same:.2f}x"
        drop = ""
        if "fixed_accuracy" in row:
            points = 100 * (row["float_accuracy"] - row["fixed_accuracy"])
            drop = (f"{row['float_accuracy']:.2%} -> {row['fixed_accuracy']:.2%} ({points:+.2f} pt drop, "
                    f"{row['emulator_samples']} samples)")
        validation = ", ".join(f"{v:.2%}" for v in row["validation"])
        window = f"{row['training_steps']} / {row['eval_steps']}" if row["eval_steps"] else "rate"
        lines.append(f"| {label} | {window} | {row['accuracy']:.2%} | {'' if target is None else f'>= {target:.1%}'} | "
                     f"{row['seconds_per_epoch']:.0f} | {ratio:.2f}x | {same_ratio} | {validation} | {drop} |")
        same_headline = f", {same_ratio} on the same layers" if same_ratio and label not in ("bptt", BPTT_SIGPROP_LAYERS) else ""
        headline.append(f"{label} {row['accuracy']:.2%} ({ratio:.2f}x BPTT s/epoch{same_headline})")
    lines.append("")
    if not args.skip_memory:
        low, high = args.memory_steps
        lines += [
            f"Peak RSS of spiking training ({args.memory_batches} batches of {args.memory_batch_size}, one fresh "
            "process per rule and T; the configs with only T and the batch changed):",
            "",
            "| rule | T | RSS before training (MiB) | peak RSS (MiB) | growth during training (MiB) | s/batch |",
            "|---|---|---|---|---|---|",
        ]
        growth = {}
        for label, name in SPIKING.items():
            rows = {}
            for steps in (low, high):
                rows[steps] = run_child([__file__, "--worker", "memory", "--config", name, "--steps", str(steps),
                                         "--memory-batches", str(args.memory_batches), "--memory-batch-size",
                                         str(args.memory_batch_size), *common])
                row = rows[steps]
                lines.append(f"| {label} | {steps} | {row['rss_before_training_mb']:.0f} | {row['peak_rss_mb']:.0f} | "
                             f"{row['peak_rss_mb'] - row['rss_before_training_mb']:.0f} | "
                             f"{row['seconds_per_batch']:.2f} |")
            growth[label] = rows[high]["peak_rss_mb"] / rows[low]["peak_rss_mb"]
        lines += ["", "- peak RSS T=%d / T=%d: %s (target <= 1.2x for the local rules)" % (
            high, low, ", ".join(f"{label} **{value:.2f}x**" for label, value in growth.items())), ""]
        headline.append("peak RSS T=%d/T=%d: %s" % (high, low, ", ".join(f"{k} {v:.2f}x" for k, v in growth.items())))
    lines.append(f"- torch threads {args.threads}; load average at the end: "
                 f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (2 cores shared with other jobs); "
                 f"benchmark wall time {time.perf_counter() - began:.0f} s")
    publish("Forward-only rules on a conv SNN vs conv BPTT, Fashion-MNIST (bench_conv_rules.py)", "\n".join(lines),
            args.no_append, summary=f"{subset}, {args.epochs} epoch(s): " + "; ".join(headline))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
