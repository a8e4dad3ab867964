"""Backend ``emulator``: Lava's fixed-point LIF, Dense and Conv re-implemented in batched numpy.

It reproduces ``lava.proc.lif.models.PyLifModelBitAcc`` and
``lava.proc.dense.models.PyDenseModelBitAcc`` (lava-nc 0.10.0) bit for bit -- the same spikes and
the same integer ``u`` and ``v`` at every step -- for a whole batch at once, so full test sets
take seconds instead of the hours Lava's multi-process simulation needs.

Per step, per layer, in Lava's order (all integers; ``M = 2**23``)::

    a_in   = a_buff                                   # Dense output computed last step
    a_buff = (sum of weights of inputs that spiked now) << weight_exp   (>> if negative, floor)
    u = sign(u*(4096-(du+1))) * (|u*(4096-(du+1))| >> 12)      # decay toward zero
    u = u + (a_in << 6)                                        # int32 arithmetic
    u = u - 2M if u > M;  u + 2M if u <= -M                    # wrap, as Lava writes it
    v = sign(v*(4096-dv)) * (|v*(4096-dv)| >> 12)
    v = clip(v + u + (bias_mant << bias_exp), -(M-1), M-1)     # int32, then saturate
    s = v > (vth << 6);  v[s] = 0

A ``Conv2d`` layer reproduces ``lava.proc.conv.models.PyConvModelFixed`` instead: ``a_buff`` is
the integer cross-correlation of the spikes with the kernel, wrapped modulo 2**24, with no weight
exponent (:func:`conv_accumulate`). A conv with a fused p x p pool (its integer kernel constant over
p x p blocks) is summed in its pooled form -- the spikes sum-pooled first (counts up to p**2), then
the small kernel -- p**2 times fewer products for the same integers (:func:`synapses`).

Dense weights go through Lava's own ``clip_weights``/``truncate_weights`` rules first
(:func:`lava_dense_weights`). The spike sums are float BLAS matrix products (a conv: torch's
``conv2d``), which are exact here: the operands are 0/1 (or pooled counts) and integers, and every partial sum
stays below 2**24 (float32, checked per layer) or 2**53 (float64 otherwise). A float32 conv is exact
only on oneDNN's direct convolution, so it runs in float64 where that is off (:func:`exact_float32_conv`).

The state is held as integer-valued float64 (exact below 2**53): the decay ``x*f >> 12`` toward
zero is ``trunc(x * (f / 4096))`` (``f / 4096`` is dyadic and ``|x*f| < 2**35``, so the product
is exact), and every int32 overflow and wrap of Lava's arithmetic is applied where the array's
extremes show it can occur (:func:`lif_exact_step`, :func:`wrap_exact`): fewer passes over the
state than int32/int64 arithmetic, the same integers. The batch runs in chunks of
:data:`BATCH_CHUNK` samples, side by side on as many threads as torch may use (``neurocredit
--threads``), each chunk layer by layer over the whole window (the network is feed-forward):
a layer's synaptic drive for many steps is one product, only the LIF update loops over steps.
With numba installed (extra ``onchip``) that loop is compiled
(:func:`neurocredit.deploy.lif_compiled.lif_window`: int64 per element, one pass over the state
per step; tested bit for bit against :func:`lif_exact_step`, which stays the definition and runs
without numba and for refractory networks).

A network with a refractory period (``refractory = N > 0``) holds ``v`` for the ``N`` steps after
a spike while ``u`` integrates, as Lava's float ``LIFRefractory`` does. Lava 0.10 has no
fixed-point refractory model, so that extension is not checked against Lava (the ``lava`` backend
refuses it in ``fixed_pt``).

Voltages and currents in the returned :class:`RunRecord` are the raw integers (as float64),
in each layer's fixed-point units (divide by ``FixedLayer.scale`` for float units).
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Iterable, NamedTuple, Optional

import numpy as np

from neurocredit.deploy.quantize import LAVA, FixedLayer, QuantizedNetwork, quantize
from neurocredit.errors import NeurocreditError
from neurocredit.network import Network
from neurocredit.encoders import check_binary
from neurocredit.record import RunRecord

# Samples emulated together (a speed knob, not a hardware number): their state stays in the CPU
# cache, while the per-step Python overhead is shared by enough samples.
BATCH_CHUNK = 64
#: Rows (steps x samples) of one synaptic product: bounds the memory of a layer's drive block.
DRIVE_ROWS = 512
#: Output channels oneDNN's float32 conv computes together on AVX-512 (it pads fewer to this many):
#: a conv with C_out < 16 runs 16 // C_out images at once, stacked as channels (:func:`block_diagonal`).
CONV_CHANNEL_BLOCK = 16


class FixedLIFParameters(NamedTuple):
    """Shared 12-bit decays and the layer's scaled threshold ``vth << 6``."""

    du: int
    dv: int
    effective_vth: int
    refractory: int = 0  # steps v is held after a spike (no Lava fixed-point counterpart in 0.10)


