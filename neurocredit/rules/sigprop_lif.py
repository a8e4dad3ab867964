"""Spiking sigprop without surrogate gradients (:mod:`neurocredit.rules.sigprop`): each LIF layer
learns from its own pre-reset voltage (or current), its state detached; no spike is ever
differentiated."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch

from neurocredit.errors import NeurocreditError
from neurocredit.neurons import LIFState, activation, lif_block, lif_integrate
from neurocredit.rules.base import LocalLearner, one_hot
from neurocredit.rules.sigprop import SpikingSigpropOptions
from neurocredit.rules.sigprop_local import (
    SigpropMixin,
    Synapses,
    layer_loss,
    learning_signals,
    readout_loss,
    signal_labels,
)
from neurocredit.rules.spiking import SpikingRule


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

    def __init__(self, weight, bias, params, training, observable: str, timing: str,
                 synapses: Optional[Synapses] = None) -> None:
        self.weight, self.bias, self.params = weight, bias, params
        self.observable, self.timing = observable, timing
        self.synapses = synapses or Synapses()  # dense, conv or pooled: how W and b drive the neurons
        self.loss: Callable = None
        self.learner = LocalLearner([weight, bias], training)

    def begin(self, rows: int, n_in: int, loss: Callable) -> None:
        """Zero state for a presentation of ``rows`` rows (inputs and signals); ``loss`` maps the
        observables (steps, rows, n) to this layer's scalar loss."""
        zeros = lambda n: torch.zeros(rows, n, dtype=self.weight.dtype, device=self.weight.device)  # noqa: E731
        n_out = self.synapses.n_out(self.weight)
        self.state = LIFState(zeros(n_out), zeros(n_out))
        self.last_source = zeros(n_in)
        self.observed_sum, self.input_sum = zeros(n_out), zeros(n_in)
        self.window_carry = zeros(n_out)  # W x of the previous block's last step
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
        carry = self.synapses.current(self.weight, self.last_source)
        currents = self.synapses.current(self.weight, source[:-1].reshape((steps - 1) * rows, n_in)).view(
            steps - 1, rows, carry.shape[-1])
        # unbind, not indexing: its backward stacks the per-step gradients instead of filling
        # a zero block per step
        return (carry, *currents.unbind(0))

    def _run_block_step(self, source: torch.Tensor, steps_total: int) -> torch.Tensor:
        params = self.params
        current, voltage = self.state
        observed, spikes = [], []
        bias = self.synapses.bias(self.bias)
        for delivered in self._delivered(source):
            current, voltage = lif_integrate(params, LIFState(current.detach(), voltage.detach()), delivered, bias)
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

        steps, rows, n_in = source.shape
        currents = self.synapses.current(self.weight, source.reshape(steps * rows, n_in)).view(steps, rows, -1)
        self.state, spikes, self.window_carry = lif_block(
            self.params, self.state, currents, self.window_carry, self.synapses.bias(self.bias), observe)
        self.input_sum += self.last_source + source[:-1].sum(dim=0)
        return spikes

    def finish(self, steps_total: int) -> float:
        """Apply the presentation's update; returns its loss."""
        if self.timing == "window":
            # mean_t o[t] as a value, with the within-step dependence on W (and b) as its graph
            dependent = self.synapses.current(self.weight, self.input_sum / steps_total)
            if self.observable == "voltage":
                dependent = dependent + self.synapses.bias(self.bias)
            mean_observed = self.observed_sum / steps_total + (dependent - dependent.detach())
            loss = self.loss(mean_observed.unsqueeze(0))
            loss.backward()
            self.loss_sum = float(loss.detach())
        self.learner.step()
        return self.loss_sum


class SpikingSigprop(SigpropMixin, SpikingRule):
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
        self.readout_index = last if self.options.readout == "local" else None
        observables = [self.options.observable] * len(self.weights)
        if self.options.readout_observable:  # options allow it with the local readout only
            observables[last] = self.options.readout_observable
        self.layers = [
            SpikingSigpropLayer(weight, bias, self.params, self.training, observable, self.options.timing, synapses)
            for weight, bias, synapses, observable in zip(self.weights, self.biases, Synapses.of(self.spec), observables)
        ]

    def _layer_loss(self, index: int, labels: torch.Tensor, classes: torch.Tensor) -> Callable:
        batch, options = labels.shape[0], self.options
        if index == self.readout_index:
            if options.readout_loss == "ce":
                return lambda observed: readout_loss(options.readout_scale * observed[:, :batch], labels)
            target = options.readout_target * one_hot(labels, self.n_classes, self.dtype)
            return lambda observed: 0.5 * (observed[:, :batch] - target).square().sum(dim=-1).mean()
        name, maps = options.observable_activation, self.layers[index].synapses.maps

        def sigprop_loss(observed: torch.Tensor) -> torch.Tensor:
            if name != "identity":
                observed = activation(name, observed)
            return layer_loss(options, observed[:, :batch], observed[:, batch:], labels, classes, maps)

        return sigprop_loss

    def train_batch(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        features = features.to(self.dtype)
        classes = signal_labels(self.options, labels, self.n_classes)
        stacked = torch.cat([features, learning_signals(self.projection, classes)])
        steps = self.encoder.steps
        for index, layer in enumerate(self.layers):
            layer.begin(stacked.shape[0], layer.synapses.n_in(layer.weight), self._layer_loss(index, labels, classes))
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
        counts = self.output_counts(learning_signals(self.projection, classes))
        return counts.view(self.options.prototype_repeats, self.n_classes, -1).mean(dim=0)
