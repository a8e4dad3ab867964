"""Contrastive Hebbian learning / equilibrium propagation (Movellan 1991; Scellier & Bengio 2017;
Xie & Seung 2003 for the feedback gain; Detorakis et al. 2019 for random feedback).

Rate networks (``RULES['rate']``)
---------------------------------
The layered network of the ``Network`` spec (``W_i`` (n_i, n_{i-1}), ``b_i``, hidden ``f``,
linear output) plus feedback connections ``F_i`` (n_i, n_{i+1}) from layer ``i+1`` down to
hidden layer ``i``: the transpose ``W_{i+1}ᵀ`` (``feedback: symmetric``, equilibrium
propagation) or a fixed random matrix (``feedback: random``, CHL with random feedback). The
state ``s_i`` of every layer is settled by iterating, bottom-up within one step (Gauss-Seidel)::

    s_i <- f(W_i s_{i-1} + b_i + γ F_i s_{i+1})        hidden layers, s_0 = x (clamped input)
    s_N <- W_N s_{N-1} + b_N - β ∂C/∂s_N               output (linear), C the cost

``γ`` is ``feedback_gain``. With symmetric feedback this is the fixed-point iteration of the
energy (layer weights ``α_i = γ^-(N-i)``, ``G_i' = f⁻¹``, ``G_N(s) = s²/2``)::

    E(s) = Σ_i α_i [ G_i(s_i) - s_iᵀ (W_i s_{i-1} + b_i) ],    F = E + β C(s_N)

whose stationary points are exactly the fixed points above. Two phases per batch: the free
phase (``β = 0``, started from one feed-forward sweep, ``free_steps`` iterations) and the
nudged phase (started from the free state, ``nudged_steps`` iterations) with ``+β``, or
``+β`` and ``-β`` (``nudge: symmetric``), or the output clamped to the one-hot target
(``nudge: clamped``, classical CHL). The update is the difference of pre/post products::

    ∂L/∂W_i ≈ -(α_i / β) [ s_i s_{i-1}ᵀ |nudged - s_i s_{i-1}ᵀ |free ]   (mean over the batch)
    ∂L/∂b_i ≈ -(α_i / β) [ s_i |nudged - s_i |free ]

(symmetric: ``|+β - |-β`` over ``2β``; clamped: no division by β), handed to Adam/SGD as the
gradient. For β -> 0 with symmetric feedback this is the gradient of the cost at the free
equilibrium (the EP theorem; tested against recurrent backprop in ``tests/test_chl.py``).

Deployment: backends run feed-forward stacks only, so the saved network is ``W_i, b_i``; the
feedback matrices are saved in ``extras['chl/feedback_<i>']`` (i = 1-based hidden layer) and
the gain in ``extras['chl/feedback_gain']``. The free fixed point differs from the
feed-forward pass by terms of order γ; for ``γ -> 0`` they coincide (and EP becomes
backpropagation, Xie & Seung 2003), which is why the rate configs use a small gain (0.05): the
saved feed-forward network then predicts about as well as the settled one (``rule.predict`` is
the settled free phase; ``neurocredit eval`` is feed-forward). The settling starts from one
feed-forward sweep, so few iterations suffice; the nudge needs about one iteration per layer
to reach the first layer (Gauss-Seidel order), so ``nudged_steps`` should be at least the
number of layers plus a few.

Spiking networks (``RULES['lif']``): STDP-style CHL
---------------------------------------------------
The same two phases on canonical LIF neurons (:func:`neurocredit.neurons.lif_step`, Lava's
one-step delay on every connection, feedback included): layer ``i`` receives at step ``t``
``W_i s_{i-1}[t-1] + γ F_i s_{i+1}[t-1]``; in the nudged phase the output layer also receives
the teaching current ``β (y_rate - s_N[t-1])`` (``y_rate``: ``target_rate`` for the label,
0 otherwise). The correlations are accumulated online, per synapse, as pair-based STDP with a
symmetric (Hebbian) window and a phase weight ``φ(t)`` (``-1/window`` in the free phase's
counting window, ``+1/window`` in the nudged one's, 0 while settling)::

    x_pre  <- λ_pre x_pre + s_pre                          pre trace
    e      += φ (λ_post x_post) s_preᵀ                     pre spike meets the post trace
    x_post <- λ_post x_post + s_post                       post trace
    e      += φ s_post x_preᵀ                              post spike meets the pre trace

(:func:`chl_trace_step`; the same equations as Brian2 ``on_pre``/``on_post`` code in
:mod:`neurocredit.rules.chl_brian2`). At the end of a batch ``e / (κ · batch)`` estimates
``r_post r_preᵀ |nudged - |free`` (``κ`` = expected pair count per step of two independent
unit-rate trains, :attr:`TraceParameters.pair_window`) and the update is
``∂L/∂W_i ≈ -(α_i/β) e_i / (κ · batch)``. Memory: traces and ``e`` only, constant in the
number of steps (nothing of the spike history is stored; input spikes are drawn step by step).

``nudged_start: rest`` (default) runs the nudged phase from rest on the *same* input spike
train as the free phase (a frozen stimulus, as a rate network sees the same ``x`` in both
phases), so the difference of the two phases is caused by the teaching current and not by
input noise; both phases are then simulated side by side as two copies in the batch (same
result as one after the other; the copies share the input, so the input product and the
first layer's trace products are computed once for both). ``nudged_start: free_state``
continues from the free phase's state with fresh input spikes (EqSpike-style).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np
import torch

from neurocredit.errors import NeurocreditError
from neurocredit.network import EncoderSpec, LIFParameters, Network
from neurocredit.neurons import LIFState, activation, lif_step
from neurocredit.rules.base import RateRule, Rule, one_hot

FEEDBACK_KINDS = ("symmetric", "random")
NUDGE_KINDS = ("positive", "symmetric", "clamped")
COST_KINDS = ("cross_entropy", "mse")
NUDGED_STARTS = ("rest", "free_state")
PREDICT_SEED = 12345  # encoder seed of the spiking rule's own per-epoch prediction


# --------------------------------------------------------------------------- options


def _check_common(options: Any) -> None:
    if options.feedback not in FEEDBACK_KINDS:
        raise NeurocreditError(f"rule.feedback must be one of {', '.join(FEEDBACK_KINDS)}, got {options.feedback!r}")
    if not (np.isfinite(options.feedback_gain) and options.feedback_gain > 0):
        raise NeurocreditError(f"rule.feedback_gain={options.feedback_gain!r} must be a number > 0")
    if not (np.isfinite(options.beta) and options.beta > 0):
        raise NeurocreditError(f"rule.beta={options.beta!r} must be a number > 0")
    if options.free_steps < 1 or options.nudged_steps < 1:
        raise NeurocreditError("rule.free_steps and rule.nudged_steps must be >= 1")
    if options.feedback_init not in ("uniform", "gaussian"):
        raise NeurocreditError(f"rule.feedback_init must be uniform or gaussian, got {options.feedback_init!r}")


@dataclass(frozen=True)
class RateCHLOptions:
    """feedback: ``symmetric`` (F_i = W_{i+1}ᵀ, EP) or ``random`` (fixed, CHL with random
    feedback); feedback_gain: γ, the strength of all top-down input; beta: nudging strength;
    nudge: ``positive`` (+β), ``symmetric`` (+β and -β) or ``clamped`` (output = one-hot target);
    cost: ``cross_entropy`` (softmax of the output) or ``mse`` (against the one-hot target);
    free_steps / nudged_steps: settling iterations per phase; feedback_init / feedback_scale /
    feedback_seed: the random feedback matrices (uniform or gaussian with scale/sqrt(n_{i+1}))."""

    feedback: str = "symmetric"
    feedback_gain: float = 0.05
    beta: float = 0.5
    nudge: str = "symmetric"
    cost: str = "cross_entropy"
    free_steps: int = 10
    nudged_steps: int = 6
    feedback_init: str = "uniform"
    feedback_scale: float = 1.0
    feedback_seed: int = 1234

    def __post_init__(self) -> None:
        _check_common(self)
        if self.nudge not in NUDGE_KINDS:
            raise NeurocreditError(f"rule.nudge must be one of {', '.join(NUDGE_KINDS)}, got {self.nudge!r}")
        if self.cost not in COST_KINDS:
            raise NeurocreditError(f"rule.cost must be one of {', '.join(COST_KINDS)}, got {self.cost!r}")
        if self.nudge == "clamped" and self.cost != "mse":
            raise NeurocreditError("rule.nudge: clamped clamps the output to the one-hot target; it needs cost: mse")


@dataclass(frozen=True)
class SpikingCHLOptions:
    """feedback, feedback_gain, beta, feedback_init/scale/seed: as for rate networks (beta is
    the teaching-current gain, in input-current units per unit of rate); nudge: ``positive`` or
    ``symmetric``; nudged_start: ``rest`` (same input train from rest) or ``free_state``;
    free_steps / nudged_steps: LIF steps per phase, of which the first free_settle /
    nudged_settle are not counted (settling); target_rate: output rate of the label's neuron in
    spikes per step (others: 0); trace_decay: λ of the pre and post traces per step;
    learn_bias: also train the biases (post-only term ``φ s_post``)."""

    feedback: str = "symmetric"
    feedback_gain: float = 0.5
    beta: float = 4.0
    nudge: str = "positive"
    nudged_start: str = "rest"
    free_steps: int = 20
    nudged_steps: int = 20
    free_settle: int = 4
    nudged_settle: int = 4
    target_rate: float = 0.8
    trace_decay: float = 0.8
    learn_bias: bool = True
    feedback_init: str = "uniform"
    feedback_scale: float = 1.0
    feedback_seed: int = 1234

    def __post_init__(self) -> None:
        _check_common(self)
        if self.nudge not in ("positive", "symmetric"):
            raise NeurocreditError(f"rule.nudge must be positive or symmetric for lif networks, got {self.nudge!r}")
        if self.nudged_start not in NUDGED_STARTS:
            raise NeurocreditError(
                f"rule.nudged_start must be one of {', '.join(NUDGED_STARTS)}, got {self.nudged_start!r}"
            )
        if not 0 <= self.free_settle < self.free_steps or not 0 <= self.nudged_settle < self.nudged_steps:
            raise NeurocreditError(
                "rule.free_settle / nudged_settle must be >= 0 and smaller than free_steps / nudged_steps"
            )
        same_schedule = (self.free_steps, self.free_settle) == (self.nudged_steps, self.nudged_settle)
        if self.nudged_start == "rest" and not same_schedule:
            raise NeurocreditError(
                "rule.nudged_start: rest runs both phases from rest on the same input train and compares them "
                "step by step: set free_steps = nudged_steps and free_settle = nudged_settle "
                f"(got {self.free_steps}/{self.free_settle} and {self.nudged_steps}/{self.nudged_settle})"
            )
        if not 0.0 < self.target_rate <= 1.0:
            raise NeurocreditError(f"rule.target_rate={self.target_rate!r} must be in (0, 1] spikes per step")
        if not 0.0 <= self.trace_decay < 1.0:
            raise NeurocreditError(f"rule.trace_decay={self.trace_decay!r} must be in [0, 1)")


# --------------------------------------------------------------------------- feedback matrices


def make_feedback(sizes: Sequence[int], options: Any) -> list[np.ndarray]:
    """Fixed random feedback ``F_i`` (n_i, n_{i+1}) for every hidden layer of a net with widths ``sizes``."""
    rng = np.random.default_rng(options.feedback_seed)
    matrices = []
    for n_below, n_above in zip(sizes[1:-1], sizes[2:]):
        scale = options.feedback_scale / np.sqrt(n_above)
        if options.feedback_init == "uniform":
            matrix = rng.uniform(-scale, scale, size=(n_below, n_above))
        else:
            matrix = rng.normal(0.0, scale, size=(n_below, n_above))
        matrices.append(matrix.astype(np.float32))
    return matrices


def saved_random_feedback(network: Network, options: Any) -> list[np.ndarray]:
    """The random feedback saved with ``network`` (same shapes), else fresh matrices."""
    sizes = network.sizes
    shapes = [(a, b) for a, b in zip(sizes[1:-1], sizes[2:])]
    saved = [network.extras.get(f"chl/feedback_{i + 1}") for i in range(len(shapes))]
    kind = network.extras.get("chl/feedback_symmetric")
    if kind is not None and float(kind[0]) == 0.0 and all(
        m is not None and m.shape == shape for m, shape in zip(saved, shapes)
    ):
        return [np.asarray(m, dtype=np.float32) for m in saved]
    return make_feedback(sizes, options)


def layer_scales(n_layers: int, gain: float) -> list[float]:
    """``α_i = γ^-(N-i)`` for layers i = 1..N (output: 1): the energy weight of each layer,
    which also scales its update so that it estimates the gradient (Xie & Seung 2003)."""
    return [float(gain) ** -(n_layers - 1 - index) for index in range(n_layers)]


def _feedback_matrices(weights: Sequence[torch.Tensor], random_feedback: Optional[Sequence[torch.Tensor]]):
    if random_feedback is not None:
        return list(random_feedback)
    return [w.T for w in weights[1:]]


# --------------------------------------------------------------------------- rate dynamics (pure)


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
    states, below = [], features
    for index, (weight, bias) in enumerate(zip(weights, biases)):
        pre = below @ weight.T + bias
        below = pre if index == len(weights) - 1 else activation(activation_name, pre)
        states.append(below)
    return states


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


class SourceNamedOptions:
    """Mixin: ``parse_options`` puts the config file in front of the options' own messages
    (which name the field, ``rule.<field>``): ``models/x.yaml: rule.nudge: ...``."""

    @classmethod
    def parse_options(cls, options: dict, where: str = "rule") -> Any:
        try:
            return super().parse_options(options, where)
        except NeurocreditError as error:
            message = str(error)
            if where.endswith("rule") and message.startswith("rule."):
                raise NeurocreditError(f"{where[: -len('rule')]}{message}") from None
            raise


class RateCHL(SourceNamedOptions, RateRule):
    """Rate CHL / equilibrium propagation (module doc)."""

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
        return _feedback_matrices(self.weights, self.random_feedback)

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


def feedback_extras(feedback: Sequence[torch.Tensor], options: Any) -> dict[str, np.ndarray]:
    """``chl/feedback_<i>`` (n_i, n_{i+1}), ``chl/feedback_gain`` and ``chl/feedback_symmetric`` (1 or 0)."""
    extras = {f"chl/feedback_{i + 1}": m.detach().cpu().numpy().astype(np.float32).copy()
              for i, m in enumerate(feedback)}
    extras["chl/feedback_gain"] = np.array([options.feedback_gain], dtype=np.float32)
    extras["chl/feedback_symmetric"] = np.array([1.0 if options.feedback == "symmetric" else 0.0], dtype=np.float32)
    return extras


# --------------------------------------------------------------------------- STDP-style traces (pure)


@dataclass(frozen=True)
class TraceParameters:
    """Per-step decay of the presynaptic and postsynaptic traces, dimensionless in [0, 1)
    (``x <- λ x + s``; time constant ``-1 / ln λ`` steps)."""

    pre_decay: float = 0.8
    post_decay: float = 0.8

    def __post_init__(self) -> None:
        for name in ("pre_decay", "post_decay"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise NeurocreditError(f"trace {name}={value!r} must be in [0, 1)")

    @property
    def pair_window(self) -> float:
        """Expected increment of ``e`` per step for two independent trains of rate 1 (scaled by
        ``r_pre r_post`` for other rates): ``λ_post/(1-λ_post) + 1/(1-λ_pre)``."""
        return self.post_decay / (1.0 - self.post_decay) + 1.0 / (1.0 - self.pre_decay)


class TraceState(NamedTuple):
    """``pre_trace`` (batch, n_pre), ``post_trace`` (batch, n_post), ``eligibility``
    (n_post, n_pre) and ``post_eligibility`` (n_post,): summed over the batch."""

    pre_trace: Any
    post_trace: Any
    eligibility: Any
    post_eligibility: Any


def trace_initial_state(batch: int, n_pre: int, n_post: int, like: Any, copies: int = 1) -> TraceState:
    """Zero traces and eligibilities in the dtype/device (torch) or dtype (numpy) of ``like``;
    the post trace has ``copies * batch`` rows (:func:`chl_trace_step`)."""
    if isinstance(like, torch.Tensor):
        def zeros(*shape):
            return torch.zeros(*shape, dtype=like.dtype, device=like.device)
    else:
        def zeros(*shape):
            return np.zeros(shape, dtype=np.asarray(like).dtype)
    return TraceState(zeros(batch, n_pre), zeros(copies * batch, n_post), zeros(n_post, n_pre), zeros(n_post))


def chl_trace_step(params: TraceParameters, state: TraceState, pre_spikes: Any, post_spikes: Any,
                   phase_weight: Any, copies: int = 1) -> TraceState:
    """One step of the STDP-style CHL eligibility (module doc), batched, numpy or torch.

    ``pre_spikes`` (batch, n_pre) and ``post_spikes`` (batch, n_post) are this step's spikes
    (0/1; the ``current`` encoder's graded input enters with its value); ``phase_weight`` is a
    scalar or one weight per sample, shape (batch,): ``+1/window``
    in a counted nudged step, ``-1/window`` in a counted free step, 0 otherwise. Within a step
    the pre spikes are paired first (with the post trace of earlier steps), then the post
    spikes (with the pre trace including this step), so a coincident pair counts once: the
    order of Brian2's ``on_pre`` and ``on_post`` pathways.

    ``copies`` > 1: ``post_spikes`` (and the post trace) stack ``copies`` copies of a batch that
    share their presynaptic spikes (``pre_spikes`` and the pre trace have the batch's rows
    only, as the input of the free and nudged copies does). The copies' weighted post terms
    are summed before the product: the same eligibility as repeating ``pre_spikes``, with a
    product ``copies`` times smaller (equal up to float rounding).
    """
    weight = phase_weight
    if np.ndim(weight) == 1:
        weight = weight[:, None]
    pre_trace = state.pre_trace * params.pre_decay + pre_spikes
    post_decayed = state.post_trace * params.post_decay
    paired_decayed, paired_spikes = weight * post_decayed, weight * post_spikes
    if copies > 1:
        paired_decayed = paired_decayed.reshape(copies, -1, paired_decayed.shape[-1]).sum(0)
        paired_spikes = paired_spikes.reshape(copies, -1, paired_spikes.shape[-1]).sum(0)
    eligibility = state.eligibility + paired_decayed.T @ pre_spikes + paired_spikes.T @ pre_trace
    post_eligibility = state.post_eligibility + (weight * post_spikes).sum(0)
    return TraceState(pre_trace, post_decayed + post_spikes, eligibility, post_eligibility)


def trace_decay_step(params: TraceParameters, state: TraceState, pre_spikes: Any, post_spikes: Any) -> TraceState:
    """:func:`chl_trace_step` with phase weight 0 (settling): the traces move, the eligibilities
    do not; skips the two outer products."""
    return TraceState(state.pre_trace * params.pre_decay + pre_spikes,
                      state.post_trace * params.post_decay + post_spikes,
                      state.eligibility, state.post_eligibility)


def replay_eligibility(pre_spikes: np.ndarray, post_spikes: np.ndarray, phase_weight: np.ndarray,
                       params: TraceParameters) -> np.ndarray:
    """:func:`chl_trace_step` over fixed spike trains, in float64 torch: ``pre_spikes`` (steps,
    batch, n_pre), ``post_spikes`` (steps, batch, n_post), ``phase_weight`` (steps, batch).
    Returns the summed eligibility (n_post, n_pre), the reference for ``chl_brian2.eligibility``."""
    steps, batch, n_pre = pre_spikes.shape
    state = trace_initial_state(batch, n_pre, post_spikes.shape[2], torch.zeros(1, dtype=torch.float64))
    for t in range(steps):
        state = chl_trace_step(params, state, torch.as_tensor(pre_spikes[t], dtype=torch.float64),
                               torch.as_tensor(post_spikes[t], dtype=torch.float64),
                               torch.as_tensor(phase_weight[t], dtype=torch.float64))
    return state.eligibility.numpy()


def phase_weights(free_steps: int, free_settle: int, nudged_steps: int,
                  nudged_settle: int) -> tuple[np.ndarray, np.ndarray]:
    """Phase weight per step of the free phase (``-1/(free_steps - free_settle)`` after settling)
    and of the nudged phase (``+1/(nudged_steps - nudged_settle)``), float64 arrays."""
    free = np.zeros(free_steps)
    free[free_settle:] = -1.0 / (free_steps - free_settle)
    nudged = np.zeros(nudged_steps)
    nudged[nudged_settle:] = 1.0 / (nudged_steps - nudged_settle)
    return free, nudged


# --------------------------------------------------------------------------- spiking network


def encode_step(spec: EncoderSpec, features: torch.Tensor, step: int, generator: torch.Generator) -> torch.Tensor:
    """Input of one time step (batch, n_in), same distributions as :func:`neurocredit.encoders.encode`
    (``latency`` uses ``spec.steps`` as its window); drawn step by step, so nothing is stored."""
    clipped = features.clamp(0.0, 1.0)
    if spec.kind in ("bernoulli", "poisson"):
        uniform = torch.rand(features.shape, generator=generator, dtype=features.dtype, device=features.device)
        return (uniform < (spec.max_rate * clipped).clamp(0.0, 1.0)).to(features.dtype)
    if spec.kind == "latency":
        fire_step = torch.round((1.0 - clipped) * (spec.steps - 1))
        return ((fire_step == step) & (clipped > 0)).to(features.dtype)
    if spec.kind == "current":
        return spec.max_rate * clipped
    raise NeurocreditError(f"encoder kind {spec.kind!r} cannot drive a spiking network")


class SpikingState(NamedTuple):
    """LIF states per layer and what every population emitted at the previous step
    (``emitted[0]`` = input, ``emitted[i]`` = layer i), each (batch, n)."""

    neurons: list
    emitted: list


def spiking_initial_state(sizes: Sequence[int], batch: int, dtype, device, copies: int = 1) -> SpikingState:
    """The network at rest: ``copies`` copies of ``batch`` samples (``copies * batch`` rows) that
    share one input (``emitted[0]`` has ``batch`` rows; see :func:`spiking_settle_step`)."""
    def zeros(rows, n):
        return torch.zeros(rows, n, dtype=dtype, device=device)

    rows = copies * batch
    return SpikingState([LIFState(zeros(rows, n), zeros(rows, n)) for n in sizes[1:]],
                        [zeros(batch, sizes[0])] + [zeros(rows, n) for n in sizes[1:]])


def spiking_settle_step(
    params: LIFParameters, weights, biases, feedback, gain: float, state: SpikingState, input_spikes: torch.Tensor,
    teaching: Optional[torch.Tensor] = None, copies: int = 1,
) -> SpikingState:
    """One LIF step of the network with feedback (module doc): every connection delivers what
    its source emitted at the previous step; ``teaching`` (batch, n_out) is added to the
    output's input current (already computed from the previous output spikes). ``copies`` > 1:
    the neurons hold ``copies`` stacked copies of the batch that see the same input
    (``input_spikes`` has the batch's rows only), so the input product is computed once."""
    last = len(weights) - 1
    neurons, emitted = [], [input_spikes]
    for index, (weight, bias) in enumerate(zip(weights, biases)):
        current = state.emitted[index] @ weight.T
        if index == 0 and copies > 1:
            current = current.repeat(copies, 1)
        if index < last:
            current = current + gain * (state.emitted[index + 2] @ feedback[index].T)
        elif teaching is not None:
            current = current + teaching
        new_neuron, spikes = lif_step(params, state.neurons[index], current, bias)
        neurons.append(new_neuron)
        emitted.append(spikes)
    return SpikingState(neurons, emitted)


class SpikingCHL(SourceNamedOptions, Rule):
    """STDP-style spiking CHL on canonical LIF neurons (module doc)."""

    name = "chl"
    Options = SpikingCHLOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.spec.neuron.spiking:
            raise NeurocreditError("rule chl (lif) needs a lif network")
        options = self.options
        self.params = self.spec.neuron.lif
        self.trace_params = TraceParameters(options.trace_decay, options.trace_decay)
        self.random_feedback = None
        if options.feedback == "random":
            self.random_feedback = [torch.tensor(m, device=self.device)
                                    for m in saved_random_feedback(self.spec, options)]
        self.scales = layer_scales(len(self.weights), options.feedback_gain)
        self.free_weights, self.nudged_weights = phase_weights(
            options.free_steps, options.free_settle, options.nudged_steps, options.nudged_settle)

    def feedback(self) -> list[torch.Tensor]:
        return _feedback_matrices(self.weights, self.random_feedback)

    def _teaching(self, state: SpikingState, target_rates: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return beta[:, None] * (target_rates - state.emitted[-1])

    def _run(self, features: torch.Tensor, state: SpikingState, traces: list, steps: int, weights_per_step,
             betas: Optional[torch.Tensor], target_rates: Optional[torch.Tensor], generator, copies: int = 1,
             on_step: Optional[Callable[[SpikingState], None]] = None):
        """Run ``steps`` steps of ``copies`` copies of the batch that share one input train (state
        and traces made with the same ``copies``); ``weights_per_step[t]`` is the phase weight
        (copies * batch,) tensor of step t; ``on_step(state)`` sees the state after every step.
        Returns the state, traces and the output spike counts."""
        feedback = self.feedback()
        gain = self.options.feedback_gain
        counts = torch.zeros_like(state.emitted[-1])
        for t in range(steps):
            spikes_in = encode_step(self.spec.encoder, features, t, generator)
            teaching = None if betas is None else self._teaching(state, target_rates, betas)
            state = spiking_settle_step(self.params, self.weights, self.biases, feedback, gain, state,
                                        spikes_in, teaching, copies)
            counts += state.emitted[-1]
            if on_step is not None:
                on_step(state)
            phase = weights_per_step[t]
            if traces is not None:
                if bool((phase != 0).any()):
                    traces = [chl_trace_step(self.trace_params, trace, state.emitted[i], state.emitted[i + 1], phase,
                                             copies if i == 0 else 1)
                              for i, trace in enumerate(traces)]
                else:
                    traces = [trace_decay_step(self.trace_params, trace, state.emitted[i], state.emitted[i + 1])
                              for i, trace in enumerate(traces)]
        return state, traces, counts

    def _fresh_traces(self, batch: int, copies: int = 1) -> list[TraceState]:
        """Zero traces for ``copies`` copies of ``batch`` samples sharing one input train."""
        sizes = self.spec.sizes
        like = self.weights[0]
        return [trace_initial_state(batch, sizes[0], sizes[1], like, copies)] + [
            trace_initial_state(copies * batch, sizes[i], sizes[i + 1], like) for i in range(1, len(self.weights))]

    def _side_by_side_schedule(self, batch: int) -> tuple[int, torch.Tensor, torch.Tensor]:
        """Two copies of the batch side by side on the same input train, free (or -β) then +β:
        both phases from rest (``nudged_start: rest``), or the ±β phases after a shared free
        phase (``free_state`` with ``nudge: symmetric``). Returns the steps, the phase weight per
        step and copy (steps, 2 batch) and the teaching gain per copy (2 batch,)."""
        o = self.options
        free_w = torch.tensor(self.free_weights, dtype=self.dtype)
        nudged_w = torch.tensor(self.nudged_weights, dtype=self.dtype)
        steps = o.nudged_steps
        first_w, first_beta = (-nudged_w, -o.beta) if o.nudge == "symmetric" else (free_w, 0.0)
        per_step = torch.cat([first_w[:, None].expand(steps, batch), nudged_w[:, None].expand(steps, batch)], 1)
        betas = torch.cat([torch.full((batch,), first_beta), torch.full((batch,), o.beta)]).to(self.dtype)
        return steps, per_step, betas

    @torch.no_grad()
    def phase_spike_trains(self, features: torch.Tensor, labels: torch.Tensor,
                           seed: int = PREDICT_SEED) -> tuple[list[np.ndarray], np.ndarray]:
        """The spikes of one training run of the two phases (``nudged_start: rest`` only), without
        updating anything: per population (input, hidden..., output) a 0/1 array (steps, 2 batch, n),
        free (or -β) copies first, and the phase weight per step and copy (steps, 2 batch), float64.
        Replaying them through :func:`replay_eligibility` gives the eligibilities of that run;
        ``chl_brian2.eligibility`` gives the same from Brian2 synapses."""
        if self.options.nudged_start != "rest":
            raise NeurocreditError("phase_spike_trains needs rule.nudged_start: rest (both phases from rest "
                                   f"side by side); this rule uses {self.options.nudged_start!r}")
        features = features.to(self.dtype)
        batch = features.shape[0]
        steps, per_step, betas = self._side_by_side_schedule(batch)
        target_rates = self.options.target_rate * one_hot(labels, self.n_classes, self.dtype)
        recorded: list[list[np.ndarray]] = [[] for _ in self.spec.sizes]

        def record(state: SpikingState) -> None:
            shared_input = state.emitted[0].repeat(2, 1)  # both copies saw it
            for population, spikes in zip(recorded, [shared_input, *state.emitted[1:]]):
                population.append(spikes.cpu().numpy().astype(np.float64))

        generator = torch.Generator(device="cpu").manual_seed(seed)
        state = spiking_initial_state(self.spec.sizes, batch, self.dtype, self.device, copies=2)
        self._run(features, state, None, steps, per_step, betas, target_rates.repeat(2, 1), generator, copies=2,
                  on_step=record)
        return [np.stack(population) for population in recorded], per_step.cpu().numpy().astype(np.float64)

    @torch.no_grad()
    def train_batch(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        o = self.options
        features = features.to(self.dtype)
        batch = features.shape[0]
        sizes = self.spec.sizes
        target_rates = o.target_rate * one_hot(labels, self.n_classes, self.dtype)
        free_w = torch.tensor(self.free_weights, dtype=self.dtype)
        nudged_w = torch.tensor(self.nudged_weights, dtype=self.dtype)
        symmetric = o.nudge == "symmetric"
        if o.nudged_start == "rest":
            steps, per_step, betas = self._side_by_side_schedule(batch)
            state = spiking_initial_state(sizes, batch, self.dtype, self.device, copies=2)
            traces = self._fresh_traces(batch, copies=2)
            _, traces, counts = self._run(features, state, traces, steps, per_step, betas,
                                          target_rates.repeat(2, 1), self.generator, copies=2)
            free_counts = counts[:batch]
        else:
            state = spiking_initial_state(sizes, batch, self.dtype, self.device)
            traces = self._fresh_traces(batch)
            if symmetric:  # the free phase only settles; the update compares +β with -β
                weights = torch.zeros(o.free_steps, batch, dtype=self.dtype)
            else:
                weights = free_w[:, None].expand(o.free_steps, batch)
            state, traces, free_counts = self._run(features, state, traces, o.free_steps, weights, None, None,
                                                   self.generator)
            if symmetric:
                # the -β and +β copies share the input (emitted[0] and the first pre trace stay single)
                state = SpikingState([LIFState(n.synaptic_current.repeat(2, 1), n.membrane_voltage.repeat(2, 1))
                                      for n in state.neurons],
                                     [state.emitted[0]] + [e.repeat(2, 1) for e in state.emitted[1:]])
                traces = [TraceState(tr.pre_trace if i == 0 else tr.pre_trace.repeat(2, 1), tr.post_trace.repeat(2, 1),
                                     tr.eligibility, tr.post_eligibility) for i, tr in enumerate(traces)]
                steps, per_step, betas = self._side_by_side_schedule(batch)
                _, traces, _ = self._run(features, state, traces, steps, per_step, betas,
                                         target_rates.repeat(2, 1), self.generator, copies=2)
            else:
                per_step = nudged_w[:, None].expand(o.nudged_steps, batch)
                betas = torch.full((batch,), o.beta, dtype=self.dtype)
                _, traces, _ = self._run(features, state, traces, o.nudged_steps, per_step, betas, target_rates,
                                         self.generator)
        denominator = (2.0 if symmetric else 1.0) * o.beta
        weight_grads, bias_grads = [], []
        for scale, trace in zip(self.scales, traces):
            factor = -scale / (denominator * batch)
            weight_grads.append(factor * trace.eligibility / self.trace_params.pair_window)
            bias_grads.append(factor * trace.post_eligibility if o.learn_bias
                              else torch.zeros_like(trace.post_eligibility))
        self.apply_gradients(weight_grads + bias_grads)
        rates = free_counts / o.free_steps
        return float(0.5 * ((rates - target_rates) ** 2).sum(dim=1).mean())

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Output spike counts of the free phase (with feedback) over ``free_steps`` steps; the
        encoder is seeded the same at every call. The saved network is evaluated feed-forward."""
        features = features.to(self.dtype)
        generator = torch.Generator(device="cpu").manual_seed(PREDICT_SEED)
        state = spiking_initial_state(self.spec.sizes, features.shape[0], self.dtype, self.device)
        zeros = torch.zeros(self.options.free_steps, features.shape[0], dtype=self.dtype)
        _, _, counts = self._run(features, state, None, self.options.free_steps, zeros, None, None, generator)
        return counts

    def extras(self) -> dict[str, np.ndarray]:
        return feedback_extras(self.feedback(), self.options)


RULES = {"rate": RateCHL, "lif": SpikingCHL}
