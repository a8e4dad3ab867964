"""``RunRecord``: what one simulation of a ``Network`` produced on a batch of inputs.

Reports, cross-backend comparisons and evaluation read only this object, so every backend
(``rate``, ``reference``, ``norse``, ``brian2``, ``lava``, ``emulator``) returns the same fields
with the same shapes and meaning. Spiking backends build it from their rasters with
:meth:`RunRecord.from_rasters`, so the counts, outputs and predictions are derived the same way
everywhere. A record is immutable; :meth:`RunRecord.replace`, :meth:`RunRecord.concatenate` and
:meth:`RunRecord.head` return new ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

import numpy as np


# The sample axis of every per-sample field (per-layer fields: of each layer's array).
SAMPLE_AXIS = {"outputs": 0, "predictions": 0, "spike_counts": 0, "input_spike_counts": 0, "labels": 0,
               "spikes": 1, "voltages": 1, "currents": 1, "input_spikes": 1}
PER_LAYER = frozenset({"spike_counts", "spikes", "voltages", "currents"})


def spike_counts(raster: np.ndarray) -> np.ndarray:
    """Spikes per neuron of a (steps, ...) bool raster, int64: summed as bytes into the narrowest
    unsigned integer that holds ``steps`` (several times faster than a bool -> int64 sum; bytes
    into bytes twice as fast as into 16 bits)."""
    for bits in (8, 16):
        if len(raster) < 2**bits:
            return np.add.reduce(raster.view(np.uint8), axis=0, dtype=f"uint{bits}").astype(np.int64)
    return raster.sum(axis=0, dtype=np.int64)


@dataclass(frozen=True)
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

    @classmethod
    def from_outputs(cls, backend: str, network: Any, outputs: np.ndarray, **fields: Any) -> "RunRecord":
        """A record whose predictions are ``network``'s readout of ``outputs`` (batch, n_outputs)."""
        from neurocredit.readout import predict

        outputs = np.asarray(outputs, dtype=np.float64)
        return cls(backend=backend, outputs=outputs, predictions=predict(network, outputs), **fields)

    @classmethod
    def from_rasters(cls, backend: str, network: Any, inputs: np.ndarray, spikes: list[np.ndarray],
                     voltages: Optional[list[np.ndarray]] = None, currents: Optional[list[np.ndarray]] = None,
                     record: Iterable[str] = ()) -> "RunRecord":
        """The record of a spiking simulation of ``inputs`` (steps, batch, n_inputs) from its per-layer
        rasters (steps, batch, n); ``voltages``/``currents`` (same shapes) are kept when ``record``
        names them, the rasters when it names ``spikes``."""
        record = frozenset(record)
        inputs = np.asarray(inputs)
        rasters = [np.asarray(raster).astype(bool, copy=False) for raster in spikes]
        counts = [spike_counts(raster) for raster in rasters]

        def states(layers):
            return [np.asarray(layer, dtype=np.float64) for layer in layers] if layers is not None else None

        return cls.from_outputs(
            backend, network, counts[-1],
            steps=int(inputs.shape[0]),
            spike_counts=counts,
            input_spike_counts=np.rint(inputs.sum(axis=0)).astype(np.int64),
            spikes=rasters if "spikes" in record else None,
            voltages=states(voltages) if "voltages" in record else None,
            currents=states(currents) if "currents" in record else None,
            input_spikes=(inputs > 0) if "spikes" in record else None,
        )

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

    def replace(self, **changes: Any) -> "RunRecord":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def _per_field(self, function, *others: "RunRecord") -> dict[str, Any]:
        """``{field: function(sample_axis, *arrays)}`` for every per-sample field of this record and
        ``others`` (each layer of a per-layer field; None where any record lacks the field)."""
        fields: dict[str, Any] = {}
        for name, axis in SAMPLE_AXIS.items():
            values = [getattr(record, name) for record in (self, *others)]
            if any(value is None for value in values):
                fields[name] = None
            elif name in PER_LAYER:
                fields[name] = [function(axis, *arrays) for arrays in zip(*values)]
            else:
                fields[name] = function(axis, *values)
        return fields

    def head(self, count: int) -> "RunRecord":
        """The first ``count`` samples."""
        return self.replace(**self._per_field(
            lambda axis, array: array[:count] if axis == 0 else array[:, :count]))

    def concatenate(self, other: "RunRecord") -> "RunRecord":
        """Join two records of the same backend and steps along the batch axis (a field missing
        from either record is missing from the result)."""
        if (self.backend, self.steps) != (other.backend, other.steps):
            raise ValueError(f"cannot join a {self.backend}/{self.steps}-step record with a "
                             f"{other.backend}/{other.steps}-step one")
        fields = self._per_field(lambda axis, *arrays: np.concatenate(arrays, axis=axis), other)
        return self.replace(seconds=self.seconds + other.seconds, **fields)
