"""The STDP-style CHL plasticity of :mod:`neurocredit.rules.chl`, written natively as Brian2
``Synapses`` (equations, ``on_pre`` / ``on_post``), for Brian2 users and as an independent
check of the torch implementation (:func:`neurocredit.rules.chl.chl_trace_step`).

The rule, as Brian2 runs it (one canonical step = one Brian2 step of :data:`STEP_MS` ms)::

    Synapses model:
        elig : 1                                          # eligibility, summed over phases
        copy : integer (constant)                         # which sample (parallel copy) it belongs to
        dapre/dt  = -apre / tau_pre   : 1 (event-driven)
        dapost/dt = -apost / tau_post : 1 (event-driven)
    on_pre:                                               # pre pathway (Brian2 runs it first)
        apre += 1
        elig += phase_weight(t, copy) * apost
    on_post:                                              # post pathway (runs second)
        apost += 1
        elig += phase_weight(t, copy) * apre

``tau = -dt / ln(λ)`` makes Brian2's exact exponential decay between events equal the
per-step decay ``x <- λ x`` of the torch rule. Because the pre pathway runs before the post
pathway in the same step, a pre spike meets the post trace of *earlier* post spikes, and a
post spike meets the pre trace *including* a coincident pre spike: a coincident pair counts
once, as in :func:`~neurocredit.rules.chl.chl_trace_step`. ``phase_weight`` is a
``TimedArray`` (steps, copies): ``-1/window`` while the free phase is counted, ``+1/window``
while the nudged phase is counted, 0 while settling. The weight change of synapse (j -> k) is
``-(α/β) Σ_copies elig / (κ · batch)`` (:mod:`neurocredit.rules.chl`); this module returns
the summed ``elig`` (n_post, n_pre).

Convolutions: :func:`conv_eligibility` expands a ``Conv2d`` into one synapse per kernel tap and
output position (the im2col indices of :func:`neurocredit.conv.conv_synapses`, the same ones the
Brian2 backend connects); every synapse keeps its own ``elig`` and a shared kernel weight's
change is the sum over its synapses (what torch computes with one ``conv2d_weight`` product per
step, :func:`neurocredit.conv.torch_weight_product`).

Given the same spike trains (``SpikeGeneratorGroup`` for pre and post), :func:`eligibility` and
:func:`conv_eligibility` equal the torch rule to float64 rounding (``tests/test_chl_brian2.py``,
``tests/test_chl_conv.py``). The bias term of
the torch rule (``φ s_post``, a per-neuron quantity) is not a synaptic variable and is not
part of this module.
"""

from __future__ import annotations

import math

import numpy as np

from neurocredit.errors import NeurocreditError
from neurocredit.rules.chl_traces import TraceParameters

STEP_MS = 1.0
"""Brian2 time of one canonical step, in ms (only step counts matter)."""

CHL_SYNAPSE_MODEL = """
elig : 1
copy : integer (constant)
dapre/dt = -apre / tau_pre : 1 (event-driven)
dapost/dt = -apost / tau_post : 1 (event-driven)
"""
CHL_ON_PRE = """
apre += 1
elig += phase_weight(t, copy) * apost
"""
CHL_ON_POST = """
apost += 1
elig += phase_weight(t, copy) * apre
"""


def trace_time_constants(params: TraceParameters) -> tuple[float, float]:
    """``(tau_pre, tau_post)`` in steps such that ``exp(-1/tau) = λ``; λ must be > 0 here."""
    for name in ("pre_decay", "post_decay"):
        if getattr(params, name) <= 0.0:
            raise NeurocreditError(f"the Brian2 CHL synapses need trace {name} > 0 (a time constant); got 0")
    return -1.0 / math.log(params.pre_decay), -1.0 / math.log(params.post_decay)


