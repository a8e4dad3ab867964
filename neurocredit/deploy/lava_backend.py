"""Backend ``lava``: a LIF ``Network`` as Lava processes, run on ``Loihi2SimCfg``.

Process graph (one population per layer, Lava's own neuron and synapse models)::

    SpikeFileSource -> Dense(W1) -> LIF1 -> Dense(W2) -> LIF2 -> ... -> LIF_N
                                      |                   |              |
                                 SpikeFileSink       SpikeFileSink   SpikeFileSink

Timing: Lava's ``Dense`` sends the accumulation of the previous step, so layer i receives
``W_i s_{i-1}[t-1]`` -- exactly the convention of :func:`neurocredit.neurons.run_lif_network`;
no alignment is needed.

A ``Conv2d`` layer becomes ``lava.proc.conv.process.Conv`` (the same one-step delay as
``Dense``): its OIHW cross-correlation kernel flipped and transposed to Lava's (C_out, W, H, C_in)
(:func:`lava_conv_kernel`), stride and padding as (x, y), its LIF population shaped (X, Y, C) =
(W, H, C) (:func:`lava_shape`; per-neuron values and rasters are permuted between that order and
our C order of (C, H, W) by :func:`lava_positions`); a Dense after a (C, H, W) population reads
the flattened (X, Y, C) port with its columns permuted to match. Lanes of a conv layer are the
groups of one ``Conv`` (``groups = lanes``; lane l's channels are group l of the (X, Y, lanes*C)
map). In fixed point, ``PyConvModelFixed`` applies no weight exponent and wraps its
sum modulo 2**24 (see :func:`neurocredit.deploy.quantize.quantize_conv_layer`).

Modes (``Loihi2SimCfg(select_tag=...)``):

* ``fixed_pt`` (default): ``PyLifModelBitAcc`` / ``PyDenseModelBitAcc`` on the integers of
  :func:`neurocredit.deploy.quantize.quantize`; equal bit for bit to the ``emulator`` backend.
* ``floating_pt``: ``PyLifModelFloat`` / ``PyDenseModelFloat`` on the float parameters; equal to
  the ``reference``/``norse`` backends up to float rounding in the weight sums.

Choose the mode with ``run(..., mode=)``, or for ``neurocredit eval --backend lava`` and
:func:`neurocredit.sim.simulate` with the environment variable ``NEUROCREDIT_LAVA_MODE``
(``fixed_pt`` or ``floating_pt``). Before anything is built the network is checked against a
hardware target (:mod:`neurocredit.deploy.partition`): ``run(..., target=)`` or
``NEUROCREDIT_LAVA_TARGET`` (default ``loihi2``; ``none`` skips the check).

Many samples, one compiled graph: samples run back to back in one long input buffer (a
"window" of ``steps`` time steps each). Between windows the state is cleared exactly:
``LIFReset`` zeroes u and v at the first step of every window, and a ``lava.proc.io.reset.Reset``
process zeroes each ``Dense``'s one-step buffer ``a_buff`` after the last step of every window
(without it the last spikes of one sample would reach the next one). Several samples also run
side by side ("lanes"): each layer becomes ``lanes`` copies of itself, one ``Dense`` with a
block-diagonal weight matrix and one ``LIF`` population ``lanes`` times wider -- the same
arithmetic per neuron, far fewer time steps. ``lanes`` defaults to :func:`choose_lanes`
(override with ``run(..., lanes=)`` or ``NEUROCREDIT_LAVA_LANES``).

A refractory network (``refractory = N > 0``) runs on ``LIFRefractory(refractory_period=N)``
(floating point only: Lava 0.10 has no fixed-point refractory model, so ``fixed_pt`` refuses it in
one line). It has no reset interval: with several windows, ``Reset`` processes clear its ``u``,
``v`` and refractory end (and the synapse's buffer) after one extra blank step per window, whose
records are dropped (the resets run in the post-management phase, alongside the state probes).

The runtime is always stopped (``try``/``finally``, also on Ctrl-C): children ignore SIGINT
while they are forked, so an interrupt reaches only this process, which stops them; a runtime
that does not stop within :data:`STOP_TIMEOUT_S` has its worker processes terminated.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable, NamedTuple, Optional

import numpy as np

from neurocredit.deploy.quantize import QuantizedNetwork, quantize
from neurocredit.encoders import check_binary, is_binary
from neurocredit.errors import NeurocreditError
from neurocredit.network import Network
from neurocredit.record import RunRecord

MODES = ("fixed_pt", "floating_pt")
MODE_ENV = "NEUROCREDIT_LAVA_MODE"
TARGET_ENV = "NEUROCREDIT_LAVA_TARGET"
LANES_ENV = "NEUROCREDIT_LAVA_LANES"
DEFAULT_TARGET = "loihi2"
# Lane choice (a speed knob, not a hardware number): a block-diagonal Dense with L lanes holds
# L**2 times the layer's weights and Lava sums a column slice of it every step, so L is capped
# where that cost starts to exceed the per-step messaging cost it saves.
MAX_LANES = 16
LANE_WEIGHT_BUDGET = 2_000_000
STOP_TIMEOUT_S = 20.0
# Graded (non-binary) input in floating point is sent as a value: Dense's num_message_bits > 0.
GRADED_MESSAGE_BITS = 24


def import_lava() -> None:
    """Import Lava's runtime. Lava calls ``multiprocessing.set_start_method('fork')`` at import and
    fails if anything (e.g. a tqdm progress bar's lock) fixed the start method before; a start
    method that is already ``fork`` is therefore reset first, so Lava can set it again."""
    import sys

    if "lava.magma.runtime.message_infrastructure.multiprocessing" in sys.modules:
        return
    current = multiprocessing.get_start_method(allow_none=True)
    if current not in (None, "fork"):
        raise NeurocreditError(f"Lava needs the 'fork' multiprocessing start method, but {current!r} is already set")
    if current == "fork":
        multiprocessing.set_start_method(None, force=True)
    import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401


def default_mode() -> str:
    """``$NEUROCREDIT_LAVA_MODE`` or ``fixed_pt``."""
    mode = os.environ.get(MODE_ENV, "fixed_pt")
    if mode not in MODES:
        raise NeurocreditError(f"{MODE_ENV}={mode!r} must be one of {', '.join(MODES)}")
    return mode


def choose_lanes(network: Network, samples: int) -> int:
    """Samples run side by side: ``$NEUROCREDIT_LAVA_LANES`` if set, else the largest L <=
    :data:`MAX_LANES` whose block-diagonal weight matrices stay within :data:`LANE_WEIGHT_BUDGET`
    entries per layer (never more than ``samples``)."""
    wanted = os.environ.get(LANES_ENV)
    if wanted:
        try:
            lanes = int(wanted)
        except ValueError:
            raise NeurocreditError(f"{LANES_ENV}={wanted!r} must be a positive integer") from None
        if lanes < 1:
            raise NeurocreditError(f"{LANES_ENV}={wanted!r} must be a positive integer")
        return max(1, min(lanes, samples))
    # a conv layer's lanes are groups of one Conv (its kernel is not copied into a block matrix)
    largest = max(layer.n_weights if layer.kind == "conv2d" else layer.n_in * layer.n_out
                  for layer in network.layers)
    lanes = int(math.isqrt(max(1, LANE_WEIGHT_BUDGET // max(1, largest))))
    return max(1, min(MAX_LANES, lanes, samples))


def check_refractory_mode(network: Network, mode: str) -> None:
    """Lava 0.10 has a refractory LIF in floating point only (``PyLifRefractoryModelFloat``)."""
    if network.neuron.lif.refractory and mode == "fixed_pt":
        raise NeurocreditError(
            f"this network has a refractory period of {network.neuron.lif.refractory} step(s), which Lava 0.10 has "
            "no fixed-point model for (LIFRefractory is floating point only); deploy it with --floating-point and "
            "without --verify (or run it with NEUROCREDIT_LAVA_MODE=floating_pt)"
        )


def check_target(network: Network, target: Optional[str], weight_bits: Optional[int] = None):
    """The partition of ``network`` on ``target`` (name or path; default ``$NEUROCREDIT_LAVA_TARGET``
    or loihi2), or None for ``none``. Raises the limit violation as a NeurocreditError."""
    from neurocredit.deploy.partition import check_and_partition
    from neurocredit.targets import load_target

    name = target if target is not None else os.environ.get(TARGET_ENV, DEFAULT_TARGET)
    if str(name).lower() == "none":
        return None
    return check_and_partition(network, load_target(name), weight_bits=weight_bits)


def to_lanes(inputs: np.ndarray, lanes: int) -> np.ndarray:
    """(steps, batch, n) -> (windows * steps, lanes * n): sample ``w * lanes + l`` occupies rows
    ``w*steps .. w*steps+steps-1`` and columns of lane ``l`` (missing samples are zeros)."""
    steps, batch, n = inputs.shape
    windows = math.ceil(batch / lanes)
    padded = np.zeros((steps, windows * lanes, n), dtype=inputs.dtype)
    padded[:, :batch] = inputs
    return padded.reshape(steps, windows, lanes, n).transpose(1, 0, 2, 3).reshape(windows * steps, lanes * n)


def from_lanes(rows: np.ndarray, steps: int, batch: int, lanes: int) -> np.ndarray:
    """Inverse of :func:`to_lanes`: (windows * steps, lanes * n) -> (steps, batch, n)."""
    total, width = rows.shape
    windows, n = total // steps, width // lanes
    return rows.reshape(windows, steps, lanes, n).transpose(1, 0, 2, 3).reshape(steps, windows * lanes, n)[:, :batch]


class LavaGraph(NamedTuple):
    """The source process of one compiled run (Lava finds every other process through the
    connections, both ways), and the files the processes read and write."""

    source: object
    spike_files: list[Path]
    state_files: list[tuple[Path, Path]]


def lava_positions(shape: tuple[int, ...], lanes: int = 1) -> np.ndarray:
    """For ``lanes`` copies of a population of our ``shape``: ``P[p]`` = the lane-major index
    ``lane * n + i`` (``i`` our C-order index in (C, H, W)) of the neuron at Lava's flat position
    ``p``. A 1-D population is lane-major in Lava too (identity); a (C, H, W) one is Lava's
    (X, Y, lanes * C) = (W, H, lanes * C) map, lane ``l`` holding channels ``l*C .. l*C+C-1``.
    Lane-major -> Lava: ``rows[..., P]``; Lava -> lane-major: ``rows[..., argsort(P)]``."""
    total = int(lanes) * int(np.prod(shape))
    if len(shape) != 3:
        return np.arange(total)
    return np.arange(total).reshape(int(lanes), *shape).transpose(3, 2, 0, 1).ravel()


def lava_shape(shape: tuple[int, ...], lanes: int = 1) -> tuple[int, ...]:
    """Lava's shape of ``lanes`` copies of a population: (W, H, lanes * C) for our (C, H, W);
    (lanes * n,) for (n,)."""
    if len(shape) == 3:
        return int(shape[2]), int(shape[1]), int(lanes) * int(shape[0])
    return (int(lanes) * int(shape[0]),)


def lava_conv_kernel(weight: np.ndarray) -> np.ndarray:
    """Our OIHW cross-correlation kernel as Lava's ``Conv`` weight (C_out, W, H, C_in): Lava
    computes a true convolution (``scipy.signal.convolve2d``), so the kernel is flipped in both
    spatial axes, then transposed (lava/proc/conv/utils.py; lava-dl netx does the same)."""
    return np.ascontiguousarray(np.asarray(weight)[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))


def _block_diagonal(matrix: np.ndarray, lanes: int) -> np.ndarray:
    return matrix if lanes == 1 else np.kron(np.eye(lanes, dtype=matrix.dtype), matrix)


def build_graph(network: Network, quantized: Optional[QuantizedNetwork], mode: str, steps: int, windows: int,
                lanes: int, folder: Path, input_dtype: str, record_states: bool) -> LavaGraph:
    """Create the Lava processes (not compiled yet). ``quantized`` is used in ``fixed_pt``."""
    import_lava()
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense
    from lava.proc.io.reset import Reset
    from lava.proc.lif.process import LIF, LIFRefractory, LIFReset
    from lava.utils.weightutils import SignMode

    from neurocredit.deploy.lava_io.process import SpikeFileSink, SpikeFileSource, VarFileProbe

    total = windows * steps
    shapes = network.shapes
    source = SpikeFileSource(shape=lava_shape(shapes[0], lanes), path=str(folder / "input.bin"), steps=total,
                             dtype=input_dtype)
    graded = input_dtype != "uint8"
    params = network.neuron.lif
    spike_files, state_files = [], []
    previous = source.s_out
    for index, layer in enumerate(network.layers):
        name = layer.name or f"layer{index + 1}"
        width = lanes * layer.n_out
        population = lava_shape(shapes[index + 1], lanes)

        def to_population(values):
            """Per-neuron values (ours, tiled over lanes) in Lava's order and shape."""
            return np.tile(np.asarray(values), lanes)[lava_positions(shapes[index + 1], lanes)].reshape(population)

        def conv(weight, **args):
            """One ``Conv`` for all lanes: ``groups = lanes``, lane l's channels are group l."""
            return Conv(weight=np.concatenate([lava_conv_kernel(weight)] * lanes, axis=0),
                        input_shape=lava_shape(shapes[index], lanes), padding=layer.padding[::-1],
                        stride=layer.stride[::-1], groups=lanes, name=f"{name}.conv", **args)

        if layer.kind == "dense" and len(shapes[index]) == 3:
            previous = previous.flatten()  # Lava's (X, Y, C) order: the columns are permuted below
        columns = lava_positions(shapes[index], lanes)  # of the lane-major block-diagonal matrix
        message_bits = GRADED_MESSAGE_BITS if (graded and index == 0) else 0
        if mode == "fixed_pt":
            fixed = quantized.layers[index]
            if layer.kind == "conv2d":
                dense = conv(fixed.weights.astype(np.int32), weight_exp=0,
                             num_weight_bits=int(fixed.num_weight_bits))
            else:
                dense = Dense(weights=_block_diagonal(fixed.weights.astype(np.int32), lanes)[:, columns],
                              name=f"{name}.dense", weight_exp=int(fixed.weight_exp),
                              num_weight_bits=int(fixed.num_weight_bits), sign_mode=SignMode[fixed.sign_mode.upper()])
            neuron_args = dict(shape=population, du=int(quantized.du), dv=int(quantized.dv), vth=int(fixed.vth),
                               bias_mant=to_population(fixed.bias_mant), bias_exp=to_population(fixed.bias_exp))
        else:
            if layer.kind == "conv2d":
                dense = conv(layer.weight.astype(np.float64), num_message_bits=message_bits)
            else:
                dense = Dense(weights=_block_diagonal(layer.weight.astype(np.float64), lanes)[:, columns],
                              name=f"{name}.dense", num_message_bits=message_bits)
            neuron_args = dict(shape=population, du=float(params.du), dv=float(params.dv), vth=float(params.vth),
                               bias_mant=to_population(layer.neuron_bias.astype(np.float64)), bias_exp=0)
        buffer = dense.a_buf if layer.kind == "conv2d" else dense.a_buff
        if params.refractory:
            # LIFRefractory has no reset interval: u, v and the refractory end are zeroed after the
            # last step of each window by Reset processes, like the synaptic buffer below.
            neuron = LIFRefractory(refractory_period=int(params.refractory), name=f"{name}.lif", **neuron_args)
            cleared = [buffer, neuron.u, neuron.v, neuron.refractory_period_end] if windows > 1 else []
        elif windows > 1:
            # u, v <- 0 before the first step of each window (time_step % steps == 1, 1-based).
            neuron = LIFReset(reset_interval=steps, reset_offset=1 % steps, name=f"{name}.lif", **neuron_args)
            cleared = [buffer]
        else:
            neuron = LIF(name=f"{name}.lif", **neuron_args)
            cleared = []
        for var in cleared:
            # var <- 0 after the last step of each window ((time_step - 1) % steps == steps - 1).
            Reset(reset_value=0, interval=steps, offset=steps - 1).connect_var(var)
        previous.connect(dense.s_in)
        dense.a_out.connect(neuron.a_in)
        spike_file = folder / f"spikes{index}.bin"
        np.memmap(spike_file, dtype=np.uint8, mode="w+", shape=(total, width)).flush()
        neuron.s_out.connect(SpikeFileSink(shape=population, path=str(spike_file), steps=total).a_in)
        if record_states:
            state_dtype = np.int32 if mode == "fixed_pt" else np.float64
            pair = (folder / f"current{index}.bin", folder / f"voltage{index}.bin")
            for var, path in zip((neuron.u, neuron.v), pair):
                np.memmap(path, dtype=state_dtype, mode="w+", shape=(total, width)).flush()
                VarFileProbe(var=var, path=str(path), steps=total)
            state_files.append(pair)
        spike_files.append(spike_file)
        previous = neuron.s_out
    return LavaGraph(source, spike_files, state_files)


def _create_runtime_ignoring_sigint(process, run_config) -> None:
    """Compile and start the worker processes; they inherit SIGINT = ignore, so Ctrl-C reaches
    only this process (which then stops them cleanly)."""
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
    try:
        process.create_runtime(run_cfg=run_config)
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)


