"""`neurocredit compare-rules --configs ...`: learning rules side by side, several seeds each,
one table (:mod:`neurocredit.compare_rules`); in process (``--local``) or on Ray."""

from __future__ import annotations

import argparse


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """``--local`` / ``--address`` / ``--storage`` / ``--num-cpus`` (shared with `sweep`)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--local", action="store_true",
                       help="run the trials one after another in this process, without Ray (torch threads: "
                       "neurocredit --threads N, default one per core; a Ray trial holds one CPU and runs one torch thread)")
    where.add_argument("--address", default=None, metavar="ADDR",
                       help="an existing Ray cluster (e.g. auto, or HEAD_IP:6379; default: $RAY_ADDRESS, else an "
                       "embedded local Ray instance)")
    parser.add_argument("--storage", default=None, metavar="DIR",
                        help="where Ray keeps results and checkpoints; on a cluster a folder every node shares "
                        "(default ./ray_results)")
    parser.add_argument("--num-cpus", type=int, default=None, metavar="N",
                        help="CPUs of the embedded Ray instance (default: all); one trial per CPU")


def runner_of(args) -> str:
    """``local`` or ``ray`` (checks that Ray is installed)."""
    from neurocredit.errors import require_at_least_one

    require_at_least_one("--num-cpus", args.num_cpus)
    if args.local:
        return "local"
    from neurocredit.trials import import_ray

    import_ray()  # without the extra: the one-line install hint, exit 2
    return "ray"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "compare-rules", help="train several rules x seeds and compare them in one table",
        description="Train every contender (config) with several seeds and write one table: validation and "
        "test accuracy (mean ± std over seeds), seconds per epoch, peak memory, spikes and energy per inference "
        "and per training sample, and each rule's plausibility criteria. Runs on an embedded Ray instance by "
        "default, on a Ray cluster with --address, or in this process with --local.")
    parser.add_argument("--configs", required=True, metavar="GLOB|A,B|LIST.yaml",
                        help="a glob ('models/digits-*.yaml'), a comma-separated list of configs, or a YAML file "
                        "with a 'contenders' list")
    parser.add_argument("--data", default=None, metavar="NAME", help="override data.name of every contender")
    parser.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds 0..N-1 per contender (default 3)")
    parser.add_argument("--epochs", type=int, default=None, metavar="N", help="override training.epochs")
    parser.add_argument("--max-batches", type=int, default=None, metavar="N",
                        help="train only the first N batches of each epoch (quick smoke comparisons)")
    parser.add_argument("--targets", default="loihi2,cpu", metavar="A,B",
                        help="hardware targets for the energy columns (default loihi2,cpu; see `neurocredit targets`)")
    add_runner_arguments(parser)
    parser.add_argument("--format", default="md", choices=("md", "json", "html"), help="md (default), json or html")
    parser.add_argument("-o", "--output", default=None, metavar="PATH", help="write to PATH instead of stdout")
    return parser


def run(args) -> int:
    import sys

    from neurocredit.compare_rules import compare, make_trials, parse_contenders, render
    from neurocredit.errors import require_at_least_one
    from neurocredit.commands.common import emit
    from neurocredit.report import select_targets

    require_at_least_one("--max-batches", args.max_batches)
    targets = [target.name for target in select_targets(args.targets)]
    trials = make_trials(parse_contenders(args.configs), args.seeds, epochs=args.epochs, data=args.data,
                         max_batches=args.max_batches, targets=targets)
    runner = runner_of(args)
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731 - the table goes to stdout
    payload = compare(trials, runner=runner, address=args.address, storage=args.storage, num_cpus=args.num_cpus,
                      log=log)
    emit(render(payload, args.format), args.output, f"{args.format} table of {payload['trials']} trials")
    return 0