def chl_synapses(source, target, params: TraceParameters, phase_weight, clock, name: str = "chl_synapses"):
    """Unconnected Brian2 ``Synapses`` from ``source`` to ``target`` carrying the CHL plasticity
    (module doc). ``phase_weight`` is a Brian2 ``TimedArray`` indexed ``(t, copy)``; set the
    ``copy`` variable of every synapse after connecting it. Traces decay per step of ``clock``."""
    import brian2 as b2

    tau_pre, tau_post = trace_time_constants(params)
    namespace = {"tau_pre": tau_pre * clock.dt, "tau_post": tau_post * clock.dt, "phase_weight": phase_weight}
    return b2.Synapses(source, target, model=CHL_SYNAPSE_MODEL, on_pre=CHL_ON_PRE, on_post=CHL_ON_POST,
                       clock=clock, namespace=namespace, name=name)


def _spike_generator_arguments(spikes: np.ndarray):
    """Indices and step numbers of a (steps, copies, n) 0/1 array, neuron index ``copy * n + j``."""
    steps, copies, n = spikes.shape
    step, copy, neuron = np.nonzero(spikes)
    return (copy * n + neuron).astype(np.int64), step.astype(np.float64)


def _check_trains(pre_spikes: np.ndarray, post_spikes: np.ndarray, phase_weight: np.ndarray):
    """The trains as arrays and the phase weight as (steps, copies), or one clear line."""
    pre_spikes = np.asarray(pre_spikes)
    post_spikes = np.asarray(post_spikes)
    if pre_spikes.ndim != 3 or post_spikes.ndim != 3 or pre_spikes.shape[:2] != post_spikes.shape[:2]:
        raise NeurocreditError(
            f"pre/post spikes must be (steps, batch, n) with the same steps and batch; got {pre_spikes.shape} "
            f"and {post_spikes.shape}"
        )
    steps, copies = pre_spikes.shape[:2]
    weights = np.asarray(phase_weight, dtype=np.float64)
    if weights.ndim == 1:
        weights = np.repeat(weights[:, None], copies, axis=1)
    if weights.shape != (steps, copies):
        raise NeurocreditError(
            f"phase_weight must be (steps,) or (steps, batch) = ({steps}, {copies}); got {weights.shape}"
        )
    return pre_spikes, post_spikes, weights


def synapse_eligibility(
    pre_spikes: np.ndarray, post_spikes: np.ndarray, phase_weight: np.ndarray, params: TraceParameters,
    pre_index: np.ndarray, post_index: np.ndarray, target: str = "numpy",
) -> np.ndarray:
    """Run the Brian2 CHL synapses ``pre_index[s] -> post_index[s]`` (one copy of that
    connectivity per sample, ``copy`` = sample index) on fixed spike trains; returns every
    synapse's ``elig`` summed over the copies, (n_synapses,) float64.

    ``pre_spikes`` (steps, batch, n_pre) and ``post_spikes`` (steps, batch, n_post) are 0/1;
    ``phase_weight`` is (steps,) or (steps, batch). ``target``: Brian2 code-generation target
    (``numpy`` needs no compiler).
    """
    import brian2 as b2

    from neurocredit.sim.brian2_codegen import brian2_preferences

    pre_spikes, post_spikes, weights = _check_trains(pre_spikes, post_spikes, phase_weight)
    steps, copies, n_pre = pre_spikes.shape
    n_post = post_spikes.shape[2]
    pre_index, post_index = np.asarray(pre_index, dtype=np.int64), np.asarray(post_index, dtype=np.int64)
    trace_time_constants(params)  # λ > 0, checked before Brian2 is touched
    with brian2_preferences(target):  # float64, put the caller's preferences back afterwards
        dt = STEP_MS * b2.ms
        clock = b2.Clock(dt=dt, name="chl_clock")
        pre_neuron, pre_step = _spike_generator_arguments(pre_spikes)
        post_neuron, post_step = _spike_generator_arguments(post_spikes)
        pre = b2.SpikeGeneratorGroup(copies * n_pre, pre_neuron, pre_step * dt, clock=clock, name="chl_pre")
        post = b2.SpikeGeneratorGroup(copies * n_post, post_neuron, post_step * dt, clock=clock, name="chl_post")
        synapses = chl_synapses(pre, post, params, b2.TimedArray(weights, dt=dt, name="chl_phase_weight"), clock)
        copy_index = np.repeat(np.arange(copies), pre_index.size)
        synapses.connect(i=copy_index * n_pre + np.tile(pre_index, copies),
                         j=copy_index * n_post + np.tile(post_index, copies))
        synapses.copy = copy_index
        network = b2.Network(pre, post, synapses)
        network.run(steps * dt, namespace={})
        values = np.asarray(synapses.elig[:], dtype=np.float64)
    return values.reshape(copies, pre_index.size).sum(axis=0)


