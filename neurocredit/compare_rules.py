"""Learning rules side by side: every contender x seed trained (:mod:`neurocredit.trials`), one
table of mean ± std over seeds, and the rules' declared plausibility criteria.

Contenders come from ``--configs``: a glob (``'models/digits-*.yaml'``), a comma-separated list
of configs (paths or ready names), or one YAML file listing them::

    contenders:
      - config: digits-dfa-rate            # path or ready name
        label: DFA (rate)                  # optional; default: the config's name
        overrides: {training.learning_rate: 0.002}   # optional dotted config keys

Columns (each figure the mean ± sample standard deviation over the seeds; a single seed shows
± 0): validation accuracy (last epoch, the rule's own prediction), test accuracy (the saved
network through the simulation backend, measured once), training seconds per epoch, peak
resident memory above the trial's start (sampled every 5 ms during training), one training
batch's peak memory at T and 2T encoder steps (spiking networks: how memory grows with T), spikes per
inference and per training sample (forward passes of the rule's cost model x the inference
spikes), energy per inference and per training sample on each chosen target (estimates,
:mod:`neurocredit.energy`), then the criteria each rule declares for its neuron kind (its spec in
:mod:`neurocredit.rules`, read by :func:`rule_criteria`).
"""

from __future__ import annotations

import glob
import html
import json
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from neurocredit.errors import NeurocreditError, require_at_least_one
from neurocredit.trials import Trial, run_local, run_ray, trial_config

CRITERIA = ("weight_transport", "forward_locking", "backward_locking", "memory_in_steps", "surrogate_free",
            "on_chip")
CRITERIA_LABELS = {
    "weight_transport": "weight transport",
    "forward_locking": "forward locking",
    "backward_locking": "backward locking",
    "memory_in_steps": "memory in T",
    "surrogate_free": "surrogate-free",
    "on_chip": "on-chip expressible",
}



def rule_criteria(rule: str, kind: str) -> dict[str, Any]:
    """The plausibility criteria rule ``rule`` declares for ``kind`` networks (its spec's
    :class:`~neurocredit.rules.spec.Criteria`; names: CRITERIA)."""
    import dataclasses

    from neurocredit.rules import rule_spec

    criteria = dataclasses.asdict(rule_spec(rule).variant(kind).criteria)
    return {name: criteria[name] for name in CRITERIA}


# --------------------------------------------------------------------------- contenders


def _contender(entry: Any, where: str) -> tuple[str, str, dict]:
    if isinstance(entry, str):
        entry = {"config": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), str):
        raise NeurocreditError(f"{where}: each contender needs a 'config' (a path or a ready config name)")
    unknown = sorted(set(entry) - {"config", "label", "overrides"})
    if unknown:
        raise NeurocreditError(f"{where}: unknown key {unknown[0]!r} (allowed: config, label, overrides)")
    overrides = entry.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise NeurocreditError(f"{where}: overrides must be a mapping of dotted config keys to values")
    return entry["config"], entry.get("label") or "", overrides


def parse_contenders(spec: str) -> list[tuple[str, str, dict]]:
    """``(config, label, overrides)`` per contender from a ``--configs`` value (module doc)."""
    from neurocredit.config import load_config
    from neurocredit.options import read_yaml

    spec = spec.strip()
    if not spec:
        raise NeurocreditError("--configs is empty; give a glob, a comma-separated list or a YAML listing")
    if "," not in spec and spec.endswith((".yaml", ".yml")) and Path(spec).is_file():
        raw = read_yaml(spec)
        if isinstance(raw, dict) and "contenders" in raw:
            entries = raw["contenders"]
            if not isinstance(entries, list) or not entries:
                raise NeurocreditError(f"{spec}: contenders must be a non-empty list")
            return [_contender(entry, f"{spec}: contenders[{i}]") for i, entry in enumerate(entries)]
    names: list[str] = []
    for part in (part.strip() for part in spec.split(",")):
        if not part:
            continue
        if any(char in part for char in "*?["):
            matches = sorted(glob.glob(part))
            if not matches:
                raise NeurocreditError(f"--configs: no file matches {part!r}")
            names += matches
        else:
            names.append(part)
    for name in names:
        load_config(name)  # missing or invalid: one clear error now, not inside a trial
    return [(name, "", {}) for name in names]


