"""Backend ``emulator``: Lava's fixed-point LIF + Dense re-implemented in batched integer numpy.

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
the integer cross-correlation of the spikes with the kernel (an exact product with the conv's
synapse matrix, :func:`conv_matrix`), wrapped modulo 2**24, with no weight exponent
(:func:`conv_accumulate`).

Dense weights go through Lava's own ``clip_weights``/``truncate_weights`` rules first
(:func:`lava_dense_weights`). The spike sums are computed with a float BLAS matrix product,
which is exact here: the operands are 0/1 and integers of at most 9 bits, and every partial sum
stays far below 2**24 (float32) or 2**53 (float64, used for wide layers).

A network with a refractory period (``refractory = N > 0``) holds ``v`` for the ``N`` steps after
a spike while ``u`` integrates, as Lava's float ``LIFRefractory`` does. Lava 0.10 has no
fixed-point refractory model, so that extension is not checked against Lava (the ``lava`` backend
refuses it in ``fixed_pt``).

Voltages and currents in the returned :class:`RunRecord` are the raw integers (as float64),
in each layer's fixed-point units (divide by ``FixedLayer.scale`` for float units).
"""

from __future__ import annotations

import time
from typing import Iterable, NamedTuple, Optional

import numpy as np

from neurocredit.deploy.quantize import LAVA, FixedLayer, QuantizedNetwork, quantize
from neurocredit.errors import NeurocreditError
from neurocredit.network import Network
from neurocredit.encoders import check_binary
from neurocredit.record import RunRecord

# Batch chunk for the first layer's all-steps matrix product (bounds memory to ~100 MB).
FIRST_LAYER_CHUNK_ELEMENTS = 25_000_000
# A conv layer's synapse matrix is held dense (float32 BLAS, faster) up to this many entries
# (16 MB), sparse beyond (a speed/memory knob, not a hardware number).
DENSE_CONV_ENTRIES = 4_000_000


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


def decay_toward_zero(values: np.ndarray, factor: int) -> np.ndarray:
    """``values * factor / 4096`` rounded toward zero, int64 -- Lava's
    ``sign(x * f) * (|x * f| >> 12)``, computed as ``(p + (4095 if p < 0 else 0)) >> 12``."""
    product = values.astype(np.int64) * factor
    return (product + ((product >> 63) & (LAVA.decay_unity - 1))) >> LAVA.decay_bits


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


def dense_accumulate(spikes: np.ndarray, weights_float: np.ndarray, weight_exp: int) -> np.ndarray:
    """``sum of weights of active inputs`` shifted by ``weight_exp`` and sent through Lava's int32
    port: int32. ``spikes`` (..., n_in) 0/1 float, ``weights_float`` (n_in, n_out) exact-integer
    float. Lava sums and shifts in int64 and the port keeps the low 32 bits; since every sum fits
    int32 exactly, shifting in int32 (numpy wraps left shifts, floors right shifts) is the same."""
    summed = (spikes @ weights_float).astype(np.int32)  # exact integers (see module doc)
    return np.left_shift(summed, weight_exp) if weight_exp > 0 else np.right_shift(summed, -weight_exp)


def lif_fixed_step(params: FixedLIFParameters, state: FixedLIFState, activation: np.ndarray,
                   effective_bias: np.ndarray) -> tuple[FixedLIFState, np.ndarray]:
    """One step of ``PyLifModelBitAcc`` (see module doc), in Lava's own dtypes: int32 state and
    activation (numpy's int32 arithmetic wraps exactly as Lava's does), int64 decay products.
    Returns ``(new_state, spikes bool)``."""
    limit = LAVA.state_limit
    activation = np.asarray(activation).astype(np.int32, copy=False)
    current = decay_toward_zero(state.current, LAVA.decay_unity - (params.du + LAVA.du_offset)).astype(np.int32)
    current += np.left_shift(activation, LAVA.activation_shift)
    wrapped = np.where(current > limit, current - 2 * limit, current)
    current = np.where(wrapped <= -limit, current + 2 * limit, wrapped)
    voltage = decay_toward_zero(state.voltage, LAVA.decay_unity - (params.dv + LAVA.dv_offset)).astype(np.int32)
    voltage = voltage + current + np.asarray(effective_bias).astype(np.int32, copy=False)
    voltage = np.clip(voltage, -limit + 1, limit - 1)
    if params.refractory:  # as Lava's float LIFRefractory: v is not updated while refractory
        left = state.refractory if state.refractory is not None else np.zeros_like(voltage)
        voltage = np.where(left > 0, state.voltage, voltage)
    spikes = voltage > params.effective_vth
    voltage[spikes] = 0
    if params.refractory:
        left = np.where(spikes, np.int32(params.refractory), np.maximum(left - 1, 0)).astype(np.int32)
        return FixedLIFState(current, voltage, left), spikes
    return FixedLIFState(current, voltage), spikes


def signed_wrap(values: np.ndarray, bits: int) -> np.ndarray:
    """Lava's ``signed_clamp``: ``(x + 2**(bits-1)) % 2**bits - 2**(bits-1)`` (int64)."""
    half = 1 << (bits - 1)
    return (np.asarray(values, dtype=np.int64) + half) % (2 * half) - half


