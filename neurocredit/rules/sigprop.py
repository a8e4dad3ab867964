"""Signal propagation, sigprop (Kohan, Rietman & Siegelmann 2023, arXiv 2204.01723): the target
travels forward through the same layers as the input, and every layer learns alone. This module
is the rule's spec (options, criteria, cost, saved arrays; no torch); the rules are
:mod:`neurocredit.rules.sigprop_rate` and :mod:`neurocredit.rules.sigprop_lif`, the pieces they
share (signals, layer losses, the per-layer learner) :mod:`neurocredit.rules.sigprop_local`.

The learning signal is a projection of the one-hot label into the input space,
``t_0 = S onehot(y)`` with ``S`` of shape (n_inputs, n_classes), entries U(0, signal_scale):
an "image" per class. Inputs and signals go through each layer together, stacked along the
batch dimension (rows ``[x_1..x_B, t_1..t_M]``)::

    [h_i ; t_i] = f(W_i [h_{i-1} ; t_{i-1}] + b_i)

With ``signals: class`` a batch carries one signal per class (M = n_classes); with
``signals: sample`` one per sample (M = B, the signal of that sample's class), as the reference
code does. Each layer ``i`` has its own loss between ``h_i`` and ``t_i``, its input detached, and
its own optimizer, which steps as soon as the layer has its loss: no global backward pass, no
feedback weights, no gradient across layers. Losses (``loss``):

* ``similarity_ce``: the similarity matrix ``Q = sim(h_i, t_i) / temperature`` (B x M) trained
  with cross-entropy toward the same-class entries, ``L = -mean_b sum_m P_bm log softmax_m Q_bm``
  with ``P_bm = [y_b = y_m] / #{m: y_m = y_b}``. This is the reference code's
  ``v9_input_target_max_all`` (soft-target cross-entropy on ``h tᵀ`` toward the best-matching
  signals), with the target normalised to a distribution and taken from the labels (the
  reference code recovers it from the signals' own similarities). ``similarity``: ``dot``
  (``h tᵀ``, the reference code's choice) or ``cosine`` (rows centred and scaled to unit norm first, the
  reference code's ``similarity_format``).
* ``l2``: the squared error between the (centred) cosine-similarity matrix and the same-class
  matrix, ``L = mean_bm (cos(h_b, t_m) - [y_b = y_m])^2``: pulls same-class pairs together and
  pushes the others to zero correlation (a plain ``|h - t|^2`` would be minimised by a network
  that maps everything to one point).

Prediction (``readout``):

* ``local`` (the reference code's): the last layer is a readout trained with softmax
  cross-entropy on its own output for the inputs, its input detached; the class is the argmax
  of its outputs (logits, or spike counts of a LIF network).
* ``prototype``: the last layer is one more sigprop layer (``output_width`` wide); the class is
  the one whose signal at the last layer is most similar (cosine) to the sample's output. The
  per-class signal outputs are saved as ``extras['readout/prototypes']`` with readout
  ``nearest_prototype``, so every backend reproduces the rule's prediction.

Conv layers (both kinds): the signals are input images (``S`` reshaped to the input's C x H x W)
and go through the same conv (and fused pool) layers as the inputs. A conv layer's similarity is
that of the C channel values at each position, averaged over the H x W positions
(:func:`neurocredit.rules.sigprop_local.pooled_similarity`; the reference code's
``v9_input_target_max_all`` pools its conv losses the same way, ``mean_p h_p t_pᵀ``); the
reference code's signal instead enters at the first layer's output through a trained projection.
The layer's gradient reaches its shared kernel through its own conv only.

The projection ``S`` is saved as ``extras['sigprop/signal_projection']`` and reused when a
network that has it is trained further. ``signal_trainable`` (rate networks) makes ``S`` a
parameter of the first layer, trained by that layer's loss (the reference code trains its signal
generator with the first layer's loss in the same way; its signal enters at the first hidden
layer's width, ours at the input, so that it passes through every layer of the saved network).

Spiking networks without surrogate gradients (:class:`SpikingSigprop`): the same scheme on the
canonical LIF with the canonical one-step Dense delay; the signals are spike trains made from
``t_0`` by the network's own encoder. Each layer's loss reads its pre-reset membrane voltage (or
synaptic current) with the previous step's state detached, so the gradient reaches the layer's
own ``W_i`` and ``b_i`` through one step's input current only: it never passes through the spike
function (:class:`SpikeWithoutGradient` has no backward at all), never crosses layers and never
crosses time steps. The loss is taken at every step (``timing: step``) or on the presentation
average of the per-step observable (``timing: window``, cheaper; the same per-step derivatives,
summed). The local readout layer learns from its own voltage the same way. Gradients are
accumulated block by block (or as running sums), so memory does not grow with the number of
steps; each layer's optimizer steps once per presentation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurocredit.errors import NeurocreditError, require_at_least_one
from neurocredit.rules.spec import Criteria, RuleSpec, Variant

LOSSES = ("similarity_ce", "l2")
SIMILARITIES = ("cosine", "dot")
SIGNAL_KINDS = ("class", "sample")
READOUTS = ("local", "prototype")
OBSERVABLES = ("voltage", "current")
OBSERVABLE_ACTIVATIONS = ("identity", "relu", "tanh", "sigmoid")
TIMINGS = ("step", "window")
READOUT_LOSSES = ("mse", "ce")
PROJECTION_KEY = "sigprop/signal_projection"
PROTOTYPES_KEY = "readout/prototypes"


@dataclass(frozen=True)
class SigpropOptions:
    """loss: ``similarity_ce`` or ``l2`` (module doc); similarity: ``cosine`` or ``dot`` (for
    ``similarity_ce``); temperature: divides the similarities (cosine: <= 0.1 works well).
    signals: ``class`` (one signal per class per batch) or ``sample`` (one per sample).
    signal_scale: the projection's entries are U(0, signal_scale) (input units: a feature
    value, i.e. a spike probability per step for rate-coded LIF input); signal_seed seeds it
    (independently of the weights); signal_trainable: train it with the first layer's loss.
    readout: ``local`` or ``prototype``; output_width: width of the last layer with the
    ``prototype`` readout (0: as many as classes)."""

    loss: str = "similarity_ce"
    similarity: str = "cosine"
    temperature: float = 0.1
    signals: str = "class"
    signal_scale: float = 1.0
    signal_seed: int = 4321
    signal_trainable: bool = False
    readout: str = "local"
    output_width: int = 0

    def choices(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(option name, allowed values) of every option that is one of a fixed set."""
        return (("loss", LOSSES), ("similarity", SIMILARITIES), ("signals", SIGNAL_KINDS), ("readout", READOUTS))

    def __post_init__(self) -> None:
        for name, allowed in self.choices():
            if getattr(self, name) not in allowed:
                raise NeurocreditError(f"rule.{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if not self.temperature > 0:
            raise NeurocreditError(f"rule.temperature must be > 0, got {self.temperature}")
        if not self.signal_scale > 0:
            raise NeurocreditError(f"rule.signal_scale must be > 0, got {self.signal_scale}")
        if self.output_width < 0:
            raise NeurocreditError(f"rule.output_width must be >= 0 (0: as many as classes), got {self.output_width}")


@dataclass(frozen=True)
class SpikingSigpropOptions(SigpropOptions):
    """observable: what each layer's loss reads, the pre-reset membrane ``voltage`` or the
    synaptic ``current``. timing: ``step`` (a loss at every step, averaged over the
    presentation) or ``window`` (one loss on the presentation average of the per-step
    observable); see :class:`SpikingSigpropLayer`. readout_loss (local readout, the last layer):
    ``ce``, softmax cross-entropy of ``readout_scale * observable`` toward the label, or ``mse``,
    ``0.5 |observable - readout_target * onehot(y)|^2`` (the label's neuron driven to
    ``readout_target``, the others to 0; units of the observable). readout_observable: what the
    local readout's loss reads (``voltage`` or ``current``; empty: the same as ``observable``),
    so the hidden layers and the readout can read different ones. The current does not depend
    on the bias: a layer whose loss reads it keeps its initial bias. observable_activation:
    ``identity``, or a rate nonlinearity (``relu``, ``tanh``, ``sigmoid``) applied to each
    hidden layer's observable before its sigprop loss (``timing: window``: to the presentation
    average). A loss on ``relu(v)`` learns nonlinear features, as rate sigprop's loss on
    ``relu(W x + b)`` does, where a loss on ``v`` itself only shapes a linear projection of the
    input. It is a function of the voltage, not of the spikes: the gradient still never passes
    through a spike. prototype_repeats: encodings of each class's signal averaged into the
    prototypes (``prototype`` readout). block_steps: time steps simulated per block (memory
    grows with it, not with T)."""

    observable: str = "voltage"
    observable_activation: str = "identity"
    timing: str = "step"
    readout_loss: str = "ce"
    readout_observable: str = ""
    readout_scale: float = 5.0
    readout_target: float = 2.0
    prototype_repeats: int = 8
    block_steps: int = 25

    def choices(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return super().choices() + (("observable", OBSERVABLES), ("observable_activation", OBSERVABLE_ACTIVATIONS),
                                    ("timing", TIMINGS), ("readout_loss", READOUT_LOSSES))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.signal_trainable:
            raise NeurocreditError("rule.signal_trainable is for rate networks: a lif network's signals are "
                                   "encoded spikes, which carry no gradient back to the projection; set it to false")
        if not self.readout_scale > 0:
            raise NeurocreditError(f"rule.readout_scale must be > 0, got {self.readout_scale}")
        if self.readout_observable not in ("",) + OBSERVABLES:
            raise NeurocreditError(f"rule.readout_observable must be one of {', '.join(OBSERVABLES)} (or empty: "
                                   f"the same as rule.observable), got {self.readout_observable!r}")
        if self.readout_observable and self.readout != "local":
            raise NeurocreditError("rule.readout_observable is for the local readout (rule.readout: local); "
                                   f"with readout {self.readout!r} no layer reads it: remove it")
        require_at_least_one("rule.prototype_repeats", self.prototype_repeats)
        require_at_least_one("rule.block_steps", self.block_steps)



# --- the learning signal (numpy) ------------------------------------------------------------


def make_signal_projection(n_inputs: int, n_classes: int, options: SigpropOptions) -> np.ndarray:
    """``S`` (n_inputs, n_classes), entries U(0, signal_scale), seeded by ``signal_seed``."""
    rng = np.random.default_rng(options.signal_seed)
    return rng.uniform(0.0, options.signal_scale, size=(n_inputs, n_classes)).astype(np.float32)


def projection_from_network(network, n_classes: int, options: SigpropOptions) -> np.ndarray:
    """The network's saved projection when it has one of the right shape, else a fresh one."""
    saved = network.extras.get(PROJECTION_KEY)
    if saved is not None and saved.shape == (network.n_inputs, n_classes):
        return np.asarray(saved, dtype=np.float32)
    return make_signal_projection(network.n_inputs, n_classes, options)


def output_width(options: SigpropOptions, n_classes: int) -> int:
    if options.readout == "prototype" and options.output_width > 0:
        return options.output_width
    return n_classes


def _extras(network) -> dict[str, tuple[int, ...]]:
    return {PROJECTION_KEY: (network.n_inputs, network.n_classes)}


def _cost(sums):
    # the learning signal t_0 = S_y (a column, n_0 values) goes through the same layers: a 2nd
    # pass; a local loss gradient per neuron and weight every step
    return 2, sums["T"] * sums["S"], sums["n_0"] + sums["T"] * sums["M"]


_FORMULA = "P=2, A=T*S, E=n_0+T*M"

SPEC = RuleSpec(
    name="sigprop",
    summary="signal propagation (Kohan et al. 2023); spiking without surrogates",
    variants={
        "rate": Variant("sigprop (signal propagation)", SigpropOptions, "neurocredit.rules.sigprop_rate:RateSigprop",
                        Criteria(weight_transport=False, forward_locking=True, backward_locking=False,
                                 memory_in_steps="none", surrogate_free=True, on_chip=False),
                        _cost, _FORMULA, trains_conv=True),
        "lif": Variant("sigprop (signal propagation)", SpikingSigpropOptions,
                       "neurocredit.rules.sigprop_lif:SpikingSigprop",
                       Criteria(weight_transport=False, forward_locking=True, backward_locking=False,
                                memory_in_steps="constant", surrogate_free=True, on_chip=False),
                       _cost, _FORMULA, trains_conv=True),
    },
    extras=_extras,
)
