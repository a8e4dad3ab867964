"""Rate networks on Fashion-MNIST: DFA (Nøkland 2016) against backpropagation, same run.

784-1000-1000-10 tanh, Adam, batch 100 (models/fmnist-dfa-rate.yaml, models/fmnist-bp-rate.yaml).
The two sessions' epochs are interleaved in one process (DFA epoch, BP epoch, ...) so that both
see the same machine load; the seconds-per-epoch ratio is DFA/BP over all epochs. Peak RSS is
measured separately for each rule in a fresh child process (one epoch of training).

    python benchmarks/bench_rate.py [--epochs N] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import append_results, peak_rss_mb, run_child  # noqa: E402

CONFIGS = {"dfa": "fmnist-dfa-rate", "bp": "fmnist-bp-rate"}


def child(rule: str, epochs: int, data_dir) -> None:
    from neurocredit.config import load_config
    from neurocredit.train import TrainingSession

    session = TrainingSession(load_config(CONFIGS[rule]), epochs=epochs, data_dir=data_dir)
    session.run_epoch(progress=False)
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--child", choices=list(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.epochs, args.data_dir)
        return

    from neurocredit.config import load_config
    from neurocredit.data import load_dataset
    from neurocredit.sim import simulate
    from neurocredit.train import TrainingSession

    dataset = load_dataset("fashion-mnist", args.data_dir)
    sessions = {rule: TrainingSession(load_config(name), epochs=args.epochs, dataset=dataset)
                for rule, name in CONFIGS.items()}
    for epoch in range(args.epochs):
        for rule, session in sessions.items():
            stats = session.run_epoch(progress=False)
            print(f"{rule:>3} epoch {stats.epoch:2d}: val {stats.validation_accuracy:.4f}  {stats.seconds:.1f} s", flush=True)
    rows, final = [], {}
    for rule, session in sessions.items():
        record = simulate(session.network(), dataset.x_test, dataset.y_test)
        final[rule] = record.accuracy
        seconds = [s.seconds for s in session.history]
        best = max(s.validation_accuracy for s in session.history)
        rss = run_child([__file__, "--child", rule, "--epochs", "1"] + (["--data-dir", args.data_dir] if args.data_dir else []))
        rows.append(f"| {rule} | {record.accuracy:.2%} | {best:.2%} | {sum(seconds) / len(seconds):.1f} | "
                    f"{rss['peak_rss_mb']:.0f} |")
    ratio = sum(s.seconds for s in sessions["dfa"].history) / sum(s.seconds for s in sessions["bp"].history)
    # paired ratios (each DFA epoch against the BP epoch right after it) resist load spikes
    # from other jobs on a shared machine better than the ratio of sums
    paired = sorted(d.seconds / b.seconds for d, b in zip(sessions["dfa"].history, sessions["bp"].history))
    median_ratio = paired[len(paired) // 2] if len(paired) % 2 else 0.5 * (paired[len(paired) // 2 - 1] + paired[len(paired) // 2])
    minimum_ratio = min(s.seconds for s in sessions["dfa"].history) / min(s.seconds for s in sessions["bp"].history)
    table = ("| rule | test accuracy (final, saved net) | best epoch (validation) | s/epoch | peak RSS MiB (1 epoch, own process) |\n"
             "|---|---|---|---|---|\n" + "\n".join(rows))
    append_results(
        f"Rate DFA vs BP, Fashion-MNIST 784-1000-1000-10 tanh, Adam, batch 100, {args.epochs} epochs",
        table + "\n\nDFA seconds per epoch / BP seconds per epoch (same run, interleaved epochs): "
        f"median of paired epoch ratios **{median_ratio:.2f}**, fastest epoch / fastest epoch {minimum_ratio:.2f}, "
        f"total / total {ratio:.2f}\n\nPer-epoch seconds: DFA {[round(s.seconds, 1) for s in sessions['dfa'].history]}, "
        f"BP {[round(s.seconds, 1) for s in sessions['bp'].history]}",
        summary=f"test accuracy DFA {final['dfa']:.2%}, BP {final['bp']:.2%} ({args.epochs} epochs); DFA / BP s per "
                f"epoch {median_ratio:.2f}x (median of paired epochs)",
    )


if __name__ == "__main__":
    main()
