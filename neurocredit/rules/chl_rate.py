"""Rate equilibrium propagation / CHL (:mod:`neurocredit.rules.chl`): settling with feedback,
free and nudged phases, the contrastive update."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence

import numpy as np
import torch

from neurocredit.neurons import activation, rate_forward
from neurocredit.rules.base import RateRule, one_hot
from neurocredit.rules.chl import RateCHLOptions, feedback_extras, feedback_matrices, layer_scales, saved_random_feedback


class Nudge(NamedTuple):
    """The output's boundary condition: ``beta`` (0 = free), the cost, the one-hot ``target``
    (batch, n_out), or ``clamp`` (the output is set to the target)."""

    beta: float = 0.0
    cost: str = "cross_entropy"
    target: Optional[torch.Tensor] = None
    clamp: bool = False


def feedforward_states(weights, biases, activation_name: str, features: torch.Tensor) -> list[torch.Tensor]:
    """One bottom-up sweep without feedback: the feed-forward network's activities (the
    settling's starting point, and exactly what the deployed network computes)."""
    return rate_forward(weights, biases, activation_name, features)[1]


def settle_step(
    weights, biases, feedback, gain: float, activation_name: str, features: torch.Tensor,
    states: Sequence[torch.Tensor], nudge: Nudge = Nudge(), input_drive: Optional[torch.Tensor] = None,
) -> list[torch.Tensor]:
    """One settling iteration (bottom-up, each layer sees the already-updated layer below and
    the previous state of the layer above); returns the new states. Pure: no tensor is modified.
    ``input_drive``: ``W_1 x + b_1``, constant while the input is clamped (computed once per phase)."""
    new_states, below = [], features
    last = len(weights) - 1
    for index, (weight, bias) in enumerate(zip(weights, biases)):
        pre = input_drive if index == 0 and input_drive is not None else below @ weight.T + bias
        if index < last:
            pre = pre + gain * (states[index + 1] @ feedback[index].T)
            state = activation(activation_name, pre)
        elif nudge.clamp:
            state = nudge.target
        elif nudge.beta == 0.0:
            state = pre
        elif nudge.cost == "mse":  # the stationarity condition s - pre + β (s - y) = 0, solved exactly
            state = (pre + nudge.beta * nudge.target) / (1.0 + nudge.beta)
        else:  # cross-entropy: s = pre - β (softmax(s) - y), iterated with the previous s
            state = pre - nudge.beta * (torch.softmax(states[index], dim=1) - nudge.target)
        new_states.append(state)
        below = state
    return new_states


def settle(weights, biases, feedback, gain, activation_name, features, states, steps: int,
           nudge: Nudge = Nudge()) -> tuple[list[torch.Tensor], float]:
    """``steps`` iterations of :func:`settle_step`; returns the states and the largest absolute
    change of any state in the last iteration (the convergence measure)."""
    change = float("inf")
    drive = features @ weights[0].T + biases[0]
    for _ in range(steps):
        new_states = settle_step(weights, biases, feedback, gain, activation_name, features, states, nudge, drive)
        change = max(float((new - old).detach().abs().max()) for new, old in zip(new_states, states))
        states = new_states
    return list(states), change