class FixedLIFState(NamedTuple):
    """Integer state, each (batch, n) int32 as in Lava: synaptic current u, membrane voltage v."""

    current: np.ndarray
    voltage: np.ndarray
    refractory: Optional[np.ndarray] = None  # int32 steps still refractory (refractory > 0 only)


class EmulatorTrace(NamedTuple):
    """Per layer (steps, batch, n): ``spikes`` bool; ``currents``/``voltages`` int32 or None."""

    spikes: list[np.ndarray]
    currents: Optional[list[np.ndarray]]
    voltages: Optional[list[np.ndarray]]


def decay_toward_zero(values: np.ndarray, factor: int, out: Optional[np.ndarray] = None) -> np.ndarray:
    """``values * factor / 4096`` rounded toward zero -- Lava's ``sign(x * f) * (|x * f| >> 12)``
    -- as float64 (``trunc(x * (f / 4096))``: exact, see module doc). ``out`` (float64) may be
    ``values`` itself."""
    scaled = np.multiply(values, factor / LAVA.decay_unity, out=out, dtype=np.float64)
    return np.trunc(scaled, out=scaled)


def wrap_exact(values: np.ndarray, bits: int) -> np.ndarray:
    """Integer-valued float64 ``values`` wrapped into ``[-2**(bits-1), 2**(bits-1))`` in place, as
    a ``bits``-bit two's-complement register does (Lava's ``signed_clamp``, int32 overflow).
    Exact (float ``mod`` of integers below 2**53); skipped when nothing is out of range."""
    half = float(1 << (bits - 1))
    if values.size and (values.max() >= half or values.min() < -half):
        values += half
        np.mod(values, 2 * half, out=values)
        values -= half
    return values


def lava_dense_weights(weights: np.ndarray, sign_mode: str, num_weight_bits: int) -> np.ndarray:
    """The weights Lava's bit-accurate ``Dense`` actually uses: ``clip_weights(w, mode, 8)`` then
    ``truncate_weights(w, mode, num_weight_bits)`` (lava/utils/weightutils.py). int64."""
    weights = np.asarray(weights).astype(np.int64)
    mixed = sign_mode == "mixed"
    inhibitory = sign_mode == "inhibitory"
    if inhibitory:
        weights = -weights
    top = (1 << LAVA.dense_weight_bits) - 1
    bottom = -(1 << LAVA.dense_weight_bits) if mixed else 0
    weights = np.clip(weights, bottom, top)
    dropped = LAVA.dense_weight_bits - int(num_weight_bits) + int(mixed)
    weights = (weights >> dropped) << dropped
    return -weights if inhibitory else weights


def _exact_dtype(largest_sum: float):
    """float32 when every partial sum (at most ``largest_sum`` in magnitude) is an exact float32
    integer, else float64 (exact below 2**53)."""
    return np.float32 if largest_sum < 2**24 else np.float64


