"""Hyper-parameter search over a config's keys (grid or random), with early stopping, that
selects on validation accuracy only.

A search-space file (``neurocredit sweep SPACE.yaml``)::

    config: digits-dfa-rate          # the base config (path or ready name)
    search: grid                     # grid (every combination) | random (``samples`` draws)
    samples: 8                       # random only
    seed: 0                          # seeds the random draws
    seeds: 1                         # training seeds per point; points are ranked by the mean
    epochs: 10                       # optional: override training.epochs
    scheduler: {kind: median, grace_epochs: 2}   # or {kind: none}
    space:                           # dotted config keys (rule options: rule.<option>)
      training.learning_rate: [0.0005, 0.001, 0.002]      # a list: grid values / a random choice
      network.hidden: [[64], [128]]
      training.weight_decay: {loguniform: [1.0e-6, 1.0e-3]}   # random only: uniform, loguniform,
      training.batch_size: {randint: [16, 65]}               # randint [low, high)

Every point x seed is one :class:`~neurocredit.trials.Trial`. Points are ranked by mean
validation accuracy over their seeds (the last epoch each trial ran); the test set is reported
for the selected point only, so nothing is chosen on it.

Early stopping, ``median`` (the median stopping rule, Golovin et al. 2017, as Ray Tune's
``MedianStoppingRule``): after ``grace_epochs`` epochs a trial stops when its best validation
accuracy so far is below the median, over the trials that reached that epoch before it, of their
mean validation accuracy up to that epoch. ``--local`` applies it in this process (trials in
order); on Ray, Tune's own ``MedianStoppingRule`` applies it to trials running side by side, so
which trials stop may differ.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from neurocredit.errors import NeurocreditError
from neurocredit.trials import StopTrial, Trial

DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")


@dataclass(frozen=True)
class SweepSpec:
    config: str
    search: str
    space: dict[str, Any]
    samples: int = 8
    seed: int = 0
    seeds: int = 1
    epochs: Optional[int] = None
    scheduler: str = "median"
    grace_epochs: int = 2
    source: str = "<sweep>"


def load_sweep(path: str) -> SweepSpec:
    """Read and check a search-space file (module doc); every problem names the file and key."""
    from neurocredit.options import read_yaml

    file = Path(path)
    if not file.is_file():
        raise NeurocreditError(f"{file}: search-space file not found")
    raw = read_yaml(file)
    if not isinstance(raw, dict):
        raise NeurocreditError(f"{file}: a search space is a mapping with config, search and space")
    allowed = {"config", "search", "samples", "seed", "seeds", "epochs", "scheduler", "space"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise NeurocreditError(f"{file}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
    for key in ("config", "space"):
        if key not in raw:
            raise NeurocreditError(f"{file}: missing key {key!r}")
    search = raw.get("search", "grid")
    if search not in ("grid", "random"):
        raise NeurocreditError(f"{file}: search must be grid or random, got {search!r}")
    space = raw["space"]
    if not isinstance(space, dict) or not space:
        raise NeurocreditError(f"{file}: space must map dotted config keys to values or distributions")
    for key, values in space.items():
        where = f"{file}: space.{key}"
        if isinstance(values, list):
            if not values:
                raise NeurocreditError(f"{where}: an empty list")
        elif isinstance(values, dict) and len(values) == 1 and next(iter(values)) in DISTRIBUTIONS:
            kind, arguments = next(iter(values.items()))
            if kind != "choice" and search == "grid":
                raise NeurocreditError(f"{where}: {kind} needs search: random (a grid takes lists)")
            if kind in ("uniform", "loguniform", "randint") and not (
                    isinstance(arguments, list) and len(arguments) == 2 and arguments[0] < arguments[1]):
                raise NeurocreditError(f"{where}: {kind} takes [low, high] with low < high")
            if kind == "loguniform" and arguments[0] <= 0:
                raise NeurocreditError(f"{where}: loguniform needs low > 0")
            if kind == "choice" and (not isinstance(arguments, list) or not arguments):
                raise NeurocreditError(f"{where}: choice takes a non-empty list")
        else:
            raise NeurocreditError(f"{where}: give a list of values or one of {', '.join(DISTRIBUTIONS)}")
    scheduler = raw.get("scheduler") or {"kind": "none"}
    if not isinstance(scheduler, dict) or scheduler.get("kind") not in ("median", "none") or \
            set(scheduler) - {"kind", "grace_epochs"}:
        raise NeurocreditError(f"{file}: scheduler must be {{kind: median, grace_epochs: N}} or {{kind: none}}")
    integers = {"samples": raw.get("samples", 8), "seed": raw.get("seed", 0), "seeds": raw.get("seeds", 1),
                "grace_epochs": scheduler.get("grace_epochs", 2)}
    if raw.get("epochs") is not None:
        integers["epochs"] = raw["epochs"]
    for key, value in integers.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "seed" else 1):
            raise NeurocreditError(f"{file}: {key} must be an integer >= {0 if key == 'seed' else 1}, got {value!r}")
    return SweepSpec(str(raw["config"]), search, dict(space), integers["samples"], integers["seed"],
                     integers["seeds"], integers.get("epochs"), scheduler["kind"], integers["grace_epochs"],
                     str(file))


def _values(entry: Any) -> list:
    return entry if isinstance(entry, list) else entry["choice"]


def points(spec: SweepSpec) -> list[dict[str, Any]]:
    """The overrides of every point: the grid's combinations in order, or seeded random draws."""
    keys = list(spec.space)
    if spec.search == "grid":
        return [dict(zip(keys, combination)) for combination in itertools.product(*(_values(spec.space[k])
                                                                                      for k in keys))]
    rng = np.random.default_rng(spec.seed)
    drawn = []
    for _ in range(spec.samples):
        point = {}
        for key in keys:
            entry = spec.space[key]
            if isinstance(entry, list) or "choice" in entry:
                options = _values(entry)
                point[key] = options[int(rng.integers(len(options)))]
            elif "uniform" in entry:
                point[key] = float(rng.uniform(*entry["uniform"]))
            elif "loguniform" in entry:
                low, high = np.log(entry["loguniform"])
                point[key] = float(np.exp(rng.uniform(low, high)))
            else:
                point[key] = int(rng.integers(*entry["randint"]))
        drawn.append(point)
    return drawn


