"""Helpers shared by the subcommands: JSON output and data/model arguments."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from neurocredit.data import DATASETS


def print_json(payload: Any) -> None:
    """Print ``payload`` as indented, key-sorted JSON on stdout (numpy values as numbers/lists)."""
    from neurocredit.report.markdown import render_json

    sys.stdout.write(render_json(payload))


def emit(text: str, output: str | None, description: str) -> None:
    """Write ``text`` to stdout, or to the file ``output`` (atomically) and say so on stderr."""
    from neurocredit.report import write_text

    if output is None:
        sys.stdout.write(text)
        return
    write_text(output, text)
    print(f"wrote {description} to {output}", file=sys.stderr)


def add_data_arguments(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    parser.add_argument("--data", default=default, metavar="NAME",
                        help=f"data set: {', '.join(DATASETS)} (default: the one the model was trained on)")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="folder with the IDX files (else $NEUROCREDIT_DATA, then /usr/share/datasets/NAME)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="use only the first N test samples")


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    """``--backend``, its choices listed from the backend registry (:data:`neurocredit.sim.BACKENDS`)."""
    from neurocredit.sim import backend_help

    parser.add_argument("--backend", default=None, metavar="NAME", help=backend_help())


def load_test_split(network, args):
    """The test features and labels the model is evaluated on (``--data``/``--limit``)."""
    from neurocredit.data import load_dataset
    from neurocredit.errors import NeurocreditError, require_at_least_one

    name = args.data or network.provenance.get("data", "digits")
    dataset = load_dataset(name, args.data_dir)
    if dataset.n_features != network.n_inputs:
        raise NeurocreditError(
            f"data set {name!r} has {dataset.n_features} features but the model expects {network.n_inputs}; "
            "pass the --data it was trained on"
        )
    if network.n_classes != dataset.n_classes:
        raise NeurocreditError(
            f"the model reads out {network.n_classes} classes ({network.readout.kind} of {network.n_outputs} outputs) "
            f"but data set {name!r} has {dataset.n_classes}: the file is damaged or belongs to another data set "
            "(retrain it, or pass the --data it was trained on)"
        )
    x, y = dataset.x_test, dataset.y_test
    if args.limit is not None:
        require_at_least_one("--limit", args.limit)
        x, y = x[: args.limit], y[: args.limit]
    return name, x, y


def record_payload(record, backend: str, data_name: str, model: str) -> dict:
    """The JSON fields every evaluation command prints for a run."""
    return {
        "accuracy": record.accuracy,
        "samples": record.samples,
        "backend": backend,
        "data": data_name,
        "model": model,
        "seconds": round(record.seconds, 3),
    }