def conv_matrix(layer: FixedLayer):
    """The integer kernel of a conv layer as an (n_in, n_out) matrix with one entry per synapse
    (kernel tap x position, padding excluded; :func:`neurocredit.conv.conv_synapses`): a dense
    float32 array when it has at most :data:`DENSE_CONV_ENTRIES` entries and every sum of spikes
    is exact in float32 (faster BLAS), else a sparse float64 CSR matrix."""
    import scipy.sparse

    from neurocredit.conv import conv_synapses

    pre, post, tap = conv_synapses(layer.spec)
    values = layer.weights.astype(np.float64).ravel()[tap]
    matrix = scipy.sparse.csr_matrix((values, (pre, post)), shape=(layer.n_in, layer.n_out))
    fan_in = int(np.prod(layer.weights.shape[1:]))
    exact32 = float(np.max(np.abs(layer.weights), initial=0)) * fan_in < 2**24
    if exact32 and layer.n_in * layer.n_out <= DENSE_CONV_ENTRIES:
        return matrix.toarray().astype(np.float32)
    return matrix


def conv_accumulate(spikes: np.ndarray, layer: FixedLayer, matrix=None) -> np.ndarray:
    """What Lava's ``PyConvModelFixed`` puts in its buffer for ``spikes`` (..., n_in) 0/1: the
    integer cross-correlation with the kernel (no weight exponent, no clipping), wrapped modulo
    2**24 (``signed_clamp(x, 24)``): int32 (..., n_out) in our C order. The sums are exact: a
    float64 sparse product (:func:`conv_matrix`) of 0/1 and integers below 2**31, each partial
    sum far below 2**53."""
    matrix = conv_matrix(layer) if matrix is None else matrix
    spikes = np.asarray(spikes, dtype=matrix.dtype)
    summed = np.asarray(spikes.reshape(-1, layer.n_in) @ matrix).reshape(*spikes.shape[:-1], layer.n_out)
    return signed_wrap(np.rint(summed).astype(np.int64), LAVA.state_bits).astype(np.int32)


def accumulate(spikes: np.ndarray, layer: FixedLayer, weights) -> np.ndarray:
    """One layer's synaptic output for ``spikes``: :func:`dense_accumulate` or
    :func:`conv_accumulate` (``weights`` from :func:`_float_weights`)."""
    if layer.is_conv:
        return conv_accumulate(spikes, layer, weights)
    return dense_accumulate(spikes.astype(weights.dtype, copy=False), weights, layer.weight_exp)


def _float_weights(layer: FixedLayer):
    """(n_in, n_out) float matrix of Lava's effective weights; float32 when every partial sum
    of a spike count is exact in float32, else float64. A conv layer: :func:`conv_matrix`."""
    if layer.is_conv:
        return conv_matrix(layer)
    weights = lava_dense_weights(layer.weights, layer.sign_mode, layer.num_weight_bits).T
    exact32 = float(np.max(np.abs(weights), initial=0)) * layer.n_in < 2**24
    return weights.astype(np.float32 if exact32 else np.float64)


def emulate(quantized: QuantizedNetwork, input_spikes: np.ndarray, record_states: bool = False) -> EmulatorTrace:
    """Run ``input_spikes`` (steps, batch, n_inputs) 0/1 through ``quantized``, batched.

    Timing is Lava's: layer i at step t receives its Dense output of step t-1 (zero at t=0).
    """
    input_spikes = np.asarray(input_spikes)
    if input_spikes.ndim != 3 or input_spikes.shape[2] != quantized.network.n_inputs:
        raise NeurocreditError(
            f"emulator input has shape {input_spikes.shape}; expected (steps, batch, {quantized.network.n_inputs})"
        )
    check_binary(input_spikes)
    steps, batch, n_inputs = input_spikes.shape
    weights = [_float_weights(layer) for layer in quantized.layers]
    trace = EmulatorTrace(
        [np.zeros((steps, batch, layer.n_out), bool) for layer in quantized.layers],
        [np.zeros((steps, batch, layer.n_out), np.int32) for layer in quantized.layers] if record_states else None,
        [np.zeros((steps, batch, layer.n_out), np.int32) for layer in quantized.layers] if record_states else None,
    )
    first = quantized.layers[0]
    width = max(n_inputs, first.n_out)
    chunk = max(1, FIRST_LAYER_CHUNK_ELEMENTS // max(1, steps * width))
    for start in range(0, batch, chunk):
        stop = min(batch, start + chunk)
        _emulate_chunk(quantized, weights, input_spikes[:, start:stop], trace, start)
    return trace


def _emulate_chunk(quantized: QuantizedNetwork, weights: list[np.ndarray], input_spikes: np.ndarray,
                   trace: EmulatorTrace, offset: int) -> None:
    steps, batch, _ = input_spikes.shape
    layers = quantized.layers
    columns = slice(offset, offset + batch)
    # The first layer's Dense output for every step at once (the last step's is never delivered);
    # layer 1 receives step t-1's at step t.
    first_drive = accumulate(input_spikes[:-1], layers[0], weights[0])
    states = [FixedLIFState(np.zeros((batch, layer.n_out), np.int32), np.zeros((batch, layer.n_out), np.int32))
              for layer in layers]
    refractory = quantized.network.neuron.lif.refractory
    params = [FixedLIFParameters(quantized.du, quantized.dv, layer.effective_vth, refractory) for layer in layers]
    biases = [layer.effective_bias.astype(np.int32)[None, :] for layer in layers]
    buffers = [np.zeros((batch, layer.n_out), np.int32) for layer in layers]
    for t in range(steps):
        spikes = None
        for index, layer in enumerate(layers):
            if index == 0:
                activation = first_drive[t - 1] if t > 0 else buffers[0]
            else:
                activation = buffers[index]
                buffers[index] = accumulate(spikes, layer, weights[index])
            states[index], spikes = lif_fixed_step(params[index], states[index], activation, biases[index])
            trace.spikes[index][t, columns] = spikes
            if trace.currents is not None:
                trace.currents[index][t, columns] = states[index].current
                trace.voltages[index][t, columns] = states[index].voltage


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
