"""Contrastive Hebbian learning / equilibrium propagation (neurocredit.rules.chl)."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from conftest import small_spiking_chl_rule

from neurocredit.config import load_config, models_dir
from neurocredit.data import load_digits
from neurocredit.errors import NeurocreditError
from neurocredit.io import load_network, save_network
from neurocredit.neurons import activation, activation_change
from neurocredit.rules import rule_class
from neurocredit.rules.chl import RateCHLOptions, SpikingCHLOptions, layer_scales, make_feedback, phase_weights
from neurocredit.rules.chl_rate import Nudge, cost_value, ep_gradients, feedforward_states, settle, settle_nudged
from neurocredit.rules.chl_traces import TraceParameters, chl_trace_step, trace_initial_state
from neurocredit.sim import simulate
from neurocredit.train import train

DTYPE = torch.float64


def quiet(line):
    pass


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def tiny_network(sizes=(6, 5, 4, 3), seed=0, scale=0.6):
    generator = torch.Generator().manual_seed(seed)
    weights = [scale * torch.randn(n_out, n_in, generator=generator, dtype=DTYPE) / n_in ** 0.5
               for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    biases = [0.1 * torch.randn(n_out, generator=generator, dtype=DTYPE) for n_out in sizes[1:]]
    features = torch.rand(7, sizes[0], generator=generator, dtype=DTYPE)
    labels = torch.randint(0, sizes[-1], (7,), generator=generator)
    return weights, biases, features, labels


def transposes(weights):
    return [w.T for w in weights[1:]]


def cosine(a, b):
    return float((a * b).sum() / (a.norm() * b.norm()))


@pytest.mark.parametrize("gain", [1.0, 0.3])
def test_free_phase_settles(gain):
    weights, biases, features, _ = tiny_network()
    start = feedforward_states(weights, biases, "tanh", features)
    states, change = settle(weights, biases, transposes(weights), gain, "tanh", features, start, 100)
    assert change < 1e-9
    # the settled state is a fixed point: one more step changes nothing
    again, change_again = settle(weights, biases, transposes(weights), gain, "tanh", features, states, 1)
    assert change_again < 1e-9
    # feedback moved the state away from the feed-forward pass, less so for a smaller gain
    assert max(float((s - f).abs().max()) for s, f in zip(states, start)) > 1e-4


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "relu"])
def test_activation_change_keeps_float32_precision_of_small_changes(name):
    """f(a + Δ) - f(a) for |Δ| ~ 1e-6: float32 activations subtracted keep about one digit of it
    (their rounding is ~6e-8); the addition-theorem form keeps float32's relative precision."""
    generator = torch.Generator().manual_seed(3)
    pre = 2.0 * torch.randn(4096, generator=generator, dtype=DTYPE)
    change = 1e-6 * torch.randn(4096, generator=generator, dtype=DTYPE)
    exact = activation_change(name, pre, change)
    assert torch.allclose(exact, activation(name, pre + change) - activation(name, pre), rtol=1e-6, atol=1e-15)
    single_pre, single_change = pre.float(), change.float()
    got = activation_change(name, single_pre, single_change, activation(name, single_pre)).double()
    subtracted = (activation(name, single_pre + single_change) - activation(name, single_pre)).double()
    # against the float64 change of the float32 inputs (their own rounding is not the method's)
    reference = activation_change(name, single_pre.double(), single_change.double())
    scale = reference.abs().max()
    assert float((got - reference).abs().max() / scale) < 1e-5
    if name != "relu":  # relu's change is Δ itself where a > 0 (exact either way when a + Δ rounds to a + Δ)
        assert float((subtracted - reference).abs().max() / scale) > 1e-2


@pytest.mark.parametrize("boundary", [Nudge(0.5), Nudge(-0.5), Nudge(0.5, "mse"), Nudge(0.0), Nudge(clamp=True)],
                         ids=["plus", "minus", "mse", "free", "clamped"])
