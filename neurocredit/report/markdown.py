"""Markdown and JSON renderings of a report dict (:mod:`neurocredit.report.build`); the table rows
are shared with the HTML page."""

from __future__ import annotations

import json
from typing import Any, Optional

from neurocredit.io import json_default

_PREFIXES = ((1e-15, "f"), (1e-12, "p"), (1e-9, "n"), (1e-6, "µ"), (1e-3, "m"), (1.0, ""))


def format_joules(value: Optional[float]) -> str:
    """``1.23e-8`` -> ``'12.3 nJ'``; None -> ``'n/a'``."""
    if value is None:
        return "n/a"
    if value == 0:
        return "0 J"
    # the largest prefix the value reaches (_PREFIXES is ascending); femto below it
    scale, prefix = max((entry for entry in _PREFIXES if abs(value) >= entry[0]), default=_PREFIXES[0])
    return f"{value / scale:.3g} {prefix}J"


def number(value: Optional[float], digits: int = 1) -> str:
    if value is None:
        return "–"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def header(report: dict) -> list[str]:
    accuracy = "n/a" if report["accuracy"] is None else f"{report['accuracy']:.2%}"
    steps = f" · {report['steps']} steps" if report["spiking"] else ""
    return [
        f"Network: {report['network']}",
        f"Backend: **{report['backend']}** · data: {report['data'] or 'n/a'} · {report['samples']} samples"
        f"{steps} · accuracy {accuracy}",
    ]


def layer_rows(report: dict) -> list[list[str]]:
    rows = []
    if report["input"] is not None:
        source = report["input"]
        rate = "–" if source["firing_rate"] is None else f"{source['firing_rate']:.4f}"
        fan_out = source.get("fan_out", report["layers"][0]["neurons"])  # conv: the most outputs one spike reaches
        rows.append(["input", number(source["neurons"]), "–", number(fan_out),
                     number(source["spikes_per_sample"], 2), rate, "–", "–"])
    for layer in report["layers"]:
        rate = "–" if layer["firing_rate"] is None else f"{layer['firing_rate']:.4f}"
        rows.append([layer["name"], number(layer["neurons"]), number(layer["fan_in"]), number(layer["fan_out"]),
                     number(layer["spikes_per_sample"], 2), rate, number(layer["synops_per_sample"], 1),
                     number(layer["neuron_updates_per_sample"])])
    totals = report["totals"]
    if totals["spikes_per_sample"] is not None:
        rows.append(["**total**", "", "", "", number(totals["spikes_per_sample"], 2), "",
                     number(totals["synops_per_sample"], 1), number(totals["neuron_updates_per_sample"])])
    return rows


def rate_rows(report: dict) -> list[list[str]]:
    """The layer table of a rate network (no spikes): dense connections per inference."""
    return [[layer["name"], number(layer["neurons"]), number(layer["fan_in"]), number(layer["macs_per_sample"])]
            for layer in report["layers"]]


def baseline_sentence(report: dict) -> str:
    baseline = report["ann_baseline"]
    return (f"Dense ANN baseline per inference: {number(baseline['macs_per_sample'])} MACs, "
            f"{number(baseline['activations_per_sample'])} activations, "
            f"{number(baseline['memory_accesses_per_sample'])} memory accesses.")


LAYER_HEADER = ["layer", "neurons", "fan-in", "fan-out", "spikes/sample", "spikes/neuron/step",
                "synops/sample", "neuron updates/sample"]
RATE_HEADER = ["layer", "neurons", "fan-in", "MACs/sample"]
ENERGY_HEADER = ["target", "model", "synops or MACs", "neurons", "memory", "static", "total per inference"]


def energy_rows(report: dict) -> list[list[str]]:
    rows = []
    for name, entry in report["targets"].items():
        kind = "SNN, measured spikes" if entry["kind"] == "snn" else "dense ANN"

        def shown(field: str, *keys: str) -> str:
            # "–" where the target's file has no figure for this term (not "0 J": unknown, not free)
            return format_joules(entry[field]) if any(key in entry["sources"] for key in keys) else "–"

        rows.append([name, kind, shown("synop_energy_j", "synop_j", "mac_j"),
                     shown("neuron_energy_j", "neuron_update_j"), shown("memory_energy_j", "memory_access_j"),
                     shown("static_energy_j", "static_power_w"),
                     f"**{format_joules(entry['energy_per_sample_j'])}**"])
    return rows


def training_header(report: dict) -> list[str]:
    names = list(next(iter(report["training"]["rules"].values()))["energy_per_sample_j"])
    return ["rule", "passes P", "plasticity ops A", "error ops E"] + [f"{name} (J)" for name in names]


def training_rows(report: dict) -> list[list[str]]:
    trained = report["training"]["rule"]
    rows = []
    for rule, entry in report["training"]["rules"].items():
        label = f"**{entry['label']}** (trained)" if rule == trained else entry["label"]
        rows.append([label, str(entry["forward_passes"]), number(entry["plasticity_ops"]), number(entry["error_ops"])]
                    + [format_joules(value) for value in entry["energy_per_sample_j"].values()])
    return rows


def sources(report: dict) -> list[str]:
    lines = []
    for name, entry in report["targets"].items():
        for key, source in entry["sources"].items():
            note = f" ({source['note']})" if source["note"] else ""
            lines.append(f"{name}: {source['file']} {source['key']} = {source['value']:g} — {source['source']}{note}")
        for key in entry["missing"]:
            lines.append(f"{name}: no energy.{key} in its file — that term is not included")
    return lines


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render_markdown(report: dict) -> str:
    """The report as markdown (terminals and diffs)."""
    lines = [f"# neurocredit report: {report['model'] or 'model'}", ""]
    lines += [line + "  " for line in header(report)] + [""]
    lines += [f"*All energies are estimates* ({report['estimate']}).", ""]
    lines += ["## Spikes and operations per sample", ""]
    if report["spiking"]:
        lines += _md_table(LAYER_HEADER, layer_rows(report))
    else:
        lines += ["Rate network: spike counts do not apply. Dense connections per inference:", ""]
        lines += _md_table(RATE_HEADER, rate_rows(report))
    lines += ["", "## Energy per inference (estimates)", ""]
    lines += _md_table(ENERGY_HEADER, energy_rows(report))
    lines += ["", baseline_sentence(report), ""]
    training = report["training"]
    lines += ["## Training cost per sample presentation (estimates)", ""]
    recorded = training["rule"] or "not recorded"
    sums = training["sums"]
    lines += [f"Trained with: **{recorded}**. Sizes: S={sums['S']:,} weights, S_up={sums['S_up']:,}, "
              f"H={sums['H']:,} hidden, M={sums['M']:,} neurons, n_0={sums['n_0']}, C={sums['C']}, T={sums['T']}. "
              "P = forward passes, A = plasticity ops (synaptic updates), E = error-signal ops "
              "(formulas in neurocredit/energy.py).", ""]
    lines += _md_table(training_header(report), training_rows(report))
    lines += ["", "## Counting conventions", ""] + [f"- {text}" for text in report["conventions"]]
    if report["notes"]:
        lines += ["", "## Notes", ""] + [f"- {text}" for text in report["notes"]]
    lines += ["", "## Sources", ""] + [f"- {text}" for text in sources(report)]
    return "\n".join(lines) + "\n"


def render_json(report: Any) -> str:
    """Indented, key-sorted JSON (numpy scalars and arrays as numbers and lists)."""
    return json.dumps(report, indent=2, sort_keys=True, default=json_default) + "\n"


