"""Contrastive Hebbian learning / equilibrium propagation (Movellan 1991; Scellier & Bengio 2017;
Xie & Seung 2003 for the feedback gain; Detorakis et al. 2019 for random feedback).

This module is the rule's spec (options, criteria, cost, saved arrays; no torch); rate EP is
:mod:`neurocredit.rules.chl_rate`, STDP-style spiking CHL :mod:`neurocredit.rules.chl_lif`, its
traces :mod:`neurocredit.rules.chl_traces` (shared with :mod:`neurocredit.rules.chl_brian2`).

Rate networks
-------------
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
gradient. The two phases of layer ``i`` differ by ``O(β γ^(N-i))`` (5e-7 in the first layer of a
three-layer network at ``γ = 0.001``), below float32's resolution of either phase's product summed
over a batch (and a conv's positions), so the products are taken of the differences
(``a b - c d = (a - c)(b + d)/2 + (a + c)(b - d)/2``; before 2026-12-07 the two products were
subtracted, and the first conv kernel's float32 update was uncorrelated with its float64 one). The
difference is also near float32's resolution of the states themselves, so the nudged phases are
settled as changes ``δ_i`` from the free states (``settle_nudged``: the pre-activations split into
the free states' and the change's, the hidden change by the addition theorem,
``tanh(a + Δ) - tanh(a) = (1 - h²) u / (1 + h u)``, ``h = tanh a``, ``u = tanh Δ``;
:func:`neurocredit.neurons.activation_change`): the same iteration in exact arithmetic, and float32
then gives the float64 update (1 - cosine ~1e-12 per tensor on the conv test network at γ = 0.001;
with float32 nudged states 0.01-0.16 for the first layer). On one batch of a trained 32/64
fmnist-chl-conv-rate network the first kernel's update had cosine 0.87 with backprop's gradient
with float32 nudged states, 0.975 now, as in float64 (first-layer biases 0.91 / 0.978). For
β -> 0 with symmetric feedback this is the gradient of the cost at the free equilibrium (the EP
theorem; tested against recurrent backprop in ``tests/test_chl.py``).

Deployment: backends run feed-forward stacks only, so the saved network is ``W_i, b_i``; the
feedback matrices are saved in ``extras['chl/feedback_<i>']`` (i = 1-based hidden layer) and
the gain in ``extras['chl/feedback_gain']``. The free fixed point differs from the
feed-forward pass by terms of order γ; for ``γ -> 0`` they coincide (and EP becomes
backpropagation, Xie & Seung 2003), which is why the rate configs use a small gain (0.05 dense;
0.001 conv, where the transposed convolution sums many kernel taps and 0.01 still left the saved
network 0.6-1.8 points below the settled one on validation): the saved feed-forward network then
predicts about as well as the settled one (``rule.predict`` is the settled free phase;
``neurocredit eval`` is feed-forward). The settling starts from one
feed-forward sweep, so few iterations suffice; the nudge needs about one iteration per layer
to reach the first layer (Gauss-Seidel order), so ``nudged_steps`` should be at least the
number of layers plus a few.

Convolutional networks
----------------------
The same energy with ``W_i`` a Conv2d (OIHW kernel, stride, padding; a preceding sum pool fused
into it, :mod:`neurocredit.conv`): the feed-forward input of layer ``i`` is the convolution, and
the feedback ``F_i s_{i+1}`` with ``F_i = W_{i+1}ᵀ`` is the transposed convolution
(``conv_transpose2d`` with the kernel of layer ``i+1``, :func:`neurocredit.conv.torch_transposed_input`)
— the exact adjoint, so the EP theorem holds unchanged (``tests/test_chl_conv.py``, against
recurrent backprop). The pre/post product of a shared kernel weight is the sum of the products
of all synapses that share it, i.e. over every output position
(:func:`neurocredit.conv.torch_weight_product`, ``torch.nn.grad.conv2d_weight``); a per-neuron
bias term is summed over positions into the channel's bias, and a fused pool's weight over its
p x p block (:meth:`neurocredit.rules.base.Rule.trainable_gradients`, the fusion's adjoint).
The spiking rule does the same with the trace products of every step.
Rate EP trains a fused pool in its pooled form: the input sum-pooled, then the pooled-form kernel
(and on the way down its transposed conv, then the pool's adjoint, each value spread over its
block), the products taken directly on the pooled form (``ep_gradients(..., unfused=...)``): the
same sums as the fused layer's, p**2 times fewer multiplications in the pooled conv, another order
of float additions (tested equal to the fused path to float64 rounding; on Fashion-MNIST 2.4x
faster per batch at 16/32 channels, 2.7x at 32/64); the spiking rule keeps the fused layer.
``feedback: random`` is dense-only (one line). The conv configs use a smaller feedback gain (rate 0.01, spiking 0.1)
than the dense ones: a conv unit receives feedback from many units above, and with gain 0.05
the settled network (the rule's prediction) and the saved feed-forward one drifted apart (digits
validation: 96.5 % settled, 88 % feed-forward).

Spiking networks: STDP-style CHL
--------------------------------
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
from typing import Any, Optional, Sequence

import numpy as np

from neurocredit.errors import NeurocreditError
from neurocredit.network import Network
from neurocredit.rules.spec import Criteria, RuleSpec, Variant

FEEDBACK_KINDS = ("symmetric", "random")
NUDGE_KINDS = ("positive", "symmetric", "clamped")
COST_KINDS = ("cross_entropy", "mse")
NUDGED_STARTS = ("rest", "free_state")



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
    """The random feedback saved with ``network`` (same shapes), else fresh matrices (dense
    networks only: one line naming the fix for a conv or pooled network)."""
    network.require_dense("rule.feedback: random", "use feedback: symmetric (the transposed convolution)")
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


def feedback_matrices(weights: Sequence[Any], random_feedback: Optional[Sequence[Any]]) -> list:
    """``F_i``: the random matrices when given, else the transposes ``W_{i+1}ᵀ`` of the runnable
    (fused) weights (torch tensors); a Conv2d's ``F_i`` is its kernel ``W_{i+1}`` itself, applied
    as the transposed convolution (:func:`neurocredit.rules.chl_rate.downward`)."""
    if random_feedback is not None:
        return list(random_feedback)
    return [w if w.dim() == 4 else w.T for w in weights[1:]]


def feedback_extras(feedback: Sequence[Any], options: Any) -> dict[str, np.ndarray]:
    """``chl/feedback_<i>`` (n_i, n_{i+1}), ``chl/feedback_gain`` and ``chl/feedback_symmetric`` (1 or 0)."""
    extras = {f"chl/feedback_{i + 1}": m.detach().cpu().numpy().astype(np.float32).copy()
              for i, m in enumerate(feedback)}
    extras["chl/feedback_gain"] = np.array([options.feedback_gain], dtype=np.float32)
    extras["chl/feedback_symmetric"] = np.array([1.0 if options.feedback == "symmetric" else 0.0], dtype=np.float32)
    return extras


def phase_weights(free_steps: int, free_settle: int, nudged_steps: int,
                  nudged_settle: int) -> tuple[np.ndarray, np.ndarray]:
    """Phase weight per step of the free phase (``-1/(free_steps - free_settle)`` after settling)
    and of the nudged phase (``+1/(nudged_steps - nudged_settle)``), float64 arrays."""
    free = np.zeros(free_steps)
    free[free_settle:] = -1.0 / (free_steps - free_settle)
    nudged = np.zeros(nudged_steps)
    nudged[nudged_settle:] = 1.0 / (nudged_steps - nudged_settle)
    return free, nudged


def _extras(network) -> dict[str, tuple[int, ...]]:
    sizes, layers = network.sizes, network.layers
    shapes = {f"chl/feedback_{i + 1}": tuple(layers[i + 1].weight.shape) if layers[i + 1].kind == "conv2d" else (a, b)
              for i, (a, b) in enumerate(zip(sizes[1:-1], sizes[2:]))}
    shapes.update({"chl/feedback_gain": (1,), "chl/feedback_symmetric": (1,)})
    return shapes


def _cost(sums):
    # free + nudged phase; pre x post traces every step of both phases; feedback above layer 1
    return 2, 2 * sums["T"] * sums["S"], 2 * sums["T"] * sums["S_up"]


_FORMULA = "P=2, A=2*T*S, E=2*T*S_up"
# With the default symmetric feedback (EP) the feedback weights are the forward weights'
# transposes: weight transport; `feedback: random` removes it.
SPEC = RuleSpec(
    name="chl",
    summary="contrastive Hebbian learning / equilibrium propagation",
    variants={
        "rate": Variant("CHL (contrastive Hebbian)", RateCHLOptions, "neurocredit.rules.chl_rate:RateCHL",
                        Criteria(weight_transport=True, forward_locking=True, backward_locking=True,
                                 memory_in_steps="none", surrogate_free=True, on_chip=False),
                        _cost, _FORMULA, trains_conv=True),
        "lif": Variant("CHL (contrastive Hebbian)", SpikingCHLOptions, "neurocredit.rules.chl_lif:SpikingCHL",
                       Criteria(weight_transport=True, forward_locking=True, backward_locking=True,
                                memory_in_steps="constant", surrogate_free=True, on_chip=True),
                       _cost, _FORMULA, trains_conv=True),
    },
    extras=_extras,
)
