"""ProcessModels of :mod:`neurocredit.learn.lava_procs`, ``floating_pt`` and ``fixed_pt``.

The DFA neurons subclass Lava's ``LearningNeuronModelFloat``/``LearningNeuronModelFixed`` and
``AbstractPyLifModelFloat``/``AbstractPyLifModelFixed`` (as Lava's three-factor tutorial does):
``run_spk`` clears u and v at the first step of every sample, runs Lava's own LIF update
(``super().run_spk()``), then computes the third factor with the functions of
:mod:`neurocredit.learn.neurons` -- the same code the emulator runs.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.neuron import LearningNeuronModelFixed, LearningNeuronModelFloat
from lava.magma.core.model.py.ports import PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import AbstractPyLifModelFixed, AbstractPyLifModelFloat

from neurocredit.learn.lava_procs.process import ChlLIF, DfaHiddenLIF, DfaOutputLIF, TraceReplay
from neurocredit.learn.neurons import (
    ChlNeuronParameters,
    DfaNeuronParameters,
    chl_nudge,
    chl_reset,
    chl_traces,
    dfa_transfer,
    hidden_third_factor,
    output_third_factor,
)


def _params(proc_params, kind):
    values = {name: proc_params.get(name, None) for name in kind._fields}
    def convert(name, value):
        if isinstance(value, (tuple, list)):
            return tuple(int(v) for v in value)
        return float(value) if name in ("sign_level", "transfer_level") else int(value)

    return kind(**{name: convert(name, value) for name, value in values.items() if value is not None})


class _SendsTraces:
    """Stores y1..y3 in the neuron's Vars and sends them with this step's spikes (the bAP) to
    the LearningDense."""

    def _send_traces(self, y1, y2, y3, bap=None) -> None:
        self.y1, self.y2, self.y3 = y1, y2, y3
        self.s_out_bap.send(self.s_out_buff if bap is None else bap)
        self.s_out_y1.send(self.y1)
        self.s_out_y2.send(self.y2)
        self.s_out_y3.send(self.y3)


class _DfaMixin(_SendsTraces):
    """The per-sample reset and the y sending shared by the four DFA neuron models (``fixed``
    comes from the LIF base class, which follows this mixin in the MRO)."""

    def _setup(self) -> None:
        self._dfa = _params(self.proc_params, DfaNeuronParameters)
        self._phase = 0

    def _begin_step(self) -> None:
        self._phase = (self.time_step - 1) % self._dfa.period
        if self._phase == 0:
            self.u[:] = 0
            self.v[:] = 0

    def _send_dfa(self, y2, y3) -> None:
        """Sends y2/y3 with this step's spikes, or, when the tag moves to the weight
        (:func:`~neurocredit.learn.neurons.dfa_transfer`), with the transfer bAP and y1."""
        if self._dfa.transfer_samples <= 0:
            self._send_traces(self.y1, y2, y3)
            return
        bap, level = dfa_transfer(self._dfa, self.time_step - 1, self.fixed)
        y1 = np.full(y2.shape, level, y2.dtype)  # dfa_transfer: 0 without a bAP
        self._send_traces(y1, y2, y3, np.full(y2.shape, bap, bool))



class _HiddenMixin(_DfaMixin):
    def run_spk(self) -> None:
        self._begin_step()
        super().run_spk()
        feedback = self.a_third_factor_in.recv()
        y2, y3 = hidden_third_factor(self._dfa, self._phase, feedback, self.s_out_buff, self.v, self.fixed)
        self._send_dfa(y2, y3)


class _OutputMixin(_DfaMixin):
    def run_spk(self) -> None:
        self._begin_step()
        if self._phase == 0:
            self._trace = np.zeros(self.v.shape, np.int32 if self.fixed else np.float64)
        super().run_spk()
        target = self.a_third_factor_in.recv()
        self._trace, error, y2, y3 = output_third_factor(self._dfa, self._phase, self._trace, self.s_out_buff,
                                                         target, self.fixed)
        self.s_out_error.send(error)
        self._send_dfa(y2, y3)


class _ChlMixin(_SendsTraces):
    """STDP-style CHL: per-sample reset, the output nudge on v, the y1 spike trace and the phase
    sign in y2/y3 (:mod:`neurocredit.learn.neurons`)."""

    def _setup(self) -> None:
        self._chl = _params(self.proc_params, ChlNeuronParameters)
        self._output = bool(self.proc_params.get("output", 0))
        self._trace = None

    def run_spk(self) -> None:
        phase = (self.time_step - 1) % self._chl.period
        if chl_reset(self._chl, phase):
            self.u[:] = 0
            self.v[:] = 0
            self._trace = np.zeros(self.v.shape, np.int32 if self.fixed else np.float64)
        if self._output:  # hidden populations leave a_third_factor_in unconnected
            target = self.a_third_factor_in.recv()
            self.v[:] = self.v + chl_nudge(self._chl, phase, target, self.fixed)
        super().run_spk()
        self._trace, y2, y3 = chl_traces(self._chl, phase, self._trace, self.s_out_buff, self.fixed)
        self._send_traces(self._trace.copy(), y2, y3)


class _FixedLif(LearningNeuronModelFixed, AbstractPyLifModelFixed):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    vth: int = LavaPyType(int, np.int32, precision=17)
    fixed = True

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.effective_vth = 0
        self.s_out_buff = np.zeros(proc_params["shape"], bool)
        self._setup()

    def scale_threshold(self):
        self.effective_vth = np.left_shift(self.vth, self.vth_shift)
        self.isthrscaled = True

    def spiking_activation(self):
        return self.v > self.effective_vth


class _FloatLif(LearningNeuronModelFloat, AbstractPyLifModelFloat):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    vth: float = LavaPyType(float, float)
    fixed = False

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.s_out_buff = np.zeros(proc_params["shape"], bool)
        self._setup()

    def spiking_activation(self):
        return self.v > self.vth


def _model(name: str, proc, mode: str, bases: tuple, **ports):
    """The ProcessModel class ``name`` of ``proc`` for Lava's ``mode`` tag, on CPU, with extra
    port declarations ``ports`` (Lava finds it in this module)."""
    cls = type(name, bases, {"__module__": __name__, **ports})
    return implements(proc=proc, protocol=LoihiProtocol)(requires(CPU)(tag(mode)(cls)))


PyDfaHiddenFixed = _model("PyDfaHiddenFixed", DfaHiddenLIF, "fixed_pt", (_HiddenMixin, _FixedLif))
PyDfaHiddenFloat = _model("PyDfaHiddenFloat", DfaHiddenLIF, "floating_pt", (_HiddenMixin, _FloatLif))
PyDfaOutputFixed = _model("PyDfaOutputFixed", DfaOutputLIF, "fixed_pt", (_OutputMixin, _FixedLif),
                          s_out_error=LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24))
PyDfaOutputFloat = _model("PyDfaOutputFloat", DfaOutputLIF, "floating_pt", (_OutputMixin, _FloatLif),
                          s_out_error=LavaPyType(PyOutPort.VEC_DENSE, float))
PyChlFixed = _model("PyChlFixed", ChlLIF, "fixed_pt", (_ChlMixin, _FixedLif))
PyChlFloat = _model("PyChlFloat", ChlLIF, "floating_pt", (_ChlMixin, _FloatLif))


class _ReplayModel(PyLoihiProcessModel):
    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._bap = None
        self._y = None

    def run_spk(self) -> None:
        if self._bap is None:
            steps, n = int(self.proc_params["steps"]), int(self.proc_params["shape"][0])
            self._bap = np.memmap(self.proc_params["bap_path"], dtype=np.uint8, mode="r", shape=(steps, n))
            self._y = np.memmap(self.proc_params["y_path"], dtype=self.proc_params["dtype"], mode="r",
                                shape=(steps, 3, n))
        row = min(self.time_step - 1, self._bap.shape[0] - 1)
        self.s_out_bap.send(np.asarray(self._bap[row]).astype(bool))
        y = np.asarray(self._y[row])
        self.s_out_y1.send(y[0])
        self.s_out_y2.send(y[1])
        self.s_out_y3.send(y[2])


PyTraceReplayFixed = _model("PyTraceReplayFixed", TraceReplay, "fixed_pt", (_ReplayModel,),
                            s_out_bap=LavaPyType(PyOutPort.VEC_DENSE, bool, precision=1),
                            **{f"s_out_y{k}": LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=7)
                               for k in (1, 2, 3)})
PyTraceReplayFloat = _model("PyTraceReplayFloat", TraceReplay, "floating_pt", (_ReplayModel,),
                            s_out_bap=LavaPyType(PyOutPort.VEC_DENSE, bool),
                            **{f"s_out_y{k}": LavaPyType(PyOutPort.VEC_DENSE, float) for k in (1, 2, 3)})
