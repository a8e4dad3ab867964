"""Signal propagation: the learning signal, layer locality by construction, no spike backward in
the surrogate-free spiking rule, the canonical LIF dynamics during training, memory flat in T,
learning digits, and save/load round trips that keep the rule's prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import peak_allocated_bytes, watch_spike_backward
from neurocredit.config import TrainingConfig, load_config
from neurocredit.data import load_digits
from neurocredit.errors import NeurocreditError
from neurocredit.io import load_network, save_network
from neurocredit.network import EncoderSpec, Layer, LIFParameters, Network, NeuronSpec, init_layers
from neurocredit.neurons import run_lif_network
from neurocredit.readout import predict
from neurocredit.rules import rule_class
from neurocredit.rules import sigprop
from neurocredit.rules.sigprop import PROJECTION_KEY, PROTOTYPES_KEY, make_signal_projection
from neurocredit.rules.sigprop_lif import SpikeWithoutGradient, SpikingSigpropLayer
from neurocredit.rules.sigprop_local import layer_loss, learning_signals, signal_labels
from neurocredit.sim import simulate
from neurocredit.train import train

LIF = NeuronSpec("lif", lif=LIFParameters(0.5, 0.2, 1.0))


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def quiet(line):
    pass


def make_rule(kind: str, sizes, options=None, steps: int = 10, seed: int = 0, first_layer=None, training=None):
    """A sigprop rule on a fresh network; ``first_layer`` (weight, bias) replaces layer 1."""
    layers = list(init_layers(sizes, np.random.default_rng(seed), gain=2.0 if kind == "lif" else 1.0))
    if first_layer is not None:
        layers[0] = Layer(first_layer[0].copy(), first_layer[1].copy(), "fc1")
    if kind == "lif":
        network = Network(tuple(layers), LIF, EncoderSpec("bernoulli", steps, 1.0, 0))
    else:
        network = Network(tuple(layers), NeuronSpec("rate", "relu"))
    cls = rule_class("sigprop", kind)
    return cls(network, cls.parse_options(options or {}), training or TrainingConfig(batch_size=16, seed=3), 10)


def batches(data, count: int, size: int = 16):
    for index in range(count):
        chunk = slice(index * size, (index + 1) * size)
        yield torch.tensor(data.x_train[chunk]), torch.tensor(data.y_train[chunk])


# --- the learning signal ---------------------------------------------------------------------------


def test_learning_signal_shapes_and_determinism():
    options = sigprop.SigpropOptions(signal_scale=0.5, signal_seed=7)
    projection = make_signal_projection(64, 10, options)
    assert projection.shape == (64, 10) and projection.dtype == np.float32
    assert projection.min() >= 0.0 and projection.max() <= 0.5
    assert np.array_equal(projection, make_signal_projection(64, 10, options))
    assert not np.array_equal(projection, make_signal_projection(64, 10, sigprop.SigpropOptions(signal_seed=8)))
    labels = torch.tensor([3, 1, 3, 0])
    per_class = signal_labels(sigprop.SigpropOptions(signals="class"), labels, 10)
    per_sample = signal_labels(sigprop.SigpropOptions(signals="sample"), labels, 10)
    assert per_class.tolist() == list(range(10)) and per_sample.tolist() == [3, 1, 3, 0]
    signals = learning_signals(torch.tensor(projection), per_sample)
    assert signals.shape == (4, 64)
    # t_0 = S onehot(y): the signal of class k is column k of S
    assert torch.equal(signals[0], torch.tensor(projection[:, 3])) and torch.equal(signals[0], signals[2])


def test_signal_projection_is_saved_and_reused(digits):
    rule = make_rule("rate", (64, 20, 10), {"signal_seed": 11})
    features, labels = next(batches(digits, 1))
    rule.train_batch(features, labels)
    network = rule.to_network()
    assert np.array_equal(network.extras[PROJECTION_KEY], make_signal_projection(64, 10, rule.options))
    # a different seed in the options does not replace the projection a network already has
    again = rule_class("sigprop", "rate")(network, sigprop.SigpropOptions(signal_seed=99),
                                          TrainingConfig(), 10)
    assert np.array_equal(again.projection.numpy(), network.extras[PROJECTION_KEY])


def test_layer_losses_prefer_matching_signals():
    torch.manual_seed(0)
    signals = torch.randn(10, 32)
    labels = torch.arange(10).repeat(2)
    classes = torch.arange(10)
    matching = signals[labels] + 0.05 * torch.randn(20, 32)
    shuffled = signals[(labels + 1) % 10]
    for loss in ("similarity_ce", "l2"):
        for similarity in ("cosine", "dot"):
            options = sigprop.SigpropOptions(loss=loss, similarity=similarity, temperature=0.1)
            good = layer_loss(options, matching, signals, labels, classes)
            bad = layer_loss(options, shuffled, signals, labels, classes)
            assert float(good) < float(bad), (loss, similarity)
    # per-sample signals: the same-class target spreads over all signals of the class
    options = sigprop.SigpropOptions()
    per_sample = layer_loss(options, matching, signals[labels], labels, labels)
    per_class = layer_loss(options, matching, signals, labels, classes)
    assert abs(float(per_sample) - float(per_class) - np.log(2)) < 1e-4  # each class twice


def test_bad_options_are_clear_errors():
    with pytest.raises(NeurocreditError, match="rule.loss must be one of"):
        rule_class("sigprop", "rate").parse_options({"loss": "hinge"})
    with pytest.raises(NeurocreditError, match="unknown key 'observable'"):
        rule_class("sigprop", "rate").parse_options({"observable": "voltage"})
    with pytest.raises(NeurocreditError, match="signal_trainable is for rate networks"):
        rule_class("sigprop", "lif").parse_options({"signal_trainable": True})
    with pytest.raises(NeurocreditError, match="rule.observable_activation must be one of identity, relu"):
        rule_class("sigprop", "lif").parse_options({"observable_activation": "gelu"})
    with pytest.raises(NeurocreditError, match="rule.readout_observable must be one of voltage, current"):
        rule_class("sigprop", "lif").parse_options({"readout_observable": "spikes"})
    with pytest.raises(NeurocreditError, match="rule.readout_observable is for the local readout"):
        rule_class("sigprop", "lif").parse_options({"readout_observable": "current", "readout": "prototype"})
    with pytest.raises(NeurocreditError, match="needs at least one hidden layer"):
        make_rule("rate", (64, 10))


# --- locality ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,options", [
    ("rate", {}),
    ("rate", {"signal_trainable": True, "signals": "sample", "loss": "l2"}),
    ("lif", {"timing": "step"}),
    ("lif", {"timing": "window", "observable": "current"}),
    ("lif", {"timing": "window", "observable_activation": "relu"}),
])
def test_layer_update_does_not_depend_on_the_layers_above(digits, kind, options):
    """Layer 1 after three updates is bit for bit the same whatever sits above it."""
    reference = make_rule(kind, (64, 24, 10), options)
    first = (reference.spec.layers[0].weight, reference.spec.layers[0].bias)
    variants = [
        reference,
        make_rule(kind, (64, 24, 40, 10), options, seed=5, first_layer=first),  # a layer added above
        make_rule(kind, (64, 24, 7, 12, 10), options, seed=9, first_layer=first),  # other layers above
    ]
    for rule in variants:
        for features, labels in batches(digits, 3):
            rule.train_batch(features, labels)
    weight, bias = variants[0].weights[0], variants[0].biases[0]
    assert not torch.equal(weight, torch.tensor(first[0]))  # layer 1 did learn
    for rule in variants[1:]:
        assert torch.equal(rule.weights[0], weight) and torch.equal(rule.biases[0], bias)
        if options.get("signal_trainable"):
            assert torch.equal(rule.projection, variants[0].projection)


def test_layers_hand_on_detached_outputs(digits):
    """No tensor that leaves a layer carries a graph: the wrapper detaches by construction."""
    rule = make_rule("rate", (64, 24, 16, 10))
    features, labels = next(batches(digits, 1))
    classes = signal_labels(rule.options, labels, 10)
    stacked = torch.cat([features, learning_signals(rule.projection, classes)])
    for layer in rule.layers[:-1]:
        stacked, _ = layer.learn(stacked, labels, classes)
        assert stacked.grad_fn is None and not stacked.requires_grad


# --- spiking: no surrogate, no spike backward ----------------------------------------------------


def test_spike_function_has_no_backward():
    voltage = torch.tensor([0.5, 1.5, 2.0], requires_grad=True)
    spikes = SpikeWithoutGradient.apply(voltage, 1.0)
    assert spikes.tolist() == [0.0, 1.0, 1.0]
    with pytest.raises(NeurocreditError, match="differentiated through a spike"):
        spikes.sum().backward()


@pytest.mark.parametrize("options", [
    {"timing": "step", "observable": "voltage"},
    {"timing": "step", "observable": "current", "readout_loss": "mse"},
    {"timing": "window", "observable": "voltage", "signals": "sample"},
    {"timing": "step", "readout": "prototype", "output_width": 12},
    {"timing": "step", "observable_activation": "relu"},
])
def test_spiking_training_never_calls_a_spike_backward(digits, monkeypatch, options):
    calls = watch_spike_backward(monkeypatch)
    rule = make_rule("lif", (64, 30, 20, 10), options, steps=12)
    before = [w.detach().clone() for w in rule.weights]
    for features, labels in batches(digits, 2):
        loss = rule.train_batch(features, labels)
        assert np.isfinite(loss)
    assert calls["backward"] == 0
    for old, new in zip(before, rule.weights):
        assert not torch.equal(old, new)  # every layer learned
    if options["timing"] == "step":
        # the spikes were nodes of the graphs that were backpropagated: a backward through them
        # would have been reached had any loss depended on a spike
        assert calls["in_graph"] > 0


def test_readout_observable_changes_what_the_readout_alone_reads(digits):
    """``readout_observable: current`` gives the readout the observable of an all-current rule
    and the hidden layers that of an all-voltage rule; the dynamics are the same in all three."""
    features, labels = next(batches(digits, 1))
    base = {"timing": "window", "readout_loss": "mse"}
    mixed, all_current, all_voltage = (
        make_rule("lif", (64, 30, 10), {**base, **extra}, steps=8)
        for extra in ({"readout_observable": "current"}, {"observable": "current"}, {}))
    initial_bias = mixed.layers[-1].bias.detach().clone()
    for rule in (mixed, all_current, all_voltage):
        rule.train_batch(features, labels)
    assert torch.equal(mixed.layers[-1].observed_sum, all_current.layers[-1].observed_sum)
    assert torch.equal(mixed.layers[0].observed_sum, all_voltage.layers[0].observed_sum)
    assert not torch.equal(mixed.layers[0].observed_sum, all_current.layers[0].observed_sum)
    # the current does not depend on the bias: the readout's bias gets no gradient
    assert torch.equal(mixed.layers[-1].bias, initial_bias)
    assert not torch.equal(all_voltage.layers[-1].bias, initial_bias)


def test_training_dynamics_are_the_canonical_lif_network():
    """Blocks of steps, with the delay carried across blocks, give the reference simulation's
    spikes (float64), in both timings."""
    rng = np.random.default_rng(4)
    network = Network(init_layers((12, 16, 8), rng, gain=3.0), LIF, EncoderSpec("bernoulli", 23, 0.6, 0))
    inputs = (rng.random((23, 5, 12)) < 0.4).astype(np.float64)
    reference = run_lif_network(network, inputs, record_states=False)
    for timing in ("step", "window"):
        layers = [
            SpikingSigpropLayer(torch.tensor(layer.weight, dtype=torch.float64),
                                torch.tensor(layer.bias, dtype=torch.float64), LIF.lif, TrainingConfig(),
                                "voltage", timing)
            for layer in network.layers
        ]
        for layer in layers:
            layer.begin(5, layer.weight.shape[1], lambda observed: observed.square().mean())
        outputs = [[] for _ in layers]
        for start in range(0, 23, 5):
            source = torch.tensor(inputs[start : start + 5])
            for index, layer in enumerate(layers):
                source = layer.learn_block(source, 23)
                outputs[index].append(source)
        for index, spikes in enumerate(outputs):
            assert np.array_equal(torch.cat(spikes).numpy() > 0, reference.spikes[index]), (timing, index)


@pytest.mark.parametrize("timing", ["step", "window"])
def test_training_memory_does_not_grow_with_steps(digits, timing):
    features, labels = next(batches(digits, 1, size=32))
    peaks = {}
    for steps in (25, 100):
        rule = make_rule("lif", (64, 200, 10), {"timing": timing, "block_steps": 25}, steps=steps)
        rule.train_batch(features, labels)  # optimizer state allocated
        peaks[steps] = peak_allocated_bytes(lambda: rule.train_batch(features, labels))
    assert peaks[100] <= 1.2 * peaks[25], peaks


# --- learning and round trips ---------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_rate_sigprop_learns_digits_above_90_percent(digits):
    config = load_config("digits-sigprop-rate")
    result = train(config, epochs=8, dataset=digits, progress=False, log=quiet)
    assert result.test_accuracy > 0.90
    assert result.network.readout.kind == "argmax"


@pytest.mark.timeout(240)
def test_spiking_sigprop_learns_digits_above_85_percent(digits):
    config = load_config("digits-sigprop-snn").replace_training(epochs=3)
    result = train(config, dataset=digits, progress=False, log=quiet)
    assert result.test_accuracy > 0.85  # measured on the saved network through the norse backend
    assert result.history[-1].validation_accuracy > 0.85  # the rule's own prediction (validation split)


@pytest.mark.parametrize("readout", ["local", "prototype"])
def test_rate_round_trip_keeps_the_rules_prediction(digits, tmp_path, readout):
    width = 16 if readout == "prototype" else 10
    rule = make_rule("rate", (64, 32, width), {"readout": readout, "output_width": 16 if readout == "prototype" else 0},
                     training=TrainingConfig(learning_rate=0.005))
    for features, labels in batches(digits, 60):
        rule.train_batch(features, labels)
    network = rule.to_network()
    loaded = load_network(save_network(network, tmp_path / "net.h5"))
    assert loaded.readout.kind == ("nearest_prototype" if readout == "prototype" else "argmax")
    for key, value in network.extras.items():
        assert np.array_equal(loaded.extras[key], value)
    assert (PROTOTYPES_KEY in loaded.extras) == (readout == "prototype")
    rule_classes = predict(network, rule.predict(torch.tensor(digits.x_test)).numpy())
    record = simulate(loaded, digits.x_test, digits.y_test, backend="rate")
    assert np.array_equal(record.predictions, rule_classes)
    assert record.accuracy > 0.3  # trained (chance: 0.1)


def test_spiking_round_trip(digits, tmp_path):
    rule = make_rule("lif", (64, 40, 20), {"readout": "prototype", "output_width": 20, "timing": "window"})
    for features, labels in batches(digits, 10):
        rule.train_batch(features, labels)
    network = rule.to_network()
    assert network.extras[PROTOTYPES_KEY].shape == (10, 20)
    loaded = load_network(save_network(network, tmp_path / "snn.h5"))
    assert loaded.readout.kind == "nearest_prototype"
    for key, value in network.extras.items():
        assert np.array_equal(loaded.extras[key], value)
    for a, b in zip(network.layers, loaded.layers):
        assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
    before = simulate(network, digits.x_test[:40], digits.y_test[:40], backend="norse")
    after = simulate(loaded, digits.x_test[:40], digits.y_test[:40], backend="norse")
    assert np.array_equal(before.predictions, after.predictions)


def test_blocks_of_one_step_and_uneven_blocks(digits):
    """T not a multiple of block_steps (a last block of one step) trains like any other."""
    for timing in ("step", "window"):
        rule = make_rule("lif", (64, 20, 10), {"timing": timing, "block_steps": 4}, steps=9)
        features, labels = next(batches(digits, 1))
        assert np.isfinite(rule.train_batch(features, labels))


@pytest.mark.timeout(180)
def test_cli_train_eval_simulate(run_cli, tmp_path):
    import json

    run_cli("train", "digits-sigprop-rate", "--epochs", "2", "--out", "rate.h5", "--json", check_rc=0)
    evaluated = json.loads(run_cli("eval", "rate.h5", "--json", check_rc=0).stdout)
    simulated = json.loads(run_cli("simulate", "rate.h5", "--json", check_rc=0).stdout)
    assert evaluated["accuracy"] == simulated["accuracy"] > 0.5
    assert PROJECTION_KEY in load_network(tmp_path / "rate.h5").extras
    bad = tmp_path / "bad.yaml"
    bad.write_text((load_config("digits-sigprop-rate").path.read_text()).replace("loss: similarity_ce", "loss: hinge"))
    failed = run_cli("train", str(bad), check_rc=2)
    assert "rule.loss must be one of similarity_ce, l2" in failed.stderr and "Traceback" not in failed.stderr
