"""Backpropagation through a rate network (the baseline; spec: :mod:`neurocredit.rules.bp`)."""

from __future__ import annotations

import torch

from neurocredit.rules.base import RateRule
from neurocredit.rules.bp import BackpropOptions


class Backprop(RateRule):
    """Backpropagation (autograd) through a rate network; softmax cross-entropy on the logits."""

    name = "bp"
    Options = BackpropOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for parameter in self.parameters():
            parameter.requires_grad_(True)

    def train_batch(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        logits = self.forward(features)[1][-1]
        loss = torch.nn.functional.cross_entropy(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())
