"""Deployment to Lava / Loihi: quantization, hardware-limit checks, the Lava process graph,
and a fast bit-exact emulator of Lava's fixed-point arithmetic.

* :mod:`neurocredit.deploy.quantize` -- float ``Network`` -> Loihi fixed point (int8-range
  weights with a per-layer ``weight_exp``, 12-bit du/dv, vth and bias mantissa/exponent) and the
  quantization error per layer.
* :mod:`neurocredit.deploy.partition` -- check a ``Network`` against a hardware target's limits
  and assign its layers to cores; a violation is one :class:`~neurocredit.errors.NeurocreditError`.
* :mod:`neurocredit.deploy.emulator` -- backend ``emulator``: Lava's ``PyLifModelBitAcc`` and
  bit-accurate ``Dense`` re-implemented in batched integer numpy, equal to Lava bit for bit.
* :mod:`neurocredit.deploy.lava_backend` -- backend ``lava``: the network as Lava processes,
  run with ``Loihi2SimCfg(select_tag='fixed_pt' | 'floating_pt')``; many samples per compiled
  graph (long input buffer, state resets between samples, samples side by side in lanes).
* :mod:`neurocredit.deploy.pipeline` -- ``neurocredit deploy``: check, quantize, run, verify.

Nothing here imports Lava at module level; only ``lava_backend`` functions (and the small
process package ``neurocredit.deploy.lava_io``) do.
"""
