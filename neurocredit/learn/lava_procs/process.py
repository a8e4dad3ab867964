"""Processes of :mod:`neurocredit.learn.lava_procs` (their models are in ``models.py``)."""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.proc.lif.process import LearningLIF


class DfaHiddenLIF(LearningLIF):
    """``LearningLIF`` whose y2/y3 are the DFA third factor of a hidden neuron.

    Extra keyword arguments (proc params): ``period``, ``settle`` (steps per sample, steps
    without learning at its start). ``a_third_factor_in`` receives B e from a fixed Dense(B)."""


class DfaOutputLIF(LearningLIF):
    """``LearningLIF`` whose y2/y3 are the DFA output error; ``a_third_factor_in`` receives the
    target, ``s_out_error`` sends the error e (graded) to the feedback Dense(B).

    Extra keyword arguments: ``period``, ``settle``, ``trace_shift``, ``trace_impulse``,
    ``target_level``, ``error_shift`` (see :class:`neurocredit.learn.neurons.DfaNeuronParameters`)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.s_out_error = OutPort(shape=(kwargs["shape"][0],))


class ChlLIF(LearningLIF):
    """``LearningLIF`` for STDP-style CHL: y1 is its spike trace, y2/y3 the phase sign (nudged /
    free); an output population (``output=1``) adds ``target - nudge_offset`` (target from
    ``a_third_factor_in``) to v in the nudged phase. Extra keyword arguments: the fields of
    :class:`neurocredit.learn.neurons.ChlNeuronParameters` and ``output``."""


class TraceReplay(AbstractProcess):
    """Sends recorded post-neuron signals to a ``LearningDense``: at time step ``t + 1`` row
    ``t`` of ``bap_path`` ((steps, n) uint8) on ``s_out_bap`` and of ``y_path`` ((steps, 3, n),
    int32 or float64 by ``dtype``) on ``s_out_y1..y3``."""

    def __init__(self, *, shape, bap_path: str, y_path: str, steps: int, dtype: str) -> None:
        shape = (int(shape[0]),)
        super().__init__(shape=shape, bap_path=str(bap_path), y_path=str(y_path), steps=int(steps),
                         dtype=str(np.dtype(dtype)))
        self.s_out_bap = OutPort(shape=shape)
        self.s_out_y1 = OutPort(shape=shape)
        self.s_out_y2 = OutPort(shape=shape)
        self.s_out_y3 = OutPort(shape=shape)