def make_trials(spec: SweepSpec, *, data: Optional[str] = None, max_batches: Optional[int] = None) -> list[Trial]:
    """Point x seed, points outermost; labels ``#1``, ``#2``... (point order)."""
    from neurocredit.trials import trial_config

    trials = [Trial(f"#{index + 1}", spec.config, seed, point, spec.epochs, data, max_batches)
              for index, point in enumerate(points(spec)) for seed in range(spec.seeds)]
    config = trial_config(trials[0])  # the base config with the first point: a bad key fails here
    if config.data.validation == 0:
        raise NeurocreditError(f"{spec.source}: {spec.config} has data.validation 0; a sweep selects on the "
                               "validation split, so set data.validation (e.g. 0.1)")
    for trial in trials[1:]:
        trial_config(trial)
    return trials


class MedianStopping:
    """The median stopping rule for trials run one after another (module doc)."""

    def __init__(self, grace_epochs: int) -> None:
        self.grace_epochs = grace_epochs
        self.finished: list[list[float]] = []  # validation accuracies per epoch of earlier trials
        self.current: list[float] = []

    def on_epoch(self, trial, session, stats) -> None:
        self.current.append(stats.validation_accuracy)
        epoch = len(self.current)
        if epoch < self.grace_epochs:
            return
        others = [np.mean(history[:epoch]) for history in self.finished if len(history) >= epoch]
        if others and max(self.current) < float(np.median(others)):
            raise StopTrial

    def end_trial(self) -> None:
        self.finished.append(self.current)
        self.current = []


def rank(results: Sequence[dict]) -> list[dict[str, Any]]:
    """Points by mean validation accuracy (best first)."""
    groups: dict[str, list[dict]] = {}
    for result in results:
        groups.setdefault(result["label"], []).append(result)
    rows = []
    for label, group in groups.items():
        accuracies = [r["validation_accuracy"] for r in group if r.get("validation_accuracy") is not None]
        rows.append({
            "label": label,
            "overrides": group[0].get("overrides", {}),
            "validation_accuracy": float(np.mean(accuracies)) if accuracies else float("nan"),
            "validation_std": float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else 0.0,
            "epochs": [r.get("epochs") for r in group],
            "stopped_early": any(r.get("stopped_early") for r in group),
            "seeds": len(group),
        })
    rows.sort(key=lambda row: (-np.nan_to_num(row["validation_accuracy"], nan=-1.0), row["label"]))
    return rows


