"""`neurocredit models`: the ready configs in models/."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("models", help="list the ready model configs",
                                   description="The ready configs (models/*.yaml) with their descriptions.")
    parser.add_argument("--json", action="store_true", help="print as JSON")
    return parser


def run(args) -> int:
    from neurocredit.commands.common import print_json
    from neurocredit.config import load_config, models_dir

    rows = []
    for path in sorted(models_dir().glob("*.yaml")):
        config = load_config(path)  # validated: a broken ready config is an error, not a row of '?'
        rows.append({"name": path.stem, "path": str(path), "rule": config.rule.name,
                     "neuron": config.network.neuron.kind, "data": config.data.name,
                     "description": config.description})
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        print(f"{row['name']:<24} {row['rule']:<8} {row['neuron']:<5} {row['data']:<14} {row['description']}")
    return 0
