"""Operation counts and energy estimates: spikes -> operations -> joules, per hardware target.

Everything here is arithmetic on counts; every per-operation energy comes from a
``hardware_targets/*.yaml`` entry (:mod:`neurocredit.targets`) and every figure keeps a
reference to the file, key and source it used. All energies are **estimates**.

Counting conventions (one *sample* = one inference = one input presented for ``T`` steps)
---------------------------------------------------------------------------------------
Layers are numbered ``i = 1..N`` with widths ``n_0`` (inputs) .. ``n_N`` (outputs); layer ``i``
owns the dense weight ``W_i`` (``n_i x n_{i-1}``) that connects population ``i-1`` to it.

* **spikes** of layer ``i``: the events in ``RunRecord.spike_counts[i-1]``; *input spikes* are
  the encoder's events (``RunRecord.input_spike_counts``). Per sample = total / samples.
* **synaptic operations** of layer ``i`` = spikes emitted by population ``i-1`` x ``n_i``: a dense
  connection delivers every presynaptic spike to all ``n_i`` postsynaptic neurons (fan-out
  ``n_i``). So the *input* spikes times the fan-out of layer 1 count (as layer 1's synops), and
  the output layer's spikes cost none (fan-out 0). Every emitted spike counts, including those
  of the last step: Lava's ``Dense`` accumulates in the step it receives a spike; only the
  delivery of the sum is delayed. A ``current`` encoder sends a graded value every step, so
  layer 1 then costs ``n_0 x n_1 x T`` (dense) synops.
* **conv layers**: a spike of source neuron ``j`` costs as many synops as outputs its kernel
  reaches (``C_out x`` the positions whose receptive field holds ``j``; fewer at the borders),
  counted exactly from the per-neuron spike counts and the im2col indices
  (:func:`neurocredit.conv.fan_out`). The dense-ANN baseline of a conv layer costs its conv MACs
  (``C_out OH OW C_in KH KW``) and reads its shared kernel once (``n_weights``).
* **neuron updates** of layer ``i`` = ``n_i x T``: a time-stepped neuromorphic core updates every
  compartment every step, firing or not. The encoder is not a neuron population.
* **dense ANN baseline** (the same weights run as a conventional network, one pass):
  ``MACs = sum_i n_i n_{i-1}``; ``activations = sum_i n_i``; memory accesses
  ``= sum_i (n_i n_{i-1} + n_{i-1} + n_i)`` (each weight read once, each layer input read once,
  each output written once: the minimum traffic at batch 1). Bias adds are not counted.

Energy per sample on a target (keys of the target's YAML ``energy`` section)::

    spiking target:  synops * synop_j + neuron_updates * neuron_update_j
                     + static_power_w * T * time_per_step_s      (only where both are given)
    dense target:    MACs * mac_j + activations * neuron_update_j + memory_accesses * memory_access_j

A key the target does not give contributes nothing and is listed as missing.

Training cost per sample presentation (:func:`training_cost`)
-------------------------------------------------------------
With ``S = sum_{i=1..N} n_i n_{i-1}`` (all weights), ``S_up = sum_{i=2..N} n_i n_{i-1}`` (the
weights a backward pass crosses), ``H = sum_{i<N} n_i`` (hidden neurons), ``M = sum_i n_i`` (all
neurons), ``C`` classes and ``T`` steps (``T = 1`` for rate networks), each rule declares in its
spec (:mod:`neurocredit.rules`) how many inference-equivalent forward passes ``P``, plasticity
operations ``A`` (the multiply-accumulates that form the weight changes: one synaptic update on a
neuromorphic chip) and error-signal operations ``E`` (feedback projections and backward passes:
synops on a neuromorphic chip, MACs on a dense one) one training presentation costs, with the
formula and the reason beside it (e.g. DFA: ``P=1, A=S, E=C*H``; BP/BPTT: ``P=1, A=T*S,
E=T*(S_up+M)``). :func:`training_cost` reads it; the report lists every registered rule.

Training energy per sample::

    spiking target:  P * (inference synop + neuron energy, from this run's counts)
                     + A * synaptic_update_j + E * synop_j      (None without synaptic_update_j)
    dense target:    P * T * (dense ANN inference energy)        (T steps simulated densely)
                     + (A + E) * mac_j + 2 S * memory_access_j  (each weight read and written)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np

from neurocredit.errors import NeurocreditError
from neurocredit.network import Network
from neurocredit.record import RunRecord
from neurocredit.rules.spec import TrainingCost
from neurocredit.targets import Target, targets_dir

ESTIMATE_NOTE = (
    "estimate: operation counts x per-operation energies from hardware_targets/*.yaml "
    "(each figure names its file, key and source); overheads not in the sources are not modelled"
)


# --------------------------------------------------------------------------- counts


@dataclass(frozen=True)
class LayerCounts:
    """Counts of one layer over a whole run (totals over samples; see module doc).

    ``source_spikes`` are the spikes of the population feeding this layer (the input for layer 1)
    and ``synops = source_spikes * neurons`` (or ``n_in * neurons * steps * samples`` for a
    ``current`` encoder on layer 1).
    """

    name: str
    neurons: int
    fan_in: int
    fan_out: int
    spikes: int
    source_spikes: int
    synops: int
    neuron_updates: int


@dataclass(frozen=True)
class SpikeCounts:
    """Operation counts of a spiking run: totals, with per-sample helpers."""

    samples: int
    steps: int
    input_neurons: int
    input_spikes: int
    layers: tuple[LayerCounts, ...]
    dense_input: bool = False

    def per_sample(self, total: int) -> float:
        return total / self.samples

    @property
    def synops(self) -> int:
        return sum(layer.synops for layer in self.layers)

    @property
    def neuron_updates(self) -> int:
        return sum(layer.neuron_updates for layer in self.layers)

    @property
    def spikes(self) -> int:
        return sum(layer.spikes for layer in self.layers)


def count_operations(network: Network, record: RunRecord) -> SpikeCounts:
    """Spikes, synaptic operations and neuron updates of a spiking ``record`` of ``network``.

    Reads only ``spike_counts``, ``input_spike_counts`` and ``steps``; when the record also has
    rasters they must agree with the counts (a backend bug otherwise).
    """
    if not network.neuron.spiking:
        raise NeurocreditError("spike counts apply to spiking (lif) networks only; this is a rate network")
    if record.samples == 0:
        raise NeurocreditError("the run record holds no samples")
    if len(record.spike_counts) != len(network.layers):
        raise NeurocreditError(
            f"the run record has spike counts for {len(record.spike_counts)} layers; the network has "
            f"{len(network.layers)}"
        )
    if record.input_spike_counts is None:
        raise NeurocreditError(f"the {record.backend} run record has no input spike counts")
    for index, (counts, layer) in enumerate(zip(record.spike_counts, network.layers)):
        if counts.shape != (record.samples, layer.n_out):
            raise NeurocreditError(
                f"layer {index + 1} spike counts have shape {counts.shape}; expected ({record.samples}, {layer.n_out})"
            )
    if record.spikes is not None:
        for index, (raster, counts) in enumerate(zip(record.spikes, record.spike_counts)):
            if not np.array_equal(np.asarray(raster).sum(axis=0, dtype=np.int64), counts):
                raise NeurocreditError(
                    f"the {record.backend} record's layer {index + 1} raster disagrees with its spike counts"
                )
    from neurocredit.conv import fan_out as fan_out_of

    steps = int(record.steps)
    dense_input = network.encoder.kind == "current"
    source_counts = np.asarray(record.input_spike_counts, dtype=np.int64).sum(axis=0)  # per source neuron
    input_spikes = int(source_counts.sum())
    reaches = [fan_out_of(layer) for layer in network.layers]  # (n_in,) outputs one spike reaches
    layers = []
    for index, (layer, counts) in enumerate(zip(network.layers, record.spike_counts)):
        spikes = int(np.asarray(counts, dtype=np.int64).sum())
        if index == 0 and dense_input:
            synops = int(reaches[0].sum()) * steps * record.samples
        else:
            synops = int(source_counts @ reaches[index])  # dense: source_spikes * n_out
        fan_out = int(reaches[index + 1].max(initial=0)) if index + 1 < len(network.layers) else 0
        layers.append(
            LayerCounts(
                name=layer.name or f"layer{index + 1}",
                neurons=layer.n_out,
                fan_in=layer.n_in,
                fan_out=fan_out,
                spikes=spikes,
                source_spikes=int(source_counts.sum()),
                synops=synops,
                neuron_updates=layer.n_out * steps * record.samples,
            )
        )
        source_counts = np.asarray(counts, dtype=np.int64).sum(axis=0)
    return SpikeCounts(
        samples=record.samples,
        steps=steps,
        input_neurons=network.n_inputs,
        input_spikes=input_spikes,
        layers=tuple(layers),
        dense_input=dense_input,
    )


@dataclass(frozen=True)
class DenseCounts:
    """Per-inference counts of the network run as a dense ANN (see module doc)."""

    macs: int
    activations: int
    memory_accesses: int


def dense_counts(network: Network) -> DenseCounts:
    macs = sum(layer.macs for layer in network.layers)
    activations = sum(layer.n_out for layer in network.layers)
    memory = sum(layer.n_weights + layer.n_in + layer.n_out for layer in network.layers)
    return DenseCounts(macs=macs, activations=activations, memory_accesses=memory)


# --------------------------------------------------------------------------- energy


@dataclass(frozen=True)
class EnergyTerm:
    """One line of an estimate: ``count`` operations x ``joules_per_op`` from ``target``'s ``key``."""

    key: str
    count: float
    joules_per_op: float
    file: str
    source: str
    note: str = ""

    @property
    def energy_j(self) -> float:
        return self.count * self.joules_per_op


