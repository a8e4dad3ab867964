"""Run on-chip learning in Lava itself (``Loihi2SimCfg``, ``fixed_pt`` or ``floating_pt``).

Two graphs:

* :func:`run_learning_dense` -- one ``LearningDense`` fed recorded pre spikes
  (``SpikeFileSource``) and recorded post spikes and y traces (``TraceReplay``); its weights,
  tags and x1 trace are read after every step (``VarFileProbe``). This is how the engine
  re-implementation (:mod:`neurocredit.learn.engine`) is checked against Lava.
* :func:`run_dfa_network` -- a whole network learning with on-chip DFA::

      input SpikeFileSource -> LearningDense(W1) -> DfaHiddenLIF -> ... -> LearningDense(WN) -> DfaOutputLIF
      target SpikeFileSource ------------------------------------------------------> a_third_factor_in
      DfaOutputLIF.s_out_error -> Dense(B_l, graded) -> DfaHiddenLIF_l.a_third_factor_in
      every LIF's s_out_bap, s_out_y1..y3 -> its LearningDense's s_in_bap, s_in_y1..y3

Both always stop the runtime (``deploy.lava_backend.stop_runtime``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

from neurocredit.errors import NeurocreditError
from neurocredit.learn.engine import RuleSpec


class DenseRun(NamedTuple):
    """Per step (steps, ...) values read from Lava after each step's learning phase."""

    weights: np.ndarray
    tag_1: np.ndarray
    x1: np.ndarray


def _run(process, steps: int, fixed: bool, after=None):
    from neurocredit.deploy.lava_backend import _create_runtime_ignoring_sigint, import_lava, stop_runtime

    import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    runtime = None
    try:
        _create_runtime_ignoring_sigint(process, Loihi2SimCfg(select_tag="fixed_pt" if fixed else "floating_pt"))
        runtime = process.runtime
        process.run(condition=RunSteps(num_steps=int(steps), blocking=True))
        return after() if after is not None else None
    finally:
        try:
            stop_runtime(runtime if runtime is not None else getattr(process, "runtime", None))
        except ValueError:  # a worker already closed while it was being stopped: it is gone
            pass


def run_learning_dense(spec: RuleSpec, weights: np.ndarray, pre_spikes: np.ndarray, post_spikes: np.ndarray,
                       y_traces: np.ndarray, fixed: bool) -> DenseRun:
    """One Lava ``LearningDense`` with ``spec`` (3F), initial ``weights`` (post, pre), driven
    by ``pre_spikes`` (steps, pre), ``post_spikes`` (steps, post), ``y_traces`` (steps, 3, post)."""
    from neurocredit.deploy.lava_backend import import_lava

    import_lava()
    from lava.proc.dense.process import LearningDense
    from lava.utils.weightutils import SignMode

    from neurocredit.deploy.lava_io.process import SpikeFileSource, VarFileProbe
    from neurocredit.learn.lava_procs.process import TraceReplay

    steps, n_pre = pre_spikes.shape
    n_post = weights.shape[0]
    value_dtype = np.int32 if fixed else np.float64
    with tempfile.TemporaryDirectory(prefix="neurocredit-learn-") as temp:
        folder = Path(temp)
        np.asarray(pre_spikes, np.uint8).tofile(folder / "pre.bin")
        np.asarray(post_spikes, np.uint8).tofile(folder / "bap.bin")
        np.asarray(y_traces, value_dtype).tofile(folder / "y.bin")
        source = SpikeFileSource(shape=(n_pre,), path=folder / "pre.bin", steps=steps, dtype="uint8")
        replay = TraceReplay(shape=(n_post,), bap_path=folder / "bap.bin", y_path=folder / "y.bin", steps=steps,
                             dtype=np.dtype(value_dtype).name)
        dense = LearningDense(weights=np.asarray(weights, np.float64 if not fixed else np.int32),
                              learning_rule=spec.lava_rule(), sign_mode=SignMode.MIXED, num_weight_bits=8)
        source.s_out.connect(dense.s_in)
        for trace in ("bap", "y1", "y2", "y3"):
            getattr(replay, f"s_out_{trace}").connect(getattr(dense, f"s_in_{trace}"))
        files = {name: folder / f"{name}.bin" for name in ("weights", "tag_1", "x1")}
        shapes = {"weights": (n_post, n_pre), "tag_1": (n_post, n_pre), "x1": (n_pre,)}
        for name, path in files.items():
            np.zeros((steps,) + shapes[name], value_dtype).tofile(path)
            VarFileProbe(var=getattr(dense, name), path=path, steps=steps)  # kept alive by the graph (RefPort)
        _run(source, steps, fixed)
        read = {name: np.array(np.memmap(path, dtype=value_dtype, mode="r", shape=(steps,) + shapes[name]))
                for name, path in files.items()}
    return DenseRun(read["weights"], read["tag_1"], read["x1"])


