"""Lava's bit-accurate LIF compiled with numba: one neuron's step, and a whole window of steps of a
layer for the emulator.

:func:`neurocredit.deploy.emulator.lif_exact_step` (numpy, float64 integer state) stays the
definition; this is the same arithmetic written per element in int64, so that a layer's window
(steps x batch x neurons) is one pass over its state instead of a dozen numpy passes per step.
``tests/test_emulator.py`` checks the two bit for bit on networks that hit every wrap and
saturation, and the Lava tests check the emulator (which uses this when it can) against Lava.

Per neuron and step, in Lava's order (``PyLifModelBitAcc``, lava-nc 0.10.0; ``M = 2**23``)::

    a_in = wrap(shift(sum, weight_exp), port_bits)    # Dense: 32-bit port; Conv: 24-bit buffer
    u = wrap32(decay(u, 4096 - (du + 1)) + wrap32(a_in << 6));  u -= 2M if u > M, else += 2M if u <= -M
    v = clip(wrap32(decay(v, 4096 - dv) + u + bias), -(M - 1), M - 1);  spike = v > vth;  v = 0 on a spike

``numba`` is the optional extra ``onchip``; without it :func:`available` is False and the
emulator runs its numpy step (same integers, slower). The on-chip learning kernels
(:mod:`neurocredit.learn.fast`) step their neurons with :func:`lif_neuron` too.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from neurocredit.deploy.quantize import LAVA


def prefer_512_bit_vectors() -> None:
    """On a CPU with AVX-512, let numba's LLVM vectorize with 512-bit registers: for Intel Xeons
    LLVM prefers 256-bit ones (its ``prefer-256-bit`` tuning), which halves the int64 lanes of the
    kernels below (``lif_window`` ran 1.33x faster without it on the 2-core Xeon of
    ``benchmarks/RESULTS.md``). Sets ``NUMBA_CPU_FEATURES`` to the host's own features (as numba
    detects them) minus that preference -- only when the user has not set it and numba is not yet
    imported (numba reads it once). The integers are the same: only the vector width changes."""
    if "NUMBA_CPU_FEATURES" in os.environ or "numba" in sys.modules:
        return
    try:
        from llvmlite import binding
    except ImportError:  # pragma: no cover - numba (and llvmlite) are the optional extra
        return
    features = binding.get_host_cpu_features().flatten()
    if "+avx512f" in features.split(","):
        os.environ["NUMBA_CPU_FEATURES"] = features + ",-prefer-256-bit"


prefer_512_bit_vectors()
try:  # the optional extra
    import numba
except ImportError:  # pragma: no cover - exercised only without the extra
    numba = None


def available() -> bool:
    """Whether numba is installed (the compiled kernels can run)."""
    return numba is not None


_STATE_LIMIT = LAVA.state_limit
_ACTIVATION_SHIFT = LAVA.activation_shift

if numba is not None:
    jit = numba.njit(cache=True, nogil=True)
    inline = numba.njit(cache=True, nogil=True, inline="always")  # small helpers: no call per element

    @inline
    def wrap(value, bits):
        """``value`` (int64) in a ``bits``-bit two's-complement register."""
        half = np.int64(1) << (bits - 1)
        return ((value + half) & ((half << 1) - 1)) - half

    @inline
    def wrap32(value):
        return ((value + 2147483648) & 4294967295) - 2147483648

    @inline
    def shift(value, exponent):
        """``value << exponent``; a negative exponent shifts right (floor)."""
        return value << exponent if exponent > 0 else value >> -exponent

    @inline
    def decay_toward_zero(value, factor):
        """Lava's ``sign(x * f) * (|x * f| >> 12)``."""
        product = np.int64(value) * factor
        return (product + (4095 if product < 0 else 0)) >> 12

    @inline
    def lif_neuron(current, voltage, activation, bias, du_factor, dv_factor, vth):
        """One neuron's step: ``(u, v, spiked)`` from ``u``, ``v``, the received ``a_in``
        (int64), ``bias_mant << bias_exp``, the decay factors ``4096 - (du + 1)`` and
        ``4096 - dv`` and the scaled threshold ``vth << 6``. Selects, not branches: the
        compiler vectorizes a loop of these."""
        limit = np.int64(_STATE_LIMIT)
        # u and v are int32 values, and decaying toward zero keeps them so: Lava's int32 wrap of the
        # decayed value is the value itself, left out
        current = wrap32(decay_toward_zero(current, du_factor) + wrap32(activation << _ACTIVATION_SHIFT))
        current = current - 2 * limit if current > limit else (current + 2 * limit if current <= -limit else current)
        voltage = wrap32(wrap32(decay_toward_zero(voltage, dv_factor) + current) + bias)
        voltage = min(max(voltage, -limit + 1), limit - 1)
        spiked = voltage > vth
        return current, 0 if spiked else voltage, spiked

    @jit
    def lif_window(sums, weight_exp, port_bits, current, voltage, bias, du_factor, dv_factor, vth, spikes,
                   currents, voltages, record):
        """Steps ``t = 0 .. len(sums) - 1`` of a layer, in place: ``sums`` (steps, batch, n) the
        integer synaptic sums each step receives (float; Lava's ``a_in`` after the port's shift and
        wrap), ``current``/``voltage`` (batch, n) int32 (Lava's dtype; half the memory traffic of
        int64) or int64 state, computed in int64, ``bias`` (n,) int64; writes ``spikes`` (steps,
        batch, n) and, when ``record``, ``currents``/``voltages``."""
        steps, batch, n = sums.shape
        for t in range(steps):
            for b in range(batch):
                received, u, v, fired = sums[t, b], current[b], voltage[b], spikes[t, b]  # rows: a loop the
                for i in range(n):  # compiler vectorizes
                    activation = wrap(shift(np.int64(received[i]), weight_exp), port_bits)
                    u[i], v[i], fired[i] = lif_neuron(u[i], v[i], activation, bias[i], du_factor, dv_factor, vth)
                if record:
                    currents[t, b] = u
                    voltages[t, b] = v

    @jit
    def sum_pool(spikes, pool, out):
        """``out`` (rows, C, H // pool, W // pool), float32 or float64 = the ``pool`` x ``pool`` sums (stride
        ``pool``, no padding, the rest cut off) of ``spikes`` (rows, C, H, W), 0/1 of any dtype:
        exact counts, what ``avg_pool2d(divisor_override=1)`` gives, in one pass without a float
        copy of the spikes first. Rows of ``pool`` lines are summed first (contiguous: the loop
        vectorizes), then their columns."""
        rows, channels, height, width = spikes.shape
        out_height, out_width = height // pool, width // pool
        line = np.empty(width, out.dtype)
        for r in range(rows):
            for c in range(channels):
                image, pooled = spikes[r, c], out[r, c]
                for i in range(out_height):
                    line[:] = 0
                    for a in range(pool):
                        row = image[i * pool + a]
                        for j in range(width):
                            line[j] += row[j]
                    sums = pooled[i]
                    sums[:] = 0
                    for b in range(pool):
                        for j in range(out_width):
                            sums[j] += line[j * pool + b]
