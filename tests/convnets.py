"""Small seeded convolutional LIF networks for the conv tests (imported by tests/test_conv_*.py)."""

from __future__ import annotations

import numpy as np

from neurocredit.network import Conv2d, EncoderSpec, Layer, LIFParameters, Network, NeuronSpec


def asymmetric_conv_network(seed: int = 0, steps: int = 12, bias_scale: float = 0.05) -> Network:
    """2x7x9 input -> conv 3@3x2 stride (2, 1) padding (1, 0) -> 3x4x8
    -> conv 4@2x3 stride (1, 2) padding (0, 1) -> 4x3x4 -> dense 5.

    Asymmetric kernels, non-square maps, unequal strides and paddings: a missing flip or
    transpose of H and W anywhere changes the spikes. Random biases per channel."""
    rng = np.random.default_rng(seed)
    conv1 = Conv2d(rng.normal(0.0, 0.9, (3, 2, 3, 2)), rng.normal(0.0, bias_scale, 3), (2, 7, 9), (2, 1), (1, 0),
                   "conv1")
    conv2 = Conv2d(rng.normal(0.0, 0.8, (4, 3, 2, 3)), rng.normal(0.0, bias_scale, 4), conv1.output_shape, (1, 2),
                   (0, 1), "conv2")
    dense = Layer(rng.normal(0.0, 0.6, (5, conv2.n_out)), rng.normal(0.0, bias_scale, 5), "fc1")
    return Network((conv1, conv2, dense), NeuronSpec("lif", lif=LIFParameters(0.3, 0.2, 1.0)),
                   EncoderSpec("bernoulli", steps, 0.6, seed), provenance={"rule": "test", "data": "synthetic"})


def spike_inputs(network: Network, batch: int, seed: int = 0) -> np.ndarray:
    """(steps, batch, n_inputs) float32 Bernoulli spikes from random features."""
    from neurocredit.sim import encode_inputs

    return encode_inputs(network, np.random.default_rng(seed).random((batch, network.n_inputs)))


def small_conv_lif_network(seed: int = 0, gain: float = 3.0) -> Network:
    """1x6x6 input -> conv 3@3x3 (padding 1) -> 3x6x6 -> 2x2 sum pool fused into conv 4@2x2
    (stride 1) -> 4x2x2 -> dense 4 LIF network (torch-style init scaled by ``gain``)."""
    from neurocredit.network import init_typed_layers

    layers = init_typed_layers((1, 6, 6), [{"conv": {"channels": 3, "kernel": 3, "padding": 1}}, {"pool": 2},
                                           {"conv": {"channels": 4, "kernel": 2}}], 4, np.random.default_rng(seed),
                               gain=gain)
    return Network(layers, NeuronSpec("lif", lif=LIFParameters(0.5, 0.2, 1.0)), EncoderSpec("bernoulli", 12, 1.0, seed))
