"""Rate DFA (:mod:`neurocredit.rules.dfa`): no autograd; the mean updates are handed to the
optimizer (Adam or SGD) as gradients. Dense and conv layers (a conv layer's error is projected
onto each of its C x H x W neurons; its shared kernel sums the update over positions)."""

from __future__ import annotations

import numpy as np
import torch

from neurocredit.neurons import activation_derivative
from neurocredit.rules.base import RateRule, one_hot
from neurocredit.rules.dfa import DFAOptions, feedback_from_network


def output_error(logits: torch.Tensor, labels: torch.Tensor, n_classes: int):
    """``(e, loss)``: ``e = softmax(logits) - onehot(y)`` and the cross-entropy."""
    error = torch.softmax(logits, dim=1) - one_hot(labels, n_classes, logits.dtype)
    return error, float(torch.nn.functional.cross_entropy(logits, labels))


class RateDFA(RateRule):
    """DFA for rate networks (:mod:`neurocredit.rules.dfa`)."""

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
        error, loss = output_error(activities[-1], labels, self.n_classes)
        inputs = [features] + activities[:-1]
        error = error / features.shape[0]  # batch mean, applied to the small factor
        deltas = []
        for index in range(len(self.weights)):
            if index == len(self.weights) - 1:
                deltas.append(error)
            else:
                deltas.append((error @ self.feedback[index].T) * activation_derivative(
                    self.spec.neuron.activation, pre_activations[index], activities[index]))
        self.apply_gradients(self.local_gradients(deltas, inputs))
        return loss

    def extras(self) -> dict[str, np.ndarray]:
        return {f"dfa/feedback_{i + 1}": m.cpu().numpy() for i, m in enumerate(self.feedback)}
