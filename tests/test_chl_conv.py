"""Equilibrium propagation / STDP-style CHL on convolutional networks (neurocredit.rules.chl)."""

import numpy as np
import pytest
import torch
from conftest import peak_allocated_bytes, small_spiking_chl_rule
from convnets import asymmetric_conv_network, small_conv_lif_network

from neurocredit.config import TrainingConfig
from neurocredit.errors import NeurocreditError
from neurocredit.network import EncoderSpec, Network, NeuronSpec
from neurocredit.rules import rule_class
from neurocredit.rules.chl_rate import cost_value, ep_gradients, feedforward_states, settle
from neurocredit.train import train

DTYPE = torch.float64


def cosine(a, b):
    return float((a * b).sum() / (a.norm() * b.norm()))


def pooled_rate_network(seed=0):
    """The pooled conv network of tests/convnets.py as a tanh rate network."""
    return small_conv_lif_network(seed, gain=1.5).replace(neuron=NeuronSpec("rate", "tanh"), encoder=EncoderSpec())


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


def seeded_batch(network, rows, seed):
    """``rows`` random inputs in [0, 1) and labels, from their own seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.rand(rows, network.n_inputs, dtype=DTYPE, generator=generator)
    labels = torch.randint(0, network.n_outputs, (rows,), generator=generator)
    return features, labels


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
    labels = torch.randint(0, network.n_outputs, (5,))
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


def remainder_rate_network(seed=0):
    """1x8x8 -> conv 3@2x2 -> 3x7x7 -> 2x2 pool (a remainder row and column) fused into conv 4@1x1
    -> 4x3x3 -> 2x2 pool (remainder again) fused into dense 3; tanh rate units."""
    from neurocredit.network import init_typed_layers

    layers = init_typed_layers((1, 8, 8), [{"conv": {"channels": 3, "kernel": 2}}, {"pool": 2},
                                           {"conv": {"channels": 4, "kernel": 1}}, {"pool": 2}],
                               3, np.random.default_rng(seed), gain=1.5)
    return Network(layers, NeuronSpec("rate", "tanh"), EncoderSpec())


@pytest.mark.parametrize("make", [pooled_rate_network, remainder_rate_network])
def test_pooled_transposed_feedback_is_the_adjoint_of_the_fused_convolution(make):
    """Sum pool + pooled-form kernel and its transpose (transposed conv, then each value spread
    over its pool block) are the fused layer's synapses, remainder rows and columns included."""
    from neurocredit.conv import dense_matrix, torch_synaptic_input, torch_transposed_input

    network = make()
    pooled_convs = [layer for layer in network.layers if layer.kind == "conv2d" and layer.pool > 1]
    assert pooled_convs
    for layer in pooled_convs:
        matrix = torch.tensor(dense_matrix(layer))
        weight = torch.tensor(layer.weight, dtype=DTYPE)
        above = torch.randn(3, layer.n_out, dtype=DTYPE)
        below = torch.randn(3, layer.n_in, dtype=DTYPE)
        torch.testing.assert_close(torch_transposed_input(layer, weight, above, pooled=True), above @ matrix)
        torch.testing.assert_close(torch_synaptic_input(layer, weight, below, pooled=True), below @ matrix.T)


@pytest.mark.parametrize("make", [pooled_rate_network, strided_rate_network, remainder_rate_network])
@pytest.mark.parametrize("nudge", ["symmetric", "positive", "clamped"])
def test_pooled_settling_gives_the_fused_gradients_in_trainable_form(make, nudge):
    """What training runs (pooled form, trainable-form products) equals the fused path followed by
    the fusion's adjoint, to float64 rounding: the same sums in another order."""
    network = make()
    rule = rate_rule(network)
    features, labels = seeded_batch(network, 6, 4)
    weights, biases = rule.synaptic_parameters()
    common = (weights, biases, rule.feedback(weights), 0.5, "tanh", features, labels, network.n_outputs, 0.3, nudge,
              "cross_entropy", 12, 8, network.layers)
    fused_w, fused_b, fused_free = ep_gradients(*common)
    pooled_w, pooled_b, pooled_free = ep_gradients(*common, rule.unfused_layers)
    expected = rule.trainable_gradients(fused_w, fused_b)
    got = [*pooled_w, *pooled_b]
    assert [g.shape for g in got] == [e.shape for e in expected]
    for g, e in zip(got, expected):
        assert float(e.abs().max()) > 0
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-12)
    for g, e in zip(pooled_free, fused_free):
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-12)


