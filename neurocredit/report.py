"""Spike, operation and energy reports of one model on one data set: JSON, markdown and HTML.

:func:`build_report` turns a ``Network`` and the ``RunRecord`` of a simulation into one plain,
JSON-ready dict; :func:`render_markdown`, :func:`render_json` and :func:`render_html` only format
that dict (the HTML page adds plots drawn from it and from a few spike rasters). Counting and
energy conventions are those of :mod:`neurocredit.energy`; every energy is labelled an estimate
and names the YAML file, key and source it comes from.

The dict depends only on the network, the inputs and the spike counts: two backends that agree
spike for spike (norse, reference, brian2, emulator) give identical reports except for the
``backend`` field. It holds no timings or dates, so reports diff cleanly.

JSON layout (values per sample unless the key says ``total``)::

    model, network, sizes, spiking, backend, data, samples, steps, accuracy, estimate, conventions
    input:   {neurons, spikes_per_sample, firing_rate}                     (null for rate nets)
    layers:  [{name, neurons, fan_in, fan_out, spikes_per_sample, firing_rate, synops_per_sample,
               neuron_updates_per_sample, macs_per_sample, spikes_total, synops_total}]
    totals:  {spikes_per_sample, synops_per_sample, neuron_updates_per_sample}
    targets: {name: {kind, energy_per_sample_j, synop_energy_j, neuron_energy_j, memory_energy_j,
                     static_energy_j, estimate, missing, notes, sources: {key: {file, key, value,
                     count_per_sample, energy_j, source, note}}}}
    ann_baseline: {macs_per_sample, activations_per_sample, memory_accesses_per_sample,
                   energy_per_sample_j: {dense target: J}}
    training: {rule, steps, sums, rules: {rule: {label, formula, forward_passes, plasticity_ops,
               error_ops, energy_per_sample_j: {target: J or null}}}}
    notes: [...]

For dense targets ``synop_energy_j`` is the energy of the dense connections (the MACs) and
``neuron_energy_j`` that of the activations.
"""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any, Optional, Sequence

import numpy as np

from neurocredit.energy import (
    ESTIMATE_NOTE,
    TRAINING_RULES,
    EnergyEstimate,
    ann_energy,
    count_operations,
    dense_counts,
    network_sums,
    snn_energy,
    training_cost,
    training_energy,
)
from neurocredit.errors import NeurocreditError
from neurocredit.network import Network
from neurocredit.record import RunRecord
from neurocredit.targets import Target