def run_sweep(spec: SweepSpec, trials: Sequence[Trial], *, runner: str = "local", address: Optional[str] = None,
              storage: Optional[str] = None, num_cpus: Optional[int] = None, log=print) -> dict[str, Any]:
    """Run the sweep's trials and rank its points; the payload every format renders."""
    from neurocredit.trials import run_ray, run_trial

    if runner == "local":
        stopping = MedianStopping(spec.grace_epochs) if spec.scheduler == "median" else None
        results = []
        for index, trial in enumerate(trials):
            hook = None if stopping is None else (lambda session, stats, t=trial: stopping.on_epoch(t, session, stats))
            result = run_trial(trial, on_epoch=hook)
            if stopping is not None:
                stopping.end_trial()
            results.append(result)
            log(f"[{index + 1}/{len(trials)}] {trial.name} {json.dumps(trial.overrides)}: validation "
                f"{result['validation_accuracy']:.2%} after {result['epochs']} epoch(s)"
                + (" (stopped early)" if result["stopped_early"] else ""))
        description = "in-process, sequential"
    else:
        scheduler = None
        if spec.scheduler == "median":
            from ray.tune.schedulers import MedianStoppingRule

            scheduler = MedianStoppingRule(time_attr="epoch", grace_period=spec.grace_epochs,
                                           min_samples_required=1)
        results = run_ray(trials, address=address, storage=storage, num_cpus=num_cpus, log=log, name="sweep",
                          scheduler=scheduler, metric="validation_accuracy")
        for result, trial in zip(results, trials):
            result.setdefault("overrides", dict(trial.overrides))
        description = f"Ray, {address or 'embedded local instance'}"
    ranking = rank(results)
    best = ranking[0]
    best_results = [r for r in results if r["label"] == best["label"] and r.get("test_accuracy") is not None]
    return {
        "sweep": spec.source,
        "config": spec.config,
        "search": spec.search,
        "runner": description,
        "scheduler": spec.scheduler,
        "trials": len(results),
        "ranking": ranking,
        "best": {**best, "test_accuracy": float(np.mean([r["test_accuracy"] for r in best_results]))
                 if best_results else None},
        "results": results,
    }


def best_config_yaml(spec: SweepSpec, overrides: dict[str, Any]) -> str:
    """The base config's YAML with the selected point's overrides applied."""
    import yaml

    from neurocredit.trials import load_raw, set_dotted

    raw, path = load_raw(spec.config)
    for key, value in overrides.items():
        set_dotted(raw, key, value, path)
    if spec.epochs is not None:  # the epochs the point was selected with
        set_dotted(raw, "training.epochs", spec.epochs, path)
    return f"# {Path(path).name} with the point selected by {spec.source} (validation accuracy)\n" + \
        yaml.safe_dump(raw, sort_keys=False)


def render_markdown(payload: dict) -> str:
    lines = [f"# Sweep {payload['sweep']} over {payload['config']}: {payload['trials']} trials "
             f"({payload['search']}, scheduler {payload['scheduler']}, {payload['runner']})", "",
             "| rank | point | overrides | validation acc | epochs | stopped early |", "|---|---|---|---|---|---|"]
    for index, row in enumerate(payload["ranking"]):
        overrides = ", ".join(f"{key}={value}" for key, value in row["overrides"].items())
        lines.append(f"| {index + 1} | {row['label']} | {overrides} | {100 * row['validation_accuracy']:.2f} ± "
                     f"{100 * row['validation_std']:.2f} % | {', '.join(map(str, row['epochs']))} | "
                     f"{'yes' if row['stopped_early'] else 'no'} |")
    best = payload["best"]
    test = "n/a (stopped early)" if best["test_accuracy"] is None else f"{best['test_accuracy']:.2%}"
    lines += ["", f"Selected on validation accuracy: {best['label']} "
              f"({', '.join(f'{k}={v}' for k, v in best['overrides'].items())}); its test accuracy {test} "
              "(measured once per trial at the end; not used for selection)."]
    return "\n".join(lines) + "\n"


def render(payload: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(payload, indent=2, sort_keys=True, default=float) + "\n"
    return render_markdown(payload)
