"""Predictive coding, ``pc`` (Rao & Ballard 1999; Whittington & Bogacz 2017; Millidge, Tschantz &
Buckley 2020 for the fixed-prediction assumption; ngc-learn's value / error cells). This module
is the rule's torch-free specification (options, label, plausibility criteria, training cost);
the implementations are :mod:`neurocredit.rules.pc_rate` and :mod:`neurocredit.rules.pc_lif`.

Rate networks: the hierarchical Gaussian model
-----------------------------------------------
Value nodes ``x_0 .. x_N`` (``x_0`` = the input features, clamped; ``x_i`` for ``0 < i < N`` the
latent values of the hidden layers, in pre-activation units; ``x_N`` the output), predictions
and error nodes (unit variances)::

    μ_i = W_i φ_{i-1}(x_{i-1}) + b_i          φ_0 = identity (the input), φ_i = f (hidden)
    e_i = x_i - μ_i                             hidden error nodes
    e_N = onehot(y) - μ_N                       output_loss: mse (x_N clamped to the target)
    e_N = onehot(y) - softmax(μ_N)              output_loss: ce  (the clamped output's energy is
                                                the cross-entropy, as in most PC classifiers)
    F   = Σ_{i<N} |e_i|²/2 + (|e_N|²/2  or  CE(μ_N, y))

Inference (``inference_steps`` K iterations, ``inference_rate`` γ) starts from one feed-forward
sweep (``x_i = μ_i``, so every hidden error starts at 0) and moves the latent values down the
energy, output clamped::

    x_i <- x_i + γ ( -e_i + f'(x_i) ⊙ W_{i+1}ᵀ e_{i+1} )        0 < i < N

Because every hidden error starts at 0, the output error enters one layer per iteration: after
``j`` iterations the update of ``W_{N-j}`` is exactly ``γ^j`` times backprop's gradient (tested),
and the layers further down have not moved yet. Few iterations with a small γ therefore give
updates close to backprop's direction, scaled down layer by layer (Adam, the optimizer of the
configs, is insensitive to that scale); many iterations move toward the energy minimum, whose
update can be far from backprop's in a trained network. The relaxation is gradient descent on F
and is stable only while γ is below 2 / (the largest curvature of F in ``x_i``, ≈ 1 + |W_{i+1}
f'|²), which grows with the weights during training (measured on the Fashion-MNIST network after
4 epochs: γ = 0.2 diverges, γ = 0.1 does not; 20 iterations at γ = 0.1 reach a quarter of the
equilibrium update's size, with cosines to backprop's of 0.90 / 0.82 / 1.00 for the three layers,
5 iterations 0.95 / 0.85 / 1.00). ngc-learn's discriminative PCN (ngc-museum ``pc_discrim``) also
starts from the feed-forward projection and runs 10 iterations at ``dt / τ_m`` = 0.1. Each
iteration costs two products per hidden layer above the first (``μ_1 = W_1 x_0 + b_1`` is computed
once: ``x_0`` is clamped), so K sets the price of an epoch. Fewer iterations did not pay on
Fashion-MNIST: K = 5 (γ = 0.1) reached 79.47 % / 83.78 % validation accuracy after epochs 1 / 2
of 4, against 83.90 % / 85.70 % with K = 20 (the config keeps K = 20).

The weights then take one local step (the error of the layer times the presynaptic value, the
batch mean handed to the optimizer as the gradient, as for every rule)::

    ∂F/∂W_i = -mean_batch( e_i φ_{i-1}(x_{i-1})ᵀ ),     ∂F/∂b_i = -mean_batch( e_i )

``fixed_prediction`` (Millidge et al. 2020): the predictions ``μ_i``, the derivatives ``f'`` and
the presynaptic values stay at their feed-forward values during inference; the errors then
converge to backprop's deltas (``e_i = f'(μ_i) ⊙ W_{i+1}ᵀ e_{i+1}``), so the update is
backprop's gradient (tested, cosine > 0.99). Without it (the default, Whittington & Bogacz's
network) the latent values move and the update approximates backprop as the output error
becomes small.

Prediction is the feed-forward sweep (``x_i = μ_i``: the fixed point of inference with the
output free), so the saved network is the ordinary feed-forward stack ``h_i = f(W_i h_{i-1} +
b_i)``, linear output, that every backend runs.

Spiking networks (``lif``)
--------------------------
Value populations are the network's canonical LIF layers (:func:`neurocredit.neurons.lif_step`,
Lava's one-step Dense delay); each layer ``i`` has an error population ``c_i`` of graded
leaky integrators (leak ``error_rate`` γ per step), all stepped together, one step at a time::

    x_{i-1}[t] = (1 - λ) x_{i-1}[t-1] + s_{i-1}[t-1]           presynaptic trace (delivered)
    a_i[t]     = W_i s_{i-1}[t-1] + κ c_i[t-1]                   value input (κ: value_feedback)
    s_i[t], v_i[t]  from lif_step(a_i[t])                         v_i: pre-reset voltage
    c_N[t]     = (1 - γ) c_N[t-1] + γ ( ρ onehot(y) - s_N[t] )   output error (ρ: target_rate)
    c_i[t]     = (1 - γ) c_i[t-1] + γ g(v_i[t]) ⊙ W_{i+1}ᵀ c_{i+1}[t-1]     hidden errors
    ∂/∂W_i    -= Σ_t c_i[t] x_{i-1}[t]ᵀ / T  (batch mean),   ∂/∂b_i -= Σ_t c_i[t] / T

``g`` is a voltage surrogate standing in for ``φ'`` (:func:`neurocredit.rules.spiking.voltage_surrogate`).
The error integrators relax toward PC's equilibrium ``c_N = ρ y - rate``, ``c_i = g ⊙ W_{i+1}ᵀ
c_{i+1}``; with ``κ = 0`` the values keep their feed-forward activity (the fixed-prediction
assumption), with ``κ > 0`` the error current moves the value neurons down the energy, as the
rate inference moves ``x_i``. Only the current step's state, the traces and the running update
sums are held: memory does not grow with T. One update per presentation.

Lava expressibility: the value populations and the deployed network are Lava ``LIF`` +
``Dense``. The error populations are graded leaky integrators (a CUBA neuron without threshold
sending graded spikes, a Loihi 2 feature); the product ``g(v) ⊙ (W_{i+1}ᵀ c_{i+1})`` needs a
custom neuron model (as DFA's third factor does); the feedback ``W_{i+1}ᵀ`` is a second Dense
holding the transposed weights, which would have to receive the same updates (weight transport).
Training runs in torch; neurocredit's on-chip learning (``neurocredit.learn``) does not run PC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from neurocredit.errors import NeurocreditError, require_at_least_one
from neurocredit.rules.spec import VOLTAGE_SURROGATES, Criteria, RuleSpec, Variant

OUTPUT_LOSSES = ("ce", "mse")


@dataclass(frozen=True)
class PCOptions:
    """inference_steps K and inference_rate γ of the value relaxation; fixed_prediction: keep the
    predictions at their feed-forward values (module doc); output_loss: ``ce`` or ``mse``."""

    inference_steps: int = 20
    inference_rate: float = 0.1
    fixed_prediction: bool = False
    output_loss: str = "ce"

    def __post_init__(self) -> None:
        require_at_least_one("rule.inference_steps", self.inference_steps)
        if not 0.0 < self.inference_rate <= 1.0:
            raise NeurocreditError(f"rule.inference_rate must be in (0, 1], got {self.inference_rate}")
        if self.output_loss not in OUTPUT_LOSSES:
            raise NeurocreditError(f"rule.output_loss must be one of {', '.join(OUTPUT_LOSSES)}, "
                                   f"got {self.output_loss!r}")


@dataclass(frozen=True)
class SpikingPCOptions:
    """error_rate γ: leak per step of the error integrators (1/γ steps to relax); target_rate ρ:
    the label's output rate in spikes per step (the others: 0); value_feedback κ: error current
    into the value neurons (0: fixed predictions); surrogate / surrogate_width: g(v) (as spiking
    DFA); trace_decay λ of the presynaptic traces (None: the neuron's du)."""

    error_rate: float = 0.3
    target_rate: float = 0.7
    value_feedback: float = 0.0
    surrogate: str = "triangle"
    surrogate_width: float = 1.0
    trace_decay: Optional[float] = None

    def __post_init__(self) -> None:
        if not 0.0 < self.error_rate <= 1.0:
            raise NeurocreditError(f"rule.error_rate must be in (0, 1], got {self.error_rate}")
        if not 0.0 < self.target_rate <= 1.0:
            raise NeurocreditError(f"rule.target_rate must be in (0, 1] spikes per step, got {self.target_rate}")
        if not self.value_feedback >= 0.0:
            raise NeurocreditError(f"rule.value_feedback must be >= 0, got {self.value_feedback}")
        if self.surrogate not in VOLTAGE_SURROGATES:
            raise NeurocreditError(f"rule.surrogate must be one of {', '.join(VOLTAGE_SURROGATES)}, "
                                   f"got {self.surrogate!r}")
        if not self.surrogate_width > 0:
            raise NeurocreditError(f"rule.surrogate_width must be > 0, got {self.surrogate_width}")
        if self.trace_decay is not None and not 0.0 <= self.trace_decay <= 1.0:
            raise NeurocreditError(f"rule.trace_decay must be in [0, 1] (or null for du), got {self.trace_decay}")


def _rate_cost(sums):
    """The feed-forward sweep plus K inference iterations, each recomputing the predictions (a
    forward pass) and sending the errors down through the weights above layer 1 (S_up) and every
    hidden neuron's f' (H); one update per weight. K is the default ``inference_steps`` (the spec's
    cost does not see a config's options; with ``fixed_prediction`` P is 1)."""
    K = PCOptions().inference_steps
    return 1 + K, sums["S"], K * (sums["S_up"] + sums["H"])


def _lif_cost(sums):
    """One presentation of T steps; every step the error populations receive W_{i+1}ᵀ c_{i+1}
    (S_up) and every neuron's error integrator steps (M); the update pairs every weight's error
    and presynaptic trace every step (T S)."""
    T = sums["T"]
    return 1, T * sums["S"], T * (sums["S_up"] + sums["M"])


_LABEL = "PC (predictive coding)"

SPEC = RuleSpec(
    name="pc",
    summary="predictive coding (Whittington & Bogacz 2017); spiking: LIF value + error populations",
    variants={
        "rate": Variant(_LABEL, PCOptions, "neurocredit.rules.pc_rate:RatePC",
                        Criteria(weight_transport=True, forward_locking=True, backward_locking=True,
                                 memory_in_steps="none", surrogate_free=True, on_chip=False),
                        _rate_cost, f"P=1+K, A=S, E=K*(S_up+H), K={PCOptions().inference_steps}"),
        "lif": Variant(_LABEL, SpikingPCOptions, "neurocredit.rules.pc_lif:SpikingPC",
                       Criteria(weight_transport=True, forward_locking=True, backward_locking=True,
                                memory_in_steps="constant", surrogate_free=False, on_chip=False),
                       _lif_cost, "P=1, A=T*S, E=T*(S_up+M)"),
    },
)