class Synapses(NamedTuple):
    """One layer's synaptic product as an exact float product (see module doc).

    Dense: ``weights`` (n_in, n_out) of Lava's effective weights, one matrix product. Conv2d: the
    layer in its pooled form -- ``pool`` (p x p sum pool of the (C, H, W) ``source`` first, exact:
    counts <= p**2), then torch's ``conv2d`` with the integer kernel, ``stride`` and ``padding``;
    ``weights`` is that kernel (OIHW) ``group`` times on a block diagonal, so that ``group``
    images run as the channels of one (:data:`CONV_CHANNEL_BLOCK`). Any summation order gives the
    same integers, since every partial sum is an exact float integer."""

    layer: FixedLayer
    weights: np.ndarray
    pool: int = 1
    source: tuple[int, ...] = ()
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    group: int = 1

    def sums(self, spikes: np.ndarray) -> np.ndarray:
        """(..., n_in) 0/1 -> (..., n_out): the exact integer sums of the weights of the active
        inputs (float32 or float64), conv outputs in (C_out, H, W) C order."""
        import torch

        from neurocredit.conv import pooled_hw, sum_pool
        from neurocredit.deploy import lif_compiled

        lead, conv, weights = spikes.shape[:-1], self.layer.is_conv, self.weights
        if self.pool > 1 and lif_compiled.available():  # compiled, counts straight from the 0/1 spikes
            rows = np.ascontiguousarray(spikes.reshape(-1, *self.source))
            images = np.empty((len(rows), self.source[0], *pooled_hw(*self.source[1:], self.pool)), weights.dtype)
            lif_compiled.sum_pool(rows, self.pool, images)
        else:  # counts <= pool**2: exact in any float
            images = spikes.reshape(-1, *(self.source if conv else spikes.shape[-1:])).astype(weights.dtype, copy=False)
            images = sum_pool(images, self.pool) if self.pool > 1 else images
        if weights.dtype == np.float32 and not (exact_float32_conv() if conv else exact_float32_matmul()):
            images, weights = images.astype(np.float64), weights.astype(np.float64)
        rows = len(images)
        if self.group > 1:  # ``group`` images side by side as the channels of one (block-diagonal weights)
            if rows % self.group:
                images = np.concatenate([images, np.zeros((-rows % self.group, *images.shape[1:]), images.dtype)])
            images = images.reshape(-1, self.group * images.shape[1], *images.shape[2:])
        images, weights = torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(weights)
        with torch.no_grad():  # torch's product: numpy's BLAS took up to 8x longer at these shapes
            result = (torch.nn.functional.conv2d(images, weights, stride=self.stride, padding=self.padding)
                      if conv else images @ weights)
        return result.numpy().reshape(rows + -rows % self.group, -1)[:rows].reshape(*lead, -1)

    def drive(self, spikes: np.ndarray) -> np.ndarray:
        """What the LIF adds to ``u`` one step later, ``a_in << 6``, for ``spikes`` (..., n_in):
        float64 integers with Lava's wraps (conv: the 24-bit buffer, no weight exponent; dense:
        the weight exponent shift in int32, floor for negative exponents; then ``<< 6`` in int32)."""
        summed = self.sums(spikes).astype(np.float64)
        if self.layer.is_conv:
            wrap_exact(summed, LAVA.state_bits)
        elif self.layer.weight_exp >= 0:
            summed *= 2.0 ** self.layer.weight_exp
            wrap_exact(summed, 32)
        else:
            np.floor(np.multiply(summed, 2.0 ** self.layer.weight_exp, out=summed), out=summed)
        summed *= 2.0 ** LAVA.activation_shift
        return wrap_exact(summed, 32)


