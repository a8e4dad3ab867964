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


def _open(proc_params, dtype, mode):
    shape = (int(proc_params["steps"]),) + tuple(proc_params["shape"])
    return np.memmap(proc_params["path"], dtype=dtype, mode=mode, shape=shape)


class _SourceModel(PyLoihiProcessModel):
    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._rows = None

    def run_spk(self) -> None:
        if self._rows is None:
            self._rows = _open(self.proc_params, self.proc_params["dtype"], "r")
        row = self.time_step - 1
        if row < self._rows.shape[0]:
            self.s_out.send(np.asarray(self._rows[row]))
        else:
            self.s_out.send(np.zeros(self._rows.shape[1:]))


@implements(proc=SpikeFileSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySpikeFileSourceFloat(_SourceModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)


@implements(proc=SpikeFileSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PySpikeFileSourceFixed(_SourceModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)


class _SinkModel(PyLoihiProcessModel):
    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._rows = None

    def run_spk(self) -> None:
        received = self.a_in.recv()
        if self._rows is None:
            self._rows = _open(self.proc_params, np.uint8, "r+")
        row = self.time_step - 1
        if row < self._rows.shape[0]:
            self._rows[row] = received != 0


@implements(proc=SpikeFileSink, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySpikeFileSinkFloat(_SinkModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)


@implements(proc=SpikeFileSink, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PySpikeFileSinkFixed(_SinkModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)


class _ProbeModel(PyLoihiProcessModel):
    file_dtype = np.float64

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._rows = None

    def post_guard(self) -> bool:
        return True

    def run_post_mgmt(self) -> None:
        value = self.state.read()
        if self._rows is None:
            self._rows = _open(self.proc_params, self.file_dtype, "r+")
        row = self.time_step - 1
        if row < self._rows.shape[0]:
            self._rows[row] = value


@implements(proc=VarFileProbe, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyVarFileProbeFloat(_ProbeModel):
    state: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, float)


@implements(proc=VarFileProbe, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PyVarFileProbeFixed(_ProbeModel):
    state: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, np.int32)
    file_dtype = np.int32
