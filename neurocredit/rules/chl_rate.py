"""Rate equilibrium propagation / CHL (:mod:`neurocredit.rules.chl`): settling with feedback,
free and nudged phases, the contrastive update."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence

import numpy as np
import torch

from neurocredit.conv import torch_local_gradients, torch_synaptic_input, torch_transposed_input, torch_weight_product
from neurocredit.neurons import activation, activation_change, rate_forward
from neurocredit.rules.base import RateRule, one_hot
from neurocredit.rules.chl import RateCHLOptions, feedback_extras, feedback_matrices, layer_scales, saved_random_feedback


class Nudge(NamedTuple):
    """The output's boundary condition: ``beta`` (0 = free), the cost, the one-hot ``target``
    (batch, n_out), or ``clamp`` (the output is set to the target)."""

    beta: float = 0.0
    cost: str = "cross_entropy"
    target: Optional[torch.Tensor] = None
    clamp: bool = False


def feedforward_states(weights, biases, activation_name: str, features: torch.Tensor,
                       layers: Optional[Sequence[Any]] = None, pooled: bool = False) -> list[torch.Tensor]:
    """One bottom-up sweep without feedback: the feed-forward network's activities (the
    settling's starting point, and what the deployed network computes; ``pooled``: see
    :func:`upward`)."""
    return rate_forward(weights, biases, activation_name, features, layers=layers, pooled=pooled)[1]


def upward(layers: Optional[Sequence[Any]], index: int, weight, below: torch.Tensor,
           pooled: bool = False) -> torch.Tensor:
    """What layer ``index`` receives from the layer below: ``below @ Wᵀ``, or the convolution
    when ``layers`` (the network's layer specs; None: all dense) make it a Conv2d. ``pooled``: a
    conv with a fused pool sum-pools, then convolves with its pooled-form kernel (the same sums,
    p**2 times fewer multiplications, another order of float additions;
    :func:`neurocredit.conv.torch_synaptic_input`)."""
    return below @ weight.T if layers is None else torch_synaptic_input(layers[index], weight, below, pooled)


def downward(layers: Optional[Sequence[Any]], index: int, feedback, above: torch.Tensor,
             pooled: bool = False) -> torch.Tensor:
    """What hidden layer ``index`` receives from layer ``index + 1`` through ``feedback``: ``above
    @ Fᵀ`` (F (n_i, n_{i+1}), :func:`~neurocredit.rules.chl.feedback_matrices`), or, when layer
    ``index + 1`` is a Conv2d, the transposed convolution with its kernel ``F`` (``pooled``: that
    of :func:`upward`'s pooled form, :func:`neurocredit.conv.torch_transposed_input`)."""
    if layers is None or layers[index + 1].kind != "conv2d":
        return above @ feedback.T
    return torch_transposed_input(layers[index + 1], feedback, above, pooled)


def hidden_input(layers, index, weight, bias, feedback, gain: float, below, above, pooled: bool = False,
                 drive: Optional[torch.Tensor] = None) -> torch.Tensor:
    """A hidden layer's pre-activation ``W_i below + b_i + γ F_i above`` (``drive``: ``W_i below +
    b_i`` when already at hand)."""
    if drive is None:
        drive = upward(layers, index, weight, below, pooled) + bias
    return drive + gain * downward(layers, index, feedback[index], above, pooled)


def output_state(nudge: Nudge, pre: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """The output layer's new state from its feed-forward input ``pre`` and its ``previous``
    state under the boundary condition ``nudge``."""
    if nudge.clamp:
        return nudge.target
    if nudge.beta == 0.0:
        return pre
    if nudge.cost == "mse":  # the stationarity condition s - pre + β (s - y) = 0, solved exactly
        return (pre + nudge.beta * nudge.target) / (1.0 + nudge.beta)
    # cross-entropy: s = pre - β (softmax(s) - y), iterated with the previous s
    return pre - nudge.beta * (torch.softmax(previous, dim=1) - nudge.target)


def settle_step(
    weights, biases, feedback, gain: float, activation_name: str, features: torch.Tensor,
    states: Sequence[torch.Tensor], nudge: Nudge = Nudge(), input_drive: Optional[torch.Tensor] = None,
    layers: Optional[Sequence[Any]] = None, pooled: bool = False,
) -> list[torch.Tensor]:
    """One settling iteration (bottom-up, each layer sees the already-updated layer below and
    the previous state of the layer above); returns the new states. Pure: no tensor is modified.
    ``input_drive``: ``W_1 x + b_1``, constant while the input is clamped (computed once per phase).
    ``layers``: the network's layer specs when it has Conv2d layers (weights fused, biases per
    neuron: :meth:`~neurocredit.rules.base.Rule.synaptic_parameters`); None: dense. ``pooled``:
    fused pools run as sum pool + pooled-form conv (:func:`upward`, :func:`downward`)."""
    new_states, below = [], features
    last = len(weights) - 1
    for index, (weight, bias) in enumerate(zip(weights, biases)):
        if index < last:
            state = activation(activation_name, hidden_input(
                layers, index, weight, bias, feedback, gain, below, states[index + 1], pooled,
                input_drive if index == 0 else None))
        else:
            state = output_state(nudge, upward(layers, index, weight, below, pooled) + bias, states[index])
        new_states.append(state)
        below = state
    return new_states


def settle(weights, biases, feedback, gain, activation_name, features, states, steps: int,
           nudge: Nudge = Nudge(), layers: Optional[Sequence[Any]] = None,
           pooled: bool = False) -> tuple[list[torch.Tensor], float]:
    """``steps`` iterations of :func:`settle_step`; returns the states and the largest absolute
    change of any state in the last iteration (the convergence measure)."""
    change = float("inf")
    drive = upward(layers, 0, weights[0], features, pooled) + biases[0]
    for _ in range(steps):
        new_states = settle_step(weights, biases, feedback, gain, activation_name, features, states, nudge, drive,
                                 layers, pooled)
        change = max(float((new - old).detach().abs().max()) for new, old in zip(new_states, states))
        states = new_states
    return list(states), change


class FreeReference(NamedTuple):
    """What every nudged phase from the same free states shares (:func:`settle_nudged`): each
    layer's ``pre``-activation at the free states, the hidden layers' ``activity`` ``f(pre)``,
    and each layer's ``residual``, what one more free iteration would change (``f(pre) - free``;
    the output's ``pre - free``)."""

    pre: list
    activity: list
    residual: list


def free_reference(weights, biases, feedback, gain, activation_name, features, free: Sequence[torch.Tensor],
                   layers: Optional[Sequence[Any]] = None, pooled: bool = False) -> FreeReference:
    """The :class:`FreeReference` of the ``free`` states (one sweep; ``layers``, ``pooled``: see
    :func:`settle_step`)."""
    last = len(weights) - 1
    pre, below = [], features
    for index, (weight, bias) in enumerate(zip(weights, biases)):
        pre.append(hidden_input(layers, index, weight, bias, feedback, gain, below, free[index + 1], pooled)
                   if index < last else upward(layers, index, weight, below, pooled) + bias)
        below = free[index]
    activity = [activation(activation_name, value) for value in pre[:-1]]
    residual = [value - state for value, state in zip(activity, free)] + [pre[-1] - free[-1]]
    return FreeReference(pre, activity, residual)


def settle_nudged(weights, biases, feedback, gain, activation_name, features, free: Sequence[torch.Tensor],
                  steps: int, nudge: Nudge, layers: Optional[Sequence[Any]] = None,
                  pooled: bool = False, reference: Optional[FreeReference] = None) -> list[torch.Tensor]:
    """The nudged phase from the ``free`` states, as the changes ``δ_i = s_i - free_i``: the same
    iteration as :func:`settle` (in exact arithmetic ``free_i + δ_i`` are its states), written so
    that float32 keeps the nudge. The first layer's two phases differ by ``O(β γ^(N-1))``
    (5e-7 at γ = 0.001 in a three-layer network), near float32's resolution of a state of order
    one, so the pre-activations are split into the free states' (``reference``, computed by
    :func:`free_reference` when not given; pass it to share it between phases) and the change's
    ``W_i δ_{i-1} + γ F_i δ_{i+1}`` (linear, no bias), and the hidden states' change is
    :func:`~neurocredit.neurons.activation_change` plus the free state's own residual
    ``f(a_i) - free_i`` (common to every nudge, so it cancels in their difference)."""
    if reference is None:
        reference = free_reference(weights, biases, feedback, gain, activation_name, features, free, layers, pooled)
    last = len(weights) - 1
    residual = reference.residual
    changes = [torch.zeros_like(state) for state in free]
    for _ in range(steps):
        new_changes, below = [], None
        for index, weight in enumerate(weights):
            if index < last:
                change = gain * downward(layers, index, feedback[index], changes[index + 1], pooled)
                if below is not None:
                    change += upward(layers, index, weight, below, pooled)
                delta = activation_change(activation_name, reference.pre[index], change, reference.activity[index])
                delta += residual[index]
            else:  # output_state(nudge, free + change, free + δ) - free, without forming free + change
                change = residual[index]
                if below is not None:
                    change = change + upward(layers, index, weight, below, pooled)
                delta = output_state(nudge, change, free[index] + changes[index])
                if nudge.clamp:
                    delta = delta - free[index]
                elif nudge.beta != 0.0 and nudge.cost == "mse":
                    delta = delta - nudge.beta / (1.0 + nudge.beta) * free[index]
            new_changes.append(delta)
            below = delta
        changes = new_changes
    return changes


def cost_value(cost: str, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cost over the batch: cross-entropy of softmax(outputs) or ``0.5 ||outputs - onehot||²``."""
    if cost == "mse":
        target = one_hot(labels, outputs.shape[1], outputs.dtype)
        return 0.5 * ((outputs - target) ** 2).sum(dim=1).mean()
    return torch.nn.functional.cross_entropy(outputs, labels)


def pre_post_products(post: torch.Tensor, pre: torch.Tensor, layer: Any = None,
                      unfused: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``Σ_batch post ⊗ pre`` through one layer's synapses and ``Σ_batch post`` (its bias term):
    per kernel tap of the fused layer (:func:`~neurocredit.conv.torch_weight_product`; ``layer``
    None: dense), or in the trainable form when ``unfused`` (the layer's
    :meth:`~neurocredit.network.Network.unfused` triple) is given
    (:func:`~neurocredit.conv.torch_local_gradients`)."""
    if unfused is not None:
        return torch_local_gradients(unfused, post, pre)
    return torch_weight_product(layer, post, pre), post.sum(dim=0)


def contrastive_gradients(
    features: torch.Tensor, differences: Sequence[torch.Tensor], means: Sequence[torch.Tensor],
    scales: Sequence[float], denominator: float, layers: Optional[Sequence[Any]] = None,
    unfused: Optional[Sequence[Any]] = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``-(α_i/denominator) mean_batch(s_i s_{i-1}ᵀ|positive - s_i s_{i-1}ᵀ|negative)`` and the
    bias terms: the CHL/EP estimate of the loss gradient for every layer, from the phases'
    ``differences`` (positive - negative) and ``means`` ((positive + negative) / 2) per layer.
    A Conv2d layer's product is per kernel tap, summed over the positions it connects
    (:func:`~neurocredit.conv.torch_weight_product`); its bias term stays per neuron.
    ``unfused`` (the rule's :meth:`~neurocredit.network.Network.unfused` triples): the products of
    the trainable form instead (pooled-form kernels on sum-pooled inputs, per-channel biases;
    :func:`~neurocredit.conv.torch_local_gradients`), what
    :meth:`~neurocredit.rules.base.Rule.trainable_gradients` makes of the fused ones."""
    batch = features.shape[0]
    weight_grads, bias_grads = [], []
    below_difference, below_mean = None, features
    for index, (scale, difference, mean) in enumerate(zip(scales, differences, means)):
        where = {"layer": None if layers is None else layers[index],
                 "unfused": None if unfused is None else unfused[index]}
        # a b - c d = (a - c)(b + d)/2 + (a + c)(b - d)/2: the phases differ by O(β gain^k),
        # below float32's resolution of each product, so the differences are taken first
        weight, bias = pre_post_products(difference, below_mean, **where)
        if below_difference is not None:  # None: the clamped input
            weight = weight + pre_post_products(mean, below_difference, **where)[0]
        factor = -scale / (denominator * batch)
        weight_grads.append(factor * weight)
        bias_grads.append(factor * bias)
        below_difference, below_mean = difference, mean
    return weight_grads, bias_grads


def ep_gradients(
    weights, biases, feedback, gain: float, activation_name: str, features: torch.Tensor, labels: torch.Tensor,
    n_classes: int, beta: float, nudge: str = "symmetric", cost: str = "cross_entropy",
    free_steps: int = 20, nudged_steps: int = 10, layers: Optional[Sequence[Any]] = None,
    unfused: Optional[Sequence[Any]] = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Both phases and the contrastive update for one batch (``layers``: see :func:`settle_step`).
    The nudged phases run as changes from the free states (:func:`settle_nudged`), and the
    update is formed from their difference and mean (:func:`contrastive_gradients`).

    ``unfused`` (the rule's :meth:`~neurocredit.network.Network.unfused` triples, with ``layers``):
    the fused pools run as sum pool + pooled-form conv in both phases (``pooled``,
    :func:`upward`), and the gradients come in the trainable form (:func:`contrastive_gradients`).
    The same sums as the fused path, about p**2 times fewer multiplications in a pooled conv (the
    bulk of a conv network's), another order of float additions.

    Returns ``(weight_grads, bias_grads, free_states)``.
    """
    pooled = unfused is not None
    target = one_hot(labels, n_classes, features.dtype)
    start = feedforward_states(weights, biases, activation_name, features, layers, pooled)
    free, _ = settle(weights, biases, feedback, gain, activation_name, features, start, free_steps, layers=layers,
                     pooled=pooled)
    scales = layer_scales(len(weights), gain)

    reference = free_reference(weights, biases, feedback, gain, activation_name, features, free, layers, pooled)

    def nudged(boundary: Nudge) -> list[torch.Tensor]:
        return settle_nudged(weights, biases, feedback, gain, activation_name, features, free, nudged_steps,
                             boundary, layers, pooled, reference)

    if nudge == "symmetric":
        positive, negative = nudged(Nudge(beta, cost, target)), nudged(Nudge(-beta, cost, target))
        differences = [p - n for p, n in zip(positive, negative)]
        means = [s + 0.5 * (p + n) for s, p, n in zip(free, positive, negative)]
        denominator = 2.0 * beta
    else:  # against the free phase itself: its change is zero
        clamped = nudge == "clamped"
        differences = nudged(Nudge(cost=cost, target=target, clamp=True) if clamped else Nudge(beta, cost, target))
        means = [s + 0.5 * d for s, d in zip(free, differences)]
        denominator = 1.0 if clamped else beta
    grads = contrastive_gradients(features, differences, means, scales, denominator, layers, unfused)
    return grads[0], grads[1], free


class CHLFeedback:
    """What rate and spiking CHL share: the fixed random feedback (``feedback: random``; None
    for symmetric feedback), the ``F_i`` of the current weights, and the saved feedback arrays."""

    def init_feedback(self) -> None:
        self.random_feedback = None
        if self.options.feedback == "random":
            self.random_feedback = [torch.tensor(m, device=self.device)
                                    for m in saved_random_feedback(self.spec, self.options)]

    def feedback(self, weights: Optional[Sequence[torch.Tensor]] = None) -> list[torch.Tensor]:
        """``F_i`` from the runnable ``weights`` (default: :meth:`synaptic_parameters`)."""
        return feedback_matrices(self.synaptic_parameters()[0] if weights is None else weights, self.random_feedback)

    def extras(self) -> dict[str, np.ndarray]:
        return feedback_extras(self.feedback(), self.options)


class RateCHL(CHLFeedback, RateRule):
    """Rate CHL / equilibrium propagation (:mod:`neurocredit.rules.chl`)."""

    name = "chl"
    Options = RateCHLOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.init_feedback()

    @torch.no_grad()
    def train_batch(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        o = self.options
        weights, biases = self.synaptic_parameters()
        # a pooled network settles in the pooled form and gets trainable-form gradients directly
        unfused = None if self.spec.is_dense else self.unfused_layers
        weight_grads, bias_grads, free = ep_gradients(
            weights, biases, self.feedback(weights), o.feedback_gain, self.spec.neuron.activation,
            features.to(self.dtype), labels, self.n_classes, o.beta, o.nudge, o.cost, o.free_steps, o.nudged_steps,
            self.spec.layers, unfused,
        )
        self.apply_gradients(weight_grads + bias_grads if unfused is not None
                             else self.trainable_gradients(weight_grads, bias_grads))
        return float(cost_value(o.cost, free[-1], labels))

    @torch.no_grad()
    def settled(self, features: torch.Tensor, steps: Optional[int] = None) -> tuple[list[torch.Tensor], float]:
        """Free-phase states (and the last change) for ``features``."""
        features = features.to(self.dtype)
        weights, biases = self.synaptic_parameters()
        layers, name, pooled = self.spec.layers, self.spec.neuron.activation, not self.spec.is_dense
        start = feedforward_states(weights, biases, name, features, layers, pooled)
        return settle(weights, biases, self.feedback(weights), self.options.feedback_gain, name, features, start,
                      steps or self.options.free_steps, layers=layers, pooled=pooled)

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """The settled free phase's output (the rule's own prediction; the saved network is
        evaluated feed-forward, see module doc)."""
        return self.settled(features)[0][-1]
