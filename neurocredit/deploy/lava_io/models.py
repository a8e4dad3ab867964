"""ProcessModels of :mod:`neurocredit.deploy.lava_io`, for both ``floating_pt`` and ``fixed_pt``.

Each opens its memory-mapped file lazily inside the Lava worker process (the caller created
the file with the right size before the run).
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort, PyRefPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from neurocredit.deploy.lava_io.process import SpikeFileSink, SpikeFileSource, VarFileProbe


def _model(proc, *tags: str):
    """Lava's ``implements``/``requires``/``tag`` decorators of one of these CPU ProcessModels."""
    return lambda cls: implements(proc=proc, protocol=LoihiProtocol)(requires(CPU)(tag(*tags)(cls)))


class _FileModel(PyLoihiProcessModel):
    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._rows = None

    def _file(self, dtype, mode) -> np.memmap:
        """The ``(steps, *shape)`` file, opened on first use (in the worker process)."""
        if self._rows is None:
            shape = (int(self.proc_params["steps"]),) + tuple(self.proc_params["shape"])
            self._rows = np.memmap(self.proc_params["path"], dtype=dtype, mode=mode, shape=shape)
        return self._rows


class _SourceModel(_FileModel):
    def run_spk(self) -> None:
        rows = self._file(self.proc_params["dtype"], "r")
        row = self.time_step - 1
        if row < rows.shape[0]:
            self.s_out.send(np.asarray(rows[row]))
        else:
            self.s_out.send(np.zeros(rows.shape[1:]))


@_model(SpikeFileSource, "floating_pt")
class PySpikeFileSourceFloat(_SourceModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)


@_model(SpikeFileSource, "fixed_pt", "bit_accurate_loihi")
class PySpikeFileSourceFixed(_SourceModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)


class _SinkModel(_FileModel):
    def run_spk(self) -> None:
        received = self.a_in.recv()
        rows = self._file(np.uint8, "r+")
        row = self.time_step - 1
        if row < rows.shape[0]:
            rows[row] = received != 0


@_model(SpikeFileSink, "floating_pt")
class PySpikeFileSinkFloat(_SinkModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)


@_model(SpikeFileSink, "fixed_pt", "bit_accurate_loihi")
class PySpikeFileSinkFixed(_SinkModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)


class _ProbeModel(_FileModel):
    file_dtype = np.float64

    def post_guard(self) -> bool:
        return True

    def run_post_mgmt(self) -> None:
        value = self.state.read()
        rows = self._file(self.file_dtype, "r+")
        row = self.time_step - 1
        if row < rows.shape[0]:
            rows[row] = value


@_model(VarFileProbe, "floating_pt")
class PyVarFileProbeFloat(_ProbeModel):
    state: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, float)


@_model(VarFileProbe, "fixed_pt", "bit_accurate_loihi")
class PyVarFileProbeFixed(_ProbeModel):
    state: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, np.int32)
    file_dtype = np.int32
