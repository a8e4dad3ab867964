"""Direct feedback alignment (Nøkland 2016).

Rate networks, layers ``a_i = W_i h_{i-1} + b_i``, ``h_i = f(a_i)``, linear output ``a_N``::

    e      = softmax(a_N) - onehot(y)                 # output error, (batch, classes)
    δ_N    = e
    δ_i    = (e B_iᵀ) ⊙ f'(a_i)                       # B_i: fixed random (n_i, classes)
    ΔW_i   = -η mean_batch(δ_i h_{i-1}ᵀ),  Δb_i = -η mean_batch(δ_i)

No autograd, no weight transport, no backward locking: a layer's update uses only its own
input ``h_{i-1}``, its own pre-activation ``a_i`` and the projected error. The mean updates
are handed to the optimizer (Adam or SGD) as gradients. The feedback matrices are saved with
the network as ``extras['dfa/feedback_<i>']`` (1-based hidden layer index).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neurocredit.errors import NeurocreditError
from neurocredit.neurons import activation_derivative
from neurocredit.rules.base import RateRule, one_hot


@dataclass(frozen=True)
class DFAOptions:
    """feedback_init: ``uniform`` (U(-1/sqrt(classes), +1/sqrt(classes))) or ``gaussian``
    (N(0, 1/classes)); feedback_scale multiplies it; feedback_seed seeds the matrices
    (independent of the weight seed so the same B can be kept across runs)."""

    feedback_init: str = "uniform"
    feedback_scale: float = 1.0
    feedback_seed: int = 1234

    def __post_init__(self) -> None:
        if self.feedback_init not in ("uniform", "gaussian"):
            raise NeurocreditError(f"rule.feedback_init must be uniform or gaussian, got {self.feedback_init!r}")


def make_feedback(sizes: list[int], n_classes: int, options: DFAOptions) -> list[np.ndarray]:
    """One fixed random matrix (n_i, n_classes) per hidden layer width in ``sizes``."""
    rng = np.random.default_rng(options.feedback_seed)
    matrices = []
    for width in sizes:
        if options.feedback_init == "uniform":
            bound = options.feedback_scale / np.sqrt(n_classes)
            matrix = rng.uniform(-bound, bound, size=(width, n_classes))
        else:
            matrix = rng.normal(0.0, options.feedback_scale / np.sqrt(n_classes), size=(width, n_classes))
        matrices.append(matrix.astype(np.float32))
    return matrices


def feedback_from_network(network, n_classes: int, options: DFAOptions) -> list[np.ndarray]:
    """The saved feedback matrices of ``network`` if it has them, else fresh ones."""
    hidden = [layer.n_out for layer in network.layers[:-1]]
    saved = [network.extras.get(f"dfa/feedback_{i + 1}") for i in range(len(hidden))]
    if all(m is not None and m.shape == (w, n_classes) for m, w in zip(saved, hidden)):
        return [np.asarray(m, dtype=np.float32) for m in saved]
    return make_feedback(hidden, n_classes, options)


class RateDFA(RateRule):
    """DFA for rate networks (module doc)."""

    name = "dfa"
    Options = DFAOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.feedback = [
            torch.tensor(m, device=self.device)
            for m in feedback_from_network(self.spec, self.n_classes, self.options)
        ]

    @torch.no_grad()
    def train_batch(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        pre_activations, activities = self.forward(features)
        logits = activities[-1]
        probabilities = torch.softmax(logits, dim=1)
        error = probabilities - one_hot(labels, self.n_classes, logits.dtype)
        loss = float(torch.nn.functional.cross_entropy(logits, labels))
        inputs = [features] + activities[:-1]
        weight_updates, bias_updates = [], []
        batch = features.shape[0]
        for index in range(len(self.weights)):
            if index == len(self.weights) - 1:
                delta = error
            else:
                delta = (error @ self.feedback[index].T) * activation_derivative(
                    self.spec.neuron.activation, pre_activations[index]
                )
            weight_updates.append(delta.T @ inputs[index] / batch)
            bias_updates.append(delta.mean(dim=0))
        self.apply_gradients(weight_updates + bias_updates)
        return loss

    def extras(self) -> dict[str, np.ndarray]:
        return {f"dfa/feedback_{i + 1}": m.cpu().numpy() for i, m in enumerate(self.feedback)}


RULES = {"rate": RateDFA}
