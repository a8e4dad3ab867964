"""Counting on hand-made spike rasters equals an independent recount; energies equal the hand
calculation from the YAML numbers; the training formulas give the documented counts."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from neurocredit.energy import (
    ann_energy,
    count_operations,
    dense_counts,
    snn_energy,
    training_cost,
    training_energy,
)
from neurocredit.errors import NeurocreditError
from neurocredit.network import EncoderSpec, LIFParameters, Network, NeuronSpec, init_layers
from neurocredit.record import RunRecord
from neurocredit.targets import load_target, targets_dir

SIZES = (5, 4, 3)
STEPS = 6
BATCH = 3


def _network(kind="lif", encoder="bernoulli", sizes=SIZES, steps=STEPS):
    layers = init_layers(sizes, np.random.default_rng(0))
    if kind == "rate":
        return Network(layers, NeuronSpec("rate"), provenance={"rule": "dfa"})
    return Network(layers, NeuronSpec("lif", lif=LIFParameters(0.2, 0.1, 1.0)), EncoderSpec(encoder, steps, 0.5, 0),
                   provenance={"rule": "dfa"})


def _hand_record(seed=1, density=0.4):
    """A RunRecord made from random hand-made rasters (not from a simulation)."""
    rng = np.random.default_rng(seed)
    input_raster = rng.random((STEPS, BATCH, SIZES[0])) < density
    rasters = [rng.random((STEPS, BATCH, n)) < density for n in SIZES[1:]]
    counts = [raster.sum(axis=0).astype(np.int64) for raster in rasters]
    return RunRecord(
        backend="hand", steps=STEPS, outputs=counts[-1].astype(np.float64), predictions=np.zeros(BATCH, np.int64),
        spike_counts=counts, input_spike_counts=input_raster.sum(axis=0).astype(np.int64), spikes=rasters,
        input_spikes=input_raster,
    )


def _recount(record, sizes):
    """Independent recount: walk every spike event and add the fan-out it drives."""
    populations = [record.input_spikes] + list(record.spikes)
    spikes = [0] * len(sizes)
    synops = [0] * (len(sizes) - 1)  # synops[i] = operations in the layer fed by population i
    for index, raster in enumerate(populations):
        steps, batch, neurons = raster.shape
        for t in range(steps):
            for b in range(batch):
                for j in range(neurons):
                    if raster[t, b, j]:
                        spikes[index] += 1
                        if index < len(sizes) - 1:
                            synops[index] += sizes[index + 1]
    return spikes, synops


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_counts_equal_an_independent_recount_of_the_rasters(seed):
    network = _network()
    record = _hand_record(seed)
    counts = count_operations(network, record)
    spikes, synops = _recount(record, SIZES)
    assert counts.input_spikes == spikes[0]
    assert [layer.spikes for layer in counts.layers] == spikes[1:]
    assert [layer.synops for layer in counts.layers] == synops
    assert [layer.neuron_updates for layer in counts.layers] == [n * STEPS * BATCH for n in SIZES[1:]]
    assert counts.synops == sum(synops)
    assert counts.per_sample(counts.synops) == pytest.approx(sum(synops) / BATCH)
    assert [layer.fan_out for layer in counts.layers] == [SIZES[2], 0]


def test_a_raster_that_disagrees_with_its_counts_is_rejected():
    record = _hand_record()
    record.spike_counts[0] = record.spike_counts[0] + 1
    with pytest.raises(NeurocreditError, match="layer 1 raster disagrees"):
        count_operations(_network(), record)


def test_rate_network_has_no_spike_counts():
    with pytest.raises(NeurocreditError, match="rate network"):
        count_operations(_network("rate"), _hand_record())


def test_current_encoder_counts_layer_one_densely():
    counts = count_operations(_network(encoder="current"), _hand_record())
    assert counts.layers[0].synops == SIZES[0] * SIZES[1] * STEPS * BATCH
    assert counts.layers[1].synops == counts.layers[0].spikes * SIZES[2]


def _yaml_energy(name):
    raw = yaml.safe_load((targets_dir() / f"{name}.yaml").read_text())
    return {key: float(entry["value"]) for key, entry in raw["energy"].items()}


@pytest.mark.parametrize("name", ["loihi", "loihi2", "spinnaker2"])
def test_spiking_energy_equals_the_hand_calculation(name):
    record = _hand_record()
    counts = count_operations(_network(), record)
    spikes, synops = _recount(record, SIZES)
    figures = _yaml_energy(name)
    neuron_updates = sum(SIZES[1:]) * STEPS
    expected = sum(synops) / BATCH * figures["synop_j"] + neuron_updates * figures["neuron_update_j"]
    estimate = snn_energy(counts, load_target(name))
    assert estimate.energy_j == pytest.approx(expected, rel=1e-12)
    assert estimate.part("synop_j") == pytest.approx(sum(synops) / BATCH * figures["synop_j"], rel=1e-12)
    assert {term.file for term in estimate.terms} == {f"hardware_targets/{name}.yaml"}
    assert all(term.source for term in estimate.terms)


def test_static_power_is_added_only_with_a_step_duration(tmp_path):
    text = """
