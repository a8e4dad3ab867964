"""A quickly made spiking network for deployment demos, tests and benchmarks.

When no trained spiking model is at hand (``models/out/digits-dfa-snn.h5`` comes from the
spiking DFA demo step), :func:`converted_lif_network` makes one in seconds: a ReLU network
trained with plain backpropagation (numpy, Adam, cross-entropy), converted to the canonical LIF
by data-based threshold balancing (Diehl et al., IJCNN 2015): layer i's weights are scaled by
``lambda_{i-1} / lambda_i`` and its bias by ``1 / lambda_i``, where ``lambda_i`` is a high
percentile of layer i's ReLU activations on training data, and ``vth = 1``. With ``du = 1``
(the current is the input of the step) and a small voltage leak, a neuron's firing rate
approximates its ReLU activation, so Bernoulli rate-coded inputs give the ANN's answer.

This is a baseline path to a deployable network, not one of the project's learning rules.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from neurocredit.network import EncoderSpec, Layer, LIFParameters, Network, NeuronSpec, ReadoutSpec, init_layers


def train_relu_mlp(x: np.ndarray, y: np.ndarray, sizes: Sequence[int], epochs: int = 30, batch_size: int = 64,
                   learning_rate: float = 3e-3, seed: int = 0) -> list[Layer]:
    """Backpropagation with Adam on a ReLU MLP (linear last layer, softmax cross-entropy)."""
    rng = np.random.default_rng(seed)
    layers = init_layers(tuple(sizes), rng)
    params = [p.astype(np.float64) for layer in layers for p in (layer.weight, layer.bias)]
    moments = [np.zeros_like(p) for p in params]
    squares = [np.zeros_like(p) for p in params]
    beta1, beta2, eps, step = 0.9, 0.999, 1e-8, 0
    n_layers = len(layers)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch_size):
            index = order[start : start + batch_size]
            activity = [x[index].astype(np.float64)]
            for i in range(n_layers):
                pre = activity[-1] @ params[2 * i].T + params[2 * i + 1]
                activity.append(np.maximum(pre, 0) if i < n_layers - 1 else pre)
            logits = activity[-1] - activity[-1].max(axis=1, keepdims=True)
            probs = np.exp(logits)
            probs /= probs.sum(axis=1, keepdims=True)
            delta = probs
            delta[np.arange(len(index)), y[index]] -= 1.0
            delta /= len(index)
            grads = [None] * len(params)
            for i in reversed(range(n_layers)):
                grads[2 * i] = delta.T @ activity[i]
                grads[2 * i + 1] = delta.sum(axis=0)
                if i > 0:
                    delta = (delta @ params[2 * i]) * (activity[i] > 0)
            step += 1
            for p, g, m, v in zip(params, grads, moments, squares):
                m *= beta1
                m += (1 - beta1) * g
                v *= beta2
                v += (1 - beta2) * g * g
                p -= learning_rate * (m / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + eps)
    return [Layer(params[2 * i].astype(np.float32), params[2 * i + 1].astype(np.float32), layers[i].name)
            for i in range(n_layers)]


def balance_thresholds(layers: Sequence[Layer], x: np.ndarray, percentile: float = 99.9) -> list[Layer]:
    """Scale a ReLU MLP for LIF neurons with ``vth = 1`` (see module doc)."""
    activity = x.astype(np.float64)
    previous_scale = 1.0
    balanced = []
    for index, layer in enumerate(layers):
        pre = activity @ layer.weight.T.astype(np.float64) + layer.bias
        activity = np.maximum(pre, 0) if index < len(layers) - 1 else pre
        positive = activity[activity > 0]
        scale = float(np.percentile(positive, percentile)) if positive.size else 1.0
        weight = layer.weight.astype(np.float64) * previous_scale / scale
        balanced.append(Layer(weight.astype(np.float32), (layer.bias / scale).astype(np.float32), layer.name))
        previous_scale = scale
    return balanced


def converted_lif_network(x_train: np.ndarray, y_train: np.ndarray, hidden: Sequence[int] = (100,),
                          steps: int = 32, dv: float = 0.02, epochs: int = 30, seed: int = 0,
                          data: str = "digits") -> Network:
    """A LIF network (``du = 1``, ``dv``, ``vth = 1``, Bernoulli input over ``steps`` steps)
    converted from a ReLU MLP trained on ``x_train``/``y_train`` (see module doc)."""
    n_classes = int(y_train.max()) + 1
    sizes = (x_train.shape[1], *hidden, n_classes)
    layers = train_relu_mlp(x_train, y_train, sizes, epochs=epochs, seed=seed)
    layers = balance_thresholds(layers, x_train)
    return Network(
        tuple(layers),
        NeuronSpec("lif", lif=LIFParameters(du=1.0, dv=dv, vth=1.0)),
        EncoderSpec("bernoulli", steps=steps, max_rate=1.0, seed=seed),
        ReadoutSpec("argmax"),
        provenance={"rule": "bp-relu-converted", "data": data, "seed": seed,
                    "conversion": "threshold balancing (Diehl et al. 2015), 99.9th percentile"},
    )
