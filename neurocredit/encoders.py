"""Spike encoders: features in [0, 1] -> network input of shape (steps, batch, n_features).

Every encoder is seeded and *counter based*: the random number for (sample, step, feature) is a
hash of ``(seed, sample_index, step, feature)``, so a sample gets the same spike train whether it
is encoded alone, in a batch, or in a different batch order, and every backend receives exactly
the same input. ``sample_index`` is the sample's position in its data split (pass ``offset``
when encoding a slice).

* ``bernoulli``: spike with probability ``p = clip(max_rate * x, 0, 1)`` independently per step.
* ``poisson``: the same per-step Bernoulli approximation of a Poisson process with rate
  ``max_rate * x`` spikes per step (identical to ``bernoulli`` for rates <= 1; kept as its own
  name because that is what users call it).
* ``latency``: one spike per feature at step ``round((1 - x) * (steps - 1))``; ``x = 0`` never
  fires (time-to-first-spike code, bright pixels first).
* ``current``: a constant input current ``max_rate * x`` every step (no randomness).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from neurocredit.errors import NeurocreditError, require_at_least_one
from neurocredit.network import EncoderSpec

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """A vectorized splitmix64 finalizer: uint64 -> well-mixed uint64."""
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def counter_uniform(seed: int, sample_index: np.ndarray, steps: int, n_features: int) -> np.ndarray:
    """Uniform [0, 1) numbers of shape (steps, batch, n_features), a pure function of
    (seed, sample index, step, feature)."""
    sample = np.asarray(sample_index, dtype=np.uint64)[None, :, None]
    step = np.arange(steps, dtype=np.uint64)[:, None, None]
    feature = np.arange(n_features, dtype=np.uint64)[None, None, :]
    with np.errstate(over="ignore"):
        key = _splitmix64(np.uint64(seed) & _MASK64)
        counter = _splitmix64(key ^ (sample * np.uint64(0x100000001B3)))
        counter = _splitmix64(counter ^ (step << np.uint64(32)) ^ feature)
    return (counter >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def latency_steps(clipped, window: int):
    """Step at which each feature of a ``latency`` code fires, ``round((1 - x) (window - 1))``, and
    ``window`` (never, past the window) where ``x = 0``; numpy array or torch tensor alike."""
    fire_step = ((1.0 - clipped) * (window - 1)).round()
    return fire_step + (clipped <= 0) * (window - fire_step)


def is_binary(inputs) -> bool:
    """True when every input value is 0 or 1 (spikes), False for graded input (``current``)."""
    inputs = np.asarray(inputs)
    return not bool(np.any((inputs != 0) & (inputs != 1)))


def check_binary(inputs) -> None:
    """Loihi fixed point takes spikes only: a clear error for graded inputs."""
    if not is_binary(inputs):
        raise NeurocreditError(
            "Loihi fixed point takes binary spike inputs, but these inputs are graded (the 'current' "
            "encoder); use a spike encoder (bernoulli, poisson, latency) or Lava floating point"
        )


def encode(
    spec: EncoderSpec, features: np.ndarray, steps: Optional[int] = None, offset: int = 0
) -> np.ndarray:
    """Encode ``features`` (batch, n) in [0, 1] as (steps, batch, n) float32 input.

    ``steps`` overrides ``spec.steps``; ``offset`` is the data-split index of ``features[0]``.
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise NeurocreditError(f"encoder input must have shape (batch, features), got {features.shape}")
    steps = int(spec.steps if steps is None else steps)
    require_at_least_one("number of steps", steps)
    batch, n_features = features.shape
    clipped = np.clip(features, 0.0, 1.0)
    if spec.kind in ("bernoulli", "poisson"):
        probability = np.clip(spec.max_rate * clipped, 0.0, 1.0)
        uniform = counter_uniform(spec.seed, np.arange(offset, offset + batch), steps, n_features)
        return (uniform < probability[None]).astype(np.float32)
    if spec.kind == "latency":
        return (np.arange(steps)[:, None, None] == latency_steps(clipped, steps)[None]).astype(np.float32)
    if spec.kind == "current":
        return np.broadcast_to((spec.max_rate * clipped)[None], (steps, batch, n_features)).astype(np.float32)
    raise NeurocreditError(f"encoder kind {spec.kind!r} cannot encode spikes (rate networks take features directly)")


def encode_torch(spec: EncoderSpec, features, steps: Optional[int] = None, generator=None, start: int = 0,
                 window: Optional[int] = None):
    """Fast training-time encoding in torch (not counter based: uses ``generator``, a CPU
    generator; features on another device are encoded on the CPU and moved, so a seed gives the
    same spikes on CPU and GPU).

    Same distributions as :func:`encode` (Bernoulli probabilities resolved to 1/65536); returns
    steps ``start .. start + steps - 1`` (steps, batch, n) with the features' dtype and device;
    ``window`` is the latency code's window (default ``steps``). Use :func:`encode` wherever
    backends must see identical spikes.
    """
    import torch

    steps = int(spec.steps if steps is None else steps)
    device = features.device
    if device.type != "cpu":
        return encode_torch(spec, features.cpu(), steps, generator, start, window).to(device)
    clipped = features.clamp(0.0, 1.0)
    if spec.kind in ("bernoulli", "poisson"):
        # 16-bit uniform integers, four per 64-bit random word (a quarter of the random draws of
        # one float per spike): P(spike) = round(65536 p) / 65536, exactly 0 at p = 0 and 1 at p = 1
        probability = (spec.max_rate * clipped).clamp(0.0, 1.0)
        count = steps * features.numel()
        words = torch.empty(-(-count // 4), dtype=torch.int64)
        words.random_(-(2**63), None, generator=generator)  # the full 64-bit range
        uniform = words.view(torch.int16)[:count].view((steps,) + tuple(features.shape))
        threshold = (torch.round(probability * 65536.0) - 32768.0).to(torch.int32)
        return (uniform.to(torch.int32) < threshold.unsqueeze(0)).to(features.dtype)
    if spec.kind == "latency":
        times = torch.arange(start, start + steps, dtype=features.dtype).view(-1, 1, 1)
        return (times == latency_steps(clipped, window or steps).unsqueeze(0)).to(features.dtype)
    if spec.kind == "current":
        return (spec.max_rate * clipped).unsqueeze(0).expand((steps,) + tuple(features.shape)).contiguous()
    raise NeurocreditError(f"encoder kind {spec.kind!r} cannot encode spikes")
