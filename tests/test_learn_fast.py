"""The compiled on-chip emulators (neurocredit.learn.fast) against the numpy ones they compile:
the same integer weights, tags, traces, neuron states and output spikes, bit for bit, for DFA and
CHL, also when numpy steps and compiled runs alternate, and for a tag at -257 (the one value
Lava's accumulator saturation changes when every product adds zero)."""

from __future__ import annotations

import numpy as np
import pytest

from neurocredit.learn import fast
from neurocredit.learn.engine import _Stream
from neurocredit.learn.onchip import (
    ChlEmulator,
    ChlOptions,
    DfaEmulator,
    OnChipOptions,
    encode_chl_stream,
    encode_stream,
    make_chl_plan,
    make_dfa_plan,
    with_epoch_samples,
)
from neurocredit.network import EncoderSpec, LIFParameters, Network, NeuronSpec, init_layers

pytestmark = pytest.mark.skipif(not fast.available(), reason="numba (extra onchip) is not installed")


def _network(sizes=(12, 9, 3), steps=8, seed=3):
    return Network(init_layers(sizes, np.random.default_rng(seed), gain=2.0),
                   NeuronSpec("lif", lif=LIFParameters(du=0.5, dv=0.2)), EncoderSpec("bernoulli", steps=steps, seed=0))


def _state(emulator):
    engines = emulator.engines
    return ([e.weights for e in engines] + [e.tag_1 for e in engines] + [e.tag_2 for e in engines]
            + [e.x for e in engines] + [e.y for e in engines] + [s[0] for s in emulator.states]
            + [s[1] for s in emulator.states] + list(emulator.buffers) + list(emulator.feedback_buffers))


def _assert_same(a, b):
    assert a.time_step == b.time_step
    assert a.counts == b.counts
    for x, y in zip(_state(a), _state(b)):
        np.testing.assert_array_equal(x, y)


def _pair(kind, x=None, y=None, sizes=(12, 9, 3), **dfa_options):
    """Two emulators of one plan (``kind``: dfa, dfa-tag, chl; ``dfa_options``: OnChipOptions
    fields over the DFA ones below) on ``x``, ``y`` (6 random samples by default), their input
    spikes, targets and period."""
    rng = np.random.default_rng(8)
    if x is None:
        x, y = rng.random((6, sizes[0])), rng.integers(0, sizes[-1], 6)
    if kind.startswith("dfa"):
        network = _network(sizes, steps=10)
        # dfa-tag: the tag moves to the weight every 2 samples, at half rate from the second
        # 3-sample epoch on
        tag = dict(tag_samples=2, tag_exponent=-1, rate_shifts=[0, 1]) if kind == "dfa-tag" else {}
        options = OnChipOptions(**{**dict(hidden_exponent=-4, output_exponent=-4, x1_impulse=16, error_shift=1,
                                          feedback_shift=3, settle=2), **tag, **dfa_options})
        plan = with_epoch_samples(make_dfa_plan(network, options), 3)
        spikes, targets = encode_stream(network, x, y, np.arange(len(y)), options.target_level)
        return DfaEmulator(plan), DfaEmulator(plan), spikes, targets, plan.neuron.period
    plan = make_chl_plan(_network(sizes), ChlOptions(tag_exponent=-3, hidden_tag_exponent=-3, weight_exponent=-1,
                                                     settle=2))
    spikes, targets = encode_chl_stream(plan, x, y, np.arange(len(y)))
    return ChlEmulator(plan), ChlEmulator(plan), spikes, targets, plan.period


@pytest.mark.parametrize("kind", ["dfa", "dfa-tag", "chl"])
def test_compiled_run_equals_the_numpy_steps_bit_for_bit(kind):
    ours, reference, spikes, targets, period = _pair(kind)
    reference.compiled = False
    counts = ours.run(spikes, targets)
    assert fast.compiled(ours) and not fast.compiled(reference, reference.compiled)
    np.testing.assert_array_equal(counts, reference.run(spikes, targets))
    _assert_same(ours, reference)
    start = [layer.weights for layer in ours.plan.layers]
    assert all(np.count_nonzero(w != s) > 0 for w, s in zip(ours.weights, start))  # every layer learned