def mid_rate_network(seed=0):
    """1x16x16 -> conv 8@5x5 (padding 2) -> 2x2 pool fused into conv 16@5x5 (padding 2) -> 2x2
    pool fused into dense 10; tanh rate units (the layer pattern of fmnist-chl-conv-rate, smaller)."""
    from neurocredit.network import init_typed_layers

    layers = init_typed_layers((1, 16, 16), [{"conv": {"channels": 8, "kernel": 5, "padding": 2}}, {"pool": 2},
                                             {"conv": {"channels": 16, "kernel": 5, "padding": 2}}, {"pool": 2}],
                               10, np.random.default_rng(seed), gain=1.0)
    return Network(layers, NeuronSpec("rate", "tanh"), EncoderSpec())


@pytest.mark.parametrize("pooled", [False, True])
def test_float32_ep_update_at_a_small_feedback_gain_matches_float64(pooled):
    """At feedback gain 0.001 the phases of the first layer differ by O(beta gain^2) ~ 5e-7,
    below float32's resolution of each phase's product summed over 64 samples x 256 positions
    and near that of the states themselves; the nudged phases run as changes from the free
    state and the update takes the phases' differences first, so float32 keeps the float64
    update (1 - cosine ~1e-12 per tensor; with the two phases' products subtracted 0.09 (fused
    form) / 0.22 (trainable form); with the products of differences but the nudged states
    settled in float32, 0.01 to 0.16 for the first layer's kernel and biases)."""
    network = mid_rate_network()
    rule = rate_rule(network)
    features, labels = seeded_batch(network, 64, 6)
    weights, biases = rule.synaptic_parameters()
    unfused = rule.unfused_layers if pooled else None

    def update(dtype):
        w, b = [x.to(dtype) for x in weights], [x.to(dtype) for x in biases]
        got_w, got_b, _ = ep_gradients(w, b, rule.feedback(w), 0.001, "tanh", features.to(dtype), labels,
                                       network.n_outputs, 0.5, "symmetric", "cross_entropy", 10, 6, network.layers,
                                       unfused)
        return [g.to(DTYPE) for g in got_w + got_b]

    cosines = [cosine(single, double) for single, double in zip(update(torch.float32), update(DTYPE))]
    assert 1.0 - min(cosines) < 1e-6


def test_rate_chl_training_step_on_a_pooled_network_follows_the_fused_gradient():
    """One SGD step of the rule (lr 1) moves each trainable tensor by minus the fused path's
    gradient in trainable form."""
    network = pooled_rate_network()
    cls = rule_class("chl", "rate")
    rule = cls(network, cls.parse_options({"feedback_gain": 0.5, "beta": 0.3, "free_steps": 12, "nudged_steps": 8}),
               TrainingConfig(optimizer="sgd", learning_rate=1.0, momentum=0.0), network.n_outputs)
    rule.weights = [w.to(DTYPE) for w in rule.weights]
    rule.biases = [b.to(DTYPE) for b in rule.biases]
    rule.dtype = DTYPE
    rule.optimizer = torch.optim.SGD(rule.parameters(), lr=1.0)
    features, labels = seeded_batch(network, 6, 5)
    weights, biases = rule.synaptic_parameters()
    o = rule.options
    fused = ep_gradients(weights, biases, rule.feedback(weights), o.feedback_gain, "tanh", features, labels,
                         network.n_outputs, o.beta, o.nudge, o.cost, o.free_steps, o.nudged_steps, network.layers)
    expected = rule.trainable_gradients(fused[0], fused[1])
    before = [p.detach().clone() for p in rule.parameters()]
    rule.train_batch(features, labels)
    for after, old, gradient in zip(rule.parameters(), before, expected):
        torch.testing.assert_close(old - after, gradient, rtol=1e-9, atol=1e-12)


def test_random_feedback_on_a_conv_network_is_one_clear_line():
    with pytest.raises(NeurocreditError, match="feedback: random.*feedback: symmetric"):
        rate_rule(pooled_rate_network(), feedback="random")


# --------------------------------------------------------------------------- spiking CHL on conv layers


def conv_spiking_rule(**changes):
    return small_spiking_chl_rule(network=small_conv_lif_network(), **changes)