@pytest.mark.parametrize("name", ["tanh", "sigmoid", "relu"])
def test_nudged_phase_as_changes_is_the_settling_from_the_free_state(boundary, name):
    weights, biases, features, labels = tiny_network()
    boundary = boundary._replace(target=torch.nn.functional.one_hot(labels, 3).to(DTYPE))
    feedback = transposes(weights)
    start = feedforward_states(weights, biases, name, features)
    free, _ = settle(weights, biases, feedback, 0.5, name, features, start, 3)  # not yet settled
    nudged, _ = settle(weights, biases, feedback, 0.5, name, features, free, 5, boundary)
    changes = settle_nudged(weights, biases, feedback, 0.5, name, features, free, 5, boundary)
    for state, change, want in zip(free, changes, nudged):
        assert torch.allclose(state + change, want, rtol=0, atol=1e-12)


def test_smaller_gain_keeps_the_fixed_point_closer_to_the_feedforward_pass():
    weights, biases, features, _ = tiny_network()
    start = feedforward_states(weights, biases, "tanh", features)
    distances = []
    for gain in (1.0, 0.3, 0.05):
        states, _ = settle(weights, biases, transposes(weights), gain, "tanh", features, start, 80)
        distances.append(float((states[-1] - start[-1]).abs().max()))
    assert distances[0] > distances[1] > distances[2] > 0


def recurrent_backprop(weights, biases, features, labels, gain, cost, steps=120):
    """Gradient of the cost at the free equilibrium by autograd through the unrolled settling."""
    weights = [w.clone().requires_grad_(True) for w in weights]
    biases = [b.clone().requires_grad_(True) for b in biases]
    start = feedforward_states(weights, biases, "tanh", features)
    states, _ = settle(weights, biases, transposes(weights), gain, "tanh", features, start, steps)
    loss = cost_value(cost, states[-1], labels)
    grads = torch.autograd.grad(loss, weights + biases)
    return list(grads[: len(weights)]), list(grads[len(weights):])


@pytest.mark.parametrize("gain,cost,nudge", [(1.0, "cross_entropy", "symmetric"), (0.5, "mse", "symmetric"),
                                             (1.0, "mse", "positive")])
def test_ep_update_approaches_the_gradient_at_the_free_equilibrium(gain, cost, nudge):
    """The EP theorem: with symmetric feedback and β -> 0 the contrastive update is the gradient
    of the cost at the free fixed point, here computed independently by recurrent backprop."""
    weights, biases, features, labels = tiny_network()
    expected_w, expected_b = recurrent_backprop(weights, biases, features, labels, gain, cost)
    for beta in (1e-3,):
        got_w, got_b, _ = ep_gradients(weights, biases, transposes(weights), gain, "tanh", features, labels, 3,
                                       beta, nudge, cost, free_steps=120, nudged_steps=120)
        for got, expected in zip(got_w + got_b, expected_w + expected_b):
            assert cosine(got, expected) > 0.99
            assert float((got - expected).norm() / expected.norm()) < 0.05


def test_ep_error_shrinks_with_beta():
    weights, biases, features, labels = tiny_network()
    expected_w, _ = recurrent_backprop(weights, biases, features, labels, 1.0, "cross_entropy")
    errors = []
    for beta in (0.5, 0.05, 0.005):
        got_w, _, _ = ep_gradients(weights, biases, transposes(weights), 1.0, "tanh", features, labels, 3, beta,
                                   "positive", "cross_entropy", 120, 120)
        errors.append(sum(float((g - e).norm()) for g, e in zip(got_w, expected_w)))
    assert errors[0] > errors[1] > errors[2]


def test_layer_scales_compensate_the_feedback_gain():
    assert layer_scales(3, 0.5) == [4.0, 2.0, 1.0]
    assert layer_scales(1, 0.1) == [1.0]