def eligibility(
    pre_spikes: np.ndarray, post_spikes: np.ndarray, phase_weight: np.ndarray, params: TraceParameters,
    target: str = "numpy",
) -> np.ndarray:
    """:func:`synapse_eligibility` of an all-to-all layer, as the (n_post, n_pre) matrix."""
    n_pre, n_post = np.shape(pre_spikes)[2], np.shape(post_spikes)[2]
    post, pre = np.indices((n_post, n_pre)).reshape(2, -1)
    values = synapse_eligibility(pre_spikes, post_spikes, phase_weight, params, pre, post, target)
    return values.reshape(n_post, n_pre)


def conv_eligibility(
    layer, pre_spikes: np.ndarray, post_spikes: np.ndarray, phase_weight: np.ndarray, params: TraceParameters,
    target: str = "numpy",
) -> np.ndarray:
    """:func:`synapse_eligibility` of a ``Conv2d`` layer: one Brian2 synapse per kernel tap and
    output position it reaches (:func:`neurocredit.conv.conv_synapses`, the im2col indices the
    Brian2 backend connects), each with its own ``elig``; a shared kernel weight's eligibility is
    the sum of its synapses' (returned in the kernel's shape, OIHW)."""
    from neurocredit.conv import conv_synapses

    pre, post, tap = conv_synapses(layer)
    values = synapse_eligibility(pre_spikes, post_spikes, phase_weight, params, pre, post, target)
    return np.bincount(tap, weights=values, minlength=layer.weight.size).reshape(layer.weight.shape)


def layer_eligibility(layer, pre_spikes, post_spikes, phase_weight, params: TraceParameters,
                      target: str = "numpy") -> np.ndarray:
    """:func:`conv_eligibility` for a Conv2d ``layer``, else :func:`eligibility`."""
    if getattr(layer, "kind", "dense") == "conv2d":
        return conv_eligibility(layer, pre_spikes, post_spikes, phase_weight, params, target)
    return eligibility(pre_spikes, post_spikes, phase_weight, params, target)


def agreement_on_rule(rule, features, labels, target: str = "numpy") -> list[float]:
    """Record one two-phase run of the spiking CHL ``rule`` on ``features``/``labels``
    (:meth:`~neurocredit.rules.chl.SpikingCHL.phase_spike_trains`), compute every layer's
    eligibility from those spikes with the torch rule (float64) and with the Brian2 synapses,
    and return per layer ``max |brian2 - torch| / max |torch|`` (conv layers: per kernel tap, the
    sum of the tap's synapses, :func:`conv_eligibility`)."""
    from neurocredit.rules.chl_traces import replay_eligibility

    trains, schedule = rule.phase_spike_trains(features, labels)
    differences = []
    for layer, pre, post in zip(rule.spec.layers, trains[:-1], trains[1:]):
        expected = replay_eligibility(pre, post, schedule, rule.trace_params, layer)
        got = layer_eligibility(layer, pre, post, schedule, rule.trace_params, target=target)
        scale = np.abs(expected).max()
        differences.append(float(np.abs(got - expected).max() / scale) if scale > 0 else float(np.abs(got).max()))
    return differences
