"""The BPTT baseline: Norse's step with the canonical mapping emits the canonical spikes, its
surrogate gradient reaches every layer, it learns digits, and (unlike DFA) its memory grows with T."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import peak_allocated_bytes
from neurocredit.config import TrainingConfig, load_config
from neurocredit.data import load_digits
from neurocredit.errors import NeurocreditError
from neurocredit.network import EncoderSpec, Layer, LIFParameters, Network, NeuronSpec, init_layers
from neurocredit.neurons import run_lif_network
from neurocredit.rules import rule_class
from neurocredit.rules.bp_lif import SurrogateBPTT, norse_forward
from neurocredit.sim import encode_inputs
from neurocredit.train import train


def random_network(seed, sizes=(12, 20, 15, 6), params=LIFParameters(0.3, 0.15, 1.0), steps=30):
    rng = np.random.default_rng(seed)
    layers = tuple(
        Layer(layer.weight.astype(np.float64), rng.normal(0.0, 0.1, layer.n_out), layer.name)
        for layer in init_layers(sizes, rng, gain=4.0)
    )
    return Network(layers, NeuronSpec("lif", lif=params), EncoderSpec("bernoulli", steps, 0.8, seed))


@pytest.mark.parametrize("seed,params", [
    (0, LIFParameters(0.3, 0.15, 1.0)),
    (1, LIFParameters(1.0, 0.5, 0.7)),
    (2, LIFParameters(0.1, 0.05, 1.5)),
])
def test_forward_spikes_equal_the_canonical_network(seed, params):
    network = random_network(seed, params=params)
    inputs = encode_inputs(network, np.random.default_rng(seed).random((4, network.n_inputs)))
    reference = run_lif_network(network, inputs)
    weights = [torch.tensor(w, requires_grad=True) for w in network.weights]
    biases = [torch.tensor(b, requires_grad=True) for b in network.biases]
    spikes = norse_forward(weights, biases, network.neuron.lif, torch.tensor(inputs, dtype=torch.float64))
    for ours, expected in zip(spikes, reference.spikes):
        assert np.array_equal(ours.detach().numpy() > 0, expected)
    assert all(s.any() for s in reference.spikes)


def test_surrogate_gradient_reaches_every_layer():
    network = random_network(3)
    inputs = torch.tensor(encode_inputs(network, np.random.default_rng(3).random((4, 12))), dtype=torch.float64)
    weights = [torch.tensor(w, requires_grad=True) for w in network.weights]
    biases = [torch.tensor(b, requires_grad=True) for b in network.biases]
    norse_forward(weights, biases, network.neuron.lif, inputs)[-1].sum().backward()
    for parameter in weights + biases:
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


@pytest.mark.timeout(240)
def test_bptt_learns_digits():
    digits = load_digits()
    result = train(load_config("digits-bptt-snn"), epochs=3, dataset=digits, progress=False, log=lambda line: None)
    assert result.network.provenance["rule"] == "bp"
    assert result.test_accuracy > 0.85, result.test_accuracy  # measured through the norse backend


def small_bptt(steps):
    network = Network(init_layers((64, 100, 10), np.random.default_rng(0), gain=2.0),
                      NeuronSpec("lif", lif=LIFParameters(0.5, 0.2, 1.0)), EncoderSpec("bernoulli", steps, 1.0, 0))
    cls = rule_class("bp", "lif")
    return cls(network, cls.parse_options({}), TrainingConfig(batch_size=32), 10)


def test_bptt_memory_grows_with_steps():
    generator = torch.Generator().manual_seed(0)
    x, y = torch.rand(32, 64, generator=generator), torch.randint(0, 10, (32,), generator=generator)
    peaks = []
    for steps in (10, 40):
        rule = small_bptt(steps)
        rule.train_batch(x, y)
        peaks.append(peak_allocated_bytes(lambda: rule.train_batch(x, y)))
    assert peaks[1] > 2.5 * peaks[0], peaks


def test_bptt_options_are_validated():
    with pytest.raises(NeurocreditError, match="Norse threshold methods"):
        SurrogateBPTT.parse_options({"surrogate": "sigmoid"})
    with pytest.raises(NeurocreditError, match="dv > 0"):
        norse_forward([torch.zeros(2, 2)], [torch.zeros(2)], LIFParameters(0.2, 0.0, 1.0), torch.zeros(3, 1, 2))