def test_clamped_and_random_feedback_give_finite_updates():
    weights, biases, features, labels = tiny_network()
    options = RateCHLOptions(feedback="random")
    feedback = [torch.tensor(m, dtype=DTYPE) for m in make_feedback((6, 5, 4, 3), options)]
    assert [tuple(m.shape) for m in feedback] == [(5, 4), (4, 3)]
    for nudge, cost in (("clamped", "mse"), ("positive", "cross_entropy")):
        got_w, got_b, _ = ep_gradients(weights, biases, feedback, 0.5, "tanh", features, labels, 3, 0.5, nudge,
                                       cost, 30, 30)
        assert all(torch.isfinite(g).all() and g.abs().max() > 0 for g in got_w + got_b)


def test_bad_options_are_clear_errors():
    with pytest.raises(NeurocreditError, match="clamped"):
        RateCHLOptions(nudge="clamped", cost="cross_entropy")
    with pytest.raises(NeurocreditError, match="feedback_gain"):
        RateCHLOptions(feedback_gain=0.0)
    with pytest.raises(NeurocreditError, match="free_steps = nudged_steps"):
        SpikingCHLOptions(nudged_start="rest", free_steps=20, nudged_steps=30)
    with pytest.raises(NeurocreditError, match="unknown key 'gamma'"):
        rule_class("chl", "rate").parse_options({"gamma": 0.1}, "x.yaml: rule")
    with pytest.raises(NeurocreditError, match="^x.yaml: rule.nudge: clamped"):
        rule_class("chl", "rate").parse_options({"nudge": "clamped"}, "x.yaml: rule")
    with pytest.raises(NeurocreditError, match="^x.yaml: rule.trace_decay"):
        rule_class("chl", "lif").parse_options({"trace_decay": 1.0}, "x.yaml: rule")


# --------------------------------------------------------------------------- STDP-style traces


def test_trace_step_pairs_by_hand():
    params = TraceParameters(pre_decay=0.5, post_decay=0.25)
    state = trace_initial_state(1, 1, 1, np.zeros(1))
    pre = [1.0, 0.0, 0.0, 1.0]
    post = [0.0, 0.0, 1.0, 1.0]
    for p, q in zip(pre, post):
        state = chl_trace_step(params, state, np.array([[p]]), np.array([[q]]), 2.0)
    # t=2: post meets the pre trace 0.5^2; t=3: the pre spike meets post trace 0.25 (t=2's spike),
    # then the post spike meets the pre trace 0.5^3 + 1 (coincident pair counted once)
    expected = 2.0 * (0.25 + 0.25 + (0.125 + 1.0))
    assert state.eligibility[0, 0] == pytest.approx(expected, abs=1e-15)
    assert state.post_eligibility[0] == pytest.approx(2.0 * 2)
    assert state.pre_trace[0, 0] == pytest.approx(0.125 + 1.0)
    assert state.post_trace[0, 0] == pytest.approx(0.25 + 1.0)


def test_trace_step_is_pure_and_constant_in_memory():
    params = TraceParameters(0.8, 0.8)
    state = trace_initial_state(4, 3, 2, torch.zeros(1, dtype=DTYPE))
    generator = torch.Generator().manual_seed(0)
    shapes = [tuple(x.shape) for x in state]
    for _ in range(50):
        pre = (torch.rand(4, 3, generator=generator, dtype=DTYPE) < 0.4).to(DTYPE)
        post = (torch.rand(4, 2, generator=generator, dtype=DTYPE) < 0.4).to(DTYPE)
        before = [x.clone() for x in state]
        new = chl_trace_step(params, state, pre, post, torch.full((4,), 0.1, dtype=DTYPE))
        assert all(torch.equal(a, b) for a, b in zip(before, state))  # input untouched
        state = new
    assert [tuple(x.shape) for x in state] == shapes


