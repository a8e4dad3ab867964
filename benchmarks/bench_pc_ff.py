"""Predictive coding and forward-forward vs backpropagation baselines on Fashion-MNIST (issue 21).

Each family is trained in one child process with the contenders' epochs interleaved (PC epoch,
FF epoch, baseline epoch, ...), so their seconds per epoch see the same machine load:

1. rate: ``models/<data>-pc-rate.yaml`` and ``models/<data>-ff-rate.yaml`` against
   ``models/<data>-bp-rate.yaml`` (backpropagation);
2. spiking: ``models/<data>-pc-snn.yaml`` and ``models/<data>-ff-snn.yaml`` against
   ``models/<data>-bptt-snn.yaml`` (BPTT with Norse's surrogate gradient), same LIF neuron and
   encoder.

Each contender trains from its own config (its own network, optimizer and schedule: the rules do
not share a best setting); ``--epochs`` replaces every contender's epochs (the cosine schedule then
anneals over the shorter run). Settings are chosen on the validation split (``data.validation``,
printed after every epoch, the rule's own predictor); test accuracy is measured once, at the end,
on the saved network through the backend ``neurocredit eval`` uses (``rate``; ``norse`` for LIF).
Seconds per epoch are training seconds only. Peak memory: one fresh subprocess per contender (and,
for the spiking ones, per T) that loads the data, builds the rule and trains ``--memory-batches``
batches (:func:`common.training_memory`): peak RSS and its growth over the RSS before training.

Targets (issue 21): rate PC >= 88.5 %, rate FF >= 87.5 %, spiking PC >= 86 %, spiking FF >= 85 %;
memory flat in T for the spiking versions. Appends a dated section to benchmarks/history.md and
replaces its row of benchmarks/RESULTS.md. Run it alone (it uses one torch thread per run), one family per run::

    python benchmarks/bench_pc_ff.py --family rate --epochs 6
    python benchmarks/bench_pc_ff.py --family snn --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import (RESULTS, config_with, publish, run_child, run_worker, train_interleaved, training_memory,  # noqa: E402
                    worker_command)

PREFIX = {"digits": "digits", "fashion-mnist": "fmnist"}
CONTENDERS = {"rate": {"pc": "pc-rate", "ff": "ff-rate", "bp": "bp-rate"},
              "snn": {"pc": "pc-snn", "ff": "ff-snn", "bp": "bptt-snn"}}
TARGETS = {("rate", "pc"): 0.885, ("rate", "ff"): 0.875, ("snn", "pc"): 0.86, ("snn", "ff"): 0.85}
LABELS = {("rate", "pc"): "PC (rate)", ("rate", "ff"): "FF (rate)", ("rate", "bp"): "BP (baseline)",
          ("snn", "pc"): "PC (LIF)", ("snn", "ff"): "FF (LIF, no surrogate)", ("snn", "bp"): "BPTT (baseline)"}


def contender_path(data: str, family: str, rule: str) -> Path:
    return ROOT / "models" / f"{PREFIX[data]}-{CONTENDERS[family][rule]}.yaml"


def worker_family(args) -> dict:
    """Train the family's contenders, epochs interleaved; test accuracy of each saved network."""
    import torch

    from neurocredit.data import load_dataset
    from neurocredit.sim import simulate
    from neurocredit.train import TrainingSession

    torch.set_num_threads(args.threads)
    configs = {rule: config_with(contender_path(args.data, args.family, rule), epochs=args.epochs)
               for rule in args.rules}
    dataset = load_dataset(args.data, args.data_dir)
    sessions = {rule: TrainingSession(config, dataset=dataset) for rule, config in configs.items()}
    train_interleaved(sessions)
    result = {}
    for rule, session in sessions.items():
        network = session.network()
        if args.save_dir:
            from neurocredit.io import save_network

            save_network(network, Path(args.save_dir) / f"{session.config.name}.h5")
        record = simulate(network, dataset.x_test, dataset.y_test)
        seconds = [stats.seconds for stats in session.history]
        result[rule] = {"config": session.config.name, "backend": record.backend, "accuracy": float(record.accuracy),
                        "samples": int(record.samples), "epoch_seconds": seconds,
                        "seconds_per_epoch": sum(seconds) / len(seconds),
                        "validation": [stats.validation_accuracy for stats in session.history],
                        "validation_samples": len(session.dataset.y_validation)}
    return result