@dataclass(frozen=True)
class EnergyEstimate:
    """Energy per sample on one target: the sum of its terms (each traceable to the YAML)."""

    target: str
    kind: str  # "snn" (event-driven, measured spikes) or "ann" (dense baseline)
    terms: tuple[EnergyTerm, ...]
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def energy_j(self) -> float:
        return float(sum(term.energy_j for term in self.terms))

    def part(self, key: str) -> float:
        """Energy of the term priced by ``key`` (0.0 where absent)."""
        return float(sum(term.energy_j for term in self.terms if term.key == key))


def target_file(target: Target) -> str:
    """How a report names the YAML a figure came from: ``hardware_targets/<name>.yaml`` for the
    shipped folder, else the full path."""
    if target.path is None:
        return f"<{target.name}>"
    path = Path(target.path).resolve()
    folder = targets_dir().resolve()
    if path.parent == folder:
        return f"{folder.name}/{path.name}"
    return str(path)


def _term(target: Target, key: str, count: float) -> Optional[EnergyTerm]:
    entry = target.energy.get(key)
    if entry is None:
        return None
    return EnergyTerm(key, float(count), float(entry.value), target_file(target), entry.source, entry.note)


def _estimate(target: Target, kind: str, counts: list[tuple[str, float]], notes=()) -> EnergyEstimate:
    terms = tuple(_term(target, key, count) for key, count in counts if key in target.energy)
    missing = tuple(key for key, _ in counts if key not in target.energy)
    return EnergyEstimate(target.name, kind, terms, missing, tuple(notes))


