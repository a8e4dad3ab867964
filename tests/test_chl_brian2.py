"""The STDP-style CHL rule written as Brian2 Synapses gives the same weight change as torch."""

import numpy as np
import pytest
import torch
from conftest import small_spiking_chl_rule

from neurocredit.network import LIFParameters
from neurocredit.encoders import encode_torch
from neurocredit.rules.chl import phase_weights
from neurocredit.rules.chl_lif import spiking_initial_state, spiking_settle_step
from neurocredit.rules.chl_traces import TraceParameters, replay_eligibility
from neurocredit.network import EncoderSpec

pytestmark = pytest.mark.needs_brian2
DTYPE = torch.float64


def relative_difference(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.timeout(120)
def test_brian2_equals_torch_on_random_trains_sequential_phases():
    from neurocredit.rules.chl_brian2 import eligibility

    rng = np.random.default_rng(0)
    steps, batch, n_pre, n_post = 60, 3, 6, 5
    pre = (rng.random((steps, batch, n_pre)) < 0.3).astype(np.float64)
    post = (rng.random((steps, batch, n_post)) < 0.4).astype(np.float64)
    free, nudged = phase_weights(30, 5, 30, 5)
    schedule = np.repeat(np.concatenate([free, nudged])[:, None], batch, axis=1)
    params = TraceParameters(pre_decay=0.8, post_decay=0.6)
    expected = replay_eligibility(pre, post, schedule, params)
    got = eligibility(pre, post, schedule, params)
    assert np.abs(expected).max() > 0.01
    assert relative_difference(got, expected) <= 1e-9


@pytest.mark.timeout(120)
def test_brian2_equals_torch_on_the_trains_of_a_settling_network():
    """Spike trains of a real two-phase run (free and nudged copies side by side from rest, on
    the same input train, as SpikingCHL runs them); per-copy phase weights."""
    from neurocredit.rules.chl_brian2 import eligibility

    generator = torch.Generator().manual_seed(3)
    sizes = (8, 12, 4)
    weights = [torch.randn(n_out, n_in, generator=generator, dtype=DTYPE) * 1.5 / n_in ** 0.5
               for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    biases = [torch.full((n,), 0.05, dtype=DTYPE) for n in sizes[1:]]
    feedback = [weights[1].T]
    params = LIFParameters(du=0.5, dv=0.2, vth=1.0)
    batch, steps = 2, 40
    features = torch.rand(batch, sizes[0], generator=generator, dtype=DTYPE)
    target = torch.zeros(2 * batch, sizes[-1], dtype=DTYPE)
    target[:, 1] = 0.5
    betas = torch.tensor([0.0] * batch + [1.0] * batch, dtype=DTYPE)
    state = spiking_initial_state(sizes, 2 * batch, DTYPE, "cpu")
    free, nudged = phase_weights(steps, 5, steps, 5)
    schedule = np.concatenate([np.repeat(free[:, None], batch, 1), np.repeat(nudged[:, None], batch, 1)], 1)
    encoder = EncoderSpec("bernoulli", steps, 1.0, 0)
    recorded = [[], [], []]
    for t in range(steps):
        spikes_in = encode_torch(encoder, features, 1, generator, start=t, window=encoder.steps)[0].repeat(2, 1)
        teaching = betas[:, None] * (target - state.emitted[-1])
        state = spiking_settle_step(params, weights, biases, feedback, 0.2, state, spikes_in, teaching)
        for layer, spikes in enumerate(state.emitted):
            recorded[layer].append(spikes.numpy().copy())
    trains = [np.stack(r) for r in recorded]
    assert all(train.sum() > 0 for train in trains)
    trace_params = TraceParameters(0.8, 0.8)
    for layer in range(2):
        expected = replay_eligibility(trains[layer], trains[layer + 1], schedule, trace_params)
        got = eligibility(trains[layer], trains[layer + 1], schedule, trace_params)
        assert np.abs(expected).max() > 0.01
        assert relative_difference(got, expected) <= 1e-9


def test_brian2_rule_is_written_as_on_pre_and_on_post_code():
    from neurocredit.rules import chl_brian2

    assert "elig += phase_weight(t, copy) * apost" in chl_brian2.CHL_ON_PRE
    assert "elig += phase_weight(t, copy) * apre" in chl_brian2.CHL_ON_POST
    assert "(event-driven)" in chl_brian2.CHL_SYNAPSE_MODEL
    tau_pre, tau_post = chl_brian2.trace_time_constants(TraceParameters(0.8, 0.5))
    assert np.exp(-1.0 / tau_pre) == pytest.approx(0.8) and np.exp(-1.0 / tau_post) == pytest.approx(0.5)


@pytest.mark.timeout(120)
def test_brian2_agrees_with_a_recorded_training_run_of_the_rule():
    """agreement_on_rule (what `make demo` prints): Brian2 and torch eligibilities of every
    layer from the spikes of one two-phase run of a SpikingCHL rule."""
    from neurocredit.rules.chl_brian2 import agreement_on_rule

    rule = small_spiking_chl_rule()
    features = torch.rand(3, 12, generator=torch.Generator().manual_seed(4))
    differences = agreement_on_rule(rule, features, torch.tensor([0, 2, 3]))
    assert len(differences) == 2
    assert max(differences) <= 1e-9
