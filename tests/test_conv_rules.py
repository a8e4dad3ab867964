"""DFA and sigprop (rate and spiking) on convolutional networks: the shared kernel's local
gradient, layer locality, no spike backward / no autograd, memory flat in T, learning the
digits, and a CLI round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import forbid_autograd, peak_allocated_bytes, watch_spike_backward
from convnets import asymmetric_conv_network
from neurocredit.config import TrainingConfig, load_config
from neurocredit.conv import torch_layer_input, torch_local_gradients, torch_neuron_bias
from neurocredit.data import load_digits
from neurocredit.network import EncoderSpec, LIFParameters, Network, NeuronSpec, init_typed_layers
from neurocredit.rules import rule_class
from neurocredit.train import train

LIF = NeuronSpec("lif", lif=LIFParameters(0.5, 0.2, 1.0))
CONV = {"conv": {"channels": 4, "kernel": 3, "padding": 1}}


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def conv_network(kind: str, above: list, seed: int = 0, steps: int = 8) -> Network:
    """1x8x8 digits -> conv 4@3x3 -> ``above`` (layer specs) -> dense 10."""
    layers = init_typed_layers((1, 8, 8), [CONV, *above], 10, np.random.default_rng(seed), gain=2.0)
    if kind == "lif":
        return Network(layers, LIF, EncoderSpec("bernoulli", steps, 1.0, 0))
    return Network(layers, NeuronSpec("rate", "relu"))


def make_rule(name: str, kind: str, network: Network, options=None, batch: int = 16):
    cls = rule_class(name, kind)
    return cls(network, cls.parse_options(options or {}), TrainingConfig(batch_size=batch, seed=3), 10)


def batches(data, count: int, size: int = 16):
    for index in range(count):
        chunk = slice(index * size, (index + 1) * size)
        yield torch.tensor(data.x_train[chunk]), torch.tensor(data.y_train[chunk])


def quiet(line):
    pass


# --- the shared kernel's local gradient ---------------------------------------------------------


def assert_local_gradient_is_autograds(network: Network, index: int, rng) -> None:
    """Summed over positions and batch, the local update of layer ``index`` equals the autograd
    gradient of ``sum(delta * (W x + b))`` of that one layer (in the pooled-form weight)."""
    layer, shape = network.layers[index], network.shapes[index]
    weight = torch.tensor(network.unfused_weight(index), dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(layer.bias, dtype=torch.float64, requires_grad=True)
    inputs = torch.tensor(rng.random((5, layer.n_in)))
    delta = torch.tensor(rng.normal(size=(5, layer.n_out)))
    drive = torch_layer_input(layer, shape, weight, inputs) + torch_neuron_bias(layer, bias)
    expected = torch.autograd.grad((delta * drive).sum(), [weight, bias])
    with torch.no_grad():
        got = torch_local_gradients(network.unfused(index), delta, inputs)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_local_gradient_of_conv_and_dense_layers(index, rng):
    """Asymmetric conv kernels, unequal strides and paddings, and a dense layer on conv maps."""
    assert_local_gradient_is_autograds(asymmetric_conv_network(), index, rng)


@pytest.mark.parametrize("above", [[{"pool": 2}, CONV], [{"pool": 2}]])
def test_local_gradient_of_a_pooled_layer(above, rng):
    """A fused 2x2 pool before a conv or a dense layer: the pooled-form weight's gradient."""
    assert_local_gradient_is_autograds(conv_network("rate", above), 1, rng)


# --- locality -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,options", [
    ("rate", {}),
    ("lif", {"timing": "step"}),
    ("lif", {"timing": "window", "observable_activation": "relu"}),
])
def test_sigprop_conv_layer_does_not_depend_on_the_layers_above(digits, kind, options):
    """The conv layer after three updates is bit for bit the same whatever sits above it."""
    aboves = [[{"pool": 2}], [{"pool": 2}, CONV], [{"dense": 12}, {"dense": 7}]]
    rules = []
    for seed, above in enumerate(aboves):
        network = conv_network(kind, above, seed=seed)
        first = conv_network(kind, aboves[0]).layers[0]
        network = network.replace(layers=(first, *network.layers[1:]))
        rules.append(make_rule("sigprop", kind, network, options))
    for rule in rules:
        for features, labels in batches(digits, 3):
            rule.train_batch(features, labels)
    assert not torch.equal(rules[0].weights[0], torch.tensor(rules[0].spec.layers[0].weight))
    for rule in rules[1:]:
        assert torch.equal(rule.weights[0], rules[0].weights[0]) and torch.equal(rule.biases[0], rules[0].biases[0])


