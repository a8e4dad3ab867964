"""`neurocredit report MODEL.h5`: spikes, operations and energy per hardware target."""

from __future__ import annotations

import argparse

from neurocredit.commands.common import add_backend_argument, add_data_arguments


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "report", help="spike counts, operations and energy estimates per hardware target",
        description="Simulate a saved network on its test split and report spikes and synaptic operations "
        "per layer, energy estimates per hardware target (hardware_targets/*.yaml, every figure with its "
        "source) against the dense ANN baseline, and the training cost per learning rule.")
    parser.add_argument("model", help="network file (.h5) written by `neurocredit train`")
    add_data_arguments(parser)
    add_backend_argument(parser)
    parser.add_argument("--target", default="all", metavar="NAME|all",
                        help="hardware target(s): all (default), a name or a comma-separated list "
                        "(see `neurocredit targets`)")
    parser.add_argument("--format", default="md", choices=("md", "json", "html"),
                        help="md (default, terminals and diffs), json (scripts) or html (a self-contained page "
                        "with plots)")
    parser.add_argument("-o", "--output", default=None, metavar="FILE", help="write to FILE instead of stdout")
    parser.add_argument("--steps", type=int, default=None, help="time steps (spiking; default: the encoder's)")
    parser.add_argument("--raster-samples", type=int, default=3, metavar="K",
                        help="samples shown in the HTML spike raster (default 3)")
    return parser


def run(args) -> int:
    import sys

    from neurocredit.commands.common import emit, load_test_split
    from neurocredit.errors import NeurocreditError, require_at_least_one
    from neurocredit.io import load_network
    from neurocredit.report import render, report_model

    require_at_least_one("--steps", args.steps)
    if args.raster_samples < 0:
        raise NeurocreditError(f"--raster-samples must be >= 0, got {args.raster_samples}")
    network = load_network(args.model)
    data_name, x, y = load_test_split(network, args)
    report, rasters, _ = report_model(
        network, x, y, backend=args.backend, targets=args.target, steps=args.steps,
        raster_samples=args.raster_samples if args.format == "html" else 0,
        model=args.model, data=data_name, progress=args.output is not None and sys.stderr.isatty(),
    )
    emit(render(report, args.format, rasters, args.raster_samples), args.output,
         f"{args.format} report (backend {report['backend']}, {report['samples']} samples)")
    return 0