def make_trials(contenders: Sequence[tuple[str, str, dict]], seeds: int, *, epochs: Optional[int] = None,
                data: Optional[str] = None, max_batches: Optional[int] = None,
                targets: Sequence[str] = ("loihi2", "cpu")) -> list[Trial]:
    """Contender x seed (seeds 0 .. seeds-1), contenders outermost."""
    require_at_least_one("--seeds", seeds)
    require_at_least_one("--epochs", epochs)
    trials, labels = [], set()
    for config, label, overrides in contenders:
        probe = Trial(label or config, config, 0, dict(overrides), epochs, data, max_batches, tuple(targets))
        label = label or trial_config(probe).name
        if label in labels:
            raise NeurocreditError(f"--configs: contender {label!r} appears twice; give each a distinct label")
        labels.add(label)
        trials += [Trial(label, config, seed, dict(overrides), epochs, data, max_batches, tuple(targets))
                   for seed in range(seeds)]
    return trials


# --------------------------------------------------------------------------- the table


def mean_std(values: Sequence[Optional[float]]) -> Optional[tuple[float, float]]:
    """Mean and sample standard deviation (0 for one value, and for values that differ only by float
    rounding, e.g. the same energy summed in another order); None when any value is missing."""
    if not values or any(value is None for value in values):
        return None
    array = np.asarray(values, dtype=float)
    mean = float(array.mean())
    if len(array) == 1 or np.ptp(array) <= 1e-12 * abs(mean):
        return mean, 0.0
    return mean, float(array.std(ddof=1))


def summarize(results: Sequence[dict], targets: Sequence[str]) -> list[dict[str, Any]]:
    """One row per contender (in first-seen order): mean/std of every figure, and criteria."""
    rows: dict[str, list[dict]] = {}
    for result in results:
        rows.setdefault(result["label"], []).append(result)
    summary = []
    for label, group in rows.items():
        first = group[0]
        epochs = min(len(result["history"]) for result in group)
        curve = [mean_std([result["history"][e]["validation_accuracy"] for result in group]) for e in range(epochs)]
        summary.append({
            "label": label,
            "config": first["config"],
            "rule": first["rule"],
            "kind": first["kind"],
            "seeds": sorted(result["seed"] for result in group),
            "validation_accuracy": mean_std([r["validation_accuracy"] for r in group]),
            "test_accuracy": mean_std([r["test_accuracy"] for r in group]),
            "seconds_per_epoch": mean_std([r["seconds_per_epoch"] for r in group]),
            "peak_rss_mib": mean_std([r["peak_rss_mib"] for r in group]),
            "batch_mib_in_steps": _memory_in_steps(group),
            "spikes_per_inference": mean_std([r["spikes_per_inference"] for r in group]),
            "spikes_per_training_sample": mean_std([r["spikes_per_training_sample"] for r in group]),
            "energy_per_inference_j": {t: mean_std([r["energy_per_inference_j"].get(t) for r in group])
                                       for t in targets},
            "energy_per_training_sample_j": {t: mean_std([r["energy_per_training_sample_j"].get(t) for r in group])
                                             for t in targets},
            "validation_curve": curve,
            "criteria": rule_criteria(first["rule"], first["kind"]),
        })
    return summary


def _memory_in_steps(group: Sequence[dict]) -> Optional[dict[str, Any]]:
    """Mean ± std over seeds of one batch's peak memory at each measured T (None when not measured)."""
    measured = [r.get("memory_in_steps") for r in group]
    if not measured or any(m is None for m in measured):
        return None
    return {"steps": measured[0]["steps"],
            "batch_peak_mib": [mean_std([m["batch_peak_mib"][i] for m in measured])
                               for i in range(len(measured[0]["steps"]))]}