@pytest.mark.parametrize("kind", ["rate", "lif"])
def test_dfa_conv_layer_reads_only_its_own_terms_and_the_error(digits, kind, monkeypatch):
    """With the output error held fixed, the conv layer's update is bit for bit the same whatever
    sits above it: it reads its input, its own activity and ``B e``, never a weight above."""
    from neurocredit.rules import dfa_lif, dfa_rate

    fixed = torch.tensor(np.random.default_rng(7).normal(0, 0.3, (16, 10)), dtype=torch.float32)
    module = dfa_lif if kind == "lif" else dfa_rate
    monkeypatch.setattr(module, "output_error", lambda *args: (fixed, 0.0))
    aboves = [[{"pool": 2}], [{"pool": 2}, CONV], [{"dense": 12}, {"dense": 7}]]
    first = conv_network(kind, aboves[0]).layers[0]
    rules = [make_rule("dfa", kind, conv_network(kind, above, seed=seed).replace(
        layers=(first, *conv_network(kind, above, seed=seed).layers[1:]))) for seed, above in enumerate(aboves)]
    labels = torch.arange(16) % 10
    for rule in rules:
        for features, _ in batches(digits, 2):
            rule.train_batch(features, labels)
    assert not torch.equal(rules[0].weights[0], torch.tensor(first.weight))
    for rule in rules[1:]:
        assert torch.equal(rule.weights[0], rules[0].weights[0]) and torch.equal(rule.biases[0], rules[0].biases[0])


@pytest.mark.parametrize("kind", ["rate", "lif"])
def test_channel_feedback_layout_shares_each_channels_value_over_its_positions(kind):
    """``feedback_layout: channel``: on a conv layer every position of a channel receives the same
    projected error (B's rows of one map are equal), drawn per (channel, class) from the seed; a
    dense layer keeps its (n, classes) B, and the default layout one value per position."""
    network = conv_network(kind, [{"pool": 2}, {"dense": 12}])
    channel = make_rule("dfa", kind, network, {"feedback_layout": "channel"}).feedback
    position = make_rule("dfa", kind, network).feedback
    maps = channel[0].reshape(4, 8 * 8, 10)
    assert torch.equal(maps, maps[:, :1].expand(-1, 64, -1)) and len(torch.unique(maps[:, 0])) == 40
    drawn = np.random.default_rng(1234).uniform(-1 / np.sqrt(10), 1 / np.sqrt(10), (4, 10)).astype(np.float32)
    np.testing.assert_array_equal(maps[:, 0].numpy(), drawn)
    assert len(torch.unique(position[0].reshape(4, 64, 10)[0, :, 0])) == 64
    assert channel[1].shape == position[1].shape == (12, 10)


# --- surrogate-free, autograd-free --------------------------------------------------------------


def test_spiking_sigprop_on_conv_never_calls_a_spike_backward(digits, monkeypatch):
    calls = watch_spike_backward(monkeypatch)
    rule = make_rule("sigprop", "lif", conv_network("lif", [{"pool": 2}, CONV]), {"timing": "step"})
    before = [w.detach().clone() for w in rule.weights]
    for features, labels in batches(digits, 2):
        assert np.isfinite(rule.train_batch(features, labels))
    assert calls["backward"] == 0 and calls["in_graph"] > 0
    assert all(not torch.equal(a, b) for a, b in zip(before, rule.weights))


def test_spiking_dfa_on_conv_uses_no_autograd(digits, monkeypatch):
    rule = make_rule("dfa", "lif", conv_network("lif", [{"pool": 2}, CONV]))
    before = [w.clone() for w in rule.weights]
    features, labels = next(batches(digits, 1))
    forbid_autograd(monkeypatch, "spiking DFA")
    rule.train_batch(features, labels)
    assert all(not w.requires_grad for w in rule.weights)
    assert all(not torch.equal(a, b) for a, b in zip(before, rule.weights))


@pytest.mark.parametrize("name,options", [
    ("dfa", {"block_steps": 25}),
    ("sigprop", {"timing": "window", "block_steps": 25}),
    ("sigprop", {"timing": "step", "block_steps": 25}),
])
def test_conv_training_memory_does_not_grow_with_steps(digits, name, options):
    features, labels = next(batches(digits, 1, size=16))
    peaks = {}
    for steps in (25, 100):
        rule = make_rule(name, "lif", conv_network("lif", [{"pool": 2}], steps=steps), options)
        rule.train_batch(features, labels)  # optimizer state allocated
        peaks[steps] = peak_allocated_bytes(lambda: rule.train_batch(features, labels))
    assert peaks[25] > 0
    assert peaks[100] <= 1.2 * peaks[25], peaks


# --- learning and the CLI -----------------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name,bound", [("digits-dfa-conv-snn", 0.75), ("digits-sigprop-conv-snn", 0.65)])
def test_spiking_conv_rules_learn_digits(digits, name, bound):
    """One epoch of the digits conv configs (seeded); the full configs reach more (README)."""
    result = train(load_config(name), epochs=1, dataset=digits, progress=False, log=quiet)
    assert result.network.layers[0].kind == "conv2d" and result.network.layers[1].pool == 2
    assert result.test_accuracy > bound, result.test_accuracy  # through the norse backend


@pytest.mark.timeout(180)
def test_cli_round_trip_on_a_conv_sigprop_model(run_cli, tmp_path):
    trained = json.loads(run_cli("train", "digits-sigprop-conv-rate", "--epochs", "1", "--out", "rate.h5", "--json",
                                 check_rc=0).stdout)
    evaluated = json.loads(run_cli("eval", "rate.h5", "--json", check_rc=0).stdout)
    assert evaluated["accuracy"] == trained["accuracy"] > 0.3
