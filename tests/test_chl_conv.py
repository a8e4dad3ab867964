"""Equilibrium propagation / STDP-style CHL on convolutional networks (neurocredit.rules.chl)."""

import numpy as np
import pytest
import torch
from convnets import asymmetric_conv_network

from neurocredit.config import TrainingConfig
from neurocredit.errors import NeurocreditError
from neurocredit.network import EncoderSpec, Network, NeuronSpec, init_typed_layers
from neurocredit.rules import rule_class
from neurocredit.rules.chl_rate import cost_value, ep_gradients, feedforward_states, settle

DTYPE = torch.float64


def cosine(a, b):
    return float((a * b).sum() / (a.norm() * b.norm()))


def pooled_rate_network(seed=0):
    """1x6x6 -> conv 3@3x3 (padding 1) -> 3x6x6 -> 2x2 pool fused into conv 4@2x2 -> 4x2x2 -> dense 3."""
    layers = init_typed_layers((1, 6, 6), [{"conv": {"channels": 3, "kernel": 3, "padding": 1}}, {"pool": 2},
                                           {"conv": {"channels": 4, "kernel": 2}}], 3, np.random.default_rng(seed),
                               gain=1.5)
    return Network(layers, NeuronSpec("rate", "tanh"), EncoderSpec())


def strided_rate_network(seed=0):
    """The asymmetric strided/padded conv network of tests/convnets.py as a tanh rate network."""
    spiking = asymmetric_conv_network(seed)
    layers = [layer.__class__(**{**layer.__dict__, "weight": layer.weight * 0.5}) for layer in spiking.layers]
    return Network(tuple(layers), NeuronSpec("rate", "tanh"), EncoderSpec())


def rate_rule(network, **options):
    cls = rule_class("chl", "rate")
    rule = cls(network, cls.parse_options(options), TrainingConfig(), network.n_outputs)
    rule.weights = [w.to(DTYPE) for w in rule.weights]
    rule.biases = [b.to(DTYPE) + 0.1 * torch.randn(b.shape, dtype=DTYPE) for b in rule.biases]
    rule.dtype = DTYPE
    return rule


def recurrent_backprop(rule, features, labels, gain, cost, steps=150):
    """Gradient of the cost at the free equilibrium with respect to the trainable (pooled-form)
    weights and per-channel biases, by autograd through the unrolled settling and the fusion."""
    leaves = [p.detach().clone().requires_grad_(True) for p in rule.parameters()]
    count = len(rule.weights)
    saved = rule.weights, rule.biases
    rule.weights, rule.biases = leaves[:count], leaves[count:]
    weights, biases = rule.synaptic_parameters()
    rule.weights, rule.biases = saved
    layers = rule.spec.layers
    start = feedforward_states(weights, biases, "tanh", features, layers)
    states, change = settle(weights, biases, rule.feedback(weights), gain, "tanh", features, start, steps,
                            layers=layers)
    assert change < 1e-10  # settled
    return list(torch.autograd.grad(cost_value(cost, states[-1], labels), leaves))


@pytest.mark.parametrize("make", [pooled_rate_network, strided_rate_network])
@pytest.mark.parametrize("gain,cost,nudge", [(1.0, "cross_entropy", "symmetric"), (0.5, "mse", "positive")])
def test_conv_ep_update_approaches_the_gradient_at_the_free_equilibrium(make, gain, cost, nudge):
    """The EP theorem on conv layers: feedback through the transposed convolution, the update per
    kernel summed over positions, pooled and per-channel parameters by the fusion's adjoint."""
    network = make()
    rule = rate_rule(network)
    features = torch.rand(5, network.n_inputs, dtype=DTYPE)
    labels = torch.randint(0, 3, (5,))
    if network.n_outputs == 5:
        labels = torch.randint(0, 5, (5,))
    expected = recurrent_backprop(rule, features, labels, gain, cost)
    weights, biases = rule.synaptic_parameters()
    got_w, got_b, _ = ep_gradients(weights, biases, rule.feedback(weights), gain, "tanh", features, labels,
                                   network.n_outputs, 1e-3, nudge, cost, 150, 150, network.layers)
    got = rule.trainable_gradients(got_w, got_b)
    assert [g.shape for g in got] == [e.shape for e in expected]
    for g, e in zip(got, expected):
        assert cosine(g, e) > 0.99
        assert float((g - e).norm() / e.norm()) < 0.05


def test_transposed_feedback_is_the_adjoint_of_the_convolution():
    from neurocredit.conv import dense_matrix, torch_synaptic_input, torch_transposed_input

    network = strided_rate_network()
    for layer in network.layers:
        matrix = torch.tensor(dense_matrix(layer))
        weight = torch.tensor(layer.weight, dtype=DTYPE)
        above = torch.randn(3, layer.n_out, dtype=DTYPE)
        below = torch.randn(3, layer.n_in, dtype=DTYPE)
        torch.testing.assert_close(torch_transposed_input(layer, weight, above), above @ matrix)
        torch.testing.assert_close(torch_synaptic_input(layer, weight, below), below @ matrix.T)


def test_random_feedback_on_a_conv_network_is_one_clear_line():
    with pytest.raises(NeurocreditError, match="feedback: random.*feedback: symmetric"):
        rate_rule(pooled_rate_network(), feedback="random")
