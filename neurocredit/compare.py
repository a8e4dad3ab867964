"""Spike-for-spike comparison of two ``RunRecord`` objects (same network, same encoded inputs).

Agreement of a layer = |A ∩ B| / |A ∪ B| over spike *events* (sample, step, neuron): 1.0 when
the rasters are identical (also when both are silent), lower for every spike only one backend
emitted. Both records must carry rasters (``record={'spikes'}``).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from neurocredit.errors import NeurocreditError
from neurocredit.record import RunRecord


def first_divergence(a: np.ndarray, b: np.ndarray) -> Optional[int]:
    """First time step (axis 0) at which two rasters differ, or None."""
    differing = np.flatnonzero((a != b).reshape(a.shape[0], -1).any(axis=1))
    return int(differing[0]) if differing.size else None


def spike_agreement(first: RunRecord, second: RunRecord) -> dict:
    """Per-layer and overall event agreement, and the first diverging step per layer.

    Returns ``{"layers": [{"layer", "agreement", "events_a", "events_b", "first_diverging_step"}],
    "overall": float}``.
    """
    if first.spikes is None or second.spikes is None:
        raise NeurocreditError("spike agreement needs spike rasters from both backends (record spikes)")
    if len(first.spikes) != len(second.spikes):
        raise NeurocreditError(f"records have {len(first.spikes)} and {len(second.spikes)} layers")
    layers = []
    total_both = total_either = 0
    for index, (a, b) in enumerate(zip(first.spikes, second.spikes)):
        if a.shape != b.shape:
            raise NeurocreditError(f"layer {index}: raster shapes differ ({a.shape} vs {b.shape})")
        a, b = a.astype(bool), b.astype(bool)
        both = int(np.count_nonzero(a & b))
        either = int(np.count_nonzero(a | b))
        total_both += both
        total_either += either
        layers.append(
            {
                "layer": index,
                "agreement": 1.0 if either == 0 else both / either,
                "events_a": int(a.sum()),
                "events_b": int(b.sum()),
                "first_diverging_step": first_divergence(a, b),
            }
        )
    overall = 1.0 if total_either == 0 else total_both / total_either
    return {"layers": layers, "overall": overall}
