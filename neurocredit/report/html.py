"""The self-contained HTML page of a report dict: the markdown tables as HTML plus plots (spike
rasters, per-layer rates, energy per target, training cost per rule) embedded as PNG."""

from __future__ import annotations

import base64
import html
import io
from typing import Optional, Sequence

import numpy as np

from neurocredit.report.markdown import (
    ENERGY_HEADER,
    LAYER_HEADER,
    RATE_HEADER,
    baseline_sentence,
    energy_rows,
    header,
    layer_rows,
    rate_rows,
    sources,
    training_header,
    training_rows,
)

# Plot colours (the browser test looks for them in the rendered page).
PALETTE = {
    "snn": "#1f77b4",
    "ann": "#d62728",
    "rate": "#2ca02c",
    "training": "#9467bd",
    "raster": ("#7f7f7f", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#bcbd22"),
}




def _pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def plot_raster(rasters: Sequence[np.ndarray], names: Sequence[str], samples: int) -> str:
    """Spike rasters of the first ``samples`` samples: ``rasters`` per population (input first),
    each (steps, batch, n) bool; populations are stacked on the y axis."""
    plt = _pyplot()

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
    plt = _pyplot()

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
    plt = _pyplot()

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


MAX_FEATURE_CHANNELS = 16  # panels per population in the feature-map figure (readability, not a limit)


def plot_feature_maps(rasters: Sequence[np.ndarray], shapes: Sequence[Sequence[int]], names: Sequence[str]) -> str:
    """Spike counts of sample 0 over the run, one H x W panel per channel (at most
    :data:`MAX_FEATURE_CHANNELS`), one row per (C, H, W) population (input and conv layers)."""
    plt = _pyplot()

    rows = [(raster, tuple(shape), name) for raster, shape, name in zip(rasters, shapes, names) if len(shape) == 3]
    columns = min(MAX_FEATURE_CHANNELS, max(shape[0] for _, shape, _ in rows))
    figure, axes = plt.subplots(len(rows), columns, figsize=(1.4 * columns + 1.2, 1.5 * len(rows) + 0.4),
                                squeeze=False)
    for row, (raster, shape, name) in enumerate(rows):
        counts = raster[:, 0, :].sum(axis=0).reshape(shape)
        for channel in range(columns):
            axis = axes[row, channel]
            axis.set_xticks([])
            axis.set_yticks([])
            if channel >= shape[0]:
                axis.axis("off")
                continue
            axis.imshow(counts[channel], cmap="viridis", vmin=0, vmax=max(1, int(counts.max())),
                        interpolation="nearest")
            if channel == 0:
                axis.set_ylabel(name, fontsize=8)
            axis.set_title(f"ch {channel}", fontsize=7)
    figure.tight_layout()
    return _png(figure)


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
        shapes = [report["input"].get("shape", [])] + [layer.get("shape", []) for layer in report["layers"]]
        if any(len(shape) == 3 for shape in shapes):
            figures.append(("feature-maps", "wide", "Feature maps of sample 0: spikes per neuron over the run, one "
                            "panel per channel", plot_feature_maps(rasters, shapes, names)))
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
        "".join(f"<div>{html.escape(line).replace('**', '')}</div>" for line in header(report)),
        f'<p class="note"><b>All energies are estimates</b> ({html.escape(report["estimate"])}).</p>',
        f'<div class="plots">{figure_html}</div>',
        "<h2>Spikes and operations per sample</h2>",
    ]
    if report["spiking"]:
        parts.append(_html_table(LAYER_HEADER, layer_rows(report)))
    else:
        parts.append("<p>Rate network: spike counts do not apply.</p>")
        parts.append(_html_table(RATE_HEADER, rate_rows(report)))
    parts += [
        "<h2>Energy per inference (estimates)</h2>",
        _html_table(ENERGY_HEADER, energy_rows(report)),
        f'<p class="note">{baseline_sentence(report)}</p>',
        "<h2>Training cost per sample presentation (estimates)</h2>",
        f'<p class="note">Trained with: <b>{html.escape(str(report["training"]["rule"] or "not recorded"))}</b>. '
        "P = forward passes, A = plasticity ops, E = error-signal ops (formulas in neurocredit/energy.py).</p>",
        _html_table(training_header(report), training_rows(report)),
        "<h2>Counting conventions</h2><ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in report["conventions"])
        + "</ul>",
    ]
    if report["notes"]:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in report["notes"]) + "</ul>")
    parts.append('<h2>Sources</h2><ul class="note">' + "".join(f"<li>{html.escape(t)}</li>" for t in sources(report))
                 + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
