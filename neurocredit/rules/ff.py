"""Forward-forward, ``ff`` (Hinton 2022, arXiv 2212.13345). This module is the rule's torch-free
specification (options, label, plausibility criteria, training cost); the implementations are
:mod:`neurocredit.rules.ff_rate` and :mod:`neurocredit.rules.ff_lif`.

Label embedding, and what the saved network is
----------------------------------------------
During training the first layer sees the features *and* the label as ``n_classes`` extra inputs:
``a_1 = W_1 x + L ℓ + b_1`` with ``ℓ = label_scale · onehot(label)`` and ``L`` (n_1, classes) the
label weights. Three kinds of rows go through the network per batch: positive (the true label),
negative (a wrong label: ``negatives: random``, uniformly among the others, drawn from the rule's
seeded generator; ``hard``, see below) and neutral (``ℓ = 0``, no label). With ``neutral: mean``
the label code is centred, ``ℓ = label_scale · (onehot(label) - 1/n_classes)``, so that the
neutral row is the mean of the label codes (Hinton's neutral label, 1/n_classes each) while
still being the features alone. Because the neutral rows are exactly the features alone, the
saved network is the ordinary stack on the features (``W_1`` without ``L``): every backend runs
it, and it computes what the rule's readout saw in training. ``L`` is saved as
``extras['ff/label_weights']`` and reused when the network is trained further.

Each hidden layer ``i`` learns alone, on its own detached input, with its own optimizer, from the
goodness ``G_i = Σ_j h_ij²`` (sum of squared activity) of positive and negative rows::

    p(positive) = σ( sharpness · (G_i / n_i - threshold) )
    L_i = mean_batch[ softplus(-sharpness (G_i⁺/n_i - θ)) + softplus(sharpness (G_i⁻/n_i - θ)) ]

(``G_i / n_i - θ`` is ``(G_i - θ n_i) / n_i``: the threshold is per neuron, so it scales with the
width). With ``loss: symba`` (Lee & Song 2023, "SymBa") the loss is the logistic of the
difference of a sample's positive and negative goodness, ``softplus(-sharpness (G⁺ - G⁻)/n_i)``: no
threshold, and both rows always receive a gradient of the same size. ``peer > 0`` adds loeweX's
peer normalisation to every hidden layer's loss: ``peer · mean_j (mean(m) - m_j)²`` with ``m_j``
neuron ``j``'s running mean activity on positive rows (momentum ``peer_momentum``), so that no
neuron stays always on or always off. ``negatives: hard`` (rate networks) draws layer ``i``'s
wrong label with probability ∝ ``exp(sharpness · S)`` where ``S`` is the goodness summed over
layers 1..i with that label embedded (one pass per label, before the batch's updates; one
uniform draw per sample serves every layer): negatives the layers below confuse with the sample,
and a layer's negatives never depend on the layers above it. The next layer's input is the
layer's activity normalised to unit length, ``h_i / |h_i|`` (``normalise: length``), or to unit
root mean square, ``sqrt(n_i) · h_i / |h_i|`` (``rms``, loeweX: the scale that the next layer's
U(±1/sqrt(n_in)) initialisation assumes; for the readout, a step per update sqrt(n_i) times
larger): it carries the direction, not the goodness, to the layer above. The last layer
is a readout (``n_classes`` wide) trained with softmax cross-entropy on the neutral rows of the
last hidden layer, its input detached: the network's prediction through every backend is the
argmax of its outputs. The rate rule also computes FF's own prediction, the label with the
highest goodness accumulated over the hidden layers (``RateFF.goodness_scores``: one pass per
label); it is not what the saved network predicts (that needs one pass per label and the
normalisation), so it is reported beside the readout's accuracy, not deployed.

Why the configs have one hidden layer: on digits, with one hidden layer the readout predicts
about as well as the goodness; with two hidden layers trained this way the second layer's unit-length activity carries
little class information and the readout on it is much worse.

Rate networks (``ff_rate``): ``relu`` hidden layers. The normalisation is not a layer of the
saved network; it does not need to be: hidden layers above the first and the readout have no
bias (kept at zero), so by positive homogeneity ``relu(W (c h)) = c relu(W h)`` for ``c > 0`` and the
readout's argmax are the same with or without it (exactly, up to float rounding). The first
layer's input (features and label) is not normalised.

Spiking networks (``ff_lif``, canonical LIF, one-step Dense delay): the label inputs are encoded
by the network's encoder like the features; a sample's three rows share one encoded spike train
of its features (the first layer's feature currents are computed once per sample, and the
positive-negative difference is the label's alone). A hidden layer's goodness reads the window mean of its
pre-reset membrane voltage ``v̄`` through ``relu``, ``G = Σ_j relu(v̄_j)²``; the state is detached
between steps, so ``∂v̄/∂W = mean_t x[t-1]`` (the mean delivered input) and the gradient never
passes through a spike (:class:`neurocredit.rules.sigprop_lif.SpikeWithoutGradient`'s idea: a spike
has no derivative). The readout LIF layer learns from the cross-entropy of ``readout_scale · v̄``
on the neutral rows; the prediction is the argmax of its spike counts. Only running sums are kept
(memory flat in T); one update per layer per presentation. Spike trains cannot be normalised
without changing the deployed network, so the spiking layers pass their spikes as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from neurocredit.errors import NeurocreditError, require_at_least_one
from neurocredit.rules.spec import Criteria, RuleSpec, Variant

NEGATIVES = ("random", "hard")
LOSSES = ("logistic", "symba")
NEUTRALS = ("zero", "mean")
NORMALISATIONS = ("length", "rms")
LABEL_WEIGHTS_KEY = "ff/label_weights"


@dataclass(frozen=True)
class FFOptions:
    """threshold θ (per neuron, mean-square units) and sharpness of the goodness logistic;
    label_scale: the value of the label input (input units: a feature value).

    loss: ``logistic`` (Hinton's, each row against the threshold) or ``symba`` (Lee & Song 2023:
    the logistic of the positive-negative goodness difference of the same sample, no threshold).
    negatives: ``random`` (a wrong label drawn uniformly) or ``hard`` (rate networks: a wrong label
    drawn with probability ∝ exp(sharpness · goodness) of the network's own goodness scores, Hinton's
    "negative data from the model's predictions"). neutral: ``zero`` (the neutral rows have no label
    input) or ``mean`` (rate networks: the label code is centred, ``label_scale · (onehot - 1/n)``,
    so that the neutral row, the features alone, is the mean of the label codes: Hinton's uniform
    neutral label). peer: weight of loeweX's peer normalisation (each hidden neuron's running mean
    activity on positive rows, momentum ``peer_momentum``, pulled toward the layer's mean; 0: off).
    normalise (rate networks): what a hidden layer passes up, ``length`` (unit length) or ``rms``
    (unit root mean square).
    For spiking networks the label inputs go through the encoder like the features (a Bernoulli
    code clips them to one spike per step)."""

    threshold: float = 0.5
    sharpness: float = 5.0
    label_scale: float = 1.0
    negatives: str = "random"
    loss: str = "logistic"
    neutral: str = "zero"
    peer: float = 0.0
    peer_momentum: float = 0.9
    normalise: str = "length"

    def __post_init__(self) -> None:
        if not self.threshold >= 0:
            raise NeurocreditError(f"rule.threshold must be >= 0, got {self.threshold}")
        if not self.sharpness > 0:
            raise NeurocreditError(f"rule.sharpness must be > 0, got {self.sharpness}")
        if not self.label_scale > 0:
            raise NeurocreditError(f"rule.label_scale must be > 0, got {self.label_scale}")
        for key, value, choices in (("negatives", self.negatives, NEGATIVES), ("loss", self.loss, LOSSES),
                                    ("neutral", self.neutral, NEUTRALS),
                                    ("normalise", self.normalise, NORMALISATIONS)):
            if value not in choices:
                raise NeurocreditError(f"rule.{key} must be one of {', '.join(choices)}, got {value!r}")
        if not self.peer >= 0:
            raise NeurocreditError(f"rule.peer must be >= 0, got {self.peer}")
        if not 0 <= self.peer_momentum < 1:
            raise NeurocreditError(f"rule.peer_momentum must be in [0, 1), got {self.peer_momentum}")


@dataclass(frozen=True)
class SpikingFFOptions(FFOptions):
    """threshold: per neuron, in squared voltage units of relu(v̄); readout_scale: the readout's
    logits are ``readout_scale · v̄``; block_steps: time steps simulated per block (memory grows
    with it, not with T). negatives ``hard`` and neutral ``mean`` are rate-only (hard negatives
    would cost one presentation per label; a spike code has no negative inputs)."""

    threshold: float = 0.2
    readout_scale: float = 5.0
    block_steps: int = 25

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.readout_scale > 0:
            raise NeurocreditError(f"rule.readout_scale must be > 0, got {self.readout_scale}")
        require_at_least_one("rule.block_steps", self.block_steps)
        if self.negatives != "random":
            raise NeurocreditError(f"rule.negatives: spiking ff supports only random, got {self.negatives!r} "
                                   "(hard negatives need one presentation per label)")
        if self.neutral != "zero":
            raise NeurocreditError(f"rule.neutral: spiking ff supports only zero, got {self.neutral!r} "
                                   "(a spike code cannot carry the centred label code's negative values)")


def _rate_cost(sums):
    """Three rows per sample (positive, negative, neutral) go through the network: P = 3. Every
    weight is updated from the positive and the negative row (the readout from the neutral one:
    counted as two, an upper bound): A = 2 S. One goodness derivative per neuron and row: E = 2 M.
    Not counted (the formula is per rule, not per option): ``negatives: hard`` adds one product of
    the features with ``W_1`` and one pass per label through layers 2.. (none with one hidden layer)."""
    return 3, 2 * sums["S"], 2 * sums["M"]


def _lif_cost(sums):
    """As the rate rule, with the running voltage sums behind the goodness derivative taken every
    step: E = 2 T M."""
    return 3, 2 * sums["S"], 2 * sums["T"] * sums["M"]


def _extras(network) -> dict[str, tuple[int, ...]]:
    return {LABEL_WEIGHTS_KEY: (network.layers[0].n_out, network.n_classes)}


_LABEL = "FF (forward-forward)"

SPEC = RuleSpec(
    name="ff",
    summary="forward-forward (Hinton 2022); spiking: goodness of the window-mean voltage, no surrogate",
    variants={
        "rate": Variant(_LABEL, FFOptions, "neurocredit.rules.ff_rate:RateFF",
                        Criteria(weight_transport=False, forward_locking=True, backward_locking=False,
                                 memory_in_steps="none", surrogate_free=True, on_chip=False),
                        _rate_cost, "P=3, A=2*S, E=2*M"),
        "lif": Variant(_LABEL, SpikingFFOptions, "neurocredit.rules.ff_lif:SpikingFF",
                       Criteria(weight_transport=False, forward_locking=True, backward_locking=False,
                                memory_in_steps="constant", surrogate_free=True, on_chip=False),
                       _lif_cost, "P=3, A=2*S, E=2*T*M"),
    },
    extras=_extras,
)
