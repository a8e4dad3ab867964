"""What our learning-LIF neurons compute besides Lava's LIF: the third factor they send as y traces.

These pure functions are called both by the Lava ProcessModels
(:mod:`neurocredit.learn.lava_procs.models`, after Lava's own LIF update) and by the emulator
(:mod:`neurocredit.learn.onchip`), so the neuron side is the same code in both; ``fixed``
selects integer arithmetic (shifts floor, as on the chip) or float (multiplication by
``2**-shift``). All traces are in Lava's 7-bit trace units (0..127), unsigned.

Sample schedule: each sample is presented for ``period`` steps; ``phase`` (0..period-1) is the
step within it. At ``phase == 0`` the neuron clears ``u``, ``v`` and its own traces (a new
sample); during the first ``settle`` steps it sends zero y traces, so no weight changes while
the network settles on the new input.

DFA output neuron (one per class)::

    r = r - (r >> trace_shift) + trace_impulse * s          # filtered output spikes
    e = r - target                                          # target: target_level on the label
    y2 = clip(max(e, 0) >> error_shift, 0, 127)              # after settle, else 0
    y3 = clip(max(-e, 0) >> error_shift, 0, 127)
    sends e (graded) to the fixed feedback Dense(B)

DFA hidden neuron::

    g = (B e) as delivered by Dense(B) (one step late, like every Dense)
    f' = 1 where the neuron spiked or its voltage v > 0 (boxcar surrogate on (0, vth]), else 0
    y2 = clip(max(g f', 0) >> feedback_shift, 0, 127)       # after settle, else 0
    y3 = clip(max(-g f', 0) >> feedback_shift, 0, 127)

Shifts apply to magnitudes (rounding toward zero), so positive and negative errors are scaled
alike: a floor shift of a signed value would turn every small negative error into -1 and
make the weights drift.

With a tag (``transfer_samples`` N > 0, :func:`dfa_transfer`) both kinds of neuron also send,
at the last step of every N-th sample, a back-propagating spike (bAP) and ``y1`` = the
transfer level ``transfer_level >> rate_shifts[epoch]`` (64 or 32 in fixed point): the rule
moves the tag to the weight on that bAP (``y0`` dependency), scaled by y1, so the neuron sets
the learning rate epoch by epoch. Their own spikes then do not go to the learning engine (no
product reads them).

With the weight rule ``dw = -2^k*u0*x1*y2 + 2^k*u0*x1*y3`` this is
``dW = -2^k x1 (y2 - y3) = -2^k x1 delta``: delta = e for the output layer and
``(B e) f'(v)`` for hidden layers, the DFA update with the presynaptic trace x1 as activity.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

TRACE_MAX = 127


class DfaNeuronParameters(NamedTuple):
    """period, settle: steps per sample and steps without learning at its start;
    trace_shift, trace_impulse: the output spike filter; target_level: the output trace the
    label's neuron should reach; error_shift, feedback_shift: right shifts of the output error
    and of the hidden neurons' B e (on magnitudes); transfer_samples, transfer_level,
    epoch_samples, rate_shifts: the tag transfer (:func:`dfa_transfer`; 0 samples: none)."""

    period: int
    settle: int
    trace_shift: int = 2
    trace_impulse: int = 32
    target_level: int = 96
    error_shift: int = 0
    feedback_shift: int = 0
    transfer_samples: int = 0
    transfer_level: float = 64
    epoch_samples: int = 0
    rate_shifts: tuple = ()


def dfa_transfer(params: DfaNeuronParameters, step: int, fixed: bool) -> tuple[bool, float]:
    """``(bap, y1)`` a DFA neuron sends at time step ``step`` (0-based, from the start of the
    run) when it learns through the tag (``transfer_samples`` N > 0): a bAP at the last step of
    every N-th sample, with ``y1 = transfer_level >> rate_shifts[epoch]`` (float: times
    ``2**-shift``; the last shift holds after the list ends; epochs of ``epoch_samples``
    samples); else ``(False, 0)``."""
    if params.transfer_samples <= 0:
        return False, 0
    sample, phase = divmod(int(step), params.period)
    if phase != params.period - 1 or sample % params.transfer_samples != params.transfer_samples - 1:
        return False, 0
    shifts = tuple(params.rate_shifts)
    epoch = sample // params.epoch_samples if params.epoch_samples > 0 else 0
    shift = int(shifts[min(epoch, len(shifts) - 1)]) if shifts else 0
    return True, (int(params.transfer_level) >> shift) if fixed else params.transfer_level * 2.0**-shift


def _shift(values: np.ndarray, shift: int, fixed: bool) -> np.ndarray:
    if fixed:
        return np.right_shift(values, shift) if shift >= 0 else np.left_shift(values, -shift)
    return values * 2.0 ** -shift


def _spike_trace(trace: np.ndarray, spikes: np.ndarray, shift: int, impulse, fixed: bool) -> np.ndarray:
    """``trace - (trace >> shift) + impulse * spikes`` (float: ``trace * 2**-shift``), int32 or float64."""
    dtype = np.int32 if fixed else np.float64
    trace = np.asarray(trace, dtype)
    decay = np.right_shift(trace, shift) if fixed else trace * 2.0 ** -shift
    return trace - decay + impulse * np.asarray(spikes).astype(dtype)


def split_sign(delta: np.ndarray, shift: int, gate: bool, fixed: bool) -> tuple[np.ndarray, np.ndarray]:
    """(y2, y3): the positive and negative parts of ``delta``, each shifted right by ``shift``
    (a magnitude shift), clipped to 7 bits; zero when ``gate`` is False."""
    dtype = np.int32 if fixed else np.float64
    if not gate:
        zero = np.zeros(np.shape(delta), dtype)
        return zero, zero.copy()
    positive = _shift(np.maximum(delta, 0), shift, fixed)
    negative = _shift(np.maximum(-delta, 0), shift, fixed)
    return np.clip(positive, 0, TRACE_MAX).astype(dtype), np.clip(negative, 0, TRACE_MAX).astype(dtype)


def output_third_factor(params: DfaNeuronParameters, phase: int, trace: np.ndarray, spikes: np.ndarray,
                        target: np.ndarray, fixed: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One step of the output neuron's error side. ``trace`` is r before this step (cleared by
    the caller at phase 0), ``spikes`` this step's spikes, ``target`` the target input (0 or
    target_level). Returns ``(new_trace, error, y2, y3)``."""
    trace = _spike_trace(trace, spikes, params.trace_shift, params.trace_impulse, fixed)
    error = trace - np.asarray(target, trace.dtype)
    y2, y3 = split_sign(error, params.error_shift, phase >= params.settle, fixed)
    return trace, error, y2, y3