def _steps_cell(value: Optional[dict]) -> str:
    if value is None:
        return "n/a"
    return " → ".join(f"{_pm(peak, '{:.1f}')} (T={steps})" for steps, peak in zip(value["steps"],
                                                                                   value["batch_peak_mib"]))


def _pm(value: Optional[tuple[float, float]], fmt: str) -> str:
    if value is None:
        return "n/a"
    mean, std = value
    return f"{fmt.format(mean)} ± {fmt.format(std)}"


def _pm_percent(value) -> str:
    return "n/a" if value is None else f"{100 * value[0]:.2f} ± {100 * value[1]:.2f} %"


def _pm_joules(value) -> str:
    from neurocredit.report import format_joules

    return "n/a" if value is None else f"{format_joules(value[0])} ± {format_joules(value[1])}"


def _criterion(value: Any) -> str:
    if value is None:
        return "?"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def table(summary: Sequence[dict], targets: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    header = ["contender", "rule", "neuron", "seeds", "validation acc", "test acc", "s / epoch", "peak MiB",
              "batch MiB vs T", "spikes / inference", "spikes / train sample"]
    header += [f"E / inference ({t})" for t in targets] + [f"E / train sample ({t})" for t in targets]
    header += [CRITERIA_LABELS[name] for name in CRITERIA]
    rows = []
    for row in summary:
        cells = [row["label"], row["rule"], row["kind"], str(len(row["seeds"])), _pm_percent(row["validation_accuracy"]),
                 _pm_percent(row["test_accuracy"]), _pm(row["seconds_per_epoch"], "{:.2f}"),
                 _pm(row["peak_rss_mib"], "{:.1f}"), _steps_cell(row["batch_mib_in_steps"]),
                 _pm(row["spikes_per_inference"], "{:.0f}"),
                 _pm(row["spikes_per_training_sample"], "{:.0f}")]
        cells += [_pm_joules(row["energy_per_inference_j"][t]) for t in targets]
        cells += [_pm_joules(row["energy_per_training_sample_j"][t]) for t in targets]
        cells += [_criterion(row["criteria"][name]) for name in CRITERIA]
        rows.append(cells)
    return header, rows


NOTES = (
    "mean ± sample standard deviation over the seeds",
    "validation accuracy: last epoch, the rule's own prediction, on the validation split held out of the "
    "training set (data.validation); test accuracy: the saved network through the simulation backend, measured once",
    "seconds per epoch: training only; peak MiB: resident memory above the trial's start during training, "
    "sampled every 5 ms; batch MiB vs T (spiking): one training batch's peak at T and 2T encoder steps",
    "energies are estimates (hardware_targets/*.yaml, neurocredit/energy.py); training: the rule's cost model "
    "(forward passes, plasticity and error operations) with this network's spike counts",
    "criteria: as each rule declares them for its neuron kind",
)


def render_markdown(payload: dict) -> str:
    header, rows = table(payload["summary"], payload["targets"])
    lines = [f"# Rules compared on {payload['data']}: {payload['trials']} trials ({payload['runner']})", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += [""] + [f"- {note}" for note in NOTES]
    return "\n".join(lines) + "\n"


def render_json(payload: dict) -> str:
    return json.dumps(payload, indent=2, sort_keys=True, default=float) + "\n"


PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def plot_curves(summary: Sequence[dict]) -> str:
    """Validation accuracy vs epoch, mean over seeds with a ±std band, one colour per contender."""
    from neurocredit.report.html import _png, _pyplot

    figure, axis = _pyplot().subplots(figsize=(6.4, 3.6))
    for index, row in enumerate(summary):
        points = [p for p in row["validation_curve"] if p is not None]
        if not points:
            continue
        epochs = np.arange(1, len(points) + 1)
        mean = np.array([p[0] for p in points]) * 100
        std = np.array([p[1] for p in points]) * 100
        colour = PALETTE[index % len(PALETTE)]
        axis.plot(epochs, mean, marker="o", color=colour, label=row["label"])
        axis.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.2)
    axis.set_xlabel("epoch")
    axis.set_ylabel("validation accuracy (%)")
    axis.set_title("validation accuracy per epoch (mean ± std over seeds)")
    axis.legend(fontsize=7)
    figure.tight_layout()
    return _png(figure)


def plot_scatter(summary: Sequence[dict], targets: Sequence[str]) -> str:
    """Test accuracy vs energy per inference, one marker per target, one colour per contender."""
    from neurocredit.report.html import _png, _pyplot

    markers = "os^Dv<>p"
    figure, axis = _pyplot().subplots(figsize=(6.4, 3.6))
    drawn = False
    for index, row in enumerate(summary):
        accuracy = row["test_accuracy"]
        for t_index, target in enumerate(targets):
            energy = row["energy_per_inference_j"][target]
            if energy is None or accuracy is None or energy[0] <= 0:
                continue
            axis.errorbar(energy[0], accuracy[0] * 100, xerr=energy[1], yerr=accuracy[1] * 100,
                          color=PALETTE[index % len(PALETTE)], marker=markers[t_index % len(markers)],
                          markersize=8, linestyle="none", label=f"{row['label']} on {target}")
            drawn = True
    if drawn:
        axis.set_xscale("log")
        axis.legend(fontsize=6)
    axis.set_xlabel("energy per inference (J, estimate)")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title("accuracy vs energy per inference")
    figure.tight_layout()
    return _png(figure)


def render_html(payload: dict) -> str:
    from neurocredit.report.html import _CSS, _html_table

    summary, targets = payload["summary"], payload["targets"]
    header, rows = table(summary, targets)
    title = f"Rules compared on {payload['data']}"
    figures = [("curves", "Validation accuracy per epoch (mean ± std over seeds)", plot_curves(summary)),
               ("scatter", "Test accuracy vs energy per inference (estimates; marker = target)",
                plot_scatter(summary, targets))]
    figure_html = "".join(
        f'<figure id="plot-{key}"><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>" for key, caption, data in figures)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
        f"<p>{payload['trials']} trials ({html.escape(payload['runner'])}), seeds "
        f"{html.escape(', '.join(map(str, payload['seeds'])))}.</p>",
        _html_table(header, rows),
        f'<div class="plots">{figure_html}</div>',
        "<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(note)}</li>" for note in NOTES) + "</ul>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def render(payload: dict, fmt: str) -> str:
    renderers = {"md": render_markdown, "json": render_json, "html": render_html}
    if fmt not in renderers:
        raise NeurocreditError(f"unknown --format {fmt!r}; choose md, json or html")
    return renderers[fmt](payload)


def compare(trials: Sequence[Trial], *, runner: str = "local", address: Optional[str] = None,
            storage: Optional[str] = None, num_cpus: Optional[int] = None, log=print) -> dict[str, Any]:
    """Run ``trials`` (``runner`` ``local`` or ``ray``) and build the payload every format renders."""
    if runner == "local":
        results = run_local(trials, log=log)
        description = "in-process, sequential"
    else:
        results = run_ray(trials, address=address, storage=storage, num_cpus=num_cpus, log=log,
                          name="compare-rules")
        description = f"Ray, {address or 'embedded local instance'}"
    targets = list(trials[0].targets)
    return {
        "runner": description,
        "data": trials[0].data or ", ".join(sorted({trial_config(trial).data.name for trial in trials})),
        "trials": len(results),
        "seeds": sorted({trial.seed for trial in trials}),
        "targets": targets,
        "summary": summarize(results, targets),
        "results": results,
    }
