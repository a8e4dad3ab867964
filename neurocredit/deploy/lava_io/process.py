"""Processes of :mod:`neurocredit.deploy.lava_io` (their models are in ``models.py``)."""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort, RefPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


def _shape(shape) -> tuple[int, ...]:
    return tuple(int(n) for n in (shape if isinstance(shape, (tuple, list)) else (shape,)))


class SpikeFileSource(AbstractProcess):
    """Sends row ``t`` of the ``(steps, *shape)`` memory-mapped file ``path`` (numpy ``dtype``)
    at time step ``t + 1``; zeros after the last row."""

    def __init__(self, *, shape, path: str, steps: int, dtype: str = "uint8") -> None:
        shape = _shape(shape)
        super().__init__(shape=shape, path=str(path), steps=int(steps), dtype=str(np.dtype(dtype)))
        self.s_out = OutPort(shape=shape)


class SpikeFileSink(AbstractProcess):
    """Writes ``a_in != 0`` received at time step ``t + 1`` to row ``t`` of the ``(steps, *shape)``
    uint8 memory-mapped file ``path``."""

    def __init__(self, *, shape, path: str, steps: int) -> None:
        shape = _shape(shape)
        super().__init__(shape=shape, path=str(path), steps=int(steps))
        self.a_in = InPort(shape=shape)


class VarFileProbe(AbstractProcess):
    """After every time step ``t + 1`` writes the value of ``var`` to row ``t`` of the
    ``(steps, *var.shape)`` memory-mapped file ``path`` (int32 in fixed point, float64 in
    floating point)."""

    def __init__(self, *, var: Var, path: str, steps: int) -> None:
        shape = _shape(var.shape)
        super().__init__(shape=shape, path=str(path), steps=int(steps))
        self.state = RefPort(shape)
        self.state.connect_var(var)