class LavaDfaResult(NamedTuple):
    """Learned integer (fixed) or float weights per layer (post, pre), output spike counts per
    sample (samples, n_out), and the wall-clock seconds of the Lava run (build + run)."""

    weights: list[np.ndarray]
    output_counts: np.ndarray
    seconds: float


def _learning_layer(layer, previous, neuron):
    """The plastic ``LearningDense`` of ``layer`` (8-bit mixed-sign weights, its rule) from the
    port ``previous`` into ``neuron``, which sends it its back-propagating spike and y traces."""
    from lava.proc.dense.process import LearningDense
    from lava.utils.weightutils import SignMode

    dense = LearningDense(weights=np.asarray(layer.weights), weight_exp=layer.weight_exp, num_weight_bits=8,
                          sign_mode=SignMode.MIXED, learning_rule=layer.rule.spec.lava_rule())
    previous.connect(dense.s_in)
    dense.a_out.connect(neuron.a_in)
    for trace in ("bap", "y1", "y2", "y3"):
        getattr(neuron, f"s_out_{trace}").connect(getattr(dense, f"s_in_{trace}"))
    return dense


def _run_network(plan, input_spikes: np.ndarray, targets: np.ndarray, period: int, make_neuron,
                 connect_feedback) -> LavaDfaResult:
    """The part both learning networks share: the input and target files and sources, one
    plastic ``LearningDense`` into ``make_neuron(index, layer)`` per layer, the target into the
    output's ``a_third_factor_in``, ``connect_feedback(neurons)``, an output sink; run, read the
    weights. ``output_counts`` holds the output spikes per sample, (samples, period, n_out).
    Its callers have imported Lava (``import_lava``)."""
    from neurocredit.deploy.lava_io.process import SpikeFileSink, SpikeFileSource

    began = time.perf_counter()
    steps = int(input_spikes.shape[0])
    fixed = plan.fixed
    if steps % period:
        raise NeurocreditError(f"{steps} steps is not a whole number of {period}-step samples")
    with tempfile.TemporaryDirectory(prefix="neurocredit-learn-") as temp:
        folder = Path(temp)
        np.asarray(input_spikes, np.uint8).tofile(folder / "input.bin")
        target_dtype = "int32" if fixed else "float64"
        np.asarray(targets, target_dtype).tofile(folder / "target.bin")
        source = SpikeFileSource(shape=(plan.sizes[0],), path=folder / "input.bin", steps=steps, dtype="uint8")
        target = SpikeFileSource(shape=(plan.sizes[-1],), path=folder / "target.bin", steps=steps,
                                 dtype=target_dtype)
        denses, neurons = [], []
        previous = source.s_out
        for index, layer in enumerate(plan.layers):
            neuron = make_neuron(index, layer)
            denses.append(_learning_layer(layer, previous, neuron))
            neurons.append(neuron)
            previous = neuron.s_out
        target.s_out.connect(neurons[-1].a_third_factor_in)
        connect_feedback(neurons)
        np.zeros((steps, plan.sizes[-1]), np.uint8).tofile(folder / "out.bin")
        sink = SpikeFileSink(shape=(plan.sizes[-1],), path=folder / "out.bin", steps=steps)
        neurons[-1].s_out.connect(sink.a_in)

        def read_weights():
            return [np.array(dense.weights.get()) for dense in denses]

        weights = _run(source, steps, fixed, after=read_weights)
        spikes = np.array(np.memmap(folder / "out.bin", dtype=np.uint8, mode="r", shape=(steps, plan.sizes[-1])))
    if fixed:
        weights = [w.astype(np.int32) for w in weights]
    return LavaDfaResult(weights, spikes.reshape(-1, period, plan.sizes[-1]), time.perf_counter() - began)


