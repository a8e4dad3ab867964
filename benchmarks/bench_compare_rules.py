"""compare-rules on the digits rule x neuron-kind grid: in-process (``--local``) against embedded Ray,
in one run, on the same CPUs.

The grid is ``benchmarks/digits-rules.yaml`` (every registered rule with a rate and a LIF network,
the configs' own epochs) x ``--seeds`` seeds. Both modes run the same trials in this one process,
one after the other (``--order`` says which first), and get the same ``--cpus`` cores:

- local: the trials one after another in this process, torch with ``--cpus`` threads;
- Ray: an embedded instance with ``--cpus`` CPUs, so ``--cpus`` trials at once, one torch thread
  each (every Ray trial asks for one CPU and sets one thread). Ray's wall time includes starting
  and stopping the instance.

Figures: each mode's wall time and their ratio (Ray / local), Ray's start-up (``ray.init``), the
sum of the trials' own wall times in each mode (how much the trials slow down when two run side
by side), whether both modes trained identical weights (SHA-256 per trial), and the Ray run's
table (mean ± std over seeds) written to ``--table`` (markdown).

    python benchmarks/bench_compare_rules.py [--seeds 3] [--cpus 2] [--epochs N] [--max-batches N]
                                             [--order ray,local] [--table PATH] [--json PATH] [--no-append]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import publish  # noqa: E402

GRID = Path(__file__).resolve().parent / "digits-rules.yaml"


def run_mode(mode: str, trials, cpus: int, storage: str) -> dict:
    """Run ``trials`` in ``mode`` (local or ray); wall time, results, Ray's start-up seconds."""
    import torch

    import neurocredit.trials as trials_module
    from neurocredit.compare_rules import compare

    started = {}
    original = trials_module.ray_init

    def timed_init(*args, **kwargs):
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            started["seconds"] = time.perf_counter() - began

    log = lambda line: print(f"[{mode} {time.perf_counter() - began:7.1f} s] {line}", file=sys.stderr, flush=True)  # noqa: E731
    threads = torch.get_num_threads()
    began = time.perf_counter()
    if mode == "local":
        torch.set_num_threads(cpus)
        payload = compare(trials, runner="local", log=log)
    else:
        trials_module.ray_init = timed_init
        try:
            payload = compare(trials, runner="ray", num_cpus=cpus, storage=storage, log=log)
        finally:
            trials_module.ray_init = original
    wall = time.perf_counter() - began
    torch.set_num_threads(threads)
    return {"wall": wall, "payload": payload, "ray_init": started.get("seconds"),
            "trial_seconds": sum(result["wall_seconds"] for result in payload["results"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default=str(GRID), help="contenders listing (default benchmarks/digits-rules.yaml)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2, help="cores for both modes (local: torch threads; Ray: CPUs)")
    parser.add_argument("--epochs", type=int, default=None, help="override every config's epochs")
    parser.add_argument("--max-batches", type=int, default=None, help="first N batches per epoch (smoke runs)")
    parser.add_argument("--order", default="ray,local", choices=("ray,local", "local,ray"))
    parser.add_argument("--only", choices=("local", "ray"), default=None, help="run one mode (no ratio)")
    parser.add_argument("--table", default=None, metavar="PATH", help="write the Ray run's markdown table here")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="write every trial's result of both modes here (JSON: {mode: payload})")
    parser.add_argument("--no-append", action="store_true", help="print the figures; do not touch RESULTS.md")
    args = parser.parse_args()

    from neurocredit.compare_rules import make_trials, parse_contenders, render

    trials = make_trials(parse_contenders(args.grid), args.seeds, epochs=args.epochs, max_batches=args.max_batches)
    modes = [args.only] if args.only else args.order.split(",")
    runs = {}
    with tempfile.TemporaryDirectory(prefix="bench-compare-rules-") as storage:
        for mode in modes:
            runs[mode] = run_mode(mode, trials, args.cpus, storage)
            print(f"{mode}: {len(trials)} trials in {runs[mode]['wall']:.1f} s", file=sys.stderr, flush=True)
    if args.json:
        from neurocredit.compare_rules import render_json

        Path(args.json).write_text("{" + ", ".join(f'"{mode}": {render_json(run["payload"])}' for mode, run in runs.items())
                                   + "}\n")
    last = runs.get("ray", runs[modes[-1]])
    table = render(last["payload"], "md")
    if args.table:
        Path(args.table).write_text(table)

    contenders = len({trial.label for trial in trials})
    epochs = "the configs' own epochs" if args.epochs is None else f"{args.epochs} epochs"
    lines = [f"- grid: {Path(args.grid).name}, {contenders} contenders x {args.seeds} seeds = {len(trials)} trials, "
             f"{epochs}" + ("" if args.max_batches is None else f", first {args.max_batches} batches per epoch")
             + f"; {args.cpus} cores for each mode, run one after the other in this process ({', '.join(modes)})"]
    for mode in modes:
        run = runs[mode]
        how = (f"in-process, sequential, torch {args.cpus} threads" if mode == "local"
               else f"embedded Ray, {args.cpus} CPUs: {args.cpus} trials at once, 1 torch thread each; "
                    f"ray.init {run['ray_init']:.1f} s")
        lines.append(f"- {mode} ({how}): wall **{run['wall']:.1f} s**; sum of the trials' own wall times "
                     f"{run['trial_seconds']:.1f} s")
    summary = []
    if "local" in runs and "ray" in runs:
        ratio = runs["ray"]["wall"] / runs["local"]["wall"]
        same = all(a["weights_sha256"] == b["weights_sha256"] for a, b in
                   zip(runs["local"]["payload"]["results"], runs["ray"]["payload"]["results"]))
        lines.append(f"- Ray / local wall time **{ratio:.2f}x**; identical weights in both modes: "
                     f"{'yes' if same else 'NO'} ({len(trials)} trials, SHA-256 of the trained weights)")
        summary.append(f"{len(trials)} trials ({contenders} contenders x {args.seeds} seeds, {epochs}), "
                       f"{args.cpus} cores: embedded Ray {runs['ray']['wall']:.0f} s, local {runs['local']['wall']:.0f} s, "
                       f"Ray / local {ratio:.2f}x; identical weights: {'yes' if same else 'no'}")
    else:
        summary.append(f"{len(trials)} trials, {modes[0]} only: {runs[modes[0]]['wall']:.0f} s")
    figures = "\n".join(lines) + "\n\nThe table of the " + ("Ray" if "ray" in runs else modes[0]) + " run:\n\n" + \
        table.split("\n", 2)[2]
    publish("compare-rules: local vs embedded Ray on the digits rule x kind grid", figures, args.no_append,
            summary="; ".join(summary))


if __name__ == "__main__":
    main()