@pytest.mark.parametrize("nudged_start,nudge", [("rest", "positive"), ("free_state", "symmetric")])
def test_spiking_conv_chl_updates_every_kernel(nudged_start, nudge):
    rule = conv_spiking_rule(nudged_start=nudged_start, nudge=nudge)
    before = [p.clone() for p in rule.parameters()]
    generator = torch.Generator().manual_seed(2)
    loss = rule.train_batch(torch.rand(6, 36, generator=generator), torch.randint(0, 4, (6,), generator=generator))
    assert np.isfinite(loss)
    assert [tuple(w.shape) for w in rule.weights] == [(3, 1, 3, 3), (4, 3, 2, 2), (4, 16)]
    assert all(float((p - b).abs().max()) > 0 for p, b in zip(rule.parameters(), before))
    assert rule.predict(torch.rand(5, 36, generator=generator)).shape == (5, 4)
    saved = rule.to_network()
    assert saved.layers[1].pool == 2 and saved.extras["chl/feedback_1"].shape == (4, 3, 4, 4)


@pytest.mark.parametrize("nudge", ["positive", "symmetric"])
def test_conv_phase_trains_replay_to_the_kernel_change_of_a_training_step(nudge):
    """The spikes of one two-phase run, replayed through the trace rule with the per-tap
    product, give that step's change of every shared kernel (SGD, lr 1)."""
    from neurocredit.config import TrainingConfig
    from neurocredit.rules.chl_traces import replay_eligibility

    rule = conv_spiking_rule(training=TrainingConfig(seed=5, optimizer="sgd", learning_rate=1.0, momentum=0.0),
                             nudge=nudge)
    features = torch.rand(4, 36, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([0, 1, 2, 3])
    trains, schedule = rule.phase_spike_trains(features, labels, seed=5)
    assert [t.shape[2] for t in trains] == [36, 108, 16, 4] and all(t.sum() > 0 for t in trains)
    before = [w.clone() for w in rule.weights]
    rule.train_batch(features, labels)
    denominator = (2.0 if nudge == "symmetric" else 1.0) * rule.options.beta
    fused = []
    for layer, scale, pre, post in zip(rule.spec.layers, rule.scales, trains[:-1], trains[1:]):
        eligibility = replay_eligibility(pre, post, schedule, rule.trace_params, layer)
        assert eligibility.shape == layer.weight.shape
        fused.append(torch.tensor(-scale / (denominator * 4) * eligibility / rule.trace_params.pair_window))
    biases = [torch.zeros(layer.n_out, dtype=torch.float64) for layer in rule.spec.layers]
    expected = rule.trainable_gradients(fused, biases)[: len(fused)]
    for weight, old, gradient in zip(rule.weights, before, expected):
        assert float(gradient.abs().max()) > 1e-4
        np.testing.assert_allclose((old - weight).double().numpy(), gradient.numpy(), rtol=0,
                                   atol=1e-5 * float(gradient.abs().max()))


def test_spiking_conv_chl_memory_is_flat_in_the_steps():
    features, labels = torch.rand(8, 36), torch.randint(0, 4, (8,))
    peaks = []
    for steps in (20, 100):
        rule = conv_spiking_rule(free_steps=steps, nudged_steps=steps)
        peaks.append(peak_allocated_bytes(lambda: rule.train_batch(features, labels)))
    assert peaks[1] < 1.1 * peaks[0]


@pytest.mark.needs_brian2
@pytest.mark.timeout(120)
def test_brian2_conv_synapses_equal_the_torch_rule_on_the_trains_of_a_training_run():
    """Brian2 CHL synapses on the conv connectivity expanded from the im2col indices: every
    kernel tap's eligibility (the sum of its synapses') equals the torch rule's, float64, on
    the spikes of one two-phase run (±β copies side by side). The conv layers only (the dense
    output layer: tests/test_chl_brian2.py)."""
    from neurocredit.rules.chl_brian2 import conv_eligibility
    from neurocredit.rules.chl_traces import replay_eligibility

    rule = conv_spiking_rule(nudge="symmetric")
    trains, schedule = rule.phase_spike_trains(torch.rand(2, 36, generator=torch.Generator().manual_seed(4)),
                                               torch.tensor([1, 3]))
    for layer, pre, post in list(zip(rule.spec.layers, trains[:-1], trains[1:]))[:2]:
        expected = replay_eligibility(pre, post, schedule, rule.trace_params, layer)
        got = conv_eligibility(layer, pre, post, schedule, rule.trace_params)
        assert got.shape == layer.weight.shape and np.abs(expected).max() > 0.1
        assert float(np.abs(got - expected).max() / np.abs(expected).max()) <= 1e-9


# --------------------------------------------------------------------------- digits: learning and the CLI


def quiet(line):
    pass


def test_rate_conv_ep_learns_digits_in_a_short_run(tmp_path, capsys):
    """models/digits-chl-conv-rate.yaml for 25 batches of one epoch (seeded); then the CLI on the
    saved model: info, eval (feed-forward rate backend) and simulate give the same accuracy."""
    import json

    from neurocredit.cli import main
    from neurocredit.config import load_config
    from neurocredit.io import save_network

    result = train(load_config("digits-chl-conv-rate"), epochs=1, progress=False, log=quiet, max_batches=25)
    assert result.test_accuracy > 0.75  # 83.8 % at feedback gain 0.001 (81.6 % at 0.01); chance is 10 %
    network = result.network
    assert [layer.kind for layer in network.layers] == ["conv2d", "conv2d", "dense"] and network.layers[1].pool == 2
    np.testing.assert_array_equal(network.extras["chl/feedback_2"], network.layers[2].weight.T)
    path = str(save_network(network, tmp_path / "conv-ep.h5"))
    assert main(["info", path, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["provenance"]["rule"] == "chl"
    assert main(["eval", path, "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["accuracy"] == pytest.approx(result.test_accuracy)
    assert main(["simulate", path, "--limit", "20", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == 20


@pytest.fixture(scope="module")
def spiking_conv_model(tmp_path_factory):
    """models/digits-chl-conv-snn.yaml at 8/16 channels (its former width) trained for 20 batches
    (seeded) at learning rate 0.003 and feedback gain 0.1: the config's 0.001 and 0.03 are chosen for
    its 15 epochs, and its 16/32 channels learn too little in 20 or 40 batches (58.8 / 69.6 %; 67.7 %
    with gain 0.03 at 8/16) to tell learning from noise in a short run: (result, path)."""
    import dataclasses

    from neurocredit.config import load_config
    from neurocredit.io import save_network

    config = load_config("digits-chl-conv-snn")
    layers = [{"conv": {"channels": 8, "kernel": 3, "padding": 1}}, {"pool": 2},
              {"conv": {"channels": 16, "kernel": 3, "padding": 1}}]
    config = dataclasses.replace(config, network=dataclasses.replace(config.network, layers=layers),
                                 training=dataclasses.replace(config.training, learning_rate=0.003),
                                 rule=dataclasses.replace(config.rule, options={**config.rule.options,
                                                                                "feedback_gain": 0.1}))
    result = train(config, epochs=1, progress=False, log=quiet, max_batches=20)
    return result, str(save_network(result.network, tmp_path_factory.mktemp("chlconv") / "conv-chl.h5"))


def test_spiking_conv_chl_learns_digits_in_a_short_run(spiking_conv_model):
    result, _ = spiking_conv_model
    assert result.test_accuracy > 0.70  # 79.4 % when written; chance is 10 %
    assert result.network.neuron.spiking and result.network.extras["chl/feedback_1"].shape == (16, 8, 6, 6)


@pytest.mark.timeout(300)
def test_cli_on_a_spiking_conv_chl_model(spiking_conv_model, capsys):
    """eval, simulate (Norse and Brian2 agree) and deploy --verify (emulator = Lava) on the model."""
    import json

    from neurocredit.cli import main

    result, path = spiking_conv_model
    assert main(["eval", path, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(result.test_accuracy)
    runs = {}
    for backend in ("norse", "brian2"):
        assert main(["simulate", path, "--backend", backend, "--limit", "3", "--json"]) == 0
        runs[backend] = json.loads(capsys.readouterr().out)
    assert runs["norse"]["mean_spikes_per_sample"] == runs["brian2"]["mean_spikes_per_sample"]
    assert min(runs["norse"]["mean_spikes_per_sample"]) > 0
    assert main(["deploy", path, "--target", "loihi2", "--verify", "--limit", "30", "--lava-limit", "2",
                 "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["spike_agreement"] == {"emulator_vs_lava": 1.0, "float_vs_lava_floating": 1.0}
