"""Predictive coding for rate networks (equations: :mod:`neurocredit.rules.pc`).

:func:`pc_errors` is the whole inference as a pure function of the weights and one batch; the
rule class only turns its errors into the optimizer's gradients. No autograd.
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

    def predictions(values):
        """``μ_i`` of every layer from the values below it, and the presynaptic values used."""
        presynaptic = [features] + [activation(f, x) for x in values]
        return [p @ w.T + b for p, w, b in zip(presynaptic, weights, biases)], presynaptic

    # feed-forward sweep: x_i = μ_i, so every hidden error starts at zero
    values: list[torch.Tensor] = []
    hidden = features
    for index in range(last):
        values.append(hidden @ weights[index].T + biases[index])
        hidden = activation(f, values[-1])
    mu, presynaptic = predictions(values)
    derivatives = [activation_derivative(f, x) for x in values]  # f'(x_i), fixed under FPA
    errors = [x - m for x, m in zip(values, mu[:-1])] + [output_error(options, mu[-1], target)]
    for _ in range(options.inference_steps):
        if not options.fixed_prediction:
            derivatives = [activation_derivative(f, x) for x in values]
        for index in range(last):
            step = -errors[index] + derivatives[index] * (errors[index + 1] @ weights[index + 1])
            values[index] = values[index] + options.inference_rate * step
        if not options.fixed_prediction:
            mu, presynaptic = predictions(values)
            errors = [x - m for x, m in zip(values, mu[:-1])] + [errors[-1]]
            errors[-1] = output_error(options, mu[-1], target)
        else:  # μ fixed: only the values move
            errors = [x - m for x, m in zip(values, mu[:-1])] + [errors[-1]]
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
