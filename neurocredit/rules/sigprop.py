"""Signal propagation, sigprop (Kohan, Rietman & Siegelmann 2023, arXiv 2204.01723): the target
travels forward through the same layers as the input, and every layer learns alone.

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
from typing import Any, Callable, Optional

import numpy as np
import torch

from neurocredit.errors import NeurocreditError
from neurocredit.network import ReadoutSpec
from neurocredit.neurons import LIFState, activation
from neurocredit.rules.base import RateRule, make_optimizer, one_hot, scheduled_learning_rate
from neurocredit.rules.spiking import PREDICT_SEED, SpikingRule, block_currents, output_counts, run_layer_block

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


# --- the learning signal ---------------------------------------------------------------------


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


def signal_labels(options: SigpropOptions, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Class of each signal row of a batch: ``0..n_classes-1`` or the samples' own labels."""
    if options.signals == "class":
        return torch.arange(n_classes, device=labels.device)
    return labels


def learning_signals(projection: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """``t_0 = S onehot(y)`` for every class in ``classes``: rows (len(classes), n_inputs)."""
    return one_hot(classes, projection.shape[1], projection.dtype) @ projection.T


# --- layer losses (pure functions of one layer's activities) ------------------------------------


def centred_unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows minus their mean, scaled to unit norm (last dimension)."""
    centred = x - x.mean(dim=-1, keepdim=True)
    return centred / (1e-8 + centred.norm(dim=-1, keepdim=True))


def similarity_matrix(kind: str, activity: torch.Tensor, signals: torch.Tensor) -> torch.Tensor:
    """(..., B, M) similarities of activity rows (..., B, n) with signal rows (..., M, n)."""
    if kind == "cosine":
        activity, signals = centred_unit_rows(activity), centred_unit_rows(signals)
    return activity @ signals.transpose(-1, -2)


def same_class(labels: torch.Tensor, classes: torch.Tensor, dtype) -> torch.Tensor:
    """(B, M) matrix: 1 where sample b and signal m have the same class."""
    return (labels[:, None] == classes[None, :]).to(dtype)


def layer_loss(options: SigpropOptions, activity: torch.Tensor, signals: torch.Tensor,
               labels: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """The sigprop loss of one layer (module doc), averaged over samples and over any leading
    dimensions (time steps): ``activity`` (..., B, n), ``signals`` (..., M, n)."""
    target = same_class(labels, classes, activity.dtype)
    if options.loss == "l2":
        return (similarity_matrix("cosine", activity, signals) - target).square().mean()
    logits = similarity_matrix(options.similarity, activity, signals) / options.temperature
    target = target / target.sum(dim=1, keepdim=True)
    return -(target * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


def readout_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy of (..., B, classes) logits, averaged over samples and steps."""
    flat = logits.reshape(-1, logits.shape[-1])
    return torch.nn.functional.cross_entropy(flat, labels.repeat(flat.shape[0] // labels.shape[0]))


# --- layers that learn alone ---------------------------------------------------------------------


class LocalLearner:
    """The parameters of one layer and the optimizer that only they see.

    :meth:`update` takes a loss computed by that layer from its *detached* input and steps the
    layer's own optimizer; nothing outside the layer receives a gradient.
    """

    def __init__(self, parameters: list[torch.Tensor], training) -> None:
        self.parameters = parameters
        for parameter in parameters:
            parameter.requires_grad_(True)
        self.training = training
        self.optimizer = make_optimizer(parameters, training)

    def set_epoch(self, epoch: int) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = scheduled_learning_rate(self.training, epoch)

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        self.optimizer.step()

    def update(self, loss: torch.Tensor) -> None:
        self.zero_grad()
        loss.backward()
        self.step()


class RateSigpropLayer:
    """A rate layer wrapped so that it learns alone (the reference code's detached layer
    wrapper): it detaches its input, computes ``f(W [h; t] + b)``, its loss, steps its own
    optimizer and returns its output detached."""

    def __init__(self, weight, bias, nonlinearity: Callable, options: SigpropOptions, training,
                 projection: Optional[torch.Tensor] = None) -> None:
        self.weight, self.bias, self.nonlinearity, self.options = weight, bias, nonlinearity, options
        self.projection = projection  # the first layer owns S when it is trained
        extra = [projection] if projection is not None else []
        self.learner = LocalLearner([weight, bias, *extra], training)

    def learn(self, stacked: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor):
        """``stacked`` = [inputs (B rows); signals (M rows)]. Returns (output detached, loss)."""
        stacked = stacked.detach()
        batch = labels.shape[0]
        if self.projection is not None:
            stacked = torch.cat([stacked[:batch], learning_signals(self.projection, classes)])
        output = self.nonlinearity(stacked @ self.weight.T + self.bias)
        loss = layer_loss(self.options, output[:batch], output[batch:], labels, classes)
        self.learner.update(loss)
        return output.detach(), float(loss.detach())


class RateReadoutLayer:
    """The local readout: a linear layer trained with cross-entropy on its detached input."""

    def __init__(self, weight, bias, training) -> None:
        self.weight, self.bias = weight, bias
        self.learner = LocalLearner([weight, bias], training)

    def learn(self, stacked: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor):
        hidden = stacked.detach()[: labels.shape[0]]
        loss = readout_loss(hidden @ self.weight.T + self.bias, labels)
        self.learner.update(loss)
        return None, float(loss.detach())


def output_width(options: SigpropOptions, n_classes: int) -> int:
    if options.readout == "prototype" and options.output_width > 0:
        return options.output_width
    return n_classes


class _SigpropMixin:
    """What the rate and spiking rules share: options, the projection, extras, readout."""

    name = "sigprop"

    @classmethod
    def output_size(cls, options: SigpropOptions, n_classes: int) -> int:
        return output_width(options, n_classes)

    def _setup_signal(self) -> None:
        projection = projection_from_network(self.spec, self.n_classes, self.options)
        self.projection = torch.tensor(projection, dtype=self.dtype, device=self.device)

    def set_epoch(self, epoch: int) -> None:
        for layer in self.layers:
            layer.learner.set_epoch(epoch)

    def prototypes(self) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} must define prototypes")

    def extras(self) -> dict[str, np.ndarray]:
        extras = {PROJECTION_KEY: self.projection.detach().cpu().numpy().astype(np.float32)}
        if self.options.readout == "prototype":
            extras[PROTOTYPES_KEY] = self.prototypes().detach().cpu().numpy().astype(np.float32)
        return extras

    def to_network(self):
        network = super().to_network()
        kind = "nearest_prototype" if self.options.readout == "prototype" else "argmax"
        extras = dict(network.extras)
        if kind == "argmax":
            extras.pop(PROTOTYPES_KEY, None)  # a placeholder from the config, if any
        return network.replace(readout=ReadoutSpec(kind), extras=extras)


class RateSigprop(_SigpropMixin, RateRule):
    """Sigprop for rate networks (module doc). Hidden layers ``f``; the last layer is linear
    (the local readout, or the linear prototype layer)."""

    Options = SigpropOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._setup_signal()
        if self.options.signal_trainable:
            self.projection.requires_grad_(True)
        name = self.spec.neuron.activation
        hidden = lambda a: activation(name, a)  # noqa: E731
        linear = lambda a: a  # noqa: E731
        last = len(self.weights) - 1
        self.layers: list[Any] = []
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            projection = self.projection if index == 0 and self.options.signal_trainable else None
            if index == last and self.options.readout == "local":
                if index == 0:
                    raise NeurocreditError("sigprop with readout 'local' needs at least one hidden layer "
                                           "(network.hidden), or use readout 'prototype'")
                self.layers.append(RateReadoutLayer(weight, bias, self.training))
            else:
                self.layers.append(RateSigpropLayer(weight, bias, linear if index == last else hidden,
                                                    self.options, self.training, projection))

    def train_batch(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        classes = signal_labels(self.options, labels, self.n_classes)
        stacked = torch.cat([features.to(self.dtype), learning_signals(self.projection.detach(), classes)])
        losses = []
        for layer in self.layers:
            stacked, loss = layer.learn(stacked, labels, classes)
            losses.append(loss)
        return float(np.mean(losses))

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> torch.Tensor:
        return self.forward(features.to(self.dtype))[1][-1]

    @torch.no_grad()
    def prototypes(self) -> torch.Tensor:
        """The last layer's output for each class's signal, (n_classes, n_outputs)."""
        classes = torch.arange(self.n_classes, device=self.device)
        return self.forward(learning_signals(self.projection, classes))[1][-1]


RULES = {"rate": RateSigprop}


# --- spiking sigprop without surrogate gradients --------------------------------------------------


class SpikeWithoutGradient(torch.autograd.Function):
    """The LIF spike ``s = v > vth`` (0/1 in ``v``'s dtype) with no backward: surrogate-free
    sigprop never differentiates through a spike, and this makes any attempt an error."""

    @staticmethod
    def forward(ctx, voltage: torch.Tensor, vth: float) -> torch.Tensor:
        return (voltage > vth).to(voltage.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        raise NeurocreditError("spiking sigprop differentiated through a spike; it must never do that "
                               "(no surrogate gradients)")


@dataclass(frozen=True)
class SpikingSigpropOptions(SigpropOptions):
    """observable: what each layer's loss reads, the pre-reset membrane ``voltage`` or the
    synaptic ``current``. timing: ``step`` (a loss at every step, averaged over the
    presentation) or ``window`` (one loss on the presentation average of the per-step
    observable); see :class:`SpikingSigpropLayer`. readout_loss (local readout, the last layer):
    ``ce``, softmax cross-entropy of ``readout_scale * observable`` toward the label, or ``mse``,
    ``0.5 |observable - readout_target * onehot(y)|^2`` (the label's neuron driven to
    ``readout_target``, the others to 0; units of the observable). observable_activation:
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
        if self.prototype_repeats < 1:
            raise NeurocreditError(f"rule.prototype_repeats must be >= 1, got {self.prototype_repeats}")
        if self.block_steps < 1:
            raise NeurocreditError(f"rule.block_steps must be >= 1, got {self.block_steps}")


class SpikingSigpropLayer:
    """One canonical LIF population that learns alone, a block of steps at a time.

    Per step ``t`` (the canonical order and delay; ``x[t-1]`` is what the source emitted at
    ``t - 1``, detached)::

        u[t] = detach(u[t-1]) (1 - du) + W x[t-1]
        v[t] = detach(v[t-1]) (1 - dv) + u[t] + b        # pre-reset voltage
        s[t] = SpikeWithoutGradient(v[t]);  v[t] <- v[t] (1 - s[t])

    The observable ``o[t]`` is ``v[t]`` (pre-reset) or ``u[t]``. Because the state is detached,
    ``do[t]/dW = x[t-1]`` (and ``dv[t]/db = 1``): one step, this layer, never a spike.

    * ``timing: step``: the loss of every step's ``o[t]``, averaged over the presentation, is
      backpropagated by autograd once per block (through the step's own ops only); the
      gradients of the blocks add up in ``.grad``.
    * ``timing: window``: the loss of the presentation average ``mean_t o[t]``; its gradient is
      ``dL/dō (mean_t x[t-1])ᵀ`` — the same per-step derivatives, summed — so the layer keeps
      two running sums and does one small matrix product per presentation.

    :meth:`finish` steps the layer's own optimizer once per presentation.
    """

    def __init__(self, weight, bias, params, training, observable: str, timing: str) -> None:
        self.weight, self.bias, self.params = weight, bias, params
        self.observable, self.timing = observable, timing
        self.loss: Callable = None
        self.learner = LocalLearner([weight, bias], training)

    def begin(self, rows: int, n_in: int, loss: Callable) -> None:
        """Zero state for a presentation of ``rows`` rows (inputs and signals); ``loss`` maps the
        observables (steps, rows, n) to this layer's scalar loss."""
        zeros = lambda n: torch.zeros(rows, n, dtype=self.weight.dtype, device=self.weight.device)  # noqa: E731
        self.state = LIFState(zeros(self.weight.shape[0]), zeros(self.weight.shape[0]))
        self.last_source = zeros(n_in)
        self.observed_sum, self.input_sum = zeros(self.weight.shape[0]), zeros(n_in)
        self.window_carry = zeros(self.weight.shape[0])  # W x of the previous block's last step
        self.loss = loss
        self.learner.zero_grad()
        self.loss_sum = 0.0

    def learn_block(self, source: torch.Tensor, steps_total: int) -> torch.Tensor:
        """Run a block ``source`` (steps, rows, n_in) of the source's spikes; returns this layer's
        spikes (steps, rows, n_out), detached."""
        source = source.detach()
        if self.timing == "window":
            with torch.no_grad():
                spikes = self._run_block_window(source)
        else:
            spikes = self._run_block_step(source, steps_total)
        self.last_source = source[-1].clone()
        return spikes

    def _delivered(self, source: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``W x[t-1]`` for every step of the block (the Dense delay): the first step receives
        the previous block's last step, recomputed here so that no graph spans two blocks."""
        steps, rows, n_in = source.shape
        carry = self.last_source @ self.weight.T
        currents = (source[:-1].reshape((steps - 1) * rows, n_in) @ self.weight.T).view(steps - 1, rows,
                                                                                        self.weight.shape[0])
        # unbind, not indexing: its backward stacks the per-step gradients instead of filling
        # a zero block per step
        return (carry, *currents.unbind(0))

    def _run_block_step(self, source: torch.Tensor, steps_total: int) -> torch.Tensor:
        params = self.params
        current, voltage = self.state
        observed, spikes = [], []
        for delivered in self._delivered(source):
            current = current.detach() * (1.0 - params.du) + delivered
            voltage = voltage.detach() * (1.0 - params.dv) + current + self.bias
            fired = SpikeWithoutGradient.apply(voltage, params.vth)
            observed.append(voltage if self.observable == "voltage" else current)
            spikes.append(fired.detach())
            voltage = voltage * (1.0 - fired)
        self.state = LIFState(current.detach(), voltage.detach())
        # per-step losses averaged over the whole presentation (steps / steps_total)
        loss = self.loss(torch.stack(observed)) * (source.shape[0] / steps_total)
        loss.backward()
        self.loss_sum += float(loss.detach())
        return torch.stack(spikes)

    def _run_block_window(self, source: torch.Tensor) -> torch.Tensor:
        """The same dynamics in place (no graph: the window loss needs only running sums)."""
        observed_sum, use_voltage = self.observed_sum, self.observable == "voltage"

        def observe(voltage: torch.Tensor, current: torch.Tensor) -> None:
            observed_sum.add_(voltage if use_voltage else current)

        self.state, spikes, self.window_carry = run_layer_block(
            self.params, self.state, block_currents(source, self.weight), self.window_carry, self.bias, observe)
        self.input_sum += self.last_source + source[:-1].sum(dim=0)
        return spikes

    def finish(self, steps_total: int) -> float:
        """Apply the presentation's update; returns its loss."""
        if self.timing == "window":
            # mean_t o[t] as a value, with the within-step dependence on W (and b) as its graph
            dependent = (self.input_sum / steps_total) @ self.weight.T
            if self.observable == "voltage":
                dependent = dependent + self.bias
            mean_observed = self.observed_sum / steps_total + (dependent - dependent.detach())
            loss = self.loss(mean_observed.unsqueeze(0))
            loss.backward()
            self.loss_sum = float(loss.detach())
        self.learner.step()
        return self.loss_sum


class SpikingSigprop(_SigpropMixin, SpikingRule):
    """Sigprop for canonical LIF networks without surrogate gradients (module doc).

    Rows of a presentation: the B samples' input spikes, then the M signals' spikes (the
    projection's rows encoded by the network's encoder). Every sigprop layer learns from the
    observables of its own rows; the local readout (last layer, ``n_classes`` neurons) learns
    from its observable on the sample rows (``readout_loss``); the prediction is the argmax of
    its spike counts (``prototype`` readout: nearest prototype of the output counts).
    """

    Options = SpikingSigpropOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.block_steps = self.options.block_steps
        self._setup_signal()
        last = len(self.weights) - 1
        if last == 0 and self.options.readout == "local":
            raise NeurocreditError("sigprop with readout 'local' needs at least one hidden layer "
                                   "(network.hidden), or use readout 'prototype'")
        self.layers = [
            SpikingSigpropLayer(weight, bias, self.params, self.training, self.options.observable,
                                self.options.timing)
            for weight, bias in zip(self.weights, self.biases)
        ]
        self.readout_index = last if self.options.readout == "local" else None

    def _layer_loss(self, index: int, labels: torch.Tensor, classes: torch.Tensor) -> Callable:
        batch, options = labels.shape[0], self.options
        if index == self.readout_index:
            if options.readout_loss == "ce":
                return lambda observed: readout_loss(options.readout_scale * observed[:, :batch], labels)
            target = options.readout_target * one_hot(labels, self.n_classes, self.dtype)
            return lambda observed: 0.5 * (observed[:, :batch] - target).square().sum(dim=-1).mean()
        name = options.observable_activation

        def sigprop_loss(observed: torch.Tensor) -> torch.Tensor:
            if name != "identity":
                observed = activation(name, observed)
            return layer_loss(options, observed[:, :batch], observed[:, batch:], labels, classes)

        return sigprop_loss

    def train_batch(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        features = features.to(self.dtype)
        classes = signal_labels(self.options, labels, self.n_classes)
        stacked = torch.cat([features, learning_signals(self.projection, classes)])
        steps = self.encoder.steps
        for index, layer in enumerate(self.layers):
            layer.begin(stacked.shape[0], layer.weight.shape[1], self._layer_loss(index, labels, classes))
        for start in range(0, steps, self.block_steps):
            source = self.encode(stacked, min(self.block_steps, steps - start))
            for layer in self.layers:
                source = layer.learn_block(source, steps)
        return float(np.mean([layer.finish(steps) for layer in self.layers]))

    @torch.no_grad()
    def prototypes(self) -> torch.Tensor:
        """Mean output spike counts of each class's signal over ``prototype_repeats`` encodings
        (a fixed seed), (n_classes, n_outputs)."""
        classes = torch.arange(self.n_classes, device=self.device).repeat(self.options.prototype_repeats)
        generator = torch.Generator(device="cpu").manual_seed(PREDICT_SEED)
        counts = output_counts(self.weights, self.biases, self.params, self.encoder,
                               learning_signals(self.projection, classes), self.block_steps, generator)
        return counts.view(self.options.prototype_repeats, self.n_classes, -1).mean(dim=0)


RULES["lif"] = SpikingSigprop
