"""`neurocredit targets`: the hardware targets, their limits and per-operation energies, with sources."""

from __future__ import annotations

import argparse

UNITS = {"synop_j": "J", "neuron_update_j": "J", "synaptic_update_j": "J", "mac_j": "J", "memory_access_j": "J",
         "static_power_w": "W", "time_per_step_s": "s"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "targets", help="list hardware targets (limits, energies, sources)",
        description="The hardware targets in hardware_targets/*.yaml (or $NEUROCREDIT_TARGETS): limits and "
        "per-operation energies, every number with its source.")
    parser.add_argument("--json", action="store_true", help="print as JSON")
    return parser


def target_dict(target) -> dict:
    from neurocredit.energy import target_file

    def entries(section):
        return {key: {"value": item.value, "source": item.source, "note": item.note} for key, item in section.items()}

    return {"name": target.name, "spiking": target.spiking, "description": target.description,
            "file": target_file(target), "limits": entries(target.limits), "energy": entries(target.energy)}


def run(args) -> int:
    from neurocredit.commands.common import print_json
    from neurocredit.errors import NeurocreditError
    from neurocredit.targets import list_targets, targets_dir

    targets = list_targets()
    if not targets:
        raise NeurocreditError(
            f"no hardware targets in {targets_dir()} (set $NEUROCREDIT_TARGETS to a folder of *.yaml)"
        )
    if args.json:
        print_json({target.name: target_dict(target) for target in targets})
        return 0
    for target in targets:
        info = target_dict(target)
        kind = "spiking" if target.spiking else "dense"
        print(f"{target.name} ({kind}, {info['file']})")
        if target.description:
            print(f"  {target.description}")
        for section, unit_of in (("limits", lambda key: ""), ("energy", lambda key: UNITS.get(key, ""))):
            if not info[section]:
                continue
            print(f"  {section}:")
            for key, entry in info[section].items():
                value = entry["value"]
                shown = ", ".join(map(str, value)) if isinstance(value, list) else f"{value:g} {unit_of(key)}".strip()
                print(f"    {key:<18} {shown:<14} {entry['source']}")
                if entry["note"]:
                    print(f"    {'':<18} {'':<14} note: {entry['note']}")
        print()
    return 0