@pytest.mark.parametrize("kind", ["dfa", "dfa-tag", "chl"])
def test_numpy_steps_and_compiled_runs_can_alternate(kind):
    ours, reference, spikes, targets, period = _pair(kind)
    reference.compiled = False
    reference.run(spikes, targets)
    for sample in range(len(spikes) // period):
        rows = slice(sample * period, (sample + 1) * period)
        ours.compiled = sample % 2 == 0
        ours.run(spikes[rows], targets[rows])
    _assert_same(ours, reference)


@pytest.mark.parametrize("kind", ["dfa", "dfa-tag", "chl"])
@pytest.mark.parametrize("delta_rows", [64, 2])
def test_long_rows_with_silent_column_blocks_match_the_numpy_engine(kind, delta_rows, monkeypatch):
    """Rows of 100 columns (three whole blocks of 32 and a tail) whose first and third blocks
    never spike: the compiled single-product row updates skip the silent blocks and share the
    deltas of equal row factors; with two delta rows (one kept factor a step, the others
    computed on the spare row) as with 64, the numpy engine's integers."""
    monkeypatch.setattr(fast, "_DELTA_ROWS", delta_rows)
    rng = np.random.default_rng(4)
    x, y = rng.random((6, 100)), rng.integers(0, 3, 6)
    x[:, 0:32] = 0
    x[:, 64:96] = 0
    ours, reference, spikes, targets, _ = _pair(kind, x, y, sizes=(100, 40, 3))
    reference.compiled = False
    np.testing.assert_array_equal(ours.run(spikes, targets), reference.run(spikes, targets))
    _assert_same(ours, reference)
    learned = ours.engines[0].weights != ours.plan.layers[0].weights
    if kind == "dfa-tag":
        learned |= ours.engines[0].tag_1 != 0
    assert learned[:, 32:64].any() and not learned[:, 0:32].any()  # learned, and only where inputs spiked


def test_tags_driven_to_minus_257_on_long_rows_match_the_numpy_engine():
    """On-chip DFA with a tag twice as fast as Fashion-MNIST's (2^-3 per product, the largest
    for which every term fits int16: the single-product row updates), on rows of 96 columns, in
    two compiled calls checked step by step against the numpy engine: saturated tags reach -257
    (only where the step's shared random rounds -32769 down: a cut of 127) inside those row
    updates' whole blocks (no last columns), which must count them (a tag at -257 is then handled
    apart) to give the numpy engine's integers."""
    rng = np.random.default_rng(6)
    x, y = rng.random((46, 96)), rng.integers(0, 3, 46)
    # the connection random (numpy's default_rng(2), whatever the seed) first gives a cut of 127
    # at steps 397, 404 and 449 (from 0): 46 samples of 10 steps, the tag moved to the weight once
    ours, reference, spikes, targets, _ = _pair("dfa", x, y, sizes=(96, 40, 3), hidden_exponent=-2,
                                                output_exponent=-2, tag_samples=23, tag_exponent=-3)
    reference.compiled = False
    # one call up to step 451: step 449 (a cut of 127) leaves whole blocks of tags at -257, and
    # step 450, a settle step, adds nothing: only the count carried from step to step makes the
    # engine saturate them to -256 as Lava does (later steps would hide a wrong count)
    at_257 = []
    for part in (slice(0, 451), slice(451, None)):
        out = fast.run_dfa(ours, spikes[part], targets[part])
        for step in range(part.start, part.stop or len(spikes)):
            np.testing.assert_array_equal(out[step - part.start], reference.step(spikes[step], targets[step]))
            at_257.append(np.count_nonzero(reference.engines[0].tag_1 == -257))
        _assert_same(ours, reference)
    assert at_257[449] > 32 and at_257[450] == 0  # whole blocks at -257, saturated the step after


def test_a_tag_at_minus_257_is_saturated_like_the_numpy_engine():
    ours, reference, spikes, targets, period = _pair("chl")
    reference.compiled = False
    for emulator in (ours, reference):
        emulator.engines[0].tag_1[:2] = -257  # rows the first steps' products do not all reach
    fast.run_chl(ours, spikes[:6], targets[:6])  # 6 steps: before the tag moves to the weight
    for step in range(6):
        reference.step(spikes[step], targets[step])
    assert np.count_nonzero(reference.engines[0].tag_1 == -256) > 0  # the saturation did happen
    _assert_same(ours, reference)


def test_stream_take_reads_what_advancing_one_at_a_time_reads():
    for integers in (False, True):
        stepped, taken = _Stream(5, integers), _Stream(5, integers)
        stepped.advance(_Stream.BLOCK - 3)  # cross a block boundary
        taken.advance(_Stream.BLOCK - 3)
        expected = []
        for _ in range(700):
            stepped.advance(2)
            expected.append(stepped.value)
        np.testing.assert_array_equal(taken.take(700, 2), expected)
        assert taken.value == stepped.value


def test_tags_at_minus_257_at_every_step_match_the_numpy_engine():
    """Tags set to -257 before every step, scattered over reached and unreached rows and columns
    (free and nudged learning steps, steps without input spikes, the step the tag moves to the
    weight): the compiled engine's in-place and pending paths and its -257 bookkeeping give the
    numpy engine's integers."""
    ours, reference, spikes, targets, period = _pair("chl")
    reference.compiled = False
    rng = np.random.default_rng(5)
    for step in range(len(spikes)):
        for index in range(len(ours.engines)):
            mask = rng.random(ours.engines[index].tag_1.shape) < 0.2
            for emulator in (ours, reference):
                emulator.engines[index].tag_1[mask] = -257
        fast.run_chl(ours, spikes[step:step + 1], targets[step:step + 1])
        reference.step(spikes[step], targets[step])
        _assert_same(ours, reference)


def _chl_pair_with_rule(rules: dict, first_seed: int):
    """The CHL emulator pair of :func:`_pair` (the reference on its numpy steps) with every layer's
    engine replaced by one learning ``rules`` (dw / dd / dt strings) from the same weights."""
    from neurocredit.learn.engine import LearningSynapses, RuleSpec, compile_rule

    ours, reference, spikes, targets, _ = _pair("chl")
    reference.compiled = False
    for index in range(len(ours.engines)):
        spec = RuleSpec(**rules, x1_impulse=4.0, x1_tau=4, t_epoch=1, rng_seed=first_seed + index)
        weights = ours.engines[index].weights.copy()
        for emulator in (ours, reference):
            emulator.engines[index] = LearningSynapses(compile_rule(spec), weights.copy(), fixed=True)
    return ours, reference, spikes, targets


@pytest.mark.parametrize("rules", [
    # products that read a variable an earlier target writes in the same step (d reads w, t reads d):
    # every target from the old values
    {"dw": "2^-2*x0*y1*y2 - 2^-2*x0*y1*y3 + u1*t", "dd": "2^-3*u1*w + 2^-4*y0*x1*y2 - u1*d",
     "dt": "2^-3*x0*y1*y2 - 2^-3*y0*x1*y3 - u1*t + 2^-2*u1*d"},
    # products that read only their own or a later target's variable: written in place
    {"dw": "2^-1*u1*t - 2^-5*u1*w", "dt": "2^-3*x0*y1*y2 - 2^-3*x0*y1*y3 + 2^-3*y0*x1*y2 - u1*t"},
])
def test_rules_reading_synaptic_variables_match_the_numpy_engine(rules):
    """The compiled engine writes a target in place unless one of its evaluated products reads a
    variable an earlier target has written this step: rules on both sides of that line give the
    numpy engine's integers, step by step."""
    ours, reference, spikes, targets = _chl_pair_with_rule(rules, first_seed=11)
    fast.run_chl(ours, spikes, targets)
    for step in range(len(spikes)):
        reference.step(spikes[step], targets[step])
    assert any((e.tag_1 != 0).any() for e in reference.engines)  # the products did add
    _assert_same(ours, reference)


def test_products_reading_a_silent_trace_match_the_numpy_engine():
    """A product whose y factor is 0 on every post neuron adds zeros and is skipped, unless a
    constant is added to that factor: CHL's free phase (y2 silent) and its settle steps (y2 and y3
    silent) with rules on both sides of that line give the numpy engine's integers."""
    ours, reference, spikes, targets = _chl_pair_with_rule(
        {"dw": "2^-3*x0*(y2 + 1) - 2^-4*y0*x1*(y3 + 2) + 2^-3*x0*y1*y2"}, first_seed=3)
    before = [e.weights.copy() for e in reference.engines]
    fast.run_chl(ours, spikes, targets)
    for step in range(len(spikes)):
        reference.step(spikes[step], targets[step])
    assert any((e.weights != w).any() for e, w in zip(reference.engines, before))  # the products did add
    _assert_same(ours, reference)
