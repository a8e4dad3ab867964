"""Contrastive Hebbian learning / equilibrium propagation against backpropagation baselines.

Rate EP (``models/<data>-chl-rate.yaml``) against BP on the same network, optimizer, batch and
epochs; STDP-style spiking CHL (``models/<data>-chl-snn.yaml``) against surrogate-gradient BPTT
(``rules/bp.py``, ``RULES['lif']``) on the same LIF network and encoder. The sessions' epochs are
interleaved in one process (CHL epoch, BP epoch, ...) so that their seconds per epoch see the
same machine load. Reported per contender: test accuracy of the saved feed-forward network
(``rate``/``norse`` backend, what ``neurocredit eval`` prints), test and validation accuracy of the
rule's own prediction (for CHL: the settled free phase with feedback, what EP papers report; the
saved network holds the feed-forward weights only), seconds per training epoch, and
peak memory of training in a fresh child process (``--memory-batches`` batches: peak RSS, and
its growth over the RSS after loading the data and building the rule).

``--sweep`` adds how accuracy depends on the settling steps per phase (each point a separate
run of ``--sweep-epochs`` epochs): rate EP over (free, nudged) iterations, spiking CHL over the
phase length (settling 1/5 of it).

    python benchmarks/bench_chl.py --data digits --sweep
    nice -n 10 python benchmarks/bench_chl.py --data fashion-mnist --rate-epochs 5 --snn-epochs 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import append_results, peak_rss_mb, run_child  # noqa: E402

PREFIX = {"digits": "digits", "fashion-mnist": "fmnist"}
BPTT_RULE = {"name": "bp", "surrogate": "super", "loss_scale": 10.0}


def status_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process from /proc/self/status, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (``VmHWM``) to the current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def contender_config(data: str, contender: str, rule_changes: dict | None = None, stem: str = "chl"):
    """The config of a contender: chl-rate, bp-rate, chl-snn, bptt-snn (baselines: the CHL
    config ``models/<data>-<stem>-<rate|snn>.yaml`` with only the rule replaced)."""
    from neurocredit.config import load_config

    kind = "rate" if contender.endswith("rate") else "snn"
    config = load_config(f"{PREFIX[data]}-{stem}-{kind}")
    if contender == "bp-rate":
        rule = dataclasses.replace(config.rule, name="bp", options={})
    elif contender == "bptt-snn":
        rule = dataclasses.replace(config.rule, name="bp", options={k: v for k, v in BPTT_RULE.items() if k != "name"})
    else:
        rule = dataclasses.replace(config.rule, options={**config.rule.options, **(rule_changes or {})})
    return dataclasses.replace(config, rule=rule, name=f"{config.name}:{contender}")


def load(data: str, data_dir, train_limit):
    from neurocredit.data import load_dataset

    dataset = load_dataset(data, data_dir)
    if train_limit:
        dataset = dataclasses.replace(dataset, x_train=dataset.x_train[:train_limit],
                                      y_train=dataset.y_train[:train_limit])
    return dataset


def child(args) -> None:
    """Memory of ``--memory-batches`` training batches of one contender in its own process:
    peak RSS over the whole process, and the peak during training above the RSS before it
    (the kernel's peak mark is reset after loading data, building the rule and one warm-up
    batch of 2 samples, so lazy imports are not counted as training memory)."""
    import torch

    from neurocredit.train import TrainingSession

    torch.set_num_threads(args.threads)
    dataset = load(args.data, args.data_dir, args.train_limit)
    changes = json.loads(args.changes) if args.changes else None
    config = contender_config(args.data, args.child, changes, args.stem)
    if args.encoder_steps:
        network = dataclasses.replace(config.network, encoder=dataclasses.replace(config.network.encoder,
                                                                                  steps=args.encoder_steps))
        config = dataclasses.replace(config, network=network)
    session = TrainingSession(config, epochs=1, dataset=dataset)
    rule = session.rule
    rule.train_batch(torch.as_tensor(dataset.x_train[:2]), torch.as_tensor(dataset.y_train[:2]))  # lazy imports
    baseline = status_mb("VmRSS")
    reset = reset_peak_rss()
    order = np.random.default_rng(0).permutation(len(dataset.x_train))
    size = config.training.batch_size
    for batch in range(args.memory_batches):
        index = order[batch * size:(batch + 1) * size]
        rule.train_batch(torch.as_tensor(dataset.x_train[index]), torch.as_tensor(dataset.y_train[index]))
    peak = status_mb("VmHWM")
    print(json.dumps({"peak_rss_mb": peak_rss_mb(), "baseline_rss_mb": baseline,
                      "training_growth_mb": (peak - baseline) if reset else float("nan")}))


def measure_memory(args, name: str, changes: dict | None = None, encoder_steps: int | None = None) -> dict:
    """Run :func:`child` for contender ``name`` in a fresh process."""
    command = [__file__, "--child", name, "--data", args.data, "--memory-batches", str(args.memory_batches),
               "--threads", str(args.threads), "--stem", args.stem]
    command += ["--data-dir", args.data_dir] if args.data_dir else []
    command += ["--train-limit", str(args.train_limit)] if args.train_limit else []
    command += ["--changes", json.dumps(changes)] if changes else []
    command += ["--encoder-steps", str(encoder_steps)] if encoder_steps else []
    return run_child(command)


def memory_against_steps(args, log) -> list[str]:
    """Training-memory growth of spiking CHL (phase length) and BPTT (sequence length) at two T."""
    rows = []
    for steps in (20, 80):
        changes = {"free_steps": steps, "nudged_steps": steps, "free_settle": steps // 5, "nudged_settle": steps // 5}
        memory = measure_memory(args, "chl-snn", changes=changes)
        rows.append(f"| chl-snn | {steps} per phase | {memory['training_growth_mb']:.1f} |")
        log(rows[-1])
    for steps in (30, 120):
        memory = measure_memory(args, "bptt-snn", encoder_steps=steps)
        rows.append(f"| bptt-snn | {steps} | {memory['training_growth_mb']:.1f} |")
        log(rows[-1])
    return rows


def run_sessions(sessions: dict, epochs: dict, log) -> None:
    for epoch in range(max(epochs.values())):
        for name, session in sessions.items():
            if epoch < epochs[name]:
                stats = session.run_epoch(progress=False)
                log(f"{name:>9} epoch {stats.epoch:2d}: loss {stats.loss:.4f}  val (rule) {stats.validation_accuracy:.4f}  "
                    f"{stats.seconds:.1f} s")


def main(stem: str = "chl", title: str = "CHL / EP vs BP and BPTT", description: str = __doc__) -> None:
    """The benchmark on the configs ``models/<data>-<stem>-{rate,snn}.yaml`` (``bench_conv_chl.py``:
    stem ``chl-conv``); ``title`` heads its RESULTS.md section."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--data", choices=list(PREFIX), default="digits")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--rate-epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--snn-epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--train-limit", type=int, default=None, help="use only the first N training samples")
    parser.add_argument("--memory-batches", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--sweep", action="store_true", help="accuracy against steps per phase")
    parser.add_argument("--sweep-epochs", type=int, default=10)
    parser.add_argument("--only", choices=["rate", "snn"], default=None, help="run only one family")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--changes", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--encoder-steps", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--stem", default=stem, help=argparse.SUPPRESS)
    parser.add_argument("--emulator", action="store_true",
                        help="also run the trained spiking CHL network through the Loihi fixed-point emulator")
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    import torch

    from neurocredit.sim import simulate
    from neurocredit.train import TrainingSession, rule_accuracy

    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    dataset = load(args.data, args.data_dir, args.train_limit)
    families = {"rate": ["chl-rate", "bp-rate"], "snn": ["chl-snn", "bptt-snn"]}
    if args.only:
        families = {args.only: families[args.only]}
    rows, notes, headline = [], [], []
    for family, contenders in families.items():
        epochs_override = args.rate_epochs if family == "rate" else args.snn_epochs
        sessions = {name: TrainingSession(contender_config(args.data, name, stem=args.stem), epochs=epochs_override,
                                          dataset=dataset)
                    for name in contenders}
        epochs = {name: s.config.training.epochs for name, s in sessions.items()}
        run_sessions(sessions, epochs, print)
        for name, session in sessions.items():
            network = session.network()
            record = simulate(network, dataset.x_test, dataset.y_test)
            own = rule_accuracy(session.rule, network, dataset.x_test, dataset.y_test,
                                session.config.training.eval_batch_size)
            seconds = [s.seconds for s in session.history]
            memory = measure_memory(args, name)
            options = session.config.rule.options
            if name.startswith("chl"):
                steps = f"free {options.get('free_steps')}, nudged {options.get('nudged_steps')}"
                if name == "chl-snn":
                    steps += (f" (settle {options.get('free_settle')}/{options.get('nudged_settle')}, "
                              f"{options.get('nudged_start')})")
            elif name == "bptt-snn":
                steps = f"{session.config.network.encoder.steps} (BPTT through all)"
            else:
                steps = "-"
            rows.append(
                f"| {name} | {record.accuracy:.2%} | {own:.2%} | {session.history[-1].validation_accuracy:.2%} | "
                f"{len(seconds)} | {sum(seconds) / len(seconds):.2f} | {memory['peak_rss_mb']:.0f} | "
                f"{memory['training_growth_mb']:.1f} | {steps} |"
            )
            print(rows[-1], flush=True)
            headline.append(f"{name} {record.accuracy:.2%}, rule's own {own:.2%} ({sum(seconds) / len(seconds):.2f} "
                            "s/epoch)")
            if args.emulator and name == "chl-snn":
                fixed = simulate(network, dataset.x_test, dataset.y_test, backend="emulator")
                notes.append(f"chl-snn through the Loihi fixed-point emulator: {fixed.accuracy:.2%}, float -> fixed "
                             f"drop **{100 * (record.accuracy - fixed.accuracy):.2f} points**")
                headline.append(f"chl-snn emulator drop {100 * (record.accuracy - fixed.accuracy):.2f} pt")
        first, second = contenders
        ratio = (sum(s.seconds for s in sessions[first].history) / len(sessions[first].history)) / (
            sum(s.seconds for s in sessions[second].history) / len(sessions[second].history))
        notes.append(f"{first} seconds per epoch / {second} seconds per epoch (same run, interleaved epochs): "
                     f"**{ratio:.2f}**")
        headline.append(f"{first} / {second} s per epoch {ratio:.2f}x")
    sweep_rows = sweep(args, dataset, print) if args.sweep else []
    memory_rows = memory_against_steps(args, print) if args.only in (None, "snn") else []
    header = ("| contender | test acc, saved feed-forward net | test acc, rule's own prediction | validation acc, rule's "
              "own prediction | epochs | s/epoch | peak RSS MiB | RSS growth in training MiB | steps per phase |\n"
              "|---|---|---|---|---|---|---|---|---|")
    table = header + "\n" + "\n".join(rows)
    if sweep_rows:
        table += ("\n\nAccuracy against steps per phase (each row its own run, "
                  f"{args.sweep_epochs} epochs, same seed):\n\n| contender | steps | test acc, saved feed-forward | "
                  "validation acc, rule's own | s/epoch |\n|---|---|---|---|---|\n" + "\n".join(sweep_rows))
    if memory_rows:
        table += ("\n\nTraining-memory growth against the number of time steps (own process, "
                  f"{args.memory_batches} batches; CHL keeps traces only, BPTT keeps the whole history):\n\n"
                  "| contender | steps | RSS growth in training MiB |\n|---|---|---|\n" + "\n".join(memory_rows))
    limit = f", first {args.train_limit} training samples" if args.train_limit else ""
    text = (f"{len(dataset.x_test)} test samples{limit}; torch threads {args.threads}; total wall time "
            f"{time.perf_counter() - began:.0f} s. " + ". ".join(notes) + ". 'rule's own prediction' of CHL is the "
            "settled free phase with feedback; of BP/BPTT the feed-forward network itself. Peak RSS: whole child "
            f"process (imports and data included) training {args.memory_batches} batches; RSS growth: the peak "
            "during those batches above the RSS before them (kernel peak mark reset after a warm-up batch of 2 "
            "samples).")
    append_results(f"{title}, {args.data}", table, text,
                   summary=f"{args.data} test accuracy (saved net): " + "; ".join(headline))


def sweep(args, dataset, log) -> list[str]:
    from neurocredit.sim import simulate
    from neurocredit.train import TrainingSession

    points = []
    if args.only in (None, "rate"):
        points += [("chl-rate", {"free_steps": f, "nudged_steps": n}, f"free {f} / nudged {n}")
                   for f, n in ((3, 2), (5, 3), (10, 6), (20, 10))]
    if args.only in (None, "snn"):
        points += [("chl-snn", {"free_steps": s, "nudged_steps": s, "free_settle": s // 5, "nudged_settle": s // 5},
                    f"{s} per phase (settle {s // 5})") for s in (10, 20, 30, 40)]
    rows = []
    for name, changes, label in points:
        session = TrainingSession(contender_config(args.data, name, changes, args.stem), epochs=args.sweep_epochs,
                                  dataset=dataset)
        for _ in range(args.sweep_epochs):
            session.run_epoch(progress=False)
        record = simulate(session.network(), dataset.x_test, dataset.y_test)
        seconds = sum(s.seconds for s in session.history) / len(session.history)
        rows.append(f"| {name} | {label} | {record.accuracy:.2%} | {session.history[-1].validation_accuracy:.2%} | "
                    f"{seconds:.2f} |")
        log(rows[-1])
    return rows


if __name__ == "__main__":
    main()
