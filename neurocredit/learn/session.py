"""One on-chip learning session: a network, a data set, a backend (emulator, Lava, or both).

:func:`learn_on_chip` is what ``neurocredit learn`` runs: it builds the on-chip DFA plan,
measures the test accuracy of the starting weights, learns (emulator and/or Lava, fixed or
floating point) on the first ``limit`` training samples for ``epochs`` passes, measures the
accuracy again, and, when both backends ran on the same samples, how many integer weights they
agree on. :func:`onchip_energy` turns the learning-engine counts into energy per hardware
target (``synaptic_update_j``, Davies et al. 2018 Table 2 -- a proxy for Loihi 2, which
publishes no per-operation energy).

Accuracy of fixed-point weights is measured deployed frozen in Lava fixed point (the
bit-exact inference emulator, ``deploy.emulator``); of floating-point weights with the float
reference simulation of the learned ``Network`` (``neurons.run_lif_network``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from neurocredit.errors import NeurocreditError, require_at_least_one
from neurocredit.learn.onchip import (
    ChlEmulator,
    ChlOptions,
    DfaEmulator,
    DfaPlan,
    OnChipOptions,
    encode_plan_stream,
    evaluate_chl,
    evaluate_fixed,
    learn_chl_emulator,
    learn_emulator,
    make_chl_plan,
    make_dfa_plan,
    with_epoch_samples,
)
from neurocredit.network import Network

BACKENDS = ("emulator", "lava", "both")
RULES = ("dfa", "chl")


@dataclass
class LearnReport:
    """What one session measured (see :func:`learn_on_chip`)."""

    rule: str
    backend: str
    mode: str
    epochs: int
    samples: int
    accuracy_before: float
    accuracy_after: float
    test_samples: int
    network: Network
    counts: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)
    agreement: Optional[dict[str, Any]] = None
    energy: dict[str, Any] = field(default_factory=dict)
    train_accuracy: Optional[float] = None
    split: str = "test"  # where accuracy_before/after were measured (test, or validation: `learn --validation`)

    def to_dict(self) -> dict[str, Any]:
        payload = dataclasses.asdict(self)
        payload.pop("network")
        payload["network_summary"] = self.network.summary()
        return payload

    def text(self) -> str:
        lines = [
            f"on-chip {self.rule} ({self.mode}, backend {self.backend}): {self.epochs} epoch(s) over "
            f"{self.samples} training samples",
            f"{self.split} accuracy before {self.accuracy_before:.2%}, after {self.accuracy_after:.2%} "
            f"({self.test_samples} {self.split} samples)",
            "learning engine: " + ", ".join(f"{k} {v:,}" for k, v in self.counts.items()),
        ]
        for name, value in self.seconds.items():
            per = value / max(self.samples * self.epochs, 1)
            lines.append(f"{name}: {value:.2f} s ({per * 1e3:.2f} ms per sample)")
        if self.agreement is not None:
            lines.append("emulator vs lava: " + ", ".join(f"{k} {v}" for k, v in self.agreement.items()))
        for target, entry in self.energy.items():
            lines.append(f"energy {target}: {entry['joules']:.3e} J for {entry['operations']:,} synaptic updates "
                         f"({entry['source']})")
        return "\n".join(lines)


def onchip_energy(counts: dict[str, int], targets: tuple[str, ...] = ("loihi", "loihi2")) -> dict[str, Any]:
    """Energy of the learning engine's synaptic updates per target: ``synapse_updates x
    synaptic_update_j`` from ``hardware_targets/<target>.yaml`` (targets without that figure are
    left out). Each entry says where the figure comes from and whether it is a proxy."""
    from neurocredit.targets import load_target

    result = {}
    for name in targets:
        target = load_target(name)
        entry = target.energy.get("synaptic_update_j")
        if entry is None:
            continue
        operations = int(counts.get("synapse_updates", 0))
        result[target.name] = {"operations": operations, "joules": operations * float(entry.value),
                               "per_update_j": float(entry.value), "source": entry.source,
                               "proxy": "proxy" in entry.source.lower() or "proxy" in entry.note.lower()}
    return result


def _accuracy(plan, weights: list[np.ndarray], features: np.ndarray, labels: np.ndarray) -> float:
    if not isinstance(plan, DfaPlan):
        return evaluate_chl(plan, weights, features, labels)
    if plan.fixed:
        return evaluate_fixed(plan, weights, features, labels)
    from neurocredit.encoders import encode
    from neurocredit.neurons import run_lif_network

    network = plan.learned_network(weights)
    trace = run_lif_network(network, encode(network.encoder, features), record_states=False)
    return float(np.mean(np.argmax(trace.spikes[-1].sum(axis=0), axis=1) == labels))


def learn_on_chip(network: Network, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                  y_test: np.ndarray, options, rule: str = "dfa", backend: str = "emulator",
                  fixed: bool = True, epochs: int = 1, limit: Optional[int] = None, target: str = "loihi2",
                  progress: bool = False) -> LearnReport:
    """Learn on the chip (see the module doc). With ``backend='both'`` the emulator and Lava
    learn the same ``limit`` samples (one epoch each way per ``epochs``) and their weights are
    compared; the emulator's weights are returned."""
    if rule not in RULES:
        raise NeurocreditError(f"on-chip rule {rule!r} is not one of {', '.join(RULES)}")
    if backend not in BACKENDS:
        raise NeurocreditError(f"--backend {backend!r} must be one of {', '.join(BACKENDS)}")
    require_at_least_one("--epochs", epochs)
    require_at_least_one("--limit", limit)
    chl = rule == "chl"
    if chl:
        options = options if isinstance(options, ChlOptions) else ChlOptions()
        plan = make_chl_plan(network, options, fixed=fixed, target_name=target)
    else:
        options = options if isinstance(options, OnChipOptions) else OnChipOptions()
        plan = make_dfa_plan(network, options, fixed=fixed, target_name=target)
    start = [layer.weights.copy() for layer in plan.layers]
    before = _accuracy(plan, start, x_test, y_test)
    count = len(x_train) if limit is None else min(limit, len(x_train))
    plan = with_epoch_samples(plan, count)
    seconds: dict[str, float] = {}
    agreement = None
    weights = None
    counts = None
    train_accuracy = None
    if backend in ("emulator", "both"):
        if chl:
            result = learn_chl_emulator(plan, x_train, y_train, epochs=epochs, limit=count, progress=progress)
        else:
            result = learn_emulator(plan, x_train, y_train, epochs=epochs, limit=count, progress=progress)
        weights, counts = result.weights, result.counts.as_dict()
        seconds["emulator"] = result.seconds
        train_accuracy = result.train_accuracy
    if backend in ("lava", "both"):
        from neurocredit.learn.lava_run import run_chl_network, run_dfa_network

        period = plan.period if chl else plan.neuron.period
        order_rng = np.random.default_rng(period + 7919 * int(plan.layers[0].rule.spec.rng_seed))
        streams = [encode_plan_stream(plan, x_train, y_train, order_rng.permutation(count), seed_offset=epoch)
                   for epoch in range(epochs)]
        spikes = np.concatenate([s for s, _ in streams])
        targets = np.concatenate([t for _, t in streams])
        lava = (run_chl_network if chl else run_dfa_network)(plan, spikes, targets)
        lava_weights = lava.weights
        seconds["lava"] = lava.seconds
        if weights is None:
            weights = lava_weights
            emulator = ChlEmulator(plan) if chl else DfaEmulator(plan)
            emulator.run(spikes, targets)  # the same inputs: the engine counts are the same
            counts = emulator.counts.as_dict()
        else:
            ours = plan.integer_weights(weights)
            theirs = plan.integer_weights(lava_weights)
            equal = sum(int(np.count_nonzero(a == b)) for a, b in zip(ours, theirs))
            size = sum(a.size for a in ours)
            agreement = {"equal_weights": f"{equal}/{size}",
                         "max_abs_difference": float(max(np.max(np.abs(np.asarray(a, float) - np.asarray(b, float)))
                                                         for a, b in zip(ours, theirs)))}
    after = _accuracy(plan, weights, x_test, y_test)
    learned = plan.learned_network(weights)
    learned = learned.replace(provenance={**learned.provenance, "rule": f"{rule}-onchip", "onchip_rule": rule,
                                          "onchip_mode": "fixed_pt" if fixed else "floating_pt",
                                          "onchip_backend": backend, "onchip_epochs": int(epochs),
                                          "onchip_samples": int(count)})
    return LearnReport(rule, backend, "fixed_pt" if fixed else "floating_pt", int(epochs), int(count), before,
                       after, int(len(x_test)), learned, counts, seconds, agreement, onchip_energy(counts),
                       train_accuracy)