FORMATS = ("md", "json", "html")
# Plot colours (the browser test looks for them in the rendered page).
PALETTE = {
    "snn": "#1f77b4",
    "ann": "#d62728",
    "rate": "#2ca02c",
    "training": "#9467bd",
    "raster": ("#7f7f7f", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#bcbd22"),
}
CONVENTIONS = (
    "synops of a layer = spikes of the population feeding it x the layer's width (dense fan-out); "
    "input spikes x fan-out of layer 1 count, output spikes feed nothing",
    "neuron updates = neurons x steps (every neuron is updated every step)",
    "dense ANN baseline: MACs = sum n_in*n_out, activations = sum n_out, memory accesses = "
    "weights + layer inputs + layer outputs, one pass per inference",
    "for dense targets synop_energy_j is the energy of the MACs and neuron_energy_j that of the activations",
)


def _energy_entry(estimate: EnergyEstimate, samples_divisor: float = 1.0) -> dict[str, Any]:
    def part(*keys: str) -> float:
        return float(sum(estimate.part(key) for key in keys))

    sources = {}
    for term in estimate.terms:
        sources[term.key] = {
            "file": term.file,
            "key": f"energy.{term.key}",
            "value": term.joules_per_op,
            "count_per_sample": term.count,
            "energy_j": term.energy_j,
            "source": term.source,
            "note": term.note,
        }
    return {
        "kind": estimate.kind,
        "energy_per_sample_j": estimate.energy_j,
        "synop_energy_j": part("synop_j", "mac_j"),
        "neuron_energy_j": part("neuron_update_j"),
        "memory_energy_j": part("memory_access_j"),
        "static_energy_j": part("static_power_w"),
        "estimate": True,
        "missing": list(estimate.missing),
        "notes": list(estimate.notes),
        "sources": sources,
    }


def build_report(
    network: Network,
    record: RunRecord,
    targets: Sequence[Target],
    model: str = "",
    data: Optional[str] = None,
) -> dict[str, Any]:
    """The report dict (module doc) of ``record``, a simulation of ``network``, for ``targets``."""
    if not targets:
        raise NeurocreditError("no hardware targets to report on (see `neurocredit targets`)")
    targets = sorted(targets, key=lambda target: (not target.spiking, target.name))  # neuromorphic first
    spiking = network.neuron.spiking
    dense = dense_counts(network)
    notes: list[str] = []
    report: dict[str, Any] = {
        "model": model,
        "network": network.summary(),
        "sizes": list(network.sizes),
        "spiking": spiking,
        "backend": record.backend,
        "data": data,
        "samples": record.samples,
        "steps": int(record.steps),
        "accuracy": record.accuracy,
        "estimate": ESTIMATE_NOTE,
        "conventions": list(CONVENTIONS),
    }
    counts = count_operations(network, record) if spiking else None
    layers = []
    if counts is None:
        notes.append("rate network: spike counts, synaptic operations and neuromorphic targets do not apply; "
                     "the dense ANN figures are given")
        report["input"] = None
        for index, layer in enumerate(network.layers):
            layers.append({
                "name": layer.name or f"layer{index + 1}",
                "neurons": layer.n_out,
                "fan_in": layer.n_in,
                "fan_out": network.layers[index + 1].n_out if index + 1 < len(network.layers) else 0,
                "spikes_per_sample": None,
                "firing_rate": None,
                "synops_per_sample": None,
                "neuron_updates_per_sample": None,
                "macs_per_sample": layer.n_in * layer.n_out,
                "spikes_total": None,
                "synops_total": None,
            })
        report["totals"] = {"spikes_per_sample": None, "synops_per_sample": None, "neuron_updates_per_sample": None}
    else:
        per = counts.per_sample
        steps = max(1, counts.steps)
        input_rate = counts.input_spikes / (counts.samples * counts.input_neurons * steps)
        report["input"] = {  # a current encoder sends graded values, not spikes
            "neurons": counts.input_neurons,
            "spikes_per_sample": None if counts.dense_input else per(counts.input_spikes),
            "firing_rate": None if counts.dense_input else input_rate,
        }
        for layer in counts.layers:
            layers.append({
                "name": layer.name,
                "neurons": layer.neurons,
                "fan_in": layer.fan_in,
                "fan_out": layer.fan_out,
                "spikes_per_sample": per(layer.spikes),
                "firing_rate": layer.spikes / (counts.samples * layer.neurons * steps),
                "synops_per_sample": per(layer.synops),
                "neuron_updates_per_sample": per(layer.neuron_updates),
                "macs_per_sample": layer.fan_in * layer.neurons,
                "spikes_total": layer.spikes,
                "synops_total": layer.synops,
            })
        report["totals"] = {
            "spikes_per_sample": per(counts.spikes),
            "synops_per_sample": per(counts.synops),
            "neuron_updates_per_sample": per(counts.neuron_updates),
        }
        if counts.dense_input:
            notes.append("current encoder: layer-1 synops counted densely (n_in x n_1 x steps)")
    report["layers"] = layers

    entries: dict[str, Any] = {}
    inference: dict[str, EnergyEstimate] = {}
    skipped = []
    for target in targets:
        if target.spiking:
            if counts is None:
                skipped.append(target.name)
                continue
            inference[target.name] = snn_energy(counts, target)
        else:
            inference[target.name] = ann_energy(dense, target)
        entries[target.name] = _energy_entry(inference[target.name])
    if skipped:
        notes.append(f"spiking targets not applicable to a rate network: {', '.join(skipped)}")
    report["targets"] = entries
    report["ann_baseline"] = {
        "macs_per_sample": dense.macs,
        "activations_per_sample": dense.activations,
        "memory_accesses_per_sample": dense.memory_accesses,
        "energy_per_sample_j": {
            target.name: inference[target.name].energy_j for target in targets if not target.spiking
        },
    }

    train_steps = int(network.encoder.steps) if spiking else 1
    rules = {}
    for rule in TRAINING_RULES:
        cost = training_cost(network, rule, steps=train_steps)
        energies = {}
        for target in targets:
            if target.name not in inference:
                continue
            estimate = training_energy(cost, target, inference[target.name] if target.spiking else None,
                                       dense, train_steps)
            energies[target.name] = None if estimate is None else estimate.energy_j
        rules[rule] = {
            "label": cost.label,
            "formula": cost.formula,
            "forward_passes": cost.forward_passes,
            "plasticity_ops": cost.plasticity_ops,
            "error_ops": cost.error_ops,
            "energy_per_sample_j": energies,
        }
    sums = network_sums(network)
    sums["T"] = train_steps
    report["training"] = {"rule": network.provenance.get("rule"), "steps": train_steps, "sums": sums, "rules": rules}
    report["notes"] = notes
    return report


# --------------------------------------------------------------------------- formatting

_PREFIXES = ((1e-15, "f"), (1e-12, "p"), (1e-9, "n"), (1e-6, "µ"), (1e-3, "m"), (1.0, ""))


def format_joules(value: Optional[float]) -> str:
    """``1.23e-8`` -> ``'12.3 nJ'``; None -> ``'n/a'``."""
    if value is None:
        return "n/a"
    if value == 0:
        return "0 J"
    scale, prefix = _PREFIXES[0]
    for candidate, name in _PREFIXES:
        if abs(value) >= candidate:
            scale, prefix = candidate, name
    return f"{value / scale:.3g} {prefix}J"


def _number(value: Optional[float], digits: int = 1) -> str:
    if value is None:
        return "–"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def _header(report: dict) -> list[str]:
    accuracy = "n/a" if report["accuracy"] is None else f"{report['accuracy']:.2%}"
    steps = f" · {report['steps']} steps" if report["spiking"] else ""
    return [
        f"Network: {report['network']}",
        f"Backend: **{report['backend']}** · data: {report['data'] or 'n/a'} · {report['samples']} samples"
        f"{steps} · accuracy {accuracy}",
    ]


def _layer_rows(report: dict) -> list[list[str]]:
    rows = []
    if report["input"] is not None:
        source = report["input"]
        rate = "–" if source["firing_rate"] is None else f"{source['firing_rate']:.4f}"
        rows.append(["input", _number(source["neurons"]), "–", _number(report["layers"][0]["neurons"]),
                     _number(source["spikes_per_sample"], 2), rate, "–", "–"])
    for layer in report["layers"]:
        rate = "–" if layer["firing_rate"] is None else f"{layer['firing_rate']:.4f}"
        rows.append([layer["name"], _number(layer["neurons"]), _number(layer["fan_in"]), _number(layer["fan_out"]),
                     _number(layer["spikes_per_sample"], 2), rate, _number(layer["synops_per_sample"], 1),
                     _number(layer["neuron_updates_per_sample"])])
    totals = report["totals"]
    if totals["spikes_per_sample"] is not None:
        rows.append(["**total**", "", "", "", _number(totals["spikes_per_sample"], 2), "",
                     _number(totals["synops_per_sample"], 1), _number(totals["neuron_updates_per_sample"])])
    return rows


LAYER_HEADER = ["layer", "neurons", "fan-in", "fan-out", "spikes/sample", "spikes/neuron/step",
                "synops/sample", "neuron updates/sample"]
ENERGY_HEADER = ["target", "model", "synops or MACs", "neurons", "memory", "static", "total per inference"]


def _energy_rows(report: dict) -> list[list[str]]:
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


def _training_header(report: dict) -> list[str]:
    names = list(next(iter(report["training"]["rules"].values()))["energy_per_sample_j"])
    return ["rule", "passes P", "plasticity ops A", "error ops E"] + [f"{name} (J)" for name in names]


def _training_rows(report: dict) -> list[list[str]]:
    trained = report["training"]["rule"]
    rows = []
    for rule, entry in report["training"]["rules"].items():
        label = f"**{entry['label']}** (trained)" if rule == trained else entry["label"]
        rows.append([label, str(entry["forward_passes"]), _number(entry["plasticity_ops"]), _number(entry["error_ops"])]
                    + [format_joules(value) for value in entry["energy_per_sample_j"].values()])
    return rows


def _sources(report: dict) -> list[str]:
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
    lines += [line + "  " for line in _header(report)] + [""]
    lines += [f"*All energies are estimates* ({report['estimate']}).", ""]
    lines += ["## Spikes and operations per sample", ""]
    if report["spiking"]:
        lines += _md_table(LAYER_HEADER, _layer_rows(report))
    else:
        lines += ["Rate network: spike counts do not apply. Dense connections per inference:", ""]
        lines += _md_table(["layer", "neurons", "fan-in", "MACs/sample"],
                           [[layer["name"], _number(layer["neurons"]), _number(layer["fan_in"]),
                             _number(layer["macs_per_sample"])] for layer in report["layers"]])
    baseline = report["ann_baseline"]
    lines += ["", "## Energy per inference (estimates)", ""]
    lines += _md_table(ENERGY_HEADER, _energy_rows(report))
    lines += ["", f"Dense ANN baseline per inference: {_number(baseline['macs_per_sample'])} MACs, "
              f"{_number(baseline['activations_per_sample'])} activations, "
              f"{_number(baseline['memory_accesses_per_sample'])} memory accesses.", ""]
    training = report["training"]
    lines += ["## Training cost per sample presentation (estimates)", ""]
    recorded = training["rule"] or "not recorded"
    sums = training["sums"]
    lines += [f"Trained with: **{recorded}**. Sizes: S={sums['S']:,} weights, S_up={sums['S_up']:,}, "
              f"H={sums['H']:,} hidden, M={sums['M']:,} neurons, n_0={sums['n_0']}, C={sums['C']}, T={sums['T']}. "
              "P = forward passes, A = plasticity ops (synaptic updates), E = error-signal ops "
              "(formulas in neurocredit/energy.py).", ""]
    lines += _md_table(_training_header(report), _training_rows(report))
    lines += ["", "## Counting conventions", ""] + [f"- {text}" for text in report["conventions"]]
    if report["notes"]:
        lines += ["", "## Notes", ""] + [f"- {text}" for text in report["notes"]]
    lines += ["", "## Sources", ""] + [f"- {text}" for text in _sources(report)]
    return "\n".join(lines) + "\n"


def render_json(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=True, default=_json_default) + "\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


# --------------------------------------------------------------------------- HTML + plots


def _png(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def plot_raster(rasters: Sequence[np.ndarray], names: Sequence[str], samples: int) -> str:
    """Spike rasters of the first ``samples`` samples: ``rasters`` per population (input first),
    each (steps, batch, n) bool; populations are stacked on the y axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = min(samples, rasters[0].shape[1])
    figure, axes = plt.subplots(1, samples, figsize=(4.6 * samples, 4.2), squeeze=False, sharey=True)
    offsets = np.cumsum([0] + [raster.shape[2] for raster in rasters])
    for column in range(samples):
        axis = axes[0, column]
        for index, raster in enumerate(rasters):
            steps, neurons = np.nonzero(raster[:, column, :])
            colour = PALETTE["raster"][index % len(PALETTE["raster"])]
            axis.scatter(steps, neurons + offsets[index], s=5, marker="s", linewidths=0, color=colour,
                         label=names[index] if column == 0 else None)
            axis.axhline(offsets[index], color="#cccccc", linewidth=0.5)
        axis.set_xlim(-0.5, rasters[0].shape[0] - 0.5)
        axis.set_ylim(0, offsets[-1])
        axis.set_xlabel("time step")
        axis.set_title(f"sample {column}")
    axes[0, 0].set_ylabel("neuron (populations stacked)")
    axes[0, 0].legend(loc="upper right", fontsize=7, markerscale=3)
    figure.tight_layout()
    return _png(figure)


def _bar_figure(labels, values, colours, xlabel, title, log=False):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 0.5 * len(labels) + 1.6))
    positions = np.arange(len(labels))
    axis.barh(positions, values, color=colours)
    axis.set_yticks(positions, labels)
    axis.invert_yaxis()
    if log:
        axis.set_xscale("log")
    axis.set_xlabel(xlabel)
    axis.set_title(title)
    figure.tight_layout()
    return _png(figure)


def plot_firing_rates(report: dict) -> str:
    labels = ["input"] + [layer["name"] for layer in report["layers"]]
    values = [report["input"]["firing_rate"] or 0.0] + [layer["firing_rate"] for layer in report["layers"]]
    return _bar_figure(labels, values, PALETTE["rate"], "mean spikes per neuron per step", "firing rate per layer")


def plot_energy(report: dict) -> str:
    names = list(report["targets"])
    values = [max(report["targets"][name]["energy_per_sample_j"], 1e-30) for name in names]
    colours = [PALETTE[report["targets"][name]["kind"]] for name in names]
    labels = [f"{name} ({'SNN' if report['targets'][name]['kind'] == 'snn' else 'dense ANN'})" for name in names]
    return _bar_figure(labels, values, colours, "J per inference (estimate, log scale)",
                       "energy per inference (blue: SNN, red: dense ANN)", log=True)


def plot_training(report: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rules = report["training"]["rules"]
    targets = [name for name in next(iter(rules.values()))["energy_per_sample_j"]
               if any(rules[rule]["energy_per_sample_j"][name] is not None for rule in rules)]
    figure, axis = plt.subplots(figsize=(6.4, 3.8))
    from matplotlib.colors import to_rgb

    width = 0.8 / max(1, len(targets))
    seen = {"snn": 0, "ann": 0}
    for index, name in enumerate(targets):
        values = [rules[rule]["energy_per_sample_j"][name] for rule in rules]
        heights = [np.nan if value is None else value for value in values]
        kind = report["targets"][name]["kind"]
        # the first target of a kind in the pure colour, the next ones lighter (mixed with white)
        lighten = min(0.75, 0.2 * seen[kind])
        seen[kind] += 1
        base = np.array(to_rgb(PALETTE["training"] if kind == "snn" else PALETTE["ann"]))
        axis.bar(np.arange(len(rules)) + index * width, heights, width, color=base + (1 - base) * lighten, label=name)
    trained = report["training"]["rule"]
    axis.set_xticks(np.arange(len(rules)) + width * (len(targets) - 1) / 2,
                    [f"{rule}*" if rule == trained else rule for rule in rules])
    axis.set_yscale("log")
    axis.set_ylabel("J per training sample (estimate)")
    axis.set_title("training cost per rule (* = rule this model was trained with)")
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    return _png(figure)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(text: str, tag: str) -> str:
        text = html.escape(text)
        if text.startswith("**") and "**" in text[2:]:
            end = text.index("**", 2)
            text = f"<b>{text[2:end]}</b>{text[end + 2:]}"
        return f"<{tag}>{text}</{tag}>"

    head = "".join(cell(item, "th") for item in header)
    body = "".join("<tr>" + "".join(cell(item, "td") for item in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body { font-family: sans-serif; margin: 16px; color: #222; background: #fff; max-width: 1180px; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 20px; }
.plots { display: grid; grid-template-columns: 1fr 1fr; gap: 8px; }
.plots figure { margin: 0; border: 1px solid #ddd; padding: 4px; }
.plots figure.wide { grid-column: 1 / span 2; }
.plots img { max-width: 100%; display: block; }
figcaption { font-size: 12px; color: #555; }
table { border-collapse: collapse; font-size: 12px; margin: 6px 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.note { font-size: 12px; color: #555; }
"""


def render_html(report: dict, rasters: Optional[Sequence[np.ndarray]] = None, raster_samples: int = 3) -> str:
    """A self-contained HTML page (inline CSS, plots as base64 PNG): no network access needed.

    ``rasters``: per population, input first, (steps, batch, n) bool spike rasters of the first
    samples (for the raster plot; skipped when None or for rate networks).
    """
    figures = []
    if report["spiking"] and rasters is not None and rasters[0].shape[1] > 0:
        names = ["input"] + [layer["name"] for layer in report["layers"]]
        figures.append(("raster", "wide", f"Spike rasters of the first {min(raster_samples, rasters[0].shape[1])} "
                        f"samples ({report['backend']} backend)", plot_raster(rasters, names, raster_samples)))
    if report["spiking"]:
        figures.append(("rates", "", "Mean firing rate per layer", plot_firing_rates(report)))
    if report["targets"]:
        figures.append(("energy", "", "Energy per inference per target (estimates)", plot_energy(report)))
    training_values = [value for entry in report["training"]["rules"].values()
                       for value in entry["energy_per_sample_j"].values()]
    if report["training"]["rule"] and any(value is not None for value in training_values):
        figures.append(("training", "", "Training cost per sample presentation, per rule (estimates)",
                        plot_training(report)))
    figure_html = "".join(
        f'<figure id="plot-{key}" class="{cls}"><img alt="{html.escape(caption)}" '
        f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption></figure>'
        for key, cls, caption, data in figures
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>neurocredit report: {html.escape(report['model'] or 'model')}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>neurocredit report: {html.escape(report['model'] or 'model')}</h1>",
        "".join(f"<div>{html.escape(line).replace('**', '')}</div>" for line in _header(report)),
        f'<p class="note"><b>All energies are estimates</b> ({html.escape(report["estimate"])}).</p>',
        f'<div class="plots">{figure_html}</div>',
        "<h2>Spikes and operations per sample</h2>",
    ]
    if report["spiking"]:
        parts.append(_html_table(LAYER_HEADER, _layer_rows(report)))
    else:
        parts.append("<p>Rate network: spike counts do not apply.</p>")
        parts.append(_html_table(["layer", "neurons", "fan-in", "MACs/sample"],
                                 [[layer["name"], _number(layer["neurons"]), _number(layer["fan_in"]),
                                   _number(layer["macs_per_sample"])] for layer in report["layers"]]))
    baseline = report["ann_baseline"]
    parts += [
        "<h2>Energy per inference (estimates)</h2>",
        _html_table(ENERGY_HEADER, _energy_rows(report)),
        f'<p class="note">Dense ANN baseline per inference: {_number(baseline["macs_per_sample"])} MACs, '
        f'{_number(baseline["activations_per_sample"])} activations, '
        f'{_number(baseline["memory_accesses_per_sample"])} memory accesses.</p>',
        "<h2>Training cost per sample presentation (estimates)</h2>",
        f'<p class="note">Trained with: <b>{html.escape(str(report["training"]["rule"] or "not recorded"))}</b>. '
        "P = forward passes, A = plasticity ops, E = error-signal ops (formulas in neurocredit/energy.py).</p>",
        _html_table(_training_header(report), _training_rows(report)),
        "<h2>Counting conventions</h2><ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in report["conventions"])
        + "</ul>",
    ]
    if report["notes"]:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in report["notes"]) + "</ul>")
    parts.append('<h2>Sources</h2><ul class="note">' + "".join(f"<li>{html.escape(t)}</li>" for t in _sources(report))
                 + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render(report: dict, fmt: str, rasters: Optional[Sequence[np.ndarray]] = None, raster_samples: int = 3) -> str:
    if fmt == "md":
        return render_markdown(report)
    if fmt == "json":
        return render_json(report)
    if fmt == "html":
        return render_html(report, rasters, raster_samples)
    raise NeurocreditError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")


def write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, with the permissions of a normally created file."""
    import os

    from neurocredit.io import atomic_path

    umask = os.umask(0)
    os.umask(umask)
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")
        os.chmod(temp, 0o666 & ~umask)


def raster_populations(record: RunRecord) -> Optional[list[np.ndarray]]:
    """Input + layer rasters of a record made with ``record={'spikes'}`` (None without them)."""
    if record.spikes is None or record.input_spikes is None:
        return None
    return [np.asarray(record.input_spikes, dtype=bool)] + [np.asarray(raster, dtype=bool) for raster in record.spikes]


# --------------------------------------------------------------------------- one call


def select_targets(spec: str | Sequence[str] = "all") -> list[Target]:
    """Targets named by ``spec``: ``'all'``, one name, a comma-separated list, or a list of names."""
    from neurocredit.targets import available_targets, list_targets, load_target

    names = [spec] if isinstance(spec, str) else list(spec)
    names = [part.strip() for name in names for part in name.split(",") if part.strip()]
    if not names or names == ["all"]:
        targets = list_targets()
        if not targets:
            raise NeurocreditError("no hardware targets found (hardware_targets/*.yaml or $NEUROCREDIT_TARGETS)")
        return targets
    known = available_targets()
    unknown = [name for name in names if name not in known and not name.endswith((".yaml", ".yml"))]
    if unknown:
        raise NeurocreditError(f"unknown --target {', '.join(unknown)}; choose all or one of {', '.join(known)}")
    return [load_target(name) for name in names]


def report_model(
    network: Network,
    features: np.ndarray,
    labels: Optional[np.ndarray] = None,
    *,
    backend: Optional[str] = None,
    targets: str | Sequence[str] = "all",
    steps: Optional[int] = None,
    raster_samples: int = 3,
    model: str = "",
    data: Optional[str] = None,
    progress: bool = False,
    batch_size: int = 1000,
) -> tuple[dict, Optional[list[np.ndarray]], RunRecord]:
    """Simulate ``features`` with ``backend`` and build the report.

    Returns ``(report, rasters, record)``; ``rasters`` (input + layers, first ``raster_samples``
    samples) come from a second, short run of the same backend with rasters recorded (the
    encoding is per sample index, so these are the same samples' spikes).
    """
    from neurocredit.sim import default_backend, simulate

    chosen = select_targets(targets)
    name = backend or default_backend(network)
    record = simulate(network, features, labels, backend=name, steps=steps, progress=progress,
                      batch_size=batch_size)
    report = build_report(network, record, chosen, model=model, data=data)
    rasters = None
    if network.neuron.spiking and raster_samples > 0:
        few = simulate(network, features[:raster_samples], backend=name, steps=steps, record={"spikes"})
        rasters = raster_populations(few)
    return report, rasters, record
