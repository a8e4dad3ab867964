"""`neurocredit sweep SPACE.yaml`: a grid or random search over config keys with early stopping,
selecting on validation accuracy only (:mod:`neurocredit.sweep`); in process or on Ray."""

from __future__ import annotations

import argparse

from neurocredit.commands.compare_rules import add_runner_arguments


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "sweep", help="hyper-parameter search over a config (grid or random, early stopping)",
        description="Train every point of a search space (SPACE.yaml: base config, grid or random search, "
        "dotted config keys, median early stopping) and rank the points by validation accuracy; the test "
        "accuracy of the selected point is reported, never used. Embedded Ray by default, a Ray cluster with "
        "--address, or this process with --local.")
    parser.add_argument("space", help="search-space file (see neurocredit/sweep.py for its keys)")
    parser.add_argument("--data", default=None, metavar="NAME", help="override data.name")
    parser.add_argument("--max-batches", type=int, default=None, metavar="N",
                        help="train only the first N batches of each epoch (quick smoke sweeps)")
    add_runner_arguments(parser)
    parser.add_argument("--format", default="md", choices=("md", "json"), help="md (default) or json")
    parser.add_argument("-o", "--output", default=None, metavar="PATH", help="write to PATH instead of stdout")
    parser.add_argument("--best-config", default=None, metavar="PATH.yaml",
                        help="write the base config with the selected point's values there")
    return parser


def run(args) -> int:
    import sys

    from neurocredit.commands.common import emit
    from neurocredit.commands.compare_rules import runner_of
    from neurocredit.errors import require_at_least_one
    from neurocredit.report import write_text
    from neurocredit.sweep import best_config_yaml, load_sweep, make_trials, render, run_sweep

    require_at_least_one("--max-batches", args.max_batches)
    spec = load_sweep(args.space)
    trials = make_trials(spec, data=args.data, max_batches=args.max_batches)
    runner = runner_of(args)
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731 - the ranking goes to stdout
    payload = run_sweep(spec, trials, runner=runner, address=args.address, storage=args.storage,
                        num_cpus=args.num_cpus, log=log)
    emit(render(payload, args.format), args.output, f"the ranking of {payload['trials']} trials")
    if args.best_config:
        write_text(args.best_config, best_config_yaml(spec, payload["best"]["overrides"]))
        print(f"wrote the selected config to {args.best_config}", file=sys.stderr)
    return 0
