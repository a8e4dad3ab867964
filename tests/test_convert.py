"""Rate-to-spike conversion: the weight balancing is the documented formula, a converted relu
network keeps its accuracy as a spiking network (norse backend), and the CLI saves and reports it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurocredit.config import parse_config
from neurocredit.convert import ConversionOptions, activation_scales, convert
from neurocredit.sim.rate_backend import forward as rate_activities
from neurocredit.data import load_digits
from neurocredit.errors import NeurocreditError
from neurocredit.io import load_network, save_network
from neurocredit.network import Layer, Network, NeuronSpec, init_layers
from neurocredit.sim import simulate
from neurocredit.train import train


def relu_config(activation="relu"):
    return parse_config({
        "name": f"digits-bp-{activation}",
        "data": {"name": "digits"},
        "network": {"hidden": [128], "neuron": {"kind": "rate", "activation": activation}},
        "rule": {"name": "bp"},
        "training": {"epochs": 8, "batch_size": 32, "learning_rate": 0.002, "seed": 0},
    })


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def trained_relu(digits):
    return train(relu_config(), dataset=digits, progress=False, log=lambda line: None).network


def test_converted_relu_network_keeps_its_accuracy(trained_relu, digits):
    rate = simulate(trained_relu, digits.x_test, digits.y_test)
    spiking = convert(trained_relu, digits.x_train, ConversionOptions(steps=60))
    assert spiking.neuron.spiking and spiking.encoder.kind == "bernoulli" and spiking.encoder.steps == 60
    record = simulate(spiking, digits.x_test, digits.y_test, backend="norse")
    assert rate.accuracy > 0.9
    assert record.accuracy > rate.accuracy - 0.04, (rate.accuracy, record.accuracy)
    # normalized rates stay below one spike per step: hidden neurons fire on average < 0.5/step
    hidden_rate = record.spike_counts[0].mean() / record.steps
    assert 0.0 < hidden_rate < 0.5


def test_weights_are_balanced_by_the_activation_percentiles(trained_relu, digits):
    options = ConversionOptions(steps=10, percentile=99.0, du=0.5, vth=2.0, max_rate=0.5)
    spiking = convert(trained_relu, digits.x_train, options)
    scales = activation_scales(trained_relu, digits.x_train, 99.0)
    activities = rate_activities(trained_relu, digits.x_train)
    assert scales[0] == pytest.approx(np.percentile(activities[0][activities[0] > 0], 99.0))
    previous = 1.0 / 0.5
    for layer, source, scale in zip(spiking.layers, trained_relu.layers, scales):
        np.testing.assert_allclose(layer.weight, source.weight * 2.0 * 0.5 * previous / scale, rtol=1e-6)
        np.testing.assert_allclose(layer.bias, source.bias * 2.0 / scale, rtol=1e-6, atol=1e-7)
        previous = scale
    assert spiking.provenance["conversion"]["scales"] == scales
    assert spiking.neuron.lif.du == 0.5 and spiking.neuron.lif.vth == 2.0


def test_sigmoid_and_spiking_sources_are_refused(trained_relu, digits):
    sigmoid = trained_relu.replace(neuron=NeuronSpec("rate", activation="sigmoid"))
    with pytest.raises(NeurocreditError, match="sigmoid"):
        convert(sigmoid, digits.x_train)
    spiking = convert(trained_relu, digits.x_train[:100])
    with pytest.raises(NeurocreditError, match="already spiking"):
        convert(spiking, digits.x_train)
    with pytest.raises(NeurocreditError, match="normalization data"):
        convert(trained_relu, digits.x_train[:, :10])


def test_tanh_conversion_is_flagged():
    layers = init_layers((4, 6, 3), np.random.default_rng(0))
    tanh = Network(layers, NeuronSpec("rate", activation="tanh"))
    spiking = convert(tanh, np.random.default_rng(1).random((50, 4)))
    assert "tanh" in spiking.provenance["conversion_warning"]


def test_convert_cli_saves_and_evaluates(run_cli, tmp_path, trained_relu):
    source = save_network(trained_relu, tmp_path / "relu.h5")
    out = tmp_path / "relu-snn.h5"
    result = run_cli("convert", source, "--steps", "40", "--out", out, "--limit", "120", "--json", check_rc=0)
    payload = json.loads(result.stdout)
    assert payload["model"] == str(out) and payload["steps"] == 40 and payload["samples"] == 120
    assert payload["backend"] == "norse" and payload["accuracy"] > 0.8
    assert len(payload["mean_spikes_per_sample"]) == 2 and payload["mean_spikes_per_sample"][0] > 0
    network = load_network(out)
    assert network.neuron.spiking and network.provenance["rule"] == "convert"
    assert network.provenance["converted_from_file"] == str(source)
    bad = run_cli("convert", source, "--steps", "0")
    assert bad.returncode == 2 and "steps must be >= 1" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_converted_layers_keep_names(trained_relu, digits):
    spiking = convert(trained_relu, digits.x_train[:200])
    assert [layer.name for layer in spiking.layers] == [layer.name for layer in trained_relu.layers]
    assert all(isinstance(layer, Layer) and layer.weight.dtype == np.float32 for layer in spiking.layers)
