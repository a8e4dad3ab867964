"""Rate networks in numpy: ``h_i = f(W_i h_{i-1} + b_i)`` for hidden layers, linear output."""

from __future__ import annotations

import numpy as np

from neurocredit.network import Network
from neurocredit.neurons import activation
from neurocredit.readout import predict
from neurocredit.record import RunRecord


def forward(network: Network, features: np.ndarray) -> list[np.ndarray]:
    """Activities of every layer, the last one being the logits."""
    hidden = np.asarray(features, dtype=np.float64)
    activities = []
    for index, layer in enumerate(network.layers):
        pre_activation = hidden @ layer.weight.astype(np.float64).T + layer.bias
        last = index == len(network.layers) - 1
        hidden = pre_activation if last else activation(network.neuron.activation, pre_activation)
        activities.append(hidden)
    return activities


def run(network: Network, inputs: np.ndarray, record=frozenset()) -> RunRecord:
    outputs = forward(network, inputs)[-1]
    return RunRecord(backend="rate", steps=0, outputs=outputs, predictions=predict(network, outputs))