def test_copies_sharing_the_input_give_the_eligibility_of_the_repeated_input():
    """copies=2 (free and nudged copies on one input train, pre given once) equals passing the
    repeated pre spikes with copies=1, to float64 rounding; the spiking step is exact."""
    from neurocredit.network import LIFParameters
    from neurocredit.rules.chl_lif import spiking_initial_state, spiking_settle_step

    params = TraceParameters(0.8, 0.6)
    generator = torch.Generator().manual_seed(5)
    batch, n_pre, n_post = 3, 7, 4
    shared = trace_initial_state(batch, n_pre, n_post, torch.zeros(1, dtype=DTYPE), copies=2)
    repeated = trace_initial_state(2 * batch, n_pre, n_post, torch.zeros(1, dtype=DTYPE))
    weights = torch.cat([torch.full((batch,), -0.1), torch.full((batch,), 0.2)]).to(DTYPE)
    for _ in range(30):
        pre = (torch.rand(batch, n_pre, generator=generator, dtype=DTYPE) < 0.4).to(DTYPE)
        post = (torch.rand(2 * batch, n_post, generator=generator, dtype=DTYPE) < 0.4).to(DTYPE)
        shared = chl_trace_step(params, shared, pre, post, weights, copies=2)
        repeated = chl_trace_step(params, repeated, pre.repeat(2, 1), post, weights)
    assert float(repeated.eligibility.abs().max()) > 0.1
    torch.testing.assert_close(shared.eligibility, repeated.eligibility, rtol=1e-12, atol=1e-12)
    assert torch.equal(shared.post_eligibility, repeated.post_eligibility)
    assert torch.equal(shared.pre_trace.repeat(2, 1), repeated.pre_trace)

    lif = LIFParameters(0.5, 0.2, 1.0)
    sizes = (7, 5, 3)
    net_weights = [torch.randn(o, i, generator=generator, dtype=DTYPE) for i, o in zip(sizes[:-1], sizes[1:])]
    biases = [torch.full((n,), 0.1, dtype=DTYPE) for n in sizes[1:]]
    feedback = [net_weights[1].T]
    teaching = torch.cat([torch.zeros(batch, 3), torch.ones(batch, 3)]).to(DTYPE)
    one = spiking_initial_state(sizes, batch, DTYPE, "cpu", copies=2)
    two = spiking_initial_state(sizes, 2 * batch, DTYPE, "cpu")
    for _ in range(10):
        spikes_in = (torch.rand(batch, 7, generator=generator, dtype=DTYPE) < 0.5).to(DTYPE)
        one = spiking_settle_step(lif, net_weights, biases, feedback, 0.5, one, spikes_in, teaching, copies=2)
        two = spiking_settle_step(lif, net_weights, biases, feedback, 0.5, two, spikes_in.repeat(2, 1), teaching)
    assert float(two.emitted[-1].sum()) > 0
    assert all(torch.equal(a, b) for a, b in zip(one.emitted[1:], two.emitted[1:]))


def test_normalised_eligibility_estimates_the_rate_product():
    params = TraceParameters(0.8, 0.7)
    generator = torch.Generator().manual_seed(1)
    steps, batch = 400, 200
    rate_pre, rate_post = torch.tensor([0.2, 0.6], dtype=DTYPE), torch.tensor([0.1, 0.5, 0.9], dtype=DTYPE)
    state = trace_initial_state(batch, 2, 3, torch.zeros(1, dtype=DTYPE))
    for _ in range(steps):
        pre = (torch.rand(batch, 2, generator=generator, dtype=DTYPE) < rate_pre).to(DTYPE)
        post = (torch.rand(batch, 3, generator=generator, dtype=DTYPE) < rate_post).to(DTYPE)
        state = chl_trace_step(params, state, pre, post, 1.0 / steps)
    estimate = state.eligibility / (params.pair_window * batch)
    np.testing.assert_allclose(estimate.numpy(), torch.outer(rate_post, rate_pre).numpy(), rtol=0.05, atol=0.004)


def test_phase_weights_sum_to_minus_and_plus_one():
    free, nudged = phase_weights(30, 5, 20, 4)
    assert free[:5].tolist() == [0.0] * 5 and nudged[:4].tolist() == [0.0] * 4
    assert free.sum() == pytest.approx(-1.0) and nudged.sum() == pytest.approx(1.0)


