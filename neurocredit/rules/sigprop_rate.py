"""Rate sigprop (:mod:`neurocredit.rules.sigprop`): each layer, wrapped so it detaches its input,
learns from its own loss with its own optimizer."""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
import torch

from neurocredit.neurons import activation
from neurocredit.rules.base import LocalLearner, RateRule
from neurocredit.rules.sigprop import SigpropOptions
from neurocredit.rules.sigprop_local import (
    SigpropMixin,
    Synapses,
    layer_loss,
    learning_signals,
    readout_loss,
    signal_labels,
)


class RateSigpropLayer:
    """A rate layer wrapped so that it learns alone (the reference code's detached layer
    wrapper): it detaches its input, computes ``f(W [h; t] + b)``, its loss, steps its own
    optimizer and returns its output detached."""

    def __init__(self, weight, bias, nonlinearity: Callable, options: SigpropOptions, training,
                 projection: Optional[torch.Tensor] = None, synapses: Optional[Synapses] = None) -> None:
        self.weight, self.bias, self.nonlinearity, self.options = weight, bias, nonlinearity, options
        self.synapses = synapses or Synapses()
        self.projection = projection  # the first layer owns S when it is trained
        extra = [projection] if projection is not None else []
        self.learner = LocalLearner([weight, bias, *extra], training)

    def learn(self, stacked: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor):
        """``stacked`` = [inputs (B rows); signals (M rows)]. Returns (output detached, loss)."""
        stacked = stacked.detach()
        batch = labels.shape[0]
        if self.projection is not None:
            stacked = torch.cat([stacked[:batch], learning_signals(self.projection, classes)])
        output = self.nonlinearity(self.synapses.drive(self.weight, self.bias, stacked))
        loss = layer_loss(self.options, output[:batch], output[batch:], labels, classes, self.synapses.maps)
        self.learner.update(loss)
        return output.detach(), float(loss.detach())


class RateReadoutLayer:
    """The local readout: a linear layer trained with cross-entropy on its detached input."""

    def __init__(self, weight, bias, training, synapses: Optional[Synapses] = None) -> None:
        self.weight, self.bias = weight, bias
        self.synapses = synapses or Synapses()
        self.learner = LocalLearner([weight, bias], training)

    def learn(self, stacked: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor):
        hidden = stacked.detach()[: labels.shape[0]]
        loss = readout_loss(self.synapses.drive(self.weight, self.bias, hidden), labels)
        self.learner.update(loss)
        return None, float(loss.detach())


class RateSigprop(SigpropMixin, RateRule):
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
        synapses = Synapses.of(self.spec)
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            projection = self.projection if index == 0 and self.options.signal_trainable else None
            if index == last and self.options.readout == "local":
                self.layers.append(RateReadoutLayer(weight, bias, self.training, synapses[index]))
            else:
                self.layers.append(RateSigpropLayer(weight, bias, linear if index == last else hidden,
                                                    self.options, self.training, projection, synapses[index]))

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
