"""``RunRecord``: what one simulation of a ``Network`` produced on a batch of inputs.

Reports, cross-backend comparisons and evaluation read only this object, so every backend
(``rate``, ``norse``, ``brian2``, ``lava``, ``emulator``) returns the same fields with the same
shapes and meaning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass
class RunRecord:
    """Results of one simulation.

    backend: the backend's registry name.
    steps: number of time steps simulated (0 for a rate network).
    outputs: (batch, n_outputs) float64: logits (rate) or output spike counts (lif).
    predictions: (batch,) int64 predicted class per sample (the network's readout).
    spike_counts: per layer (hidden and output), (batch, n) int64 spikes per neuron over the
        run; empty for rate networks.
    input_spike_counts: (batch, n_inputs) int64 input spikes per feature (lif only).
    labels: (batch,) int64 when known.
    spikes: per layer (steps, batch, n) bool rasters, when requested.
    voltages / currents: per layer (steps, batch, n) float64 after reset, when requested.
    input_spikes: (steps, batch, n_inputs) bool, when rasters were requested.
    seconds: wall-clock time of the simulation proper.
    """

    backend: str
    steps: int
    outputs: np.ndarray
    predictions: np.ndarray
    spike_counts: list[np.ndarray] = field(default_factory=list)
    input_spike_counts: Optional[np.ndarray] = None
    labels: Optional[np.ndarray] = None
    spikes: Optional[list[np.ndarray]] = None
    voltages: Optional[list[np.ndarray]] = None
    currents: Optional[list[np.ndarray]] = None
    input_spikes: Optional[np.ndarray] = None
    seconds: float = 0.0

    @property
    def samples(self) -> int:
        return int(self.outputs.shape[0])

    @property
    def accuracy(self) -> Optional[float]:
        """Fraction of correct predictions, or None when labels are unknown."""
        if self.labels is None or self.samples == 0:
            return None
        return float(np.mean(self.predictions == self.labels))

    def mean_spikes_per_sample(self) -> list[float]:
        """Mean number of spikes per sample in each layer (all neurons together)."""
        return [float(counts.sum(axis=1).mean()) if counts.size else 0.0 for counts in self.spike_counts]

    def concatenate(self, other: "RunRecord") -> "RunRecord":
        """Join two records of the same backend and steps along the batch axis."""

        def join(a, b, axis=0):
            if a is None or b is None:
                return None
            return np.concatenate([a, b], axis=axis)

        def join_layers(a, b, axis):
            if a is None or b is None:
                return None
            return [np.concatenate([x, y], axis=axis) for x, y in zip(a, b)]

        return RunRecord(
            backend=self.backend,
            steps=self.steps,
            outputs=join(self.outputs, other.outputs),
            predictions=join(self.predictions, other.predictions),
            spike_counts=join_layers(self.spike_counts, other.spike_counts, 0) or [],
            input_spike_counts=join(self.input_spike_counts, other.input_spike_counts),
            labels=join(self.labels, other.labels),
            spikes=join_layers(self.spikes, other.spikes, 1),
            voltages=join_layers(self.voltages, other.voltages, 1),
            currents=join_layers(self.currents, other.currents, 1),
            input_spikes=join(self.input_spikes, other.input_spikes, axis=1),
            seconds=self.seconds + other.seconds,
        )
