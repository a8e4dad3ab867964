"""Direct feedback alignment (Nøkland 2016): the rule's spec (options, criteria, cost, saved
arrays; no torch). Rate DFA is :mod:`neurocredit.rules.dfa_rate`, online spiking DFA
:mod:`neurocredit.rules.dfa_lif`.

Rate networks, layers ``a_i = W_i h_{i-1} + b_i``, ``h_i = f(a_i)``, linear output ``a_N``::

    e      = softmax(a_N) - onehot(y)                 # output error, (batch, classes)
    δ_N    = e
    δ_i    = (e B_iᵀ) ⊙ f'(a_i)                       # B_i: fixed random (n_i, classes)
    ΔW_i   = -η mean_batch(δ_i h_{i-1}ᵀ),  Δb_i = -η mean_batch(δ_i)

No weight transport, no backward locking: a layer's update uses only its own input ``h_{i-1}``,
its own pre-activation ``a_i`` and the projected error. The feedback matrices are saved with the
network as ``extras['dfa/feedback_<i>']`` (1-based hidden layer index), shape (n_i, classes).

Conv layers (both neuron kinds): ``n_i = C*H*W``, so ``B_i`` projects the error onto every
neuron of every feature map. ``feedback_layout: position`` (default) draws one fixed random value
per map position and class (the error reaches each position independently); ``channel`` draws
one per channel and class and repeats it over the channel's positions (``B_i[c*H*W + p, k] =
b_i[c, k]``), so every position of a map receives the same error and the kernel's update, a sum
over positions, adds up coherent terms instead of terms of random sign (Fashion-MNIST, rate, on
the validation split: 88.88 % against 86.30 % with 32/64 channels, 87.13 % against 85.55 % with
16/32, ``models/fmnist-dfa-conv-rate.yaml``). Either way ``B_i`` is saved whole, shape
(n_i, classes). The update of the shared kernel is the sum over output positions of
``δ_i[o, y, x] h_{i-1}[c, y*s + k, x*s + l]`` (``torch.nn.grad.conv2d_weight``), a channel's bias
the sum of its ``δ_i`` over positions. A fused pool is trained in its pooled form (the input is
sum-pooled first). Still no autograd: each layer's update is one correlation of its own terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from neurocredit.errors import NeurocreditError, require_at_least_one
from neurocredit.rules.spec import VOLTAGE_SURROGATES, Criteria, RuleSpec, Variant


@dataclass(frozen=True)
class DFAOptions:
    """feedback_init: ``uniform`` (U(-1/sqrt(classes), +1/sqrt(classes))) or ``gaussian``
    (N(0, 1/classes)); feedback_scale multiplies it; feedback_seed seeds the matrices
    (independent of the weight seed so the same B can be kept across runs); feedback_layout
    (conv layers): ``position`` (one value per map position and class) or ``channel`` (one per
    channel and class, shared by the channel's positions; module doc)."""

    feedback_init: str = "uniform"
    feedback_scale: float = 1.0
    feedback_seed: int = 1234
    feedback_layout: str = "position"

    def __post_init__(self) -> None:
        if self.feedback_init not in ("uniform", "gaussian"):
            raise NeurocreditError(f"rule.feedback_init must be uniform or gaussian, got {self.feedback_init!r}")
        if self.feedback_layout not in FEEDBACK_LAYOUTS:
            raise NeurocreditError(f"rule.feedback_layout must be {' or '.join(FEEDBACK_LAYOUTS)}, "
                                   f"got {self.feedback_layout!r}")


FEEDBACK_LAYOUTS = ("position", "channel")


def make_feedback(shapes: list[tuple[int, ...]], n_classes: int, options: DFAOptions) -> list[np.ndarray]:
    """One fixed random matrix (n_i, n_classes) per hidden layer output shape in ``shapes``
    ((n,) dense, (C, H, W) conv; rows in C order)."""
    rng = np.random.default_rng(options.feedback_seed)
    matrices = []
    for shape in shapes:
        shared = options.feedback_layout == "channel" and len(shape) == 3
        rows = shape[0] if shared else int(np.prod(shape))
        if options.feedback_init == "uniform":
            bound = options.feedback_scale / np.sqrt(n_classes)
            matrix = rng.uniform(-bound, bound, size=(rows, n_classes))
        else:
            matrix = rng.normal(0.0, options.feedback_scale / np.sqrt(n_classes), size=(rows, n_classes))
        if shared:  # row c*H*W + p: channel c at position p
            matrix = np.repeat(matrix, shape[1] * shape[2], axis=0)
        matrices.append(matrix.astype(np.float32))
    return matrices


def feedback_from_network(network, n_classes: int, options: DFAOptions) -> list[np.ndarray]:
    """The saved feedback matrices of ``network`` if it has them, else fresh ones."""
    hidden = [layer.n_out for layer in network.layers[:-1]]
    saved = [network.extras.get(f"dfa/feedback_{i + 1}") for i in range(len(hidden))]
    if all(m is not None and m.shape == (w, n_classes) for m, w in zip(saved, hidden)):
        return [np.asarray(m, dtype=np.float32) for m in saved]
    return make_feedback([tuple(layer.output_shape) for layer in network.layers[:-1]], n_classes, options)


@dataclass(frozen=True)
class SpikingDFAOptions(DFAOptions):
    """Knobs of the online spiking DFA (see :class:`SpikingDFA`).

    error: ``rate`` (``e = r - target_rate * onehot(y)``, r = output spike rate per step: the
    eRBP-style rate error; the correct output is pulled toward ``target_rate`` spikes per step,
    below saturation, the others toward silence) or ``softmax`` (``e = softmax(error_scale * r)
    - onehot(y)``). With ``softmax`` the outputs saturate (one spike every step) and ties between
    saturated outputs cost accuracy under the argmax-of-counts readout, so ``rate`` is the default.
    surrogate / surrogate_width: the function of the pre-reset membrane voltage that replaces
    f' (``boxcar``, ``triangle``, ``fast_sigmoid``; half-width in units of vth).
    trace_decay: decay per step of the presynaptic traces (None: the neuron's du, so the trace is
    the synaptic filter itself; 1: the trace is the spike train).
    output_surrogate: multiply the output error by the output layer's surrogate too (off: the
    output layer learns from ``e`` directly, as in rate DFA).
    block_steps: time steps simulated per block (memory grows with it, not with T).
    """

    error: str = "rate"
    error_scale: float = 10.0
    target_rate: float = 0.7
    surrogate: str = "triangle"
    surrogate_width: float = 1.0
    trace_decay: Optional[float] = None
    output_surrogate: bool = False
    block_steps: int = 25

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.error not in ("softmax", "rate"):
            raise NeurocreditError(f"rule.error must be softmax or rate, got {self.error!r}")
        if self.surrogate not in VOLTAGE_SURROGATES:
            raise NeurocreditError(f"rule.surrogate must be one of {', '.join(VOLTAGE_SURROGATES)}, got {self.surrogate!r}")
        if not self.surrogate_width > 0:
            raise NeurocreditError(f"rule.surrogate_width must be > 0, got {self.surrogate_width}")
        if self.trace_decay is not None and not 0.0 <= self.trace_decay <= 1.0:
            raise NeurocreditError(f"rule.trace_decay must be in [0, 1] (or null for du), got {self.trace_decay}")
        if not 0.0 < self.target_rate <= 1.0:
            raise NeurocreditError(f"rule.target_rate must be in (0, 1] spikes per step, got {self.target_rate}")
        require_at_least_one("rule.block_steps", self.block_steps)
        if not self.error_scale > 0:
            raise NeurocreditError(f"rule.error_scale must be > 0, got {self.error_scale}")


def _extras(network) -> dict[str, tuple[int, ...]]:
    return {f"dfa/feedback_{i + 1}": (layer.n_out, network.n_classes) for i, layer in enumerate(network.layers[:-1])}


def _cost(sums):
    return 1, sums["S"], sums["C"] * sums["H"]


_FORMULA = "P=1, A=S, E=C*H"  # one update per weight per presentation; B_i e is C MACs per hidden neuron

SPEC = RuleSpec(
    name="dfa",
    summary="direct feedback alignment (Nøkland 2016); spiking: online, eRBP-style",
    variants={
        "rate": Variant("DFA (direct feedback alignment)", DFAOptions, "neurocredit.rules.dfa_rate:RateDFA",
                        Criteria(weight_transport=False, forward_locking=True, backward_locking=False,
                                 memory_in_steps="none", surrogate_free=True, on_chip=False),
                        _cost, _FORMULA, trains_conv=True),
        "lif": Variant("DFA (direct feedback alignment)", SpikingDFAOptions, "neurocredit.rules.dfa_lif:SpikingDFA",
                       Criteria(weight_transport=False, forward_locking=True, backward_locking=False,
                                memory_in_steps="constant", surrogate_free=False, on_chip=True),
                       _cost, _FORMULA, trains_conv=True),
    },
    extras=_extras,
)
