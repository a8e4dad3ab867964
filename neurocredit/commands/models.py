"""`neurocredit models`: the ready configs in models/."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("models", help="list the ready model configs",
                                   description="The ready configs (models/*.yaml) with their descriptions.")
    parser.add_argument("--json", action="store_true", help="print as JSON")
    return parser


def run(args) -> int:
    import yaml

    from neurocredit.commands.common import print_json
    from neurocredit.config import models_dir

    rows = []
    for path in sorted(models_dir().glob("*.yaml")):
        raw = yaml.safe_load(path.read_text()) or {}
        rule = (raw.get("rule") or {}).get("name", "?")
        neuron = ((raw.get("network") or {}).get("neuron") or {}).get("kind", "?")
        rows.append({"name": path.stem, "path": str(path), "rule": rule, "neuron": neuron,
                     "data": (raw.get("data") or {}).get("name", "?"), "description": raw.get("description", "")})
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        print(f"{row['name']:<24} {row['rule']:<8} {row['neuron']:<5} {row['data']:<14} {row['description']}")
    return 0
