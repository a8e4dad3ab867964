"""Rate networks in numpy: ``h_i = f(W_i h_{i-1} + b_i)`` for hidden layers, linear output
(:func:`neurocredit.neurons.rate_forward`, float64; ``W_i h`` a matrix product or a convolution)."""

from __future__ import annotations

import numpy as np

from neurocredit.network import Network
from neurocredit.neurons import rate_forward
from neurocredit.record import RunRecord


def forward(network: Network, features: np.ndarray) -> list[np.ndarray]:
    """Activities of every layer (float64), the last one being the logits."""
    weights = [layer.weight.astype(np.float64) for layer in network.layers]
    biases = [layer.neuron_bias.astype(np.float64) for layer in network.layers]
    return rate_forward(weights, biases, network.neuron.activation, np.asarray(features, dtype=np.float64),
                        layers=network.layers)[1]


def run(network: Network, inputs: np.ndarray, record=frozenset()) -> RunRecord:
    return RunRecord.from_outputs("rate", network, forward(network, inputs)[-1], steps=0)
