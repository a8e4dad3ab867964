"""Float ``Network`` -> Loihi fixed point, exactly as Lava's bit-accurate models consume it.

What Lava's fixed-point models do with the numbers we give them (lava-nc 0.10.0,
``lava/proc/dense/models.py`` ``AbstractPyDenseModelBitAcc`` and ``lava/proc/lif/models.py``
``AbstractPyLifModelFixed`` / ``PyLifModelBitAcc``):

* ``Dense`` clips its integer weights to the 8-bit range of the sign mode (mixed: [-256, 255];
  excitatory: [0, 255]; inhibitory: [-255, 0]), drops ``8 - num_weight_bits (+1 if mixed)``
  low bits, sums the weights of the active inputs and shifts the sum by ``weight_exp``
  (``<<`` if positive, arithmetic ``>>`` if negative). It sends that one step later.
* ``LIF`` shifts the received activation left by 6 (``a_in << 6``), decays
  ``u * (4096 - (du + 1)) >> 12`` and ``v * (4096 - dv) >> 12`` (magnitudes, toward zero),
  adds the bias ``bias_mant << bias_exp``, and fires when ``v > vth << 6``.

So one layer's fixed-point voltage unit is tied to its float voltage by a scale ``S`` (fixed
units per float unit, after the ``<< 6``): a float weight ``W`` becomes the integer
``w = W * S / 2**(weight_exp + 6)``. We choose, per layer:

1. the finest weight step ``delta_min`` at which the largest weight magnitude still fits the
   signed 8-bit mantissa (``m`` in [-128, 127] for mixed signs, [0, 255] for one sign; Lava's
   mixed mode stores ``w = 2 m``); ``m`` is ``W / delta`` rounded so that each neuron's
   mantissas sum to its rounded float sum (:func:`round_preserving_sums`: every weight within
   one step, a neuron's whole drive within half a step);
2. the largest ``weight_exp`` (finest voltage resolution) such that the threshold mantissa fits
   17 bits, the synaptic current cannot leave the 24-bit range even if every input spiked at
   every step (so ``u`` never wraps) and, for a neuron without voltage leak (``dv = 0``, an
   integrate-and-fire neuron) and as far as ``weight_exp >= 0``, the voltage cannot reach Lava's
   saturation at ``+-(2**23 - 1)`` either: the float IF neuron has no bound, and inhibition
   drove an imported IF layer to 4.7 times Lava's range when only the current was bounded;
3. an **exact threshold**: the integer mantissa ``vth = floor(vth_float * 2**k / delta_min)``
   (``k`` = the weight's shift bits, :func:`exact_threshold_step`) and the step
   ``delta = vth_float * 2**k / vth >= delta_min``, so ``S = 64 vth / vth_float`` and
   ``vth << 6`` is exactly ``S * vth_float``: ``v > vth << 6`` in fixed point is ``v > vth`` in
   float, with no rounding of the threshold. (Rounding the threshold instead shifts every
   neuron of the layer the same way -- a bias in the spike count, not noise -- by up to one
   weight step where few steps make a threshold, as in a conv layer with no weight exponent.)
   The weights pay for it with a step at most ``1 + 1/vth`` times the finest;
4. per neuron ``bias_mant << bias_exp = round(bias * S)`` with the smallest exponent whose
   mantissa fits 13 signed bits.

``Conv2d`` layers go to Lava's ``Conv``, whose fixed-point model has no weight exponent and
wraps its output modulo 2**24: :func:`quantize_conv_layer` chooses their scale.

``du`` and ``dv`` become 12-bit integers: ``du_fixed = round(du * 4096) - 1`` (Lava adds 1 back,
its ``ds_offset``) and ``dv_fixed = round(dv * 4096)``, clipped to [0, 4095].

:func:`quantize` returns a :class:`QuantizedNetwork`; :meth:`QuantizedNetwork.report` gives the
quantization error per layer in float units.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from neurocredit.errors import NeurocreditError
from neurocredit.network import Network


@dataclass(frozen=True)
class LavaFixedPoint:
    """Bit widths and shifts of Lava's fixed-point LIF and Dense (lava-nc 0.10.0).

    Sources: ``lava/proc/lif/models.py`` (``AbstractPyLifModelFixed.__init__``: ds_offset=1,
    dm_offset=0, uv_bitwidth=24, decay_shift=12, vth_shift=6, act_shift=6; ``PyLifModelBitAcc``
    docstring: du/dv unsigned 12 bit, bias_mant signed 13 bit, bias_exp unsigned 3 bit, vth
    unsigned 17 bit) and ``lava/utils/weightutils.py`` (``clip_weights(..., num_bits=8)``).
    These are properties of the simulated arithmetic we must match bit for bit, not of a
    hardware target (those live in ``hardware_targets/*.yaml``).
    """

    decay_bits: int = 12
    du_offset: int = 1
    dv_offset: int = 0
    state_bits: int = 24
    activation_shift: int = 6
    threshold_shift: int = 6
    vth_bits: int = 17
    bias_mantissa_bits: int = 13
    bias_exponent_max: int = 7
    dense_weight_bits: int = 8

    @property
    def decay_unity(self) -> int:
        return 1 << self.decay_bits

    @property
    def state_limit(self) -> int:
        """``max_uv_val`` = 2**23: u wraps beyond it, v saturates at +-(2**23 - 1)."""
        return 1 << (self.state_bits - 1)

    @property
    def vth_max(self) -> int:
        return (1 << self.vth_bits) - 1

    @property
    def bias_mantissa_range(self) -> tuple[int, int]:
        half = 1 << (self.bias_mantissa_bits - 1)
        return -half, half - 1


LAVA = LavaFixedPoint()
# Search range for the per-layer weight exponent: wide enough that the constraints above
# (17-bit threshold, 24-bit current), not this range, decide it.
WEIGHT_EXP_SEARCH = range(-24, 25)


@dataclass(frozen=True)
class FixedLayer:
    """One layer in Lava's fixed-point units (the arguments of Lava's ``Dense`` and ``LIF``).

    weights: (n_out, n_in) int32, the ``Dense`` weights (already multiples of the truncation
        step, so Lava's clip/truncate leaves them unchanged).
    weight_exp: the ``Dense`` ``weight_exp``; num_weight_bits and sign_mode likewise.
    bias_mant, bias_exp: (n_out,) int32, the ``LIF`` bias mantissa and exponent.
    vth: the ``LIF`` threshold mantissa (spike when ``v > vth << 6``).
    scale: fixed-point voltage units per float voltage unit (after Lava's ``<< 6``).
    """

    name: str
    weights: np.ndarray
    weight_exp: int
    num_weight_bits: int
    sign_mode: str
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    vth: int
    scale: float
    spec: Any = None

    @property
    def is_conv(self) -> bool:
        """A ``Conv2d`` layer: ``weights`` is the OIHW integer kernel of Lava's ``Conv`` and
        ``spec`` the float layer (its geometry); ``weight_exp`` is 0 (Lava's conv ignores it)."""
        return getattr(self.spec, "kind", "dense") == "conv2d"

    @property
    def n_in(self) -> int:
        return self.spec.n_in if self.is_conv else int(self.weights.shape[1])

    @property
    def n_out(self) -> int:
        return self.spec.n_out if self.is_conv else int(self.weights.shape[0])

    @property
    def effective_bias(self) -> np.ndarray:
        """``bias_mant << bias_exp`` as Lava computes it (int64)."""
        return self.bias_mant.astype(np.int64) << self.bias_exp.astype(np.int64)

    @property
    def effective_vth(self) -> int:
        return int(self.vth) << LAVA.threshold_shift

    def float_weights(self) -> np.ndarray:
        """The float weights this layer represents (``w * 2**(weight_exp + 6) / scale``)."""
        return self.weights.astype(np.float64) * 2.0 ** (self.weight_exp + LAVA.activation_shift) / self.scale

    def float_bias(self) -> np.ndarray:
        return self.effective_bias.astype(np.float64) / self.scale

    def float_vth(self) -> float:
        return self.effective_vth / self.scale


@dataclass(frozen=True)
class QuantizedNetwork:
    """A LIF ``Network`` in Lava fixed point: per-layer :class:`FixedLayer` plus the shared
    12-bit ``du``/``dv`` (the values passed to Lava's ``LIF``). ``network`` is the float source
    (its encoder and readout are used unchanged)."""

    network: Network
    layers: tuple[FixedLayer, ...]
    du: int
    dv: int
    weight_bits: int
    clip_quantile: Optional[float] = None  # see quantize()

    @property
    def effective_du(self) -> float:
        return (self.du + LAVA.du_offset) / LAVA.decay_unity

    @property
    def effective_dv(self) -> float:
        return (self.dv + LAVA.dv_offset) / LAVA.decay_unity

    def report(self) -> dict[str, Any]:
        """Quantization error per layer, in float units of the source network.

        Per layer: ``weight_exp``, ``scale``, ``vth`` (mantissa), ``weight_max_error`` (largest
        |W - W_q|), ``weight_rms_relative_error`` (rms(W - W_q) / rms(W)), ``bias_max_error``,
        ``bias_clipped`` (neurons whose bias did not fit 13+3 bits), ``vth_relative_error`` and
        ``current_headroom`` (2**23 over the worst-case |u|; >= 1 means u can never wrap),
        ``voltage_headroom`` (2**23 over the worst-case |v|; >= 1 means v can never saturate).
        Shared: ``du``/``dv`` (fixed), their effective float values and errors.
        """
        params = self.network.neuron.lif
        layers = []
        for float_layer, fixed in zip(self.network.layers, self.layers):
            weight = float_layer.weight.astype(np.float64)
            bias = float_layer.neuron_bias.astype(np.float64)
            weight_error = weight - fixed.float_weights()
            rms = float(np.sqrt(np.mean(weight**2)))
            layers.append(
                {
                    "layer": fixed.name,
                    "shape": [fixed.n_out, fixed.n_in],
                    "sign_mode": fixed.sign_mode,
                    "weight_exp": fixed.weight_exp,
                    "num_weight_bits": fixed.num_weight_bits,
                    "scale": fixed.scale,
                    "vth": fixed.vth,
                    "weight_max_error": float(np.max(np.abs(weight_error))) if weight.size else 0.0,
                    "weight_rms_relative_error": float(np.sqrt(np.mean(weight_error**2)) / rms) if rms > 0 else 0.0,
                    "bias_max_error": float(np.max(np.abs(bias - fixed.float_bias()))) if bias.size else 0.0,
                    "bias_clipped": int(np.count_nonzero(_bias_clipped(bias * fixed.scale))),
                    "vth_relative_error": abs(fixed.float_vth() - params.vth) / params.vth,
                    "current_headroom": _current_headroom(fixed, self.effective_du, self.network.encoder.steps),
                    "voltage_headroom": _voltage_headroom(fixed, self.effective_du, self.effective_dv,
                                                          self.network.encoder.steps),
                }
            )
            if fixed.is_conv:
                layers[-1]["kind"] = "conv2d"
                layers[-1]["conv_buffer_headroom"] = conv_buffer_headroom(fixed)
        return {
            "weight_bits": self.weight_bits,
            "clip_quantile": self.clip_quantile,
            "du": self.du,
            "dv": self.dv,
            "effective_du": self.effective_du,
            "effective_dv": self.effective_dv,
            "du_error": abs(self.effective_du - params.du),
            "dv_error": abs(self.effective_dv - params.dv),
            "layers": layers,
        }


def decay_to_fixed(du: float, dv: float) -> tuple[int, int]:
    """Lava's 12-bit ``(du, dv)`` for float decays: ``round(du*4096) - 1`` and ``round(dv*4096)``,
    clipped to [0, 4095] (so ``du = 0`` becomes the smallest decay 1/4096, ``dv = 1`` 4095/4096)."""
    top = LAVA.decay_unity - 1
    du_fixed = int(np.clip(round(du * LAVA.decay_unity) - LAVA.du_offset, 0, top))
    dv_fixed = int(np.clip(round(dv * LAVA.decay_unity) - LAVA.dv_offset, 0, top))
    return du_fixed, dv_fixed


def sign_mode_of(weight: np.ndarray) -> str:
    """Lava's ``determine_sign_mode``: excitatory if min >= 0, inhibitory if max <= 0, else mixed."""
    if weight.size == 0 or float(np.min(weight)) >= 0:
        return "excitatory"
    if float(np.max(weight)) <= 0:
        return "inhibitory"
    return "mixed"


def mantissa_range(sign_mode: str, weight_bits: int) -> tuple[int, int, int]:
    """``(lowest, highest, step)``: the mantissa range of ``weight_bits`` bits and the integer
    step between representable Lava weights (``w = m * step``)."""
    if sign_mode == "mixed":
        half = 1 << (weight_bits - 1)
        return -half, half - 1, 1 << (LAVA.dense_weight_bits - weight_bits + 1)
    top = (1 << weight_bits) - 1
    step = 1 << (LAVA.dense_weight_bits - weight_bits)
    return (0, top, step) if sign_mode == "excitatory" else (-top, 0, step)


def _bias_clipped(bias_fixed: np.ndarray) -> np.ndarray:
    low, high = LAVA.bias_mantissa_range
    shift = 2.0**LAVA.bias_exponent_max
    return (np.rint(bias_fixed / shift) > high) | (np.rint(bias_fixed / shift) < low)


def quantize_bias(bias_fixed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per neuron the smallest exponent e in [0, 7] with ``round(b / 2**e)`` in the signed 13-bit
    range; mantissas beyond it at e = 7 are clipped. Returns int32 ``(bias_mant, bias_exp)``."""
    low, high = LAVA.bias_mantissa_range
    exponents = np.arange(LAVA.bias_exponent_max + 1)
    mantissas = np.rint(bias_fixed[None, :] / (2.0 ** exponents)[:, None])
    fits = (mantissas >= low) & (mantissas <= high)
    exponent = np.where(fits.any(axis=0), np.argmax(fits, axis=0), LAVA.bias_exponent_max)
    mantissa = np.clip(np.rint(bias_fixed / 2.0**exponent), low, high)
    return mantissa.astype(np.int32), exponent.astype(np.int32)


def _worst_case_gain(decay: float, steps: int) -> float:
    """Largest factor by which a constant input accumulates over ``steps`` steps in a state that
    keeps ``1 - decay`` of itself per step (u with du, v with dv; ``decay = 0``: ``steps``)."""
    steps = max(int(steps), 1)
    if decay >= 1.0:
        return 1.0
    if decay <= 0.0:
        return float(steps)
    return (1.0 - (1.0 - decay) ** steps) / decay


def _worst_drive(weights: np.ndarray) -> float:
    """The largest |sum of one output's weights of one sign| (a conv: per channel), the most one
    step's inputs can add to one neuron."""
    weights = np.asarray(weights, dtype=np.float64).reshape(weights.shape[0], -1)
    return max(float(np.max(np.clip(weights, 0, None).sum(axis=1), initial=0.0)),
               float(np.max(np.clip(-weights, 0, None).sum(axis=1), initial=0.0)))


def _worst_current(layer: FixedLayer, effective_du: float, steps: int) -> float:
    """The largest |u| (fixed units) reachable if every input spiked at every step."""
    return _worst_drive(layer.weights) * 2.0 ** (layer.weight_exp + LAVA.activation_shift) * _worst_case_gain(
        effective_du, steps)


def _current_headroom(layer: FixedLayer, effective_du: float, steps: int) -> float:
    """2**23 over the largest |u| reachable if every input spiked at every step (>= 1: no wrap)."""
    worst = _worst_current(layer, effective_du, steps)
    return math.inf if worst == 0 else LAVA.state_limit / worst


def _voltage_headroom(layer: FixedLayer, effective_du: float, effective_dv: float, steps: int) -> float:
    """2**23 over the largest |v| reachable if every input spiked at every step: that |u| plus the
    largest bias, accumulated by v's leak (``dv = 0``, an integrate-and-fire neuron: ``steps``
    times). >= 1: v never saturates. Lava saturates v at +-(2**23 - 1), the float neuron has no
    bound (an IF neuron integrates inhibition for as long as it lasts)."""
    largest_bias = float(np.max(np.abs(layer.effective_bias), initial=0))
    worst = (_worst_current(layer, effective_du, steps) + largest_bias) * _worst_case_gain(effective_dv, steps)
    return math.inf if worst == 0 else LAVA.state_limit / worst


def exact_threshold_step(vth: float, finest: float, shift_bits: int) -> tuple[int, float]:
    """``(vth_mantissa, delta)``: the threshold as an exact integer ``N`` of Lava's threshold units
    (``N << 6`` fixed units) and the weight step ``delta`` (float units per weight mantissa unit)
    that makes it exact, for a layer whose integer weight ``m`` adds ``m << (shift_bits + 6)`` to
    the voltage (dense: ``shift_bits`` = the truncation step's bits + ``weight_exp``; conv: 0).

    Then ``S = 2**(shift_bits + 6) / delta = 64 N / vth``. ``N = floor(vth * 2**shift_bits /
    finest)``, the largest integer whose step is not finer than ``finest`` (the finest step the
    weights fit at), so every weight still fits; ``N = 0`` means the threshold is smaller than one
    weight step (the caller's error)."""
    mantissa = int(math.floor(vth * 2.0**shift_bits / finest))
    return mantissa, (vth * 2.0**shift_bits / mantissa if mantissa > 0 else finest)


def round_preserving_sums(values: np.ndarray, low: int, high: int) -> np.ndarray:
    """Integer mantissas for ``values`` (n_out, ...) in weight steps, clipped to [low, high]: each
    the floor or the ceiling of its value, rounded so that every neuron's (row's) integers sum to
    the nearest integer to its values' sum (the largest fractional parts round up; ties in the
    order of the row). int64.

    Independent rounding leaves each weight within half a step but lets a neuron's drive drift
    by a random walk of n half-steps when n of its inputs spike together -- what a convolution
    sees on any extended patch of an image, every step. Here each weight stays within one step
    and the whole row's drive within half a step. Deterministic."""
    values = np.clip(np.asarray(values, dtype=np.float64), low, high)
    rows = values.reshape(values.shape[0], -1)
    floor = np.floor(rows)
    fraction = rows - floor
    ups = (np.rint(rows.sum(axis=1)) - floor.sum(axis=1)).astype(np.int64)  # in [0, n] up to fp noise
    order = np.argsort(-fraction, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(rows.shape[1]), rows.shape), axis=1)
    rounded = floor + ((rank < ups[:, None]) & (fraction > 0))
    return np.clip(rounded, low, high).astype(np.int64).reshape(values.shape)


def quantize_layer(weight: np.ndarray, bias: np.ndarray, vth: float, name: str, weight_bits: int,
                   effective_du: float, steps: int, effective_dv: float) -> FixedLayer:
    """One layer to fixed point (see the module doc for the four choices)."""
    weight = np.asarray(weight, dtype=np.float64)
    bias = np.asarray(bias, dtype=np.float64)
    sign_mode = sign_mode_of(weight)
    low, high, step = mantissa_range(sign_mode, weight_bits)
    # The finest step at which the largest weight of each sign fits (a one-signed range: the other
    # bound is 0). All-zero weights: any step works; tie it to vth so the exponent search is well posed.
    finest = max(float(np.max(weight, initial=0.0)) / high if high > 0 else 0.0,
                 float(-np.min(weight, initial=0.0)) / -low if low < 0 else 0.0) or vth
    step_bits = int(round(math.log2(step)))

    def trial(exponent: int) -> FixedLayer:
        vth_mantissa, delta = exact_threshold_step(vth, finest, step_bits + exponent)
        lava_weights = (round_preserving_sums(weight / delta, low, high) * step).astype(np.int32)
        scale = 2.0**LAVA.threshold_shift * vth_mantissa / vth
        bias_mant, bias_exp = quantize_bias(bias * scale)
        return FixedLayer(name, lava_weights, exponent, weight_bits, sign_mode, bias_mant, bias_exp, vth_mantissa,
                          scale)

    fitting = [e for e in WEIGHT_EXP_SEARCH if exact_threshold_step(vth, finest, step_bits + e)[0] <= LAVA.vth_max]
    # The finest voltage resolution whose current cannot wrap and, without a voltage leak (dv = 0),
    # whose voltage cannot saturate -- but not below exponent 0 for the voltage's sake: below it
    # Lava's >> floors the weight sums (odd weights, as on-chip learning writes them, lose a bit).
    # (An integrate-and-fire layer, du = 1 and dv = 0 with no bias, gains nothing from finer
    # resolution: its voltage is a sum of integer weights.) A leaky voltage is bounded by its leak
    # as in float; bounding its worst case too would cost every LIF deployment resolution.
    # If the current could wrap whatever we do, the finest scale whose threshold fits; the
    # report's current_headroom / voltage_headroom (< 1) say so.
    chosen = wrap_free = None
    for exponent in reversed(fitting):
        layer = trial(exponent)
        if _current_headroom(layer, effective_du, steps) < 1.0:
            continue
        wrap_free = wrap_free or layer
        if layer.vth >= 1 and (effective_dv > 0 or exponent <= 0
                               or _voltage_headroom(layer, effective_du, effective_dv, steps) >= 1.0):
            chosen = layer
            break
    chosen = chosen or wrap_free or trial(max(fitting) if fitting else min(WEIGHT_EXP_SEARCH))
    if chosen.vth < 1:
        raise NeurocreditError(
            f"layer {name}: the threshold vth={vth:g} is too small for weights up to "
            f"{np.max(np.abs(weight), initial=0.0):g} at {weight_bits}-bit weights (it is less than one "
            "weight step); rescale the network (larger vth or smaller weights)"
        )
    return chosen


def conv_buffer_headroom(layer: FixedLayer) -> float:
    """2**23 over the largest |sum of kernel weights| one step can put in Lava's conv buffer
    (``PyConvModelFixed`` wraps it modulo 2**24: >= 1 means it never wraps)."""
    worst = _worst_drive(layer.weights)
    return math.inf if worst == 0 else LAVA.state_limit / worst


def quantize_conv_layer(layer, vth: float, name: str, weight_bits: int, effective_du: float,
                        steps: int) -> FixedLayer:
    """A ``Conv2d`` layer for Lava's ``Conv`` (``PyConvModelFixed``, lava-nc 0.10.0), which
    neither clips nor truncates its weights, applies no ``weight_exp`` and wraps its output sum
    modulo 2**24 (``signed_clamp(x, 24)``). So the kernel is a signed ``weight_bits``-bit integer
    ``m ~ K / delta`` (the conv's 8-bit weight precision; rounded with each output channel's sum
    preserved, in the pooled form when a pool is fused) and the voltage scale is fixed
    by ``delta`` alone: ``S = 2**6 / delta``. ``delta`` is the finest step with

    1. every weight in ``[-2**(b-1), 2**(b-1) - 1]``;
    2. the threshold exact: ``vth / delta`` an integer (:func:`exact_threshold_step`; here it
       makes only tens to hundreds of steps, so a rounded threshold would be off by up to half a
       step for every neuron alike), within 17 bits;
    3. the synaptic current unable to wrap its 24 bits even if every input spiked every step
       (as for Dense; the coarser step costs weight resolution, which the report shows).

    The conv buffer itself cannot wrap with 8-bit weights below a fan-in of 2**16;
    :func:`conv_buffer_headroom` reports it. A threshold that rounds to 0 is an error.
    """
    weight = np.asarray(layer.weight, dtype=np.float64)
    bias = np.asarray(layer.neuron_bias, dtype=np.float64)
    high = (1 << (int(weight_bits) - 1)) - 1
    low = -(1 << (int(weight_bits) - 1))
    largest = max(float(np.max(weight, initial=0.0)) / high,
                  float(-np.min(weight, initial=0.0)) / -low if low < 0 else 0.0)
    finest = largest if largest > 0 else vth
    finest = max(finest, vth / LAVA.vth_max)  # vth / delta <= vth_max
    worst_per_delta = _worst_drive(weight) * 2.0**LAVA.activation_shift * _worst_case_gain(effective_du, steps)
    finest = max(finest, worst_per_delta / LAVA.state_limit)
    vth_mantissa, delta = exact_threshold_step(vth, finest, 0)
    if vth_mantissa < 1:
        raise NeurocreditError(
            f"layer {name}: the threshold vth={vth:g} is too small for conv weights up to "
            f"{largest * high:g} at {weight_bits}-bit weights (it is less than one weight step; Lava's Conv has no "
            "weight exponent to compensate); rescale the network (larger vth or smaller weights)"
        )
    zeros = np.zeros(len(bias), np.int32)
    from neurocredit.conv import unfuse_conv_pool

    pool = int(layer.pool)
    small = unfuse_conv_pool(weight, pool) if pool > 1 else weight
    if pool > 1 and not np.array_equal(np.repeat(np.repeat(small, pool, axis=2), pool, axis=3), weight):
        small, pool = weight, 1  # not a pure fused sum pool: round the kernel as it is
    for _ in range(4):  # rounding up a mantissa can push the drive over by one step: one step coarser
        # sums preserved per output channel of the pooled form (the synapses of a fused pool)
        mantissa = round_preserving_sums(small / delta, low, high).astype(np.int32)
        if pool > 1:
            mantissa = np.repeat(np.repeat(mantissa, pool, axis=2), pool, axis=3)
        trial = FixedLayer(name, mantissa, 0, int(weight_bits), sign_mode_of(weight), zeros, zeros, vth_mantissa,
                           2.0**LAVA.threshold_shift * vth_mantissa / vth, layer)
        if _current_headroom(trial, effective_du, steps) >= 1.0 or vth_mantissa == 1:
            break
        vth_mantissa -= 1
        delta = vth / vth_mantissa
    bias_mant, bias_exp = quantize_bias(bias * trial.scale)
    return dataclasses.replace(trial, bias_mant=bias_mant, bias_exp=bias_exp)


def clip_to_quantile(weight: np.ndarray, quantile: Optional[float]) -> np.ndarray:
    """``weight`` with every magnitude above the ``quantile`` of ``|weight|`` cut to it (sign kept);
    ``weight`` itself for None or 1. Elementwise, so a fused pool's kernel stays constant over its blocks."""
    if quantile is None or quantile >= 1:
        return weight
    weight = np.asarray(weight, dtype=np.float64)
    limit = float(np.quantile(np.abs(weight), quantile)) if weight.size else 0.0
    return np.clip(weight, -limit, limit)


def _clipped(layer, quantile: Optional[float]):
    """``layer`` (Dense or Conv2d) with its weight through :func:`clip_to_quantile`; ``layer``
    itself when that leaves the weight as it is."""
    weight = clip_to_quantile(layer.weight, quantile)
    return layer if weight is layer.weight else dataclasses.replace(layer, weight=weight)


def check_clip_quantile(quantile: Optional[float], where: str = "clip_quantile") -> Optional[float]:
    """``quantile`` as a float in (0, 1], or None; anything else is one clear error naming ``where``."""
    if quantile is None:
        return None
    try:
        value = float(quantile)
    except (TypeError, ValueError):
        value = math.nan
    if not 0 < value <= 1:
        raise NeurocreditError(f"{where}={quantile!r} must be a quantile in (0, 1], e.g. 0.999 (1: the largest "
                               "weight sets the step, no clipping)")
    return value


def quantize(network: Network, weight_bits: int = LAVA.dense_weight_bits,
             steps: Optional[int] = None, clip_quantile: Optional[float] = None) -> QuantizedNetwork:
    """``network`` (LIF) in Lava fixed point with ``weight_bits``-bit weights (1..8).

    ``steps`` (default: the encoder's) bounds the worst-case current used to choose each
    layer's weight exponent. ``clip_quantile`` (None: the largest weight) lets that quantile of
    each layer's ``|W|`` set its weight step: the few larger weights saturate at the largest
    mantissa, and the rest get a finer step (:func:`clip_to_quantile`; ``report()`` counts the
    clipping in the weight error). A trained layer whose largest weights lie far out -- the
    pool-fused output layer of ``models/fmnist-dfa-conv-snn.yaml``, largest |W| 1.7 times its
    99.9th percentile -- otherwise spends most of its 8 bits on them.
    Deterministic: the same network always gives the same integers.
    """
    if not network.neuron.spiking:
        raise NeurocreditError("only spiking (lif) networks can be deployed to Loihi; this is a rate network")
    if not 1 <= int(weight_bits) <= LAVA.dense_weight_bits:
        raise NeurocreditError(f"weight_bits={weight_bits!r} must be between 1 and {LAVA.dense_weight_bits}")
    clip_quantile = check_clip_quantile(clip_quantile)
    params = network.neuron.lif
    du, dv = decay_to_fixed(params.du, params.dv)
    effective_du = (du + LAVA.du_offset) / LAVA.decay_unity
    effective_dv = (dv + LAVA.dv_offset) / LAVA.decay_unity
    steps = network.encoder.steps if steps is None else steps
    clipped = (_clipped(layer, clip_quantile) for layer in network.layers)
    layers = tuple(
        quantize_conv_layer(layer, params.vth, layer.name or f"layer{index + 1}", int(weight_bits), effective_du, steps)
        if layer.kind == "conv2d" else
        quantize_layer(layer.weight, layer.bias, params.vth, layer.name or f"layer{index + 1}", int(weight_bits),
                       effective_du, steps, effective_dv)
        for index, layer in enumerate(clipped)
    )
    return QuantizedNetwork(network, layers, du, dv, int(weight_bits), clip_quantile)