def stop_runtime(runtime, timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop a Lava runtime; if it does not stop within ``timeout`` s (workers dead or hung),
    terminate its worker processes and its shared-memory manager."""
    if runtime is None:
        return

    def stop():
        try:
            runtime.stop()
        except BaseException:  # a half-dead runtime can fail in many ways; we clean up below
            pass

    thread = threading.Thread(target=stop, name="lava-stop", daemon=True)
    thread.start()
    thread.join(timeout)
    infrastructure = getattr(runtime, "_messaging_infrastructure", None)
    for actor in list(getattr(infrastructure, "actors", None) or []):
        try:
            alive = actor.is_alive()
        except ValueError:  # already joined and closed by a clean stop
            continue
        if alive:
            actor.terminate()
            multiprocessing.Process.join(actor, 5)
            if actor.is_alive():
                actor.kill()
                multiprocessing.Process.join(actor, 5)
    manager = getattr(infrastructure, "smm", None)
    if thread.is_alive() and manager is not None:
        try:
            manager.shutdown()
        except Exception:
            pass


def _read_rows(path: Path, dtype, total: int, width: int) -> np.ndarray:
    return np.array(np.memmap(path, dtype=dtype, mode="r", shape=(total, width)))


def run_lava(network: Network, inputs: np.ndarray, mode: str, record: Iterable[str] = frozenset(),
             quantized: Optional[QuantizedNetwork] = None, lanes: Optional[int] = None,
             progress: bool = False) -> RunRecord:
    """Run ``inputs`` (steps, batch, n_inputs) through one compiled Lava graph (see module doc)."""
    import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    if mode not in MODES:
        raise NeurocreditError(f"Lava mode {mode!r} must be one of {', '.join(MODES)}")
    if not network.neuron.spiking:
        raise NeurocreditError("the lava backend runs spiking (lif) networks only")
    check_refractory_mode(network, mode)
    record = frozenset(record)
    inputs = np.asarray(inputs)
    if inputs.ndim != 3 or inputs.shape[2] != network.n_inputs:
        raise NeurocreditError(f"lava input has shape {inputs.shape}; expected (steps, batch, {network.n_inputs})")
    steps, batch, _ = inputs.shape
    if batch == 0:
        raise NeurocreditError("no samples to run through Lava")
    binary = is_binary(inputs)
    if mode == "fixed_pt":
        check_binary(inputs)
        quantized = quantized if quantized is not None else quantize(network)
    lanes = choose_lanes(network, batch) if lanes is None else max(1, min(int(lanes), batch))
    windows = math.ceil(batch / lanes)
    run_inputs, steps_run = inputs, steps
    if network.neuron.lif.refractory and windows > 1:
        # One blank step after each sample: the Reset processes clear the refractory neurons after
        # it, in the post-management phase, which races with the state probes; that step is dropped.
        run_inputs = np.concatenate([inputs, np.zeros((1,) + inputs.shape[1:], inputs.dtype)])
        steps_run = steps + 1
    total = windows * steps_run
    record_states = bool({"voltages", "currents"} & record)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="neurocredit-lava-") as temp:
        folder = Path(temp)
        input_dtype = "uint8" if binary else "float32"
        rows = to_lanes(run_inputs.astype(input_dtype), lanes)[:, lava_positions(network.shapes[0], lanes)]
        np.asarray(rows).tofile(folder / "input.bin")
        graph = build_graph(network, quantized, mode, steps_run, windows, lanes, folder, input_dtype, record_states)
        runtime = None
        try:
            _create_runtime_ignoring_sigint(graph.source, Loihi2SimCfg(select_tag=mode))
            runtime = graph.source.runtime
            chunk = total if not progress else max(steps_run, steps_run * math.ceil(windows / 50))
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=batch, desc=f"lava ({mode})", unit="sample", leave=False)
            for first in range(0, total, chunk):
                count = min(chunk, total - first)
                graph.source.run(condition=RunSteps(num_steps=count, blocking=True))
                if bar is not None:
                    bar.update(min(batch, ((first + count) // steps_run) * lanes) - bar.n)
            if bar is not None:
                bar.close()
            widths = [lanes * layer.n_out for layer in network.layers]
            # Lava's (X, Y, lanes * C) order back to lane-major (identity for 1-D populations)
            ours = [np.argsort(lava_positions(shape, lanes)) for shape in network.shapes[1:]]

            def read(path, dtype, width, order):
                return from_lanes(_read_rows(path, dtype, total, width)[:, order], steps_run, batch, lanes)[:steps]

            spikes = [read(path, np.uint8, width, order).astype(bool)
                      for path, width, order in zip(graph.spike_files, widths, ours)]
            currents = voltages = None
            if record_states:
                dtype = np.int32 if mode == "fixed_pt" else np.float64
                currents = [read(pair[0], dtype, w, order).astype(np.float64)
                            for pair, w, order in zip(graph.state_files, widths, ours)]
                voltages = [read(pair[1], dtype, w, order).astype(np.float64)
                            for pair, w, order in zip(graph.state_files, widths, ours)]
        finally:
            stop_runtime(runtime if runtime is not None else getattr(graph.source, "runtime", None))
    result = RunRecord.from_rasters("lava", network, inputs, spikes, voltages, currents, record)
    return result.replace(seconds=time.perf_counter() - began)


def run(network: Network, inputs: np.ndarray, record: Iterable[str] = frozenset(), mode: Optional[str] = None,
        quantized: Optional[QuantizedNetwork] = None, lanes: Optional[int] = None, target: Optional[str] = None,
        progress: bool = False) -> RunRecord:
    """Backend entry point (see module doc): check the target's limits, then run through Lava
    in ``mode`` (default :func:`default_mode`)."""
    mode = default_mode() if mode is None else mode
    if mode not in MODES:
        raise NeurocreditError(f"Lava mode {mode!r} must be one of {', '.join(MODES)}")
    check_target(network, target, weight_bits=quantized.weight_bits if quantized is not None else None)
    return run_lava(network, inputs, mode, record, quantized=quantized, lanes=lanes, progress=progress)