def worker_memory(args) -> dict:
    """Peak RSS and seconds per batch of ``--memory-batches`` batches of one contender at ``--steps``."""
    import torch

    torch.set_num_threads(args.threads)
    config = config_with(contender_path(args.data, args.family, args.rules[0]), steps=args.steps)
    return training_memory(config, args.data_dir, args.memory_batches)


def child_args(args, worker: str, **options) -> list[str]:
    return worker_command(__file__, worker, args.threads, args.data_dir, data=args.data, **options)


def family_lines(family: str, result: dict, memory: dict, steps: tuple[int, int], batches: int,
                 targets: bool) -> list[str]:
    baseline = result.get("bp")
    first = next(iter(result.values()))
    lines = [f"{'Rate' if family == 'rate' else 'Spiking'} networks (test accuracy: saved network, {first['samples']} "
             f"test samples, `{first['backend']}` backend, once at the end; validation: {first['validation_samples']} "
             "held-out training samples, the rule's own predictor):", "",
             "| rule | config | epochs | test accuracy | target | s/epoch | s/epoch / baseline | "
             "validation accuracy after each epoch |", "|---|---|---|---|---|---|---|---|"]
    for rule, row in result.items():
        target = TARGETS.get((family, rule)) if targets else None
        verdict = "-" if target is None else f"{target:.1%} ({'met' if row['accuracy'] >= target else 'not met'})"
        ratio = f"{row['seconds_per_epoch'] / baseline['seconds_per_epoch']:.2f}x" if baseline else "-"
        per_epoch = ", ".join(f"{a:.2%}" for a in row["validation"])
        lines.append(f"| {LABELS[(family, rule)]} | `{row['config']}` | {len(row['epoch_seconds'])} | "
                     f"**{row['accuracy']:.2%}** | {verdict} | {row['seconds_per_epoch']:.1f} | {ratio} | {per_epoch} |")
    if memory:
        lines += ["", f"Peak memory of training ({batches} batches per row, each in a fresh process; the config with "
                      "only T changed):", "", "| rule | T | RSS before training (MiB) | peak RSS (MiB) | growth in "
                      "training (MiB) | s/batch (median) |", "|---|---|---|---|---|---|"]
        for (rule, t), row in memory.items():
            growth = row["peak_rss_mb"] - row["rss_before_training_mb"]
            lines.append(f"| {LABELS[(family, rule)]} | {t or '-'} | {row['rss_before_training_mb']:.0f} | "
                         f"{row['peak_rss_mb']:.0f} | {growth:.1f} | {row['seconds_per_batch']:.3f} |")
        if family == "snn":
            lines.append("")
            low, high = steps
            for rule in result:
                if (rule, low) in memory and (rule, high) in memory:
                    ratio = memory[(rule, high)]["peak_rss_mb"] / memory[(rule, low)]["peak_rss_mb"]
                    growth = [memory[(rule, t)]["peak_rss_mb"] - memory[(rule, t)]["rss_before_training_mb"]
                              for t in (low, high)]
                    lines.append(f"- {LABELS[(family, rule)]}: peak RSS T={high} / T={low} = **{ratio:.3f}x** "
                                 f"(growth in training {growth[0]:.1f} -> {growth[1]:.1f} MiB)")
    return lines + [""]