name: chip
description: test chip
spiking: true
energy:
  synop_j: {value: 2.0e-12, source: "test"}
  neuron_update_j: {value: 3.0e-12, source: "test"}
  static_power_w: {value: 0.5, source: "test"}
"""
    (tmp_path / "chip.yaml").write_text(text)
    counts = count_operations(_network(), _hand_record())
    dynamic = counts.synops / BATCH * 2e-12 + counts.neuron_updates / BATCH * 3e-12
    without = snn_energy(counts, load_target(tmp_path / "chip.yaml"))
    assert without.energy_j == pytest.approx(dynamic) and "static" in without.notes[0]
    (tmp_path / "chip.yaml").write_text(text + '  time_per_step_s: {value: 1.0e-6, source: "test"}\n')
    with_static = snn_energy(counts, load_target(tmp_path / "chip.yaml"))
    assert with_static.energy_j == pytest.approx(dynamic + 0.5 * STEPS * 1e-6)
    assert with_static.part("static_power_w") == pytest.approx(0.5 * STEPS * 1e-6)


def test_dense_counts_and_energy_equal_the_hand_calculation():
    dense = dense_counts(_network())
    assert dense.macs == 5 * 4 + 4 * 3
    assert dense.activations == 4 + 3
    assert dense.memory_accesses == 32 + (5 + 4) + (4 + 3)
    cmos = _yaml_energy("cmos45")
    assert ann_energy(dense, load_target("cmos45")).energy_j == pytest.approx(
        32 * cmos["mac_j"] + 48 * cmos["memory_access_j"], rel=1e-12)
    cpu = _yaml_energy("cpu")
    assert ann_energy(dense, load_target("cpu")).energy_j == pytest.approx(
        32 * cpu["mac_j"] + 7 * cpu["neuron_update_j"], rel=1e-12)


@pytest.mark.parametrize(
    "rule, kind, expected",
    [
        # S = 32, S_up = 12, H = 4, M = 7, n_0 = 5, C = 3, T = 6 (lif) or 1 (rate)
        ("dfa", "lif", (1, 32, 3 * 4)),
        ("dfa", "rate", (1, 32, 3 * 4)),
        ("sigprop", "lif", (2, 6 * 32, 5 + 6 * 7)),
        ("sigprop", "rate", (2, 32, 5 + 7)),
        ("chl", "lif", (2, 2 * 6 * 32, 2 * 6 * 12)),
        ("bp", "lif", (1, 6 * 32, 6 * (12 + 7))),
        ("bp", "rate", (1, 32, 12 + 7)),
    ],
)
def test_training_cost_formulas(rule, kind, expected):
    cost = training_cost(_network(kind), rule)
    assert (cost.forward_passes, cost.plasticity_ops, cost.error_ops) == expected
    assert cost.label


def test_bp_on_a_spiking_network_is_bptt():
    assert "BPTT" in training_cost(_network("lif"), "bp").label
    assert training_cost(_network("rate"), "bp").label == "backprop"


def test_unknown_rule_has_no_cost_model():
    from neurocredit.rules import RULE_SPECS

    with pytest.raises(NeurocreditError, match=f"unknown rule .hebb.; choose one of {', '.join(RULE_SPECS)}$"):
        training_cost(_network(), "hebb")


def test_training_energy_equals_the_hand_calculation():
    network = _network()
    record = _hand_record()
    counts = count_operations(network, record)
    dense = dense_counts(network)
    cost = training_cost(network, "dfa")
    loihi = _yaml_energy("loihi")
    inference = snn_energy(counts, load_target("loihi"))
    spiking = training_energy(cost, load_target("loihi"), inference, dense, STEPS)
    expected = inference.energy_j + 32 * loihi["synaptic_update_j"] + 12 * loihi["synop_j"]
    assert spiking.energy_j == pytest.approx(expected, rel=1e-12)
    cmos = _yaml_energy("cmos45")
    on_cmos = training_energy(cost, load_target("cmos45"), None, dense, STEPS)
    expected = STEPS * (32 * cmos["mac_j"] + 48 * cmos["memory_access_j"]) + (32 + 12) * cmos["mac_j"] \
        + 2 * 32 * cmos["memory_access_j"]
    assert on_cmos.energy_j == pytest.approx(expected, rel=1e-12)
    # SpiNNaker 2 publishes no synaptic-update energy: no training estimate there
    spinnaker2 = load_target("spinnaker2")
    assert training_energy(cost, spinnaker2, snn_energy(counts, spinnaker2), dense, STEPS) is None


@pytest.mark.parametrize("steps", [1, 20, 255, 256, 300])
def test_spike_counts_of_a_raster_equal_a_plain_sum_past_the_byte_range(steps):
    """The byte-wise count (8-bit accumulator below 256 steps, 16-bit below 2**16) against numpy's
    int64 sum; from 256 steps a neuron that always fires exceeds what one byte holds."""
    from neurocredit.record import spike_counts

    raster = np.random.default_rng(steps).random((steps, 3, 7)) < 0.4
    raster[:, 0, 0] = True
    counts = spike_counts(raster)
    assert counts.dtype == np.int64 and counts[0, 0] == steps
    assert np.array_equal(counts, raster.sum(axis=0, dtype=np.int64))
