"""Predictive coding for rate networks (equations: :mod:`neurocredit.rules.pc`).

:func:`pc_errors` is the whole inference as a pure function of the weights and one batch; the
rule class only turns its errors into the optimizer's gradients. No autograd. The input is
clamped, so the first layer's prediction is computed once per batch, not once per iteration.
"""

from __future__ import annotations

from typing import Sequence

import torch

from neurocredit.neurons import activation, activation_derivative
from neurocredit.rules.base import RateRule, one_hot
from neurocredit.rules.pc import PCOptions


def output_error(options: PCOptions, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``e_N``: ``target - μ_N`` (mse) or ``target - softmax(μ_N)`` (ce)."""
    if options.output_loss == "mse":
        return target - prediction
    return target - torch.softmax(prediction, dim=1)


@torch.no_grad()
def pc_errors(weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor], activation_name: str,
              features: torch.Tensor, target: torch.Tensor, options: PCOptions):
    """Run PC inference on one batch with the output clamped to ``target`` (batch, classes).

    Returns ``(errors, presynaptic)``, lists over layers: ``errors[i]`` = ``e_{i+1}`` (batch,
    n_{i+1}) after the last iteration and ``presynaptic[i]`` = ``φ_i(x_i)`` (batch, n_i), the
    values the update of ``W_{i+1}`` multiplies them with.
    """
    f = activation_name
    last = len(weights) - 1
    first = features @ weights[0].T + biases[0]  # μ_1: x_0 is clamped, so it never changes

    def predictions(values):
        """``μ_i`` of every layer from the values below it, the presynaptic values ``φ_i(x_i)``
        and the derivatives ``f'(x_i)`` of the hidden layers."""
        activities = [activation(f, x) for x in values]
        mu = [first] + [h @ w.T + b for h, w, b in zip(activities, weights[1:], biases[1:])]
        return mu, [features] + activities, [activation_derivative(f, x, h) for x, h in zip(values, activities)]

    # feed-forward sweep: x_i = μ_i, so every hidden error starts at zero
    values = [first]
    for index in range(1, last):
        values.append(activation(f, values[-1]) @ weights[index].T + biases[index])
    mu, presynaptic, derivatives = predictions(values)  # f'(x_i) stays at these under FPA
    errors = [x - m for x, m in zip(values, mu[:-1])] + [output_error(options, mu[-1], target)]
    for _ in range(options.inference_steps):
        for index in range(last):
            step = -errors[index] + derivatives[index] * (errors[index + 1] @ weights[index + 1])
            values[index] = values[index] + options.inference_rate * step
        if not options.fixed_prediction:
            mu, presynaptic, derivatives = predictions(values)
            errors[-1] = output_error(options, mu[-1], target)
        errors[:-1] = [x - m for x, m in zip(values, mu[:-1])]  # under FPA μ is fixed: only the values move
    return errors, presynaptic


class RatePC(RateRule):
    """Predictive coding on a rate network (module doc of :mod:`neurocredit.rules.pc`)."""

    name = "pc"
    Options = PCOptions

    def gradients(self, features: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
        """``∂F/∂W_i`` then ``∂F/∂b_i`` for every layer: minus the batch mean of error x value."""
        target = one_hot(labels, self.n_classes, self.dtype)
        errors, presynaptic = pc_errors(self.weights, self.biases, self.spec.neuron.activation,
                                        features.to(self.dtype), target, self.options)
        batch = features.shape[0]
        weight_grads = [-(e.T @ p) / batch for e, p in zip(errors, presynaptic)]
        bias_grads = [-e.mean(dim=0) for e in errors]
        return weight_grads + bias_grads

    @torch.no_grad()
    def train_batch(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        features = features.to(self.dtype)
        logits = self.forward(features)[1][-1]
        if self.options.output_loss == "mse":
            loss = 0.5 * (one_hot(labels, self.n_classes, self.dtype) - logits).square().sum(dim=1).mean()
        else:
            loss = torch.nn.functional.cross_entropy(logits, labels)
        self.apply_gradients(self.gradients(features, labels))
        return float(loss)