def snn_energy(counts: SpikeCounts, target: Target) -> EnergyEstimate:
    """Energy per sample of the measured spiking activity on a spiking target."""
    if not target.spiking:
        raise NeurocreditError(f"target {target.name!r} is not a spiking target; use ann_energy")
    per = counts.per_sample
    items = [("synop_j", per(counts.synops)), ("neuron_update_j", per(counts.neuron_updates))]
    notes = []
    if "static_power_w" in target.energy:
        if "time_per_step_s" in target.energy:
            seconds = counts.steps * target.energy_value("time_per_step_s")
            items.append(("static_power_w", seconds))
        else:
            notes.append("static power given but no time_per_step_s: static energy not added")
    if counts.dense_input:
        notes.append("current encoder: layer-1 synops counted densely (n_in x n_1 x T)")
    estimate = _estimate(target, "snn", items, notes)
    terms = []
    for term in estimate.terms:
        if term.key == "static_power_w":  # the count is seconds: say where the step duration comes from
            step = target.energy["time_per_step_s"]
            how = f"x {counts.steps} steps x {step.value:g} s/step (energy.time_per_step_s: {step.source})"
            term = replace(term, note=f"{term.note}; {how}" if term.note else how)
        terms.append(term)
    # static_power_w is priced only where the target gives it, so it is never among the missing keys
    return replace(estimate, terms=tuple(terms))