# --------------------------------------------------------------------------- learning, saving, evaluating


def test_rate_chl_learns_digits_above_90_percent_and_saves_feedback(digits, tmp_path):
    config = load_config("digits-chl-rate")
    result = train(config, epochs=4, dataset=digits, progress=False, log=quiet)
    assert result.test_accuracy > 0.90  # the saved feed-forward network, through the rate backend
    assert result.history[-1].validation_accuracy > 0.90  # the settled network (rule's own prediction, validation split)
    network = result.network
    assert network.extras["chl/feedback_1"].shape == (256, 256)
    np.testing.assert_array_equal(network.extras["chl/feedback_2"], network.weights[2].T)
    path = save_network(network, tmp_path / "chl.h5")
    loaded = load_network(path)
    assert loaded.extras["chl/feedback_gain"][0] == pytest.approx(0.05)
    assert simulate(loaded, digits.x_test, digits.y_test).accuracy == result.test_accuracy


@pytest.mark.needs_brian2
def test_spiking_chl_through_the_cli(run_cli, tmp_path):
    """train -> HDF5 -> eval/info/simulate from the command line; Brian2 and Norse give the same
    spike counts for the saved CHL network."""
    model = tmp_path / "chl.h5"
    result = run_cli("--threads", "1", "train", models_dir() / "digits-chl-snn.yaml", "--epochs", "1", "--out", model,
                     "--no-progress", check_rc=0)
    assert "epoch   1/1" in result.stdout
    evaluated = json.loads(run_cli("eval", model, "--json", check_rc=0).stdout)
    assert evaluated["backend"] == "norse" and evaluated["samples"] == 359 and evaluated["accuracy"] > 0.6
    info = json.loads(run_cli("info", model, "--json", check_rc=0).stdout)
    assert info["provenance"]["rule"] == "chl" and info["sizes"] == [64, 256, 10]
    runs = {backend: json.loads(run_cli("simulate", model, "--backend", backend, "--limit", "5", "--json",
                                        check_rc=0).stdout) for backend in ("norse", "brian2")}
    assert runs["norse"]["mean_spikes_per_sample"] == runs["brian2"]["mean_spikes_per_sample"]
    assert runs["norse"]["accuracy"] == runs["brian2"]["accuracy"]


def test_random_feedback_stays_fixed_and_is_reloaded(digits):
    config = load_config("digits-chl-rate")
    raw_options = dict(config.rule.options, feedback="random")
    config = dataclasses.replace(config, rule=dataclasses.replace(config.rule, options=raw_options))
    result = train(config, epochs=1, dataset=digits, progress=False, log=quiet)
    options = rule_class("chl", "rate").parse_options(raw_options)
    fresh = make_feedback(result.network.sizes, options)
    for i, matrix in enumerate(fresh):
        np.testing.assert_array_equal(result.network.extras[f"chl/feedback_{i + 1}"], matrix)
    rule = rule_class("chl", "rate")(result.network, options, config.training, 10)
    np.testing.assert_array_equal(rule.random_feedback[0].numpy(), fresh[0])


@pytest.mark.timeout(120)
def test_spiking_chl_learns_digits_above_80_percent(digits):
    config = load_config("digits-chl-snn")
    result = train(config, epochs=3, dataset=digits, progress=False, log=quiet)
    assert result.test_accuracy > 0.80  # the saved feed-forward LIF network, through the norse backend
    assert result.network.neuron.spiking
    assert result.network.extras["chl/feedback_1"].shape == (result.network.sizes[1], 10)