def exact_float32_conv() -> bool:
    """Whether torch's float32 ``conv2d`` returns the exact sums of integer-valued operands (every
    partial sum below 2**24) under torch's current settings: on oneDNN (``torch.backends.mkldnn``,
    enabled, full fp32 precision) it runs a direct convolution, whose partial sums are all integers.
    Its other CPU paths are not exact: with oneDNN switched off (torch 2.14), stride-1 convs of 0/1
    spikes returned sums up to 2**-11 off an integer (a fast algorithm's non-integer intermediates),
    one unit off once truncated (``tests/test_conv_backends.py``). Where this is False the
    emulator's convs run in float64 (exact below 2**53 on any path; several times slower)."""
    import torch

    onednn = torch.backends.mkldnn
    precision = getattr(getattr(onednn, "conv", None), "fp32_precision", "none")
    return onednn.is_available() and bool(onednn.enabled) and precision in ("none", "ieee") and exact_float32_matmul()


def exact_float32_matmul() -> bool:
    """Whether torch's float32 matrix products run in float32 arithmetic (not TF32 or bf16, which
    ``set_float32_matmul_precision`` and oneDNN's ``fp32_precision`` allow): then any summation
    order gives the exact sums of integer-valued operands below 2**24. Where this is False the
    emulator's dense products run in float64."""
    import torch

    precision = getattr(getattr(torch.backends.mkldnn, "matmul", None), "fp32_precision", "none")
    return torch.get_float32_matmul_precision() == "highest" and precision in ("none", "ieee")