def onchip_sections(sections: dict[str, Any], source: str, rule: Optional[str] = None) -> tuple[Any, dict[str, Any]]:
    """Check a config's on-chip sections -- ``onchip:`` (OnChipOptions fields: DFA),
    ``onchip_chl:`` (ChlOptions fields) and ``learn:`` (``rule``, ``epochs``, ``limit``,
    ``backend``, ``fixed_point``, ``seed``) -- and return ``(options of the rule, learn
    settings)``; ``rule`` overrides ``learn.rule`` (default dfa). Unknown keys or wrong types
    are one NeurocreditError naming the file and the key."""
    from neurocredit.options import build_dataclass

    learn_raw = sections.get("learn") or {}
    if not isinstance(learn_raw, dict):
        raise NeurocreditError(f"{source}: learn must be a mapping")
    allowed = {"rule", "epochs", "limit", "backend", "fixed_point", "seed"}
    unknown = set(learn_raw) - allowed
    if unknown:
        raise NeurocreditError(f"{source}: learn: unknown key(s) {', '.join(sorted(unknown))} "
                               f"(allowed: {', '.join(sorted(allowed))})")
    dfa = build_dataclass(OnChipOptions, sections.get("onchip") or {}, f"{source}: onchip")
    chl = build_dataclass(ChlOptions, sections.get("onchip_chl") or {}, f"{source}: onchip_chl")
    chosen = rule or learn_raw.get("rule", "dfa")
    if chosen not in RULES:
        raise NeurocreditError(f"{source}: learn.rule {chosen!r} is not one of {', '.join(RULES)}")
    if learn_raw.get("backend", "emulator") not in BACKENDS:
        raise NeurocreditError(f"{source}: learn.backend must be one of {', '.join(BACKENDS)}")
    return (chl if chosen == "chl" else dfa), dict(learn_raw)


def load_onchip_config(path: str | Path, rule: Optional[str] = None) -> tuple[Any, Any, dict[str, Any]]:
    """A YAML config with the usual sections plus the on-chip ones (:func:`onchip_sections`).
    Returns ``(Config, options of the rule, learn settings)``."""
    from neurocredit.config import ONCHIP_SECTIONS, load_config
    from neurocredit.options import read_yaml

    config = load_config(path)  # validates the on-chip sections too
    raw = read_yaml(config.path)
    options, settings = onchip_sections({key: raw.get(key) for key in ONCHIP_SECTIONS}, str(config.path), rule)
    return config, options, settings
