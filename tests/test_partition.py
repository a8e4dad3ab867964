"""Hardware limits and core placement: what fits, how many cores, and one clear error naming the
layer, the limit and the value for each kind of violation."""

from __future__ import annotations

import math

import pytest

from conftest import small_lif_network
from neurocredit.deploy.partition import check_and_partition
from neurocredit.errors import NeurocreditError
from neurocredit.network import Network
from neurocredit.targets import available_targets, load_target


def tiny_target(tmp_path, name="tiny", **limits):
    lines = [f"name: {name}", "spiking: true", "limits:"]
    for key, value in limits.items():
        lines.append(f"  {key}: {{value: {value}, source: \"test limit\"}}")
    lines.append("energy: {}")
    path = tmp_path / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return load_target(path)


def test_layers_are_split_over_cores(tmp_path):
    network = small_lif_network(0, sizes=(20, 30, 10))
    partition = check_and_partition(network, tiny_target(tmp_path, neurons_per_core=16, cores_per_chip=8))
    assert [(p.layer, p.cores, p.first_core, p.neurons_per_core) for p in partition.layers] == [
        ("fc1", 2, 0, 16), ("fc2", 1, 2, 10)]
    assert partition.cores == 3 and partition.chips == 1
    assert partition.layers[0].synapses_per_core == 16 * 20
    assert partition.to_dict()["cores"] == 3


def test_synapse_memory_and_fan_out_shrink_neurons_per_core(tmp_path):
    network = small_lif_network(0, sizes=(20, 30, 10))
    # 100 synapses per core / 20 inputs = 5 neurons per core on fc1 -> 6 cores; fc2: 100 // 30 = 3 -> 4 cores.
    partition = check_and_partition(network, tiny_target(tmp_path, synapses_per_core=100))
    assert [p.cores for p in partition.layers] == [6, 4]
    # fan-out: each fc1 neuron reaches all 4 fc2 cores; 8 axons per core -> 2 fc1 neurons per core.
    partition = check_and_partition(network, tiny_target(tmp_path, synapses_per_core=100, fan_out_per_core=8))
    assert partition.layers[0].neurons_per_core == 2 and partition.layers[0].cores == 15
    assert partition.layers[0].fan_out_per_core <= 8


@pytest.mark.parametrize("limits, words", [
    ({"fan_in_per_core": 10}, ["layer fc1", "fan_in_per_core is 10", "needs 20"]),
    ({"synapses_per_core": 25}, ["layer fc2", "synapses_per_core is 25", "needs 30"]),
    ({"synapses_per_core": 30, "fan_out_per_core": 3}, ["layer fc1", "fan_out_per_core is 3", "needs 10"]),
    ({"neurons_per_core": 4, "cores_per_chip": 8}, ["needs 11 cores", "cores_per_chip 8", "fc1: 8", "fc2: 3"]),
    ({"weight_bits": 4}, ["layer fc1", "weight_bits is 4", "needs 8"]),
    ({"neuron_models": "[rate]"}, ["layer fc1", "neuron_models", "needs lif"]),
])
def test_each_violation_is_one_clear_error(tmp_path, limits, words):
    network = small_lif_network(0, sizes=(20, 30, 10))
    with pytest.raises(NeurocreditError) as error:
        check_and_partition(network, tiny_target(tmp_path, **limits), weight_bits=8)
    message = str(error.value)
    assert "\n" not in message and "test limit" in message
    for word in words:
        assert word in message, (word, message)


def test_absent_limits_are_not_checked(tmp_path):
    network = small_lif_network(0, sizes=(500, 3000, 10))
    partition = check_and_partition(network, tiny_target(tmp_path))
    assert partition.cores == 2


@pytest.mark.skipif("loihi2" not in available_targets(), reason="hardware_targets/loihi2.yaml not shipped")
def test_real_loihi2_target_places_a_digits_network():
    target = load_target("loihi2")
    network = small_lif_network(0, sizes=(64, 400, 10))
    partition = check_and_partition(network, target)
    per_core = min(target.limit("neurons_per_core") or 400, (target.limit("synapses_per_core") or 10**9) // 64)
    assert partition.layers[0].cores == math.ceil(400 / min(per_core, 400))
    assert partition.cores == sum(p.cores for p in partition.layers)
    rate = Network(network.layers)
    if target.limit("neuron_models") is not None:
        with pytest.raises(NeurocreditError, match="neuron_models"):
            check_and_partition(rate, target)
