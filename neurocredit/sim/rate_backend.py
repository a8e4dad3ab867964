"""Rate networks in numpy: ``h_i = f(W_i h_{i-1} + b_i)`` for hidden layers, linear output
(:func:`neurocredit.neurons.rate_forward`, float64; ``W_i h`` a matrix product or a convolution).

:func:`run` goes through the samples :data:`CHUNK_SAMPLES` at a time and keeps only the output:
a conv layer's im2col patches take samples x positions x taps x 8 bytes, 7.5 MB per sample for the
second conv of ``fmnist-sigprop-conv-rate`` (14 x 14 positions, 48 channels x 10 x 10 taps of the
pool-fused kernel), so the 1000-sample chunks of :func:`neurocredit.sim.simulate` would take 7.5 GB."""

from __future__ import annotations

import numpy as np

from neurocredit.network import Network
from neurocredit.neurons import rate_forward
from neurocredit.record import RunRecord

CHUNK_SAMPLES = 200


def forward(network: Network, features: np.ndarray) -> list[np.ndarray]:
    """Activities of every layer (float64), the last one being the logits."""
    weights = [layer.weight.astype(np.float64) for layer in network.layers]
    biases = [layer.neuron_bias.astype(np.float64) for layer in network.layers]
    return rate_forward(weights, biases, network.neuron.activation, np.asarray(features, dtype=np.float64),
                        layers=network.layers)[1]


def run(network: Network, inputs: np.ndarray, record=frozenset()) -> RunRecord:
    outputs = [forward(network, inputs[start : start + CHUNK_SAMPLES])[-1]
               for start in range(0, max(len(inputs), 1), CHUNK_SAMPLES)]
    return RunRecord.from_outputs("rate", network, np.concatenate(outputs, axis=0), steps=0)
