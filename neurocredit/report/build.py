"""The report dict of one model on one data set (:func:`build_report`), and the one call that
simulates and builds it (:func:`report_model`).

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
    input:   {neurons, spikes_per_sample, firing_rate, fan_out, shape}     (null for rate nets)
    layers:  [{name, neurons, shape, fan_in, fan_out, spikes_per_sample, firing_rate, synops_per_sample,
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

from typing import Any, Optional, Sequence

import numpy as np

from neurocredit.conv import fan_out
from neurocredit.energy import (
    ESTIMATE_NOTE,
    EnergyEstimate,
    ann_energy,
    count_operations,
    dense_counts,
    network_sums,
    snn_energy,
    training_costs,
    training_energy,
)
from neurocredit.errors import NeurocreditError
from neurocredit.network import Network
from neurocredit.record import RunRecord
from neurocredit.targets import Target

CONVENTIONS = (
    "synops of a layer = spikes of the population feeding it x the layer's width (dense fan-out); "
    "input spikes x fan-out of layer 1 count, output spikes feed nothing; a conv layer: each spike x the outputs "
    "its kernel reaches (borders included), counted per source neuron",
    "neuron updates = neurons x steps (every neuron is updated every step)",
    "dense ANN baseline: MACs = sum n_in*n_out (a conv: C_out*OH*OW*C_in*KH*KW), activations = sum n_out, "
    "memory accesses = weights (a conv: its shared kernel) + layer inputs + layer outputs, one pass per inference",
    "for dense targets synop_energy_j is the energy of the MACs and neuron_energy_j that of the activations",
)

def _energy_entry(estimate: EnergyEstimate) -> dict[str, Any]:
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
                "shape": list(layer.output_shape),
                "fan_in": layer.n_in,
                "fan_out": network.layers[index + 1].n_out if index + 1 < len(network.layers) else 0,
                "spikes_per_sample": None,
                "firing_rate": None,
                "synops_per_sample": None,
                "neuron_updates_per_sample": None,
                "macs_per_sample": layer.macs,
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
            "fan_out": int(fan_out(network.layers[0]).max(initial=0)),
            "shape": list(network.input_shape),
        }
        for layer, spec in zip(counts.layers, network.layers):
            layers.append({
                "name": layer.name,
                "neurons": layer.neurons,
                "shape": list(spec.output_shape),
                "fan_in": layer.fan_in,
                "fan_out": layer.fan_out,
                "spikes_per_sample": per(layer.spikes),
                "firing_rate": layer.spikes / (counts.samples * layer.neurons * steps),
                "synops_per_sample": per(layer.synops),
                "neuron_updates_per_sample": per(layer.neuron_updates),
                "macs_per_sample": spec.macs,
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
    if skipped:
        notes.append(f"spiking targets not applicable to a rate network: {', '.join(skipped)}")
    report["targets"] = {name: _energy_entry(estimate) for name, estimate in inference.items()}
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
    for cost in training_costs(network, steps=train_steps):
        energies = {}
        for target in targets:
            if target.name not in inference:
                continue
            estimate = training_energy(cost, target, inference[target.name] if target.spiking else None,
                                       dense, train_steps)
            energies[target.name] = None if estimate is None else estimate.energy_j
        rules[cost.rule] = {
            "label": cost.label,
            "formula": cost.formula,
            "forward_passes": cost.forward_passes,
            "plasticity_ops": cost.plasticity_ops,
            "error_ops": cost.error_ops,
            "energy_per_sample_j": energies,
        }
    report["training"] = {"rule": network.provenance.get("rule"), "steps": train_steps,
                          "sums": network_sums(network), "rules": rules}  # its T is train_steps too
    report["notes"] = notes
    return report


def raster_populations(record: RunRecord) -> Optional[list[np.ndarray]]:
    """Input + layer rasters of a record made with ``record={'spikes'}`` (None without them)."""
    if record.spikes is None or record.input_spikes is None:
        return None
    return [np.asarray(record.input_spikes, dtype=bool)] + [np.asarray(raster, dtype=bool) for raster in record.spikes]



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
