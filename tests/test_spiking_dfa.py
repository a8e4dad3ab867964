"""Online spiking DFA: learns digits, never uses autograd, keeps no history (memory flat in T),
its training dynamics are the canonical LIF network's, and its pieces do what they say."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import forbid_autograd, peak_allocated_bytes
from neurocredit.config import TrainingConfig, load_config
from neurocredit.data import load_digits
from neurocredit.network import EncoderSpec, LIFParameters, Network, NeuronSpec, init_layers
from neurocredit.neurons import lif_block, lif_step, run_lif_network
from neurocredit.rules import rule_class
from neurocredit.rules.dfa import SpikingDFAOptions
from neurocredit.rules.dfa_lif import SpikingDFA
from neurocredit.rules.spiking import (
    add_voltage_surrogate,
    block_currents,
    delayed_trace_weights,
    voltage_surrogate,
    zero_states,
)
from neurocredit.sim import simulate
from neurocredit.train import train


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def quiet(line):
    pass


def small_rule(steps: int, options: dict | None = None, sizes=(64, 100, 10)):
    network = Network(init_layers(sizes, np.random.default_rng(0), gain=2.0),
                      NeuronSpec("lif", lif=LIFParameters(0.5, 0.2, 1.0)), EncoderSpec("bernoulli", steps, 1.0, 0))
    cls = rule_class("dfa", "lif")
    return cls(network, cls.parse_options(options or {}), TrainingConfig(batch_size=32), 10)


@pytest.mark.timeout(240)
def test_spiking_dfa_learns_digits_above_85_percent(digits):
    config = load_config("digits-dfa-snn")
    result = train(config, epochs=4, dataset=digits, progress=False, log=quiet)
    assert result.network.neuron.spiking and result.network.provenance["rule"] == "dfa"
    # train() measures the saved network through the norse backend (float64, canonical dynamics)
    assert result.test_accuracy > 0.85, result.test_accuracy
    record = simulate(result.network, digits.x_test, digits.y_test, backend="norse")
    assert record.accuracy == result.test_accuracy
    assert set(result.network.extras) == {"dfa/feedback_1"}


def test_weights_change_without_autograd(monkeypatch):
    rule = small_rule(12)  # built before patching (conftest.forbid_autograd)
    before = [w.clone() for w in rule.weights]
    generator = torch.Generator().manual_seed(0)
    x, y = torch.rand(32, 64, generator=generator), torch.randint(0, 10, (32,), generator=generator)
    forbid_autograd(monkeypatch, "spiking DFA")
    rule.train_batch(x, y)
    assert all(not w.requires_grad for w in rule.weights)
    assert all(not torch.equal(a, b) for a, b in zip(before, rule.weights))


def test_training_memory_does_not_grow_with_steps():
    generator = torch.Generator().manual_seed(1)
    x, y = torch.rand(32, 64, generator=generator), torch.randint(0, 10, (32,), generator=generator)
    peaks = []
    for steps in (10, 40):
        rule = small_rule(steps, {"block_steps": 10})
        rule.train_batch(x, y)  # warm-up: optimizer state exists before measuring
        peaks.append(peak_allocated_bytes(lambda: rule.train_batch(x, y)))
    assert peaks[0] > 0
    assert peaks[1] <= 1.02 * peaks[0], peaks


def test_window_sums_follow_the_canonical_network():
    """The spike counts DFA learns from are those of the reference simulation (same input)."""
    rule = small_rule(15, {"block_steps": 4})
    rule.weights = [w.double() for w in rule.weights]
    rule.biases = [b.double() + 0.05 for b in rule.biases]
    rule.dtype = torch.float64
    rule.trace_weights = rule.trace_weights.double()
    features = torch.rand(5, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    captured = []
    original = rule.encode

    def encode(features, steps):
        block = original(features, steps)
        captured.append(block)
        return block

    rule.encode = encode
    traces, surrogates, counts = rule.window_sums(features)
    inputs = torch.cat(captured).numpy()
    network = rule.spec.with_parameters([w.numpy() for w in rule.weights], [b.numpy() for b in rule.biases])
    reference = run_lif_network(network, inputs)
    for index, spikes in enumerate(reference.spikes):
        np.testing.assert_array_equal(counts[index].numpy(), spikes.sum(axis=0))
    # the input trace sum equals the explicitly filtered trace of the delayed input
    decay, trace, total = rule.params.du, np.zeros((5, 64)), np.zeros((5, 64))
    for t in range(inputs.shape[0]):
        delivered = inputs[t - 1] if t > 0 else np.zeros((5, 64))
        trace = (1 - decay) * trace + delivered
        total += trace
    np.testing.assert_allclose(traces[0].numpy(), total, rtol=1e-12, atol=1e-12)
    assert counts[0].sum() > 0 and surrogates[0].sum() > 0


@pytest.mark.parametrize("decay", [0.0, 0.3, 1.0])
def test_delayed_trace_weights_closed_form(decay):
    rng = np.random.default_rng(1)
    spikes = rng.random((9, 3)) < 0.5
    trace, total = np.zeros(3), np.zeros(3)
    for t in range(9):
        trace = (1 - decay) * trace + (spikes[t - 1] if t > 0 else 0)
        total += trace
    weights = delayed_trace_weights(9, decay, torch.float64).numpy()
    np.testing.assert_allclose(weights @ spikes, total, atol=1e-12)


def test_block_simulation_equals_step_by_step():
    """lif_block steps in place with lif_step's operations in lif_step's order, so from the
    same input currents it gives lif_step's bits. The currents are the block products
    ``(steps*batch, n) @ W.T`` in both runs: per-step products (other shapes) round differently."""
    params = LIFParameters(0.3, 0.1, 1.0)
    generator = torch.Generator().manual_seed(3)
    weight = torch.randn(7, 5, dtype=torch.float64, generator=generator)
    bias = torch.randn(7, dtype=torch.float64, generator=generator) * 0.1
    source = (torch.rand(12, 3, 5, generator=generator) < 0.5).double()
    starts = range(0, 12, 5)  # blocks of 5, 5 and 2 steps
    block_products = [block_currents(source[start:start + 5], weight) for start in starts]
    products = torch.cat(block_products)  # W s[t], (steps, batch, n)
    expected, pre_reset = [], []
    state = zero_states([7], 3, torch.float64, None)[0]
    for t in range(12):
        delivered = products[t - 1] if t > 0 else torch.zeros(3, 7, dtype=torch.float64)
        pre_reset.append(state.membrane_voltage * (1 - params.dv) + state.synaptic_current * (1 - params.du)
                         + delivered + bias)
        state, spikes = lif_step(params, state, delivered, bias)
        expected.append(spikes)
    stepped = state
    state = zero_states([7], 3, torch.float64, None)[0]
    carry, blocks, seen = torch.zeros(3, 7, dtype=torch.float64), [], []
    for currents in block_products:
        state, spikes, carry = lif_block(params, state, currents, carry, bias,
                                         on_step=lambda v, u: seen.append(v.clone()))
        blocks.append(spikes)
    assert 0 < int(torch.stack(expected).sum()) < torch.stack(expected).numel()  # not vacuous
    assert torch.equal(torch.cat(blocks), torch.stack(expected))
    # the in-place block stepping keeps lif_step's bits: state, and the pre-reset voltages it hands on
    assert torch.equal(state.synaptic_current, stepped.synaptic_current)
    assert torch.equal(state.membrane_voltage, stepped.membrane_voltage)
    np.testing.assert_allclose(torch.stack(seen).numpy(), torch.stack(pre_reset).numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["boxcar", "triangle", "fast_sigmoid"])
def test_voltage_surrogates(kind):
    voltage = torch.tensor([0.0, 0.5, 0.9, 1.0, 1.2, 1.6, 3.0])
    values = voltage_surrogate(kind, voltage, vth=1.0, width=0.5)
    assert values[3] == 1.0 and torch.all(values <= 1.0) and torch.all(values >= 0.0)
    assert values[2] > values[0] and values[4] > values[6]  # peaks at threshold
    if kind == "boxcar":
        assert values.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    total, read = torch.zeros(7), voltage.clone()
    add_voltage_surrogate(total, kind, read, 1.0, 0.5)
    torch.testing.assert_close(total, values)
    assert torch.equal(read, voltage)  # lif_block hands on its state: the callback only reads it


def test_options_are_validated():
    from neurocredit.errors import NeurocreditError

    with pytest.raises(NeurocreditError, match="rule.error"):
        SpikingDFA.parse_options({"error": "hinge"})
    with pytest.raises(NeurocreditError, match="unknown key 'widht'"):
        SpikingDFA.parse_options({"widht": 1.0})
    assert SpikingDFA.parse_options({"trace_decay": 1}) == SpikingDFAOptions(trace_decay=1.0)
