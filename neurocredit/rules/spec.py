"""What a learning rule declares about itself, without importing torch.

A rule is a *spec module* (``neurocredit/rules/<name>.py``: options dataclasses, labels,
plausibility criteria, training cost, the shapes of the arrays it saves with a network) plus one
implementation module per neuron kind (``<name>_rate.py``, ``<name>_lif.py``). The registry
(:mod:`neurocredit.rules`) lists the spec modules; configs, the energy model, the report and the
rule comparison read the specs, and only training imports an implementation.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from neurocredit.errors import NeurocreditError

MEMORY_KINDS = ("constant", "linear", "none")
# Functions of the membrane voltage that stand in for f' in spiking rules (neurocredit.rules.spiking).
VOLTAGE_SURROGATES = ("boxcar", "triangle", "fast_sigmoid")


@dataclass(frozen=True)
class Criteria:
    """Plausibility criteria (Lv et al. 2024; the seeds' review).

    weight_transport: the update of a layer reads another layer's forward weights.
    forward_locking / backward_locking: a layer waits for the forward pass of the layers below /
    for an error signal computed after the whole forward pass.
    memory_in_steps: how the training memory grows with the number of time steps T:
    ``constant``, ``linear`` (BPTT) or ``none`` (rate networks: no time steps).
    surrogate_free: no surrogate derivative of the spike function (always true for rate rules).
    on_chip: the update is expressible by a Loihi-style learning engine (local traces and a
    third factor per neuron; :mod:`neurocredit.learn` where implemented).
    """

    weight_transport: bool
    forward_locking: bool
    backward_locking: bool
    memory_in_steps: str
    surrogate_free: bool
    on_chip: bool

    def __post_init__(self) -> None:
        if self.memory_in_steps not in MEMORY_KINDS:
            raise ValueError(f"memory_in_steps must be one of {MEMORY_KINDS}, got {self.memory_in_steps!r}")


@dataclass(frozen=True)
class TrainingCost:
    """Operations one rule spends per training sample presentation (:mod:`neurocredit.energy`)."""

    rule: str
    label: str
    forward_passes: int
    plasticity_ops: int
    error_ops: int
    formula: str


Sums = Mapping[str, int]  # S, S_up, H, M, n_0, C, T: see neurocredit.energy.network_sums


@dataclass(frozen=True)
class Variant:
    """One rule on one neuron kind.

    label: the name reports print; options: the frozen options dataclass; implementation:
    ``"module:Class"`` of the torch rule class; criteria: :class:`Criteria`; cost: ``sums ->
    (forward passes P, plasticity ops A, error ops E)`` per sample presentation, with ``formula``
    the same in words. trains_conv: the implementation trains Conv2d and pooled layers (the
    others refuse such a network with one line, :meth:`neurocredit.network.Network.require_dense`).
    """

    label: str
    options: type
    implementation: str
    criteria: Criteria
    cost: Callable[[Sums], tuple[int, int, int]]
    formula: str
    trains_conv: bool = False

    def load(self) -> type:
        """The rule class (imports torch)."""
        module_name, _, class_name = self.implementation.partition(":")
        return getattr(importlib.import_module(module_name), class_name)


def no_extras(network: Any) -> dict[str, tuple[int, ...]]:
    return {}


@dataclass(frozen=True)
class RuleSpec:
    """A rule: its ``name`` (the config's ``rule.name``), a one-line ``summary``, one
    :class:`Variant` per neuron kind, and ``extras(network)``: the shape of every array the rule
    saves with ``network`` (``extras['<name>/...']``), checked when a network is loaded."""

    name: str
    summary: str
    variants: Mapping[str, Variant]
    extras: Callable[[Any], dict[str, tuple[int, ...]]] = field(default=no_extras)

    def variant(self, neuron_kind: str) -> Variant:
        if neuron_kind not in self.variants:
            supported = ", ".join(self.variants) or "none"
            raise NeurocreditError(f"rule {self.name!r} does not train {neuron_kind} networks (supported: {supported})")
        return self.variants[neuron_kind]

    def training_cost(self, neuron_kind: str, sums: Sums) -> Optional[TrainingCost]:
        """The cost of the variant for ``neuron_kind`` on a network with ``sums``; None if the rule
        has no such variant."""
        if neuron_kind not in self.variants:
            return None
        variant = self.variants[neuron_kind]
        passes, plasticity, error = variant.cost(sums)
        return TrainingCost(self.name, variant.label, int(passes), int(plasticity), int(error), variant.formula)
