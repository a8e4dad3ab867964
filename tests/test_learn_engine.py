"""The learning engine re-implementation (neurocredit.learn.engine) against Lava's LearningDense:
fixed point bit for bit (weights, tag, x1 trace at every step), floating point to 1e-9; the
documented fixed-point arithmetic; rules Lava rejects and networks too large for one core."""

from __future__ import annotations

import numpy as np
import pytest

from neurocredit.errors import NeurocreditError
from neurocredit.learn.engine import LearningSynapses, RuleSpec, compile_rule
from neurocredit.learn.onchip import dfa_rule_strings

_TAG_DW, _TAG_DT = dfa_rule_strings(-3, tag_exponent=-2)

# The on-chip DFA weight rule and the STDP-style CHL rule (tag accumulates the phase-signed
# pre/post trace products, transferred to the weight every 2 epochs), each with x0, y0 and u
# dependencies exercised.
RULES = {
    "dfa": RuleSpec(dw=dfa_rule_strings(-3)[0], x1_impulse=20.5, x1_tau=6, t_epoch=4, rng_seed=7),
    # the DFA products in the tag, moved to the weight by y1 on a post spike (the transfer bAP)
    "dfa-tag": RuleSpec(dw=_TAG_DW, dt=_TAG_DT, x1_impulse=20.5, x1_tau=6, t_epoch=4, rng_seed=7),
    "chl": RuleSpec(dw="u1*t", dt="x0*y1*y2 - x0*y1*y3 + y0*x1*y2 - y0*x1*y3 - u1*t", x1_impulse=12.25,
                    x1_tau=5, x2_impulse=3, x2_tau=10, t_epoch=3, rng_seed=11),
}


def _drive(steps=240, n_pre=7, n_post=5, seed=0):
    rng = np.random.default_rng(seed)
    pre = (rng.random((steps, n_pre)) < 0.3).astype(np.uint8)
    post = (rng.random((steps, n_post)) < 0.3).astype(np.uint8)
    y = rng.integers(0, 128, size=(steps, 3, n_post)).astype(np.int32)
    weights = (rng.integers(-100, 100, size=(n_post, n_pre)) * 2).astype(np.int32)
    return pre, post, y, weights


def _engine_run(spec, weights, pre, post, y, fixed):
    engine = LearningSynapses(compile_rule(spec), weights.copy(), fixed=fixed)
    per_step = {"weights": [], "tag_1": [], "x1": []}
    for t in range(pre.shape[0]):
        engine.step(pre[t], post[t], y[t])
        per_step["weights"].append(engine.weights.copy())
        per_step["tag_1"].append(engine.tag_1.copy())
        per_step["x1"].append(engine.x[0].copy())
    return {name: np.array(values) for name, values in per_step.items()}, engine


@pytest.mark.needs_lava
@pytest.mark.timeout(60)
@pytest.mark.parametrize("rule", sorted(RULES))
def test_fixed_engine_equals_lava_fixed_point_bit_for_bit(rule):
    from neurocredit.learn.lava_run import run_learning_dense

    spec = RULES[rule]
    pre, post, y, weights = _drive()
    lava = run_learning_dense(spec, weights, pre, post, y, fixed=True)
    ours, engine = _engine_run(spec, weights, pre, post, y, fixed=True)
    assert engine.counts.epochs == pre.shape[0] // spec.t_epoch >= 60
    assert np.count_nonzero(ours["weights"][-1] != weights) > weights.size // 2  # it learned
    np.testing.assert_array_equal(ours["weights"], lava.weights)
    np.testing.assert_array_equal(ours["x1"], lava.x1)
    np.testing.assert_array_equal(ours["tag_1"], lava.tag_1)


@pytest.mark.needs_lava
@pytest.mark.timeout(60)
@pytest.mark.parametrize("rule", sorted(RULES))
def test_float_epoch_rule_equals_lava_floating_point(rule):
    from neurocredit.learn.lava_run import run_learning_dense

    spec = RULES[rule]
    pre, post, y, weights = _drive(seed=1)
    y = y.astype(np.float64) / 3.0  # graded float traces
    weights = weights.astype(np.float64) * 0.37
    lava = run_learning_dense(spec, weights, pre, post, y, fixed=False)
    ours, _ = _engine_run(spec, weights, pre, post, y, fixed=False)
    assert np.max(np.abs(ours["weights"][-1] - weights)) > 1.0
    np.testing.assert_allclose(ours["weights"], lava.weights, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours["tag_1"], lava.tag_1, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours["x1"], lava.x1, rtol=0, atol=1e-9)


