"""The plain numpy float64 reference simulation of the canonical LIF network
(:func:`neurocredit.neurons.run_lif_network`), wrapped as a backend. Slow, obviously correct."""

from __future__ import annotations

import numpy as np

from neurocredit.network import Network
from neurocredit.neurons import run_lif_network
from neurocredit.readout import predict
from neurocredit.record import RunRecord


def run(network: Network, inputs: np.ndarray, record=frozenset()) -> RunRecord:
    trace = run_lif_network(network, inputs, record_states=bool({"voltages", "currents"} & set(record)))
    counts = [spikes.sum(axis=0).astype(np.int64) for spikes in trace.spikes]
    outputs = counts[-1].astype(np.float64)
    return RunRecord(
        backend="reference",
        steps=int(inputs.shape[0]),
        outputs=outputs,
        predictions=predict(network, outputs),
        spike_counts=counts,
        input_spike_counts=inputs.sum(axis=0).astype(np.int64),
        spikes=trace.spikes if "spikes" in record else None,
        voltages=trace.voltages if "voltages" in record else None,
        currents=trace.currents if "currents" in record else None,
        input_spikes=(inputs > 0) if "spikes" in record else None,
    )