def headlines(family: str, result: dict) -> list[str]:
    """One headline per contender: ``<contender> <test accuracy> (<epochs> epochs[, <ratio>x <baseline> s/epoch])``."""
    baseline = result.get("bp")
    parts = []
    for rule, row in result.items():
        text = f"{CONTENDERS[family][rule]} {row['accuracy']:.2%} ({len(row['epoch_seconds'])} epochs"
        if baseline and rule != "bp":
            text += (f", {row['seconds_per_epoch'] / baseline['seconds_per_epoch']:.2f}x "
                     f"{CONTENDERS[family]['bp'].split('-')[0].upper()} s/epoch")
        parts.append(text + ")")
    return parts


def kept_headlines(data: str, trained: set[str]) -> list[str]:
    """The headlines of the contenders this run does not train, kept from this script's row of
    RESULTS.md when it is for the same data set (a CPU slot fits one family, or a few contenders,
    per run)."""
    key = f"| `{Path(__file__).name}` |"
    rows = [line for line in RESULTS.read_text().splitlines() if line.startswith(key)] if RESULTS.exists() else []
    if not rows or not rows[0][len(key):].strip().startswith(f"{data}:"):
        return []
    summary = rows[0][len(key):].split(" | ")[0].strip()[len(data) + 1:]
    kept = []
    for part in summary.split("; "):
        grouped = re.fullmatch(r"(?:rate|snn) \((\d+) epochs\): (.*)", part.strip())  # one family per part
        entries = [part.strip()]
        if grouped:
            entries = [entry.split(" (")[0] + f" ({grouped.group(1)} epochs" +
                       (f", {entry.split(' (', 1)[1].rstrip(')')})" if " (" in entry else ")")
                       for entry in grouped.group(2).split(", ")]
        kept += [entry for entry in entries if entry.split(" ")[0] not in trained]
    return kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=["rate", "snn", "both"], default="both")
    parser.add_argument("--rules", nargs="+", choices=["pc", "ff", "bp"], default=["pc", "ff", "bp"],
                        help="contenders (bp: the BP / BPTT baseline)")
    parser.add_argument("--epochs", type=int, default=None, help="every contender's epochs (default: the configs')")
    parser.add_argument("--data", choices=list(PREFIX), default="fashion-mnist")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--memory-steps", type=int, nargs=2, default=[25, 100], metavar=("T1", "T2"))
    parser.add_argument("--memory-batches", type=int, default=10)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--save-dir", default=None, help="save the trained networks here")
    parser.add_argument("--no-append", action="store_true", help="print only, do not record the run")
    parser.add_argument("--worker", choices=["family", "memory"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    if run_worker(args, {"family": worker_family, "memory": worker_memory}):
        return 0

    began = time.perf_counter()
    lines, summary = [], []
    families = ["rate", "snn"] if args.family == "both" else [args.family]
    trained = {CONTENDERS[family][rule] for family in families for rule in args.rules}
    for family in families:
        result = run_child(child_args(args, "family", family=family, rules=args.rules, epochs=args.epochs,
                                      save_dir=args.save_dir))
        print(f"{family}: {json.dumps(result)}", flush=True)
        memory = {}
        if not args.skip_memory:
            for rule in args.rules:
                for steps in (args.memory_steps if family == "snn" else [None]):
                    memory[(rule, steps)] = run_child(child_args(args, "memory", family=family, rules=[rule],
                                                                 steps=steps, memory_batches=args.memory_batches))
                    print(f"memory {family} {rule} T={steps}: {json.dumps(memory[(rule, steps)])}", flush=True)
        lines += family_lines(family, result, memory, tuple(args.memory_steps), args.memory_batches,
                              targets=args.data == "fashion-mnist")
        summary += headlines(family, result)
    lines.append(f"- torch threads {args.threads}; load average at the end: "
                 f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (2 cores shared with other jobs); "
                 f"benchmark wall time {time.perf_counter() - began:.0f} s")
    publish(f"Predictive coding and forward-forward vs BP / BPTT, {args.data} (bench_pc_ff.py)", "\n".join(lines),
            args.no_append, summary=f"{args.data}: " + "; ".join(summary + kept_headlines(args.data, trained)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