def synapses(layer: FixedLayer) -> Synapses:
    """The :class:`Synapses` of a quantized layer. A conv layer whose integer kernel is constant
    over p x p blocks (a fused pool, ``spec.pool = p``) runs in its pooled form: p**2 times fewer
    products, the same sums. (A dense layer's fused pool does not: its quantization rounds each
    weight of the fused matrix on its own, so its blocks are not constant.)"""
    if not layer.is_conv:
        weights = lava_dense_weights(layer.weights, layer.sign_mode, layer.num_weight_bits).T
        largest = float(np.max(np.abs(weights), initial=0)) * layer.n_in
        return Synapses(layer, weights.astype(_exact_dtype(largest)))
    from neurocredit.conv import conv_output_hw, pooled_hw, unfuse_conv_pool

    spec, kernel, pool = layer.spec, np.asarray(layer.weights, dtype=np.int64), int(layer.spec.pool)
    source = tuple(spec.input_shape)
    stride, padding, shape = tuple(spec.stride), tuple(spec.padding), source
    if pool > 1:
        small = unfuse_conv_pool(kernel, pool)
        fused = np.repeat(np.repeat(small, pool, axis=2), pool, axis=3)
        if fused.shape == kernel.shape and np.array_equal(fused, kernel):
            kernel = small
            stride = tuple(s // pool for s in spec.stride)
            padding = tuple(p // pool for p in spec.padding)
            shape = (source[0], *pooled_hw(source[1], source[2], pool))
        else:
            pool = 1
    assert conv_output_hw(shape[1:], kernel.shape[2:], stride, padding) == tuple(spec.output_shape[1:])
    largest = float(np.max(np.abs(kernel), initial=0)) * kernel[0].size * pool**2
    group = max(1, CONV_CHANNEL_BLOCK // len(kernel))
    return Synapses(layer, np.ascontiguousarray(block_diagonal(kernel, group).astype(_exact_dtype(largest))), pool,
                    source, stride, padding, group)


def block_diagonal(kernel: np.ndarray, group: int) -> np.ndarray:
    """(O, C, KH, KW) -> (group*O, group*C, KH, KW): ``group`` copies of ``kernel`` on the diagonal,
    zeros elsewhere, so that a conv over ``group`` images stacked as channels computes each image's
    conv with ``kernel`` (the zeros add exact zeros)."""
    out_channels, in_channels = kernel.shape[:2]
    blocks = np.zeros((group, out_channels, group, in_channels, *kernel.shape[2:]), kernel.dtype)
    blocks[np.arange(group), :, np.arange(group)] = kernel
    return blocks.reshape(group * out_channels, group * in_channels, *kernel.shape[2:])


def conv_accumulate(spikes: np.ndarray, layer: FixedLayer, operator: Optional[Synapses] = None) -> np.ndarray:
    """What Lava's ``PyConvModelFixed`` puts in its buffer for ``spikes`` (..., n_in) 0/1: the
    integer cross-correlation with the kernel (no weight exponent, no clipping), wrapped modulo
    2**24 (``signed_clamp(x, 24)``): int32 (..., n_out) in our C order."""
    operator = synapses(layer) if operator is None else operator
    return wrap_exact(operator.sums(np.asarray(spikes)).astype(np.float64), LAVA.state_bits).astype(np.int32)


def lif_exact_step(params: FixedLIFParameters, current: np.ndarray, voltage: np.ndarray, drive: np.ndarray,
                   bias: np.ndarray, largest_bias: float, left: Optional[np.ndarray] = None) -> np.ndarray:
    """One step of ``PyLifModelBitAcc`` (module doc) on float64 integer state, in place:
    ``current``/``voltage`` (batch, n) float64, ``drive`` the received ``a_in << 6`` (int32-wrapped,
    :meth:`Synapses.drive`), ``bias`` ``bias_mant << bias_exp`` (n,) float64 with
    ``largest_bias = max |bias|``, ``left`` (refractory > 0 only) the int32 refractory steps left,
    updated in place. Every int32 overflow and wrap of Lava's arithmetic is reproduced (checked
    by the array's extremes, so the common case costs no extra pass). Returns the spikes."""
    limit = float(LAVA.state_limit)
    decay_toward_zero(current, LAVA.decay_unity - (params.du + LAVA.du_offset), out=current)
    current += drive
    high, low = current.max(initial=0.0), current.min(initial=0.0)
    if high >= 2.0**31 or low < -(2.0**31):  # Lava adds in int32
        wrap_exact(current, 32)
        high, low = current.max(initial=0.0), current.min(initial=0.0)
    if high > limit:  # Lava: u[u > M] -= 2M, then u[u <= -M] += 2M (the first cannot feed the second)
        current[current > limit] -= 2 * limit
    if low <= -limit:
        current[current <= -limit] += 2 * limit
    held = voltage.copy() if params.refractory else None
    decay_toward_zero(voltage, LAVA.decay_unity - (params.dv + LAVA.dv_offset), out=voltage)
    voltage += current
    voltage += bias
    if max(high, -low) + limit + largest_bias >= 2.0**31:  # |v| <= M - 1 before: only a huge u overflows
        wrap_exact(voltage, 32)
    np.clip(voltage, -limit + 1, limit - 1, out=voltage)
    if params.refractory:  # as Lava's float LIFRefractory: v is not updated while refractory
        np.copyto(voltage, held, where=left > 0)
    spikes = voltage > params.effective_vth
    voltage[spikes] = 0.0
    if params.refractory:
        left[...] = np.where(spikes, np.int32(params.refractory), np.maximum(left - 1, 0))
    return spikes


def lif_fixed_step(params: FixedLIFParameters, state: FixedLIFState, activation: np.ndarray,
                   effective_bias: np.ndarray) -> tuple[FixedLIFState, np.ndarray]:
    """One step of ``PyLifModelBitAcc`` in Lava's own dtypes: int32 ``state`` and ``activation``
    (``a_in``), int ``effective_bias``; :func:`lif_exact_step` on copies. Returns
    ``(new_state, spikes bool)``."""
    current = np.array(state.current, dtype=np.float64)
    voltage = np.array(state.voltage, dtype=np.float64)
    drive = wrap_exact(np.asarray(activation).astype(np.int32).astype(np.float64) * 2.0**LAVA.activation_shift, 32)
    bias = np.asarray(effective_bias).astype(np.int32).astype(np.float64)
    left = None
    if params.refractory:
        left = (np.array(state.refractory, dtype=np.int32) if state.refractory is not None
                else np.zeros(voltage.shape, np.int32))
    spikes = lif_exact_step(params, current, voltage, drive, bias, float(np.max(np.abs(bias), initial=0)), left)
    return FixedLIFState(current.astype(np.int32), voltage.astype(np.int32), left), spikes


def emulate(quantized: QuantizedNetwork, input_spikes: np.ndarray, record_states: bool = False,
            compiled: Optional[bool] = None) -> EmulatorTrace:
    """Run ``input_spikes`` (steps, batch, n_inputs) 0/1 through ``quantized``, batched.

    Timing is Lava's: layer i at step t receives its synaptic output of step t-1 (zero at t=0).
    The batch runs in chunks of :data:`BATCH_CHUNK` samples (state that stays in the CPU cache),
    :func:`chunk_threads` of them side by side.
    ``compiled``: step the LIF with :mod:`neurocredit.deploy.lif_compiled` (default: when numba is
    installed and the network has no refractory period) or with :func:`lif_exact_step` (False);
    the same integers either way.
    """
    input_spikes = np.asarray(input_spikes)
    if input_spikes.ndim != 3 or input_spikes.shape[2] != quantized.network.n_inputs:
        raise NeurocreditError(
            f"emulator input has shape {input_spikes.shape}; expected (steps, batch, {quantized.network.n_inputs})"
        )
    check_binary(input_spikes)
    steps, batch, n_inputs = input_spikes.shape
    operators = [synapses(layer) for layer in quantized.layers]
    trace = EmulatorTrace(
        [np.zeros((steps, batch, layer.n_out), bool) for layer in quantized.layers],
        [np.zeros((steps, batch, layer.n_out), np.int32) for layer in quantized.layers] if record_states else None,
        [np.zeros((steps, batch, layer.n_out), np.int32) for layer in quantized.layers] if record_states else None,
    )
    if compiled is None:
        from neurocredit.deploy.lif_compiled import available

        compiled = available()
    compiled = compiled and not quantized.network.neuron.lif.refractory  # the kernel has no refractory period

    def run_chunk(start: int) -> None:
        _emulate_chunk(quantized, operators, input_spikes[:, start:start + BATCH_CHUNK], trace, start, compiled)

    starts = range(0, batch, BATCH_CHUNK)
    workers = min(chunk_threads(), len(starts))
    if workers <= 1:
        for start in starts:
            run_chunk(start)
        return trace
    # Chunks are independent and write disjoint columns; torch's conv2d and BLAS, numpy and the
    # compiled LIF release the GIL, so the chunks run side by side, each worker on one torch thread.
    with concurrent.futures.ThreadPoolExecutor(workers, initializer=_one_torch_thread) as pool:
        list(pool.map(run_chunk, starts))
    return trace


def chunk_threads() -> int:
    """Chunks emulated side by side: as many as torch may use (``neurocredit --threads``)."""
    import torch

    return torch.get_num_threads()


def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)  # per thread (OpenMP): a worker's ops do not split over the cores again


def _emulate_chunk(quantized: QuantizedNetwork, operators: list[Synapses], input_spikes: np.ndarray,
                   trace: EmulatorTrace, offset: int, compiled: bool) -> None:
    # Layer by layer over the whole window: the network is feed-forward and layer i at step t reads
    # layer i-1's spikes of step t-1, so a layer's synaptic sums for many steps are one product over
    # (steps * batch) rows (in blocks of DRIVE_ROWS rows), and only the LIF update loops over t.
    steps, batch, _ = input_spikes.shape
    columns = slice(offset, offset + batch)
    refractory = quantized.network.neuron.lif.refractory
    presynaptic = input_spikes
    block = max(1, DRIVE_ROWS // batch)
    for index, layer in enumerate(quantized.layers):
        params = FixedLIFParameters(quantized.du, quantized.dv, layer.effective_vth, refractory)
        window = (_CompiledWindow if compiled else _NumpyWindow)(params, layer, batch)
        spikes_out = trace.spikes[index][:, columns]
        states = (None, None) if trace.currents is None else (trace.currents[index][:, columns],
                                                              trace.voltages[index][:, columns])
        window.run(operators[index], None, spikes_out, states[0], states[1], 0)  # nothing arrives at t = 0
        for first in range(1, steps, block):  # step t receives the presynaptic spikes of step t - 1
            last = min(steps, first + block)
            window.run(operators[index], presynaptic[first - 1:last - 1], spikes_out, states[0], states[1], first)
        presynaptic = spikes_out


class _NumpyWindow:
    """Steps of one layer with :func:`lif_exact_step` (float64 integer state), the definition."""

    def __init__(self, params: FixedLIFParameters, layer: FixedLayer, batch: int):
        self.params = params
        self.bias = layer.effective_bias.astype(np.float64)
        self.largest = float(np.max(np.abs(self.bias), initial=0))
        self.current, self.voltage = np.zeros((batch, layer.n_out)), np.zeros((batch, layer.n_out))
        self.left = np.zeros((batch, layer.n_out), np.int32) if params.refractory else None

    def run(self, operator: Synapses, presynaptic: Optional[np.ndarray], spikes: np.ndarray,
            currents: Optional[np.ndarray], voltages: Optional[np.ndarray], first: int) -> None:
        """Steps ``first ..`` receiving ``presynaptic`` (steps, batch, n_in), or nothing (one step)."""
        drive = np.zeros((1, *self.current.shape)) if presynaptic is None else operator.drive(presynaptic)
        for t, received in enumerate(drive, start=first):
            spikes[t] = lif_exact_step(self.params, self.current, self.voltage, received, self.bias, self.largest,
                                       self.left)
            if currents is not None:
                currents[t], voltages[t] = self.current, self.voltage


class _CompiledWindow:
    """The same steps in one compiled pass per block (:func:`lif_compiled.lif_window`)."""

    def __init__(self, params: FixedLIFParameters, layer: FixedLayer, batch: int):
        self.factors = (LAVA.decay_unity - (params.du + LAVA.du_offset), LAVA.decay_unity - (params.dv + LAVA.dv_offset))
        self.vth = params.effective_vth
        self.bias = layer.effective_bias.astype(np.int64)
        self.port = (0, LAVA.state_bits) if layer.is_conv else (layer.weight_exp, 32)
        self.current, self.voltage = np.zeros((batch, layer.n_out), np.int32), np.zeros((batch, layer.n_out), np.int32)

    def run(self, operator: Synapses, presynaptic: Optional[np.ndarray], spikes: np.ndarray,
            currents: Optional[np.ndarray], voltages: Optional[np.ndarray], first: int) -> None:
        from neurocredit.deploy.lif_compiled import lif_window

        sums = np.zeros((1, *self.current.shape), np.float32) if presynaptic is None else operator.sums(presynaptic)
        last = first + len(sums)
        record = currents is not None
        unused = np.zeros((1, 1, 1), np.int32)
        lif_window(sums, *self.port, self.current, self.voltage, self.bias, *self.factors, self.vth,
                   spikes[first:last], currents[first:last] if record else unused,
                   voltages[first:last] if record else unused, record)


def run(network: Network, inputs: np.ndarray, record: Iterable[str] = frozenset(),
        quantized: Optional[QuantizedNetwork] = None) -> RunRecord:
    """Backend entry point: ``inputs`` (steps, batch, n_inputs) 0/1 through the fixed-point
    network (``quantize(network)`` unless ``quantized`` is given)."""
    record = frozenset(record)
    began = time.perf_counter()
    quantized = quantized if quantized is not None else quantize(network)
    trace = emulate(quantized, inputs, record_states=bool({"voltages", "currents"} & record))
    result = RunRecord.from_rasters("emulator", network, inputs, trace.spikes, trace.voltages, trace.currents, record)
    return result.replace(seconds=time.perf_counter() - began)