def test_fixed_point_two_trace_product_loses_three_bits():
    # One epoch, one synapse: x1 = 100 (impulse at the epoch's last step), y2 = 64 held by the
    # neuron; dw = 2^-2 * u0 * x1 * y2. Float: 2^-2 * 100 * 64 * exp(-1/65535) = 1599.98 (a 3F
    # rule's y traces decay with tau 2**16 - 1 inside the epoch, in Lava too; no clipping).
    # Fixed: (100 * 64 * 1) >> 3 << 5 = 25600 accumulator units = 200 weight units + w,
    # clipped to 255 -- i.e. 2^-2 * x1 * y2 / 8 = 200, the 3 bits the 18-bit product loses.
    spec = RuleSpec(dw="2^-2*u0*x1*y2", x1_impulse=100, x1_tau=8, t_epoch=1, rng_seed=3)
    for fixed, expected in ((True, 10 + 200), (False, 10 + 1600 * np.exp(-1 / 65535))):
        engine = LearningSynapses(compile_rule(spec), np.array([[10]]), fixed=fixed)
        engine.step(np.array([1]), np.array([0]), np.array([[0], [64], [0]]))
        assert engine.x[0, 0] == 100
        assert engine.weights[0, 0] == pytest.approx(expected, abs=1e-9)


def test_fixed_point_one_trace_product_keeps_its_scale_and_weights_saturate():
    spec = RuleSpec(dw="2^3*u0*y2", t_epoch=1, rng_seed=3)
    engine = LearningSynapses(compile_rule(spec), np.array([[10, -250]]), fixed=True)
    engine.step(np.array([0, 0]), np.array([0]), np.array([[0], [5], [0]]))
    np.testing.assert_array_equal(engine.weights, [[10 + 40, -250 + 40]])
    for _ in range(10):
        engine.step(np.array([0, 0]), np.array([0]), np.array([[0], [5], [0]]))
    np.testing.assert_array_equal(engine.weights, [[255, 190]])


@pytest.mark.parametrize("text, words", [
    ("0.5*u0*x1*y2", "decimal literal"),
    ("2^-4*u0*(x1+y2)", "cannot be interpreted"),
    ("2^-4*x1*y2", "No dependency"),
])
def test_rules_lava_rejects_are_one_error(text, words):
    with pytest.raises(NeurocreditError, match="Lava rejects") as info:
        compile_rule(RuleSpec(dw=text), where="test rule")
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_impossible_power_of_two_scale_is_one_error():
    with pytest.raises(NeurocreditError, match=r"E in -7\.\.8"):
        compile_rule(RuleSpec(dw=dfa_rule_strings(-8)[0]), where="layer fc1 DFA rule")
    with pytest.raises(NeurocreditError, match="must within -7 and 9"):
        compile_rule(RuleSpec(dw="2^9*u0*x1"))


def test_weights_outside_the_learning_range_are_one_error():
    spec = RuleSpec(dw=dfa_rule_strings(-3)[0])
    with pytest.raises(NeurocreditError, match=r"\[-256, 255\]"):
        LearningSynapses(compile_rule(spec), np.array([[300]]), fixed=True)


def test_network_too_large_for_the_learning_engine_is_one_error():
    from neurocredit.learn.onchip import OnChipOptions, make_dfa_plan
    from neurocredit.network import EncoderSpec, LIFParameters, Network, NeuronSpec, init_layers

    # one neuron's 140,000 synapses do not fit a core's 131,072; a layer of many neurons is split over cores
    network = Network(init_layers((140_000, 2, 2), np.random.default_rng(0)), NeuronSpec("lif", lif=LIFParameters()),
                      EncoderSpec("bernoulli", steps=10))
    with pytest.raises(NeurocreditError, match="fc1.*synapses_per_core.*140000") as info:
        make_dfa_plan(network, OnChipOptions())
    assert "\n" not in str(info.value)
    from neurocredit.learn.onchip import check_engine_capacity

    large = Network(init_layers((784, 256, 10), np.random.default_rng(0)), NeuronSpec("lif", lif=LIFParameters()),
                    EncoderSpec("bernoulli", steps=10))
    assert check_engine_capacity(large).layers[0].cores == 2


def test_block_drawn_generators_give_lavas_one_at_a_time_sequence():
    from lava.magma.core.learning.random import ConnVarRandom, TraceRandom

    from neurocredit.learn.engine import _Stream, _TraceRandom

    ours, theirs = _TraceRandom(9, 10), TraceRandom(9, 10)
    conn_ours, conn_theirs = _Stream(2, integers=False), ConnVarRandom()
    for _ in range(2 * _Stream.BLOCK + 5):  # across block refills
        assert ours.trace_decay == theirs.random_trace_decay
        assert ours.impulse_addition == theirs.random_impulse_addition
        assert conn_ours.value == conn_theirs.random_stochastic_round
        ours.advance()
        theirs.advance()
        conn_ours.advance()
        conn_theirs.advance()