def cost_value(cost: str, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cost over the batch: cross-entropy of softmax(outputs) or ``0.5 ||outputs - onehot||²``."""
    if cost == "mse":
        target = one_hot(labels, outputs.shape[1], outputs.dtype)
        return 0.5 * ((outputs - target) ** 2).sum(dim=1).mean()
    return torch.nn.functional.cross_entropy(outputs, labels)


def contrastive_gradients(
    features: torch.Tensor, positive: Sequence[torch.Tensor], negative: Sequence[torch.Tensor],
    scales: Sequence[float], denominator: float,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``-(α_i/denominator) mean_batch(s_i s_{i-1}ᵀ|positive - s_i s_{i-1}ᵀ|negative)`` and the
    bias terms: the CHL/EP estimate of the loss gradient for every layer."""
    batch = features.shape[0]
    weight_grads, bias_grads = [], []
    below_pos, below_neg = features, features
    for scale, pos, neg in zip(scales, positive, negative):
        factor = -scale / (denominator * batch)
        weight_grads.append(factor * (pos.T @ below_pos - neg.T @ below_neg))
        bias_grads.append(factor * (pos - neg).sum(dim=0))
        below_pos, below_neg = pos, neg
    return weight_grads, bias_grads


def ep_gradients(
    weights, biases, feedback, gain: float, activation_name: str, features: torch.Tensor, labels: torch.Tensor,
    n_classes: int, beta: float, nudge: str = "symmetric", cost: str = "cross_entropy",
    free_steps: int = 20, nudged_steps: int = 10,
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Both phases and the contrastive update for one batch.

    Returns ``(weight_grads, bias_grads, free_states)``.
    """
    target = one_hot(labels, n_classes, features.dtype)
    start = feedforward_states(weights, biases, activation_name, features)
    free, _ = settle(weights, biases, feedback, gain, activation_name, features, start, free_steps)
    scales = layer_scales(len(weights), gain)
    if nudge == "clamped":
        clamped, _ = settle(weights, biases, feedback, gain, activation_name, features, free, nudged_steps,
                            Nudge(cost=cost, target=target, clamp=True))
        grads = contrastive_gradients(features, clamped, free, scales, 1.0)
    elif nudge == "positive":
        nudged, _ = settle(weights, biases, feedback, gain, activation_name, features, free, nudged_steps,
                           Nudge(beta, cost, target))
        grads = contrastive_gradients(features, nudged, free, scales, beta)
    else:
        plus, _ = settle(weights, biases, feedback, gain, activation_name, features, free, nudged_steps,
                         Nudge(beta, cost, target))
        minus, _ = settle(weights, biases, feedback, gain, activation_name, features, free, nudged_steps,
                          Nudge(-beta, cost, target))
        grads = contrastive_gradients(features, plus, minus, scales, 2.0 * beta)
    return grads[0], grads[1], free


class RateCHL(RateRule):
    """Rate CHL / equilibrium propagation (:mod:`neurocredit.rules.chl`)."""

    name = "chl"
    Options = RateCHLOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = self.options
        self.random_feedback = None
        if options.feedback == "random":
            self.random_feedback = [torch.tensor(m, device=self.device)
                                    for m in saved_random_feedback(self.spec, options)]

    def feedback(self) -> list[torch.Tensor]:
        return feedback_matrices(self.weights, self.random_feedback)

    @torch.no_grad()
    def train_batch(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        o = self.options
        weight_grads, bias_grads, free = ep_gradients(
            self.weights, self.biases, self.feedback(), o.feedback_gain, self.spec.neuron.activation,
            features.to(self.dtype), labels, self.n_classes, o.beta, o.nudge, o.cost, o.free_steps, o.nudged_steps,
        )
        self.apply_gradients(weight_grads + bias_grads)
        return float(cost_value(o.cost, free[-1], labels))

    @torch.no_grad()
    def settled(self, features: torch.Tensor, steps: Optional[int] = None) -> tuple[list[torch.Tensor], float]:
        """Free-phase states (and the last change) for ``features``."""
        features = features.to(self.dtype)
        start = feedforward_states(self.weights, self.biases, self.spec.neuron.activation, features)
        return settle(self.weights, self.biases, self.feedback(), self.options.feedback_gain,
                      self.spec.neuron.activation, features, start, steps or self.options.free_steps)

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """The settled free phase's output (the rule's own prediction; the saved network is
        evaluated feed-forward, see module doc)."""
        return self.settled(features)[0][-1]

    def extras(self) -> dict[str, np.ndarray]:
        return feedback_extras(self.feedback(), self.options)