def hidden_third_factor(params: DfaNeuronParameters, phase: int, feedback: np.ndarray, spikes: np.ndarray,
                        voltage: np.ndarray, fixed: bool) -> tuple[np.ndarray, np.ndarray]:
    """One step of a hidden neuron's third factor: ``feedback`` is B e as received this step,
    ``voltage`` v after Lava's update and reset. Returns ``(y2, y3)``."""
    active = np.asarray(spikes).astype(bool) | (np.asarray(voltage) > 0)
    if fixed:
        delta = np.asarray(feedback).astype(np.int32) * active.astype(np.int32)
    else:
        delta = np.asarray(feedback, np.float64) * active
    return split_sign(delta, params.feedback_shift, phase >= params.settle, fixed)


class ChlNeuronParameters(NamedTuple):
    """STDP-style CHL neurons: ``period`` steps per sample, a free phase (first half) and a
    nudged phase (second half); ``settle`` steps at the start of each phase without learning;
    the y1 spike trace (``trace_shift``, ``trace_impulse``); ``sign_level``: the value of y2
    (nudged) or y3 (free) while learning, 8 so that the fixed engine's 3-bit loss on a
    two-trace product (``x0*y1*y2``) gives back ``y1``; ``nudge_offset``: output neurons add
    ``target - nudge_offset`` to v every nudged step (label: +, others: -); ``rest``: 1 when
    the nudged phase starts from rest like the free one (u, v and y1 cleared), so that the two
    phases differ by the nudge only and not by the free phase's start-up transient."""

    period: int
    settle: int
    trace_shift: int = 2
    trace_impulse: int = 16
    sign_level: float = 8
    nudge_offset: int = 0
    rest: int = 1


def chl_phase(params: ChlNeuronParameters, phase: int) -> tuple[bool, bool]:
    """(nudged, learning) at step ``phase`` of a sample."""
    half = params.period // 2
    nudged = phase >= half
    return nudged, (phase - (half if nudged else 0)) >= params.settle


def chl_reset(params: ChlNeuronParameters, phase: int) -> bool:
    """Whether the neuron clears u, v and its trace before step ``phase``: at the start of a
    sample, and of its nudged phase too when ``rest``."""
    half = params.period // 2
    return phase == 0 or (bool(params.rest) and phase == half)


def chl_nudge(params: ChlNeuronParameters, phase: int, target: np.ndarray, fixed: bool) -> np.ndarray:
    """What an output neuron adds to v before its LIF update: ``target - nudge_offset`` in the
    nudged phase, 0 in the free phase."""
    nudged, _ = chl_phase(params, phase)
    dtype = np.int32 if fixed else np.float64
    target = np.asarray(target, dtype)
    if not nudged:
        return np.zeros(target.shape, dtype)
    return target - dtype(params.nudge_offset)


def chl_traces(params: ChlNeuronParameters, phase: int, trace: np.ndarray, spikes: np.ndarray,
               fixed: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step of a CHL neuron's y traces: ``trace`` (y1) before this step (cleared by the
    caller at phase 0). Returns ``(y1, y2, y3)``: y1 = clip(y1 - (y1 >> trace_shift) +
    trace_impulse * s, 0, 127); y2 = sign_level in the nudged phase, y3 in the free phase
    (after settle; else 0)."""
    nudged, learning = chl_phase(params, phase)
    trace = np.clip(_spike_trace(trace, spikes, params.trace_shift, params.trace_impulse, fixed), 0, TRACE_MAX)
    level = np.full(trace.shape, params.sign_level if learning else 0, trace.dtype)  # float: any value
    zero = np.zeros(trace.shape, trace.dtype)
    return trace, (level if nudged else zero), (zero if nudged else level)
