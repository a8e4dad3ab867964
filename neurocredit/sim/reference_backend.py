"""The plain numpy float64 reference simulation of the canonical LIF network
(:func:`neurocredit.neurons.run_lif_network`), wrapped as a backend. Slow, obviously correct."""

from __future__ import annotations

import numpy as np

from neurocredit.network import Network
from neurocredit.neurons import run_lif_network
from neurocredit.record import RunRecord


def run(network: Network, inputs: np.ndarray, record=frozenset()) -> RunRecord:
    trace = run_lif_network(network, inputs, record_states=bool({"voltages", "currents"} & set(record)))
    return RunRecord.from_rasters("reference", network, inputs, trace.spikes, trace.voltages, trace.currents, record)