def ann_energy(dense: DenseCounts, target: Target) -> EnergyEstimate:
    """Energy per inference of the network run as a dense ANN on a (non-spiking) target."""
    items = [("mac_j", dense.macs), ("neuron_update_j", dense.activations), ("memory_access_j", dense.memory_accesses)]
    estimate = _estimate(target, "ann", items)
    if "mac_j" in estimate.missing:
        raise NeurocreditError(f"{target_file(target)}: a dense (spiking: false) target needs energy.mac_j")
    return estimate


# --------------------------------------------------------------------------- training


def network_sums(network: Network) -> dict[str, int]:
    """The sizes the training formulas use: S, S_up, H, M, n_0, C, T."""
    weights = [layer.n_synapses for layer in network.layers]  # a conv: its synapses, not its shared kernel
    widths = [layer.n_out for layer in network.layers]
    return {
        "S": sum(weights),
        "S_up": sum(weights[1:]),
        "H": sum(widths[:-1]),
        "M": sum(widths),
        "n_0": network.n_inputs,
        "C": network.n_classes,
        "T": int(network.encoder.steps) if network.neuron.spiking else 1,
    }


def training_cost(network: Network, rule: str, steps: Optional[int] = None) -> TrainingCost:
    """Per-presentation operation counts of ``rule`` on ``network`` (its spec's declared cost for
    the network's neuron kind). ``steps`` overrides the encoder's steps for spiking networks."""
    from neurocredit.rules import rule_spec

    sums = network_sums(network)
    if steps is not None and network.neuron.spiking:
        sums["T"] = int(steps)
    cost = rule_spec(rule).training_cost(network.neuron.kind, sums)
    if cost is None:
        raise NeurocreditError(f"rule {rule!r} does not train {network.neuron.kind} networks: no training cost")
    return cost


def training_costs(network: Network, steps: Optional[int] = None) -> list[TrainingCost]:
    """:func:`training_cost` of every registered rule that trains ``network``'s neuron kind."""
    from neurocredit.rules import rule_specs

    return [training_cost(network, spec.name, steps) for spec in rule_specs() if network.neuron.kind in spec.variants]


def _repeated(terms: tuple[EnergyTerm, ...], passes: int) -> list[EnergyTerm]:
    """The terms of one inference priced ``passes`` times (their keys say so)."""
    return [replace(term, key=f"{term.key} (forward x{passes})", count=term.count * passes) for term in terms]


def training_energy(
    cost: TrainingCost,
    target: Target,
    inference: Optional[EnergyEstimate],
    dense: DenseCounts,
    steps: int,
) -> Optional[EnergyEstimate]:
    """Energy of one training presentation on ``target`` (module doc); None where the target
    cannot price it (a spiking target without ``synaptic_update_j``, or no spiking inference)."""
    if target.spiking:
        if inference is None or "synaptic_update_j" not in target.energy or "synop_j" not in target.energy:
            return None
        terms = _repeated(inference.terms, cost.forward_passes)
        terms.append(_term(target, "synaptic_update_j", cost.plasticity_ops))
        terms.append(replace(_term(target, "synop_j", cost.error_ops), key="synop_j (error signals)"))
        return EnergyEstimate(target.name, "snn", tuple(terms))
    terms = _repeated(ann_energy(dense, target).terms, cost.forward_passes * max(1, steps))
    update = _term(target, "mac_j", cost.plasticity_ops + cost.error_ops)
    terms.append(replace(update, key="mac_j (updates + error signals)"))
    if "memory_access_j" in target.energy:
        memory = _term(target, "memory_access_j", 2 * dense.macs)
        terms.append(replace(memory, key="memory_access_j (weight read + write)"))
    return EnergyEstimate(target.name, "ann", tuple(terms))
