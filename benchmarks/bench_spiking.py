"""Online spiking DFA vs. surrogate-gradient BPTT through Norse on Fashion-MNIST (issue 4 targets).

Same network (``models/fmnist-dfa-snn.yaml`` and ``models/fmnist-bptt-snn.yaml``: 784-1000-10
canonical LIF, Bernoulli rate-coded input, batch 128, the same T), in one run:

1. test accuracy (the saved network through the ``norse`` backend, float64, all 10000 test
   samples) and training seconds per epoch, each rule trained in its own subprocess;
2. seconds per batch of both rules measured in *one* process, alternating DFA and BPTT batches
   (``--speed-batches`` each, at every ``--memory-steps`` T): on a shared machine this ratio is
   the fair one, because both rules see the same load; the per-epoch times of step 1 come from
   runs minutes apart;
3. peak RSS of training at T=25 and T=100 (``--memory-steps``): one fresh subprocess per rule and T
   that loads the data, builds the rule and trains ``--memory-batches`` batches, so the peak is
   that configuration's alone; also its seconds per batch.

Targets (issue 4): DFA accuracy >= 88 %; DFA s/epoch <= 0.35x BPTT's; DFA peak RSS at T=100 <=
1.2x its peak at T=25. Appends a dated section to benchmarks/history.md (its row of RESULTS.md too). Torch runs with
``--threads`` threads (default 1: the machine's cores are shared; both rules get the same).
Run it niced::

    nice -n 10 .venv/bin/python benchmarks/bench_spiking.py --dfa-epochs 10 --bptt-epochs 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import (config_with, peak_rss_mb, publish, run_child, run_worker, training_memory,  # noqa: E402
                    worker_command)

DFA_CONFIG = ROOT / "models" / "fmnist-dfa-snn.yaml"
BPTT_CONFIG = ROOT / "models" / "fmnist-bptt-snn.yaml"


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def worker_train(args) -> dict:
    """Train one config; accuracy through the norse backend, seconds per epoch, peak RSS."""
    from neurocredit.io import save_network
    from neurocredit.train import train

    _set_threads(args.threads)
    config = config_with(args.config, epochs=args.epochs)
    result = train(config, data_dir=args.data_dir, progress=False, log=lambda line: print(line, file=sys.stderr))
    if args.save:
        save_network(result.network, args.save)
    seconds = [stats.seconds for stats in result.history]
    return {
        "config": config.name,
        "rule": config.rule.name,
        "steps": config.network.encoder.steps,
        "epochs": len(result.history),
        "accuracy": result.test_accuracy,
        "samples": result.test_samples,
        "seconds_per_epoch": sum(seconds) / len(seconds),
        "epoch_seconds": seconds,
        "epoch_validation_accuracy": [stats.validation_accuracy for stats in result.history],
        "peak_rss_mb": peak_rss_mb(),
    }


def worker_memory(args) -> dict:
    """Peak RSS and seconds per batch of ``--memory-batches`` training batches at ``--steps``."""
    _set_threads(args.threads)
    config = config_with(args.config, steps=args.steps)
    return training_memory(config, args.data_dir, args.memory_batches)


def worker_speed(args) -> dict:
    """Seconds per batch of DFA and BPTT at ``--steps``, alternating batches in this process."""
    import numpy as np
    import torch

    from neurocredit.config import build_network
    from neurocredit.data import load_dataset
    from neurocredit.rules import rule_class

    _set_threads(args.threads)
    rules = {}
    for name, path in (("dfa", DFA_CONFIG), ("bptt", BPTT_CONFIG)):
        config = config_with(str(path), steps=args.steps)
        cls = rule_class(config.rule.name, config.network.neuron.kind)
        options = config.rule_options()
        if not rules:
            dataset = load_dataset(config.data.name, args.data_dir or config.data.data_dir)
        network = build_network(config, dataset.n_features, cls.output_size(options, dataset.n_classes),
                                config.training.seed)
        rules[name] = (cls(network, options, config.training, dataset.n_classes), config.training.batch_size)
    from neurocredit.rules.spiking import block_currents

    dfa_rule = rules["dfa"][0]

    def input_product(features, labels):
        # the floor of any rule that simulates this network: the first layer's input currents
        # W x[t] for all T steps (one product), the encoding included
        block_currents(dfa_rule.encode(features, args.steps), dfa_rule.weights[0])

    contenders = {name: rule.train_batch for name, (rule, _) in rules.items()}
    contenders["input_product"] = input_product
    size = rules["dfa"][1]
    times = {name: [] for name in contenders}
    for batch in range(args.speed_batches + 1):
        index = slice(batch * size, (batch + 1) * size)
        features, labels = torch.as_tensor(dataset.x_train[index]), torch.as_tensor(dataset.y_train[index])
        for name, function in contenders.items():
            began = time.perf_counter()
            with torch.no_grad() if name == "input_product" else contextlib.nullcontext():
                function(features, labels)
            if batch > 0:  # the first batch of each warms up
                times[name].append(time.perf_counter() - began)
    return {"steps": args.steps, "batches": args.speed_batches,
            **{f"{name}_median": float(np.median(t)) for name, t in times.items()},
            **{f"{name}_min": float(np.min(t)) for name, t in times.items()}}


def child_args(args, worker: str, config: Path, **extra) -> list[str]:
    return worker_command(__file__, worker, args.threads, args.data_dir, config=config, **extra)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dfa-epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--bptt-epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--memory-steps", type=int, nargs=2, default=[25, 100], metavar=("T1", "T2"))
    parser.add_argument("--memory-batches", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--speed-batches", type=int, default=30,
                        help="batches of each rule in the alternating speed measurement")
    parser.add_argument("--skip-training", action="store_true", help="no training runs (steps 2 and 3 only)")
    parser.add_argument("--skip-memory", action="store_true", help="no peak-RSS runs")
    parser.add_argument("--no-append", action="store_true", help="print only, do not record the run")
    parser.add_argument("--save-dir", default=None, help="save the trained networks here")
    # worker mode (internal)
    parser.add_argument("--worker", choices=["train", "memory", "speed"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--config", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--save", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    if run_worker(args, {"train": worker_train, "memory": worker_memory, "speed": worker_speed}):
        return 0

    began = time.perf_counter()
    trained = {}
    if not args.skip_training:
        for name, config, epochs in (("dfa", DFA_CONFIG, args.dfa_epochs), ("bptt", BPTT_CONFIG, args.bptt_epochs)):
            save = str(Path(args.save_dir) / f"{name}.h5") if args.save_dir else None
            trained[name] = run_child(child_args(args, "train", config, epochs=epochs, save=save))
            print(f"{name}: {json.dumps(trained[name])}", flush=True)
    speed = {}
    for steps in args.memory_steps:
        speed[steps] = run_child(child_args(args, "speed", DFA_CONFIG, steps=steps,
                                            speed_batches=args.speed_batches))
        print(f"speed T={steps}: {json.dumps(speed[steps])}", flush=True)
    memory = {}
    for name, config in (("dfa", DFA_CONFIG), ("bptt", BPTT_CONFIG)):
        if args.skip_memory:
            break
        for steps in args.memory_steps:
            memory[(name, steps)] = run_child(child_args(args, "memory", config, steps=steps,
                                                         memory_batches=args.memory_batches))
            print(f"{name} T={steps}: {json.dumps(memory[(name, steps)])}", flush=True)

    lines, headline = [], []
    if trained:
        dfa, bptt = trained["dfa"], trained["bptt"]
        ratio = dfa["seconds_per_epoch"] / bptt["seconds_per_epoch"]
        headline.append(f"test accuracy DFA {dfa['accuracy']:.2%} ({dfa['epochs']} epochs), BPTT "
                        f"{bptt['accuracy']:.2%} ({bptt['epochs']} epochs); DFA / BPTT s per epoch {ratio:.2f}x")
        lines += [
            f"Training ({dfa['steps']} steps, {args.threads} torch thread(s); accuracy = saved network through "
            "the norse backend, float64, 10000 test samples):",
            "",
            "| rule | epochs | test accuracy | s/epoch | validation accuracy after each epoch (rule's float32 predictor) |",
            "|---|---|---|---|---|",
        ]
        for name, row in (("spiking DFA", dfa), ("BPTT (Norse, surrogate)", bptt)):
            per_epoch = ", ".join(f"{a:.2%}" for a in row["epoch_validation_accuracy"])
            lines.append(f"| {name} | {row['epochs']} | {row['accuracy']:.2%} | {row['seconds_per_epoch']:.1f} | "
                         f"{per_epoch} |")
        lines += ["", f"- DFA s/epoch / BPTT s/epoch = **{ratio:.2f}x** (target <= 0.35x: "
                      f"{'met' if ratio <= 0.35 else 'not met'})",
                  f"- DFA accuracy {dfa['accuracy']:.2%} (target >= 88 %: "
                  f"{'met' if dfa['accuracy'] >= 0.88 else 'not met'})", ""]
    lines += [
        f"Seconds per training batch, DFA and BPTT alternating in one process ({args.speed_batches} batches each):",
        "",
        "| T | DFA median | BPTT median | DFA / BPTT (median) | DFA min | BPTT min | DFA / BPTT (min) | "
        "first-layer input product alone (median) | its / BPTT |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for steps, row in speed.items():
        lines.append(f"| {steps} | {row['dfa_median']:.3f} | {row['bptt_median']:.3f} | "
                     f"**{row['dfa_median'] / row['bptt_median']:.2f}x** | {row['dfa_min']:.3f} | "
                     f"{row['bptt_min']:.3f} | {row['dfa_min'] / row['bptt_min']:.2f}x | "
                     f"{row['input_product_median']:.3f} | {row['input_product_median'] / row['bptt_median']:.2f}x |")
    lines += ["", "The input product (encoding plus the (T*batch, 784) @ (784, 1000) product of the first "
              "layer's currents) is what any rule that simulates this network pays per batch; BPTT pays it "
              "and a backward pass, DFA pays it and the elementwise LIF/trace/surrogate updates."]
    lines.append("")
    if memory:
        lines += memory_lines(args, memory)
    lines.append(f"- load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} (shared machine); "
                 f"benchmark wall time {time.perf_counter() - began:.0f} s")
    figures = "\n".join(lines)
    headline += [f"T={steps}: DFA / BPTT s per batch {row['dfa_median'] / row['bptt_median']:.2f}x (median)"
                 for steps, row in speed.items()]
    publish("Spiking DFA vs Norse BPTT, Fashion-MNIST (bench_spiking.py)", figures, args.no_append,
            summary="; ".join(headline))
    return 0


def memory_lines(args, memory) -> list[str]:
    low, high = args.memory_steps
    lines = [
        f"Peak RSS of training ({args.memory_batches} batches of 128 per configuration, each in a fresh process):",
        "",
        "| rule | T | RSS before training (MiB) | peak RSS (MiB) | s/batch (median) |",
        "|---|---|---|---|---|",
    ]
    for (name, steps), row in memory.items():
        label = "spiking DFA" if name == "dfa" else "BPTT"
        lines.append(f"| {label} | {steps} | {row['rss_before_training_mb']:.0f} | "
                     f"{row['peak_rss_mb']:.0f} | {row['seconds_per_batch']:.3f} |")
    dfa_growth = memory[("dfa", high)]["peak_rss_mb"] / memory[("dfa", low)]["peak_rss_mb"]
    bptt_growth = memory[("bptt", high)]["peak_rss_mb"] / memory[("bptt", low)]["peak_rss_mb"]
    batch_ratio = {steps: memory[("dfa", steps)]["seconds_per_batch"] / memory[("bptt", steps)]["seconds_per_batch"]
                   for steps in args.memory_steps}
    return lines + [
        "",
        f"- DFA peak RSS T={high} / T={low} = **{dfa_growth:.3f}x** (target <= 1.2x: "
        f"{'met' if dfa_growth <= 1.2 else 'not met'}); BPTT: {bptt_growth:.2f}x",
        "- DFA s/batch / BPTT s/batch in these separate runs: "
        + ", ".join(f"T={s}: {r:.2f}x" for s, r in batch_ratio.items()),
    ]


if __name__ == "__main__":
    raise SystemExit(main())