def test_spiking_phases_from_rest_differ_only_by_the_teaching_current():
    """Free and nudged copies from rest on the same input train: with the teaching current off,
    every eligibility cancels (to float32 rounding); with it on, the output layer's does not."""
    from neurocredit.rules.chl_lif import spiking_initial_state

    rule = small_spiking_chl_rule()
    features = torch.rand(3, 12, generator=torch.Generator().manual_seed(0))
    free, nudged = (torch.tensor(w, dtype=torch.float32) for w in phase_weights(12, 2, 12, 2))
    per_step = torch.cat([free[:, None].expand(12, 3), nudged[:, None].expand(12, 3)], 1)
    targets = torch.zeros(6, 4)
    targets[:, 0] = 0.8
    results = []
    for beta in (0.0, 4.0):
        betas = torch.tensor([0.0] * 3 + [beta] * 3)
        state = spiking_initial_state(rule.spec.sizes, 3, torch.float32, "cpu", copies=2)
        _, traces, counts = rule._run(features, state, rule._fresh_traces(3, copies=2), 12, per_step, betas, targets,
                                      torch.Generator().manual_seed(1), copies=2)
        assert counts.sum() > 0
        results.append(traces)
    nudged_size = float(results[1][-1].eligibility.abs().max())
    assert nudged_size > 0.01
    # cancellation up to float32 rounding of the batch sums
    assert all(float(t.eligibility.abs().max()) < 1e-5 * nudged_size for t in results[0])


@pytest.mark.parametrize("nudged_start", ["rest", "free_state"])
@pytest.mark.parametrize("nudge", ["positive", "symmetric"])
def test_spiking_modes_update_every_layer(nudged_start, nudge):
    rule = small_spiking_chl_rule(nudged_start=nudged_start, nudge=nudge)
    before = [w.clone() for w in rule.weights]
    generator = torch.Generator().manual_seed(2)
    loss = rule.train_batch(torch.rand(8, 12, generator=generator), torch.randint(0, 4, (8,), generator=generator))
    assert np.isfinite(loss)
    assert all(float((w - b).abs().max()) > 0 for w, b in zip(rule.weights, before))
    assert rule.predict(torch.rand(5, 12, generator=generator)).shape == (5, 4)


@pytest.mark.parametrize("nudge", ["positive", "symmetric"])
def test_recorded_phase_trains_replay_to_the_weight_change_of_a_training_step(nudge):
    """phase_spike_trains records the spikes a training step sees (the same input train for the
    same seed); replaying them through the trace rule gives that step's weight change (SGD, lr 1)."""
    from neurocredit.config import TrainingConfig
    from neurocredit.rules.chl_traces import replay_eligibility

    training = TrainingConfig(seed=5, optimizer="sgd", learning_rate=1.0, momentum=0.0)
    rule = small_spiking_chl_rule(training=training, nudge=nudge)
    features = torch.rand(6, 12, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    trains, schedule = rule.phase_spike_trains(features, labels, seed=5)
    assert [t.shape for t in trains] == [(12, 12, 12), (12, 12, 16), (12, 12, 4)] and schedule.shape == (12, 12)
    assert not np.array_equal(trains[-1][:, :6], trains[-1][:, 6:])  # the teaching current acts
    before = [w.clone() for w in rule.weights]
    rule.train_batch(features, labels)
    denominator = (2.0 if nudge == "symmetric" else 1.0) * rule.options.beta
    for layer, (scale, weight, old) in enumerate(zip(rule.scales, rule.weights, before)):
        eligibility = replay_eligibility(trains[layer], trains[layer + 1], schedule, rule.trace_params)
        expected = scale / (denominator * 6) * eligibility / rule.trace_params.pair_window
        assert np.abs(expected).max() > 1e-3
        np.testing.assert_allclose((weight - old).double().numpy(), expected, rtol=0,
                                   atol=1e-5 * np.abs(expected).max())


def test_phase_spike_trains_need_the_phases_from_rest():
    rule = small_spiking_chl_rule(nudged_start="free_state")
    with pytest.raises(NeurocreditError, match="phase_spike_trains needs rule.nudged_start: rest"):
        rule.phase_spike_trains(torch.full((2, 12), 0.5), torch.tensor([0, 1]))