def _feedback_dense(feedback, message_bits: Optional[int] = None):
    from lava.proc.dense.process import Dense
    from lava.utils.weightutils import SignMode

    extra = {} if message_bits is None else {"num_message_bits": message_bits}
    return Dense(weights=np.asarray(feedback.weights), weight_exp=feedback.weight_exp, num_weight_bits=8,
                 sign_mode=SignMode.MIXED, **extra)


def run_dfa_network(plan, input_spikes: np.ndarray, targets: np.ndarray) -> LavaDfaResult:
    """Learn on ``input_spikes`` (samples * period, n_in) 0/1 with ``targets`` (samples * period,
    n_out) in Lava; ``plan`` is a :class:`neurocredit.learn.onchip.DfaPlan` (its ``fixed`` picks
    the mode)."""
    from neurocredit.deploy.lava_backend import import_lava

    import_lava()
    from neurocredit.learn.lava_procs.process import DfaHiddenLIF, DfaOutputLIF

    def make_neuron(index, layer):
        cls = DfaOutputLIF if index == len(plan.layers) - 1 else DfaHiddenLIF
        return cls(shape=(layer.n_out,), du=layer.du, dv=layer.dv, vth=layer.vth, bias_mant=layer.bias_mant,
                   bias_exp=layer.bias_exp, learning_rule=layer.rule.spec.lava_rule(), **plan.neuron._asdict())

    def connect_feedback(neurons):
        for index, feedback in enumerate(plan.feedback):  # e -> Dense(B_l, graded) -> hidden third factor
            dense = _feedback_dense(feedback, plan.message_bits)
            neurons[-1].s_out_error.connect(dense.s_in)
            dense.a_out.connect(neurons[index].a_third_factor_in)

    result = _run_network(plan, input_spikes, targets, plan.neuron.period, make_neuron, connect_feedback)
    return result._replace(output_counts=result.output_counts.sum(axis=1))


def run_chl_network(plan, input_spikes: np.ndarray, targets: np.ndarray) -> LavaDfaResult:
    """On-chip CHL in Lava: ``plan`` a :class:`neurocredit.learn.onchip.ChlPlan`; inputs and
    targets as :func:`neurocredit.learn.onchip.encode_chl_stream` makes them. Output counts are
    those of the free phase."""
    from neurocredit.deploy.lava_backend import import_lava

    import_lava()
    from neurocredit.learn.lava_procs.process import ChlLIF

    def make_neuron(index, layer):
        return ChlLIF(shape=(layer.n_out,), du=layer.du, dv=layer.dv, vth=layer.vth, bias_mant=layer.bias_mant,
                      bias_exp=layer.bias_exp, learning_rule=layer.rule.spec.lava_rule(),
                      output=int(index == len(plan.layers) - 1), **plan.neurons[index]._asdict())

    def connect_feedback(neurons):
        for index, feedback in enumerate(plan.feedback):  # output spikes -> Dense(G) -> hidden a_in
            dense = _feedback_dense(feedback)
            neurons[-1].s_out.connect(dense.s_in)
            dense.a_out.connect(neurons[index].a_in)

    result = _run_network(plan, input_spikes, targets, plan.period, make_neuron, connect_feedback)
    return result._replace(output_counts=result.output_counts[:, : plan.period // 2].sum(axis=1))
