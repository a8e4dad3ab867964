"""Signal propagation vs backpropagation baselines on Fashion-MNIST (issue 5 targets).

Two pairs, each trained in one process with their epochs interleaved (sigprop epoch, baseline
epoch, ...), so both see the same machine load:

1. rate: ``models/fmnist-sigprop-rate.yaml`` against backpropagation (rule ``bp``) on *the same*
   config (network, optimizer, batch, schedule, epochs; only the rule differs);
2. spiking: ``models/fmnist-sigprop-snn.yaml`` (surrogate-free spiking sigprop) against BPTT with
   Norse's surrogate gradient (``neurocredit.rules.bp``, rule ``bp`` on a lif network) on the
   same config.

Test accuracy is the saved network's on all 10000 test samples through the backend that
``neurocredit eval`` uses (``rate``; ``norse`` in float64 for LIF networks). Seconds per epoch
are training seconds only. Then peak RSS of spiking training at T=25 and T=100: one fresh
subprocess per rule and T that loads the data, builds the rule and trains ``--memory-batches``
batches, so each peak is that configuration's alone.

Targets (issue 5): rate sigprop >= 89 %; spiking sigprop >= 89.3 %; spiking sigprop s/epoch <=
0.5x BPTT's; spiking sigprop peak RSS at T=100 <= 1.2x at T=25. Appends a dated section to
benchmarks/history.md (and updates its row of benchmarks/RESULTS.md). Run it niced::

    nice -n 10 .venv/bin/python benchmarks/bench_sigprop.py --rate-epochs 10 --snn-epochs 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import (config_with, publish, run_child, run_worker, train_interleaved, training_memory,  # noqa: E402
                    worker_command)

RATE_CONFIG = ROOT / "models" / "fmnist-sigprop-rate.yaml"
SNN_CONFIG = ROOT / "models" / "fmnist-sigprop-snn.yaml"
BASELINE_RULES = {"rate": {"name": "bp"}, "lif": {"name": "bp", "surrogate": "super", "loss_scale": 10.0}}


def _config(path: str, baseline: bool = False, steps: int | None = None, epochs: int | None = None,
            data: str | None = None):
    """The sigprop config, or the same config with the baseline rule (BP / BPTT)."""
    from neurocredit.config import DataConfig, RuleConfig

    config = config_with(path, steps=steps, epochs=epochs)
    if data is not None:
        config = dataclasses.replace(config, data=DataConfig(data, config.data.data_dir))
    if baseline:
        options = dict(BASELINE_RULES[config.network.neuron.kind])
        name = options.pop("name")
        config = dataclasses.replace(config, name=f"{config.name} (baseline {name})",
                                     rule=RuleConfig(name, options))
    return config


def worker_pair(args) -> dict:
    """Train sigprop and its baseline on one config, epochs interleaved; final accuracy of each
    saved network through the eval backend."""
    import torch

    from neurocredit.data import load_dataset
    from neurocredit.sim import simulate
    from neurocredit.train import TrainingSession

    torch.set_num_threads(args.threads)
    configs = {"sigprop": _config(args.config, epochs=args.epochs, data=args.data),
               "baseline": _config(args.config, baseline=True, epochs=args.epochs, data=args.data)}
    dataset = load_dataset(configs["sigprop"].data.name, args.data_dir)
    sessions = {name: TrainingSession(config, dataset=dataset) for name, config in configs.items()}
    train_interleaved(sessions)
    result = {}
    for name, session in sessions.items():
        network = session.network()
        if args.save_dir:
            from neurocredit.io import save_network

            kind = "snn" if network.neuron.spiking else "rate"
            save_network(network, Path(args.save_dir) / f"fmnist-{'sigprop' if name == 'sigprop' else 'baseline'}-{kind}.h5")
        began = time.perf_counter()
        record = simulate(network, dataset.x_test, dataset.y_test)
        seconds = [stats.seconds for stats in session.history]
        result[name] = {
            "config": configs[name].name,
            "rule": configs[name].rule.name,
            "backend": record.backend,
            "accuracy": float(record.accuracy),
            "samples": int(record.samples),
            "eval_seconds": time.perf_counter() - began,
            "epoch_seconds": seconds,
            "seconds_per_epoch": sum(seconds) / len(seconds),
            "epoch_validation_accuracy": [stats.validation_accuracy for stats in session.history],
        }
    return result


def worker_memory(args) -> dict:
    """Peak RSS and seconds per batch of ``--memory-batches`` training batches at ``--steps``."""
    import torch

    torch.set_num_threads(args.threads)
    config = _config(args.config, baseline=args.baseline, steps=args.steps, data=args.data)
    return training_memory(config, args.data_dir, args.memory_batches)


def child_args(args, worker: str, config: Path, **extra) -> list[str]:
    return worker_command(__file__, worker, args.threads, args.data_dir, config=config, data=args.data,
                          save_dir=args.save_dir, **extra)


def pair_lines(title: str, pair: dict, labels: tuple[str, str], target: float) -> list[str]:
    sigprop, baseline = pair["sigprop"], pair["baseline"]
    lines = [
        f"{title} (accuracy: saved network, {sigprop['samples']} test samples, `{sigprop['backend']}` backend):",
        "",
        "| rule | epochs | test accuracy | s/epoch | validation accuracy after each epoch (rule's own predictor) |",
        "|---|---|---|---|---|",
    ]
    for label, row in zip(labels, (sigprop, baseline)):
        per_epoch = ", ".join(f"{a:.2%}" for a in row["epoch_validation_accuracy"])
        lines.append(f"| {label} | {len(row['epoch_seconds'])} | {row['accuracy']:.2%} | "
                     f"{row['seconds_per_epoch']:.1f} | {per_epoch} |")
    ratio = sigprop["seconds_per_epoch"] / baseline["seconds_per_epoch"]
    return lines + [
        "",
        f"- sigprop test accuracy {sigprop['accuracy']:.2%} (target >= {target:.1%}: "
        f"{'met' if sigprop['accuracy'] >= target else 'not met'}); baseline {baseline['accuracy']:.2%}",
        f"- sigprop s/epoch / baseline s/epoch (same process, interleaved epochs) = **{ratio:.2f}x**; per-epoch "
        f"seconds sigprop {[round(s, 1) for s in sigprop['epoch_seconds']]}, "
        f"baseline {[round(s, 1) for s in baseline['epoch_seconds']]}",
        "",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate-epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--snn-epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--memory-steps", type=int, nargs=2, default=[25, 100], metavar=("T1", "T2"))
    parser.add_argument("--memory-batches", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", default=None, help="another data set (e.g. digits, for a quick check)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--skip-rate", action="store_true")
    parser.add_argument("--skip-snn", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--save-dir", default=None, help="save the trained networks here (e.g. for bench_deploy.py)")
    parser.add_argument("--no-append", action="store_true", help="print only, do not record the run")
    # worker mode (internal)
    parser.add_argument("--worker", choices=["pair", "memory"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--config", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    if run_worker(args, {"pair": worker_pair, "memory": worker_memory}):
        return 0

    began = time.perf_counter()
    lines, headline = [], []

    def pair_headline(kind: str, pair: dict) -> str:
        sigprop, baseline = pair["sigprop"], pair["baseline"]
        return (f"{kind}: sigprop {sigprop['accuracy']:.2%}, baseline {baseline['accuracy']:.2%} "
                f"({len(sigprop['epoch_seconds'])} epochs), s/epoch "
                f"{sigprop['seconds_per_epoch'] / baseline['seconds_per_epoch']:.2f}x")

    if not args.skip_rate:
        rate = run_child(child_args(args, "pair", RATE_CONFIG, epochs=args.rate_epochs))
        print(f"rate: {json.dumps(rate)}", flush=True)
        lines += pair_lines("Rate networks, `models/fmnist-sigprop-rate.yaml` and the same config with rule `bp`",
                            rate, ("sigprop (rate)", "backpropagation"), 0.89)
        headline.append(pair_headline("rate", rate))
    if not args.skip_snn:
        snn = run_child(child_args(args, "pair", SNN_CONFIG, epochs=args.snn_epochs))
        print(f"snn: {json.dumps(snn)}", flush=True)
        lines += pair_lines("Spiking networks, `models/fmnist-sigprop-snn.yaml` and the same config with BPTT "
                            "(rule `bp`, Norse SuperSpike surrogate)", snn,
                            ("sigprop (LIF, no surrogate)", "BPTT (surrogate)"), 0.893)
        headline.append(pair_headline("spiking (vs BPTT)", snn))
        ratio = snn["sigprop"]["seconds_per_epoch"] / snn["baseline"]["seconds_per_epoch"]
        lines += [f"- spiking sigprop s/epoch / BPTT s/epoch = {ratio:.2f}x (target <= 0.5x: "
                  f"{'met' if ratio <= 0.5 else 'not met'})", ""]
    if not args.skip_memory:
        low, high = args.memory_steps
        memory = {}
        for baseline in (False, True):
            for steps in (low, high):
                memory[(baseline, steps)] = run_child(child_args(args, "memory", SNN_CONFIG, steps=steps,
                                                                 memory_batches=args.memory_batches,
                                                                 baseline=baseline))
                print(f"memory baseline={baseline} T={steps}: {json.dumps(memory[(baseline, steps)])}", flush=True)
        lines += [
            f"Peak RSS of spiking training ({args.memory_batches} batches per configuration, each in a fresh "
            "process; `models/fmnist-sigprop-snn.yaml` with only T changed):",
            "",
            "| rule | T | RSS before training (MiB) | peak RSS (MiB) | s/batch (median) |",
            "|---|---|---|---|---|",
        ]
        for (baseline, steps), row in memory.items():
            label = "BPTT (surrogate)" if baseline else "sigprop (LIF, no surrogate)"
            lines.append(f"| {label} | {steps} | {row['rss_before_training_mb']:.0f} | {row['peak_rss_mb']:.0f} | "
                         f"{row['seconds_per_batch']:.3f} |")
        growth = memory[(False, high)]["peak_rss_mb"] / memory[(False, low)]["peak_rss_mb"]
        bptt_growth = memory[(True, high)]["peak_rss_mb"] / memory[(True, low)]["peak_rss_mb"]
        lines += ["", f"- sigprop peak RSS T={high} / T={low} = **{growth:.3f}x** (target <= 1.2x: "
                      f"{'met' if growth <= 1.2 else 'not met'}); BPTT: {bptt_growth:.2f}x", ""]
        headline.append(f"peak RSS T={high} / T={low}: sigprop {growth:.3f}x, BPTT {bptt_growth:.2f}x")
    lines.append(f"- torch threads {args.threads}; load average at the end: "
                 f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (2 cores shared with other jobs); "
                 f"benchmark wall time {time.perf_counter() - began:.0f} s")
    figures = "\n".join(lines)
    publish("Signal propagation vs BP / BPTT, Fashion-MNIST (bench_sigprop.py)", figures, args.no_append,
            summary="; ".join(headline))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
