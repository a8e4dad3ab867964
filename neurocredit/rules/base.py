"""The rule interface every learning rule implements, and what they share.

A rule owns the trainable tensors of one ``Network`` while it trains::

    rule = RuleClass(network, options, training, n_classes)
    loss = rule.train_batch(features, labels)   # one batch: torch tensors (batch, n_in), (batch,)
    outputs = rule.predict(features)            # (batch, n_outputs), for per-epoch accuracy
    network = rule.to_network()                 # trained weights + the rule's arrays (extras)

Batch semantics (the same for every rule): an update is the *mean* over the batch of the
per-sample updates, handed to the optimizer as the parameter's ``.grad`` (so Adam/SGD apply
to local rules exactly as they do to backprop). Rules that do not use autograd compute those
``.grad`` tensors themselves under ``torch.no_grad()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import numpy as np
import torch

from neurocredit.config import TrainingConfig
from neurocredit.network import Network
from neurocredit.neurons import rate_forward
from neurocredit.options import build_dataclass


@dataclass(frozen=True)
class NoOptions:
    """This rule has no options."""


def make_optimizer(parameters: list[torch.Tensor], training: TrainingConfig) -> torch.optim.Optimizer:
    if training.optimizer == "sgd":
        return torch.optim.SGD(
            parameters, lr=training.learning_rate, momentum=training.momentum, weight_decay=training.weight_decay
        )
    # the fused kernel does Adam's elementwise work in one pass (a quarter of a rate DFA step otherwise)
    fused = all(p.dtype in (torch.float32, torch.float64) for p in parameters)
    return torch.optim.Adam(parameters, lr=training.learning_rate, weight_decay=training.weight_decay, fused=fused)


def scheduled_learning_rate(training: TrainingConfig, epoch: int) -> float:
    """Learning rate for 0-based ``epoch`` under ``training.lr_schedule``."""
    base = training.learning_rate
    if training.lr_schedule == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * epoch / max(1, training.epochs)))
    if training.lr_schedule == "step":  # a tenth after half of the epochs, a hundredth after three quarters
        milestones = int(epoch >= int(0.5 * training.epochs)) + int(epoch >= int(0.75 * training.epochs))
        return base * 0.1**milestones
    return base


class Rule:
    """Base class: holds weights/biases as torch tensors and an optimizer over them."""

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions

    @classmethod
    def parse_options(cls, options: dict[str, Any], where: str = "rule") -> Any:
        """Validated options dataclass (unknown keys / wrong types: one clear error naming
        ``where``, e.g. ``"models/x.yaml: rule"``)."""
        return build_dataclass(cls.Options, options, where)

    @classmethod
    def output_size(cls, options: Any, n_classes: int) -> int:
        """Width of the last layer for ``n_classes`` classes."""
        return n_classes

    def __init__(self, network: Network, options: Any, training: TrainingConfig, n_classes: int,
                 device: str | torch.device = "cpu") -> None:
        self.spec = network
        self.options = options
        self.training = training
        self.n_classes = n_classes
        self.device = torch.device(device)
        self.dtype = torch.float32
        from neurocredit.rules import RULE_SPECS, conv_fix, rule_spec

        specs = rule_spec(self.name).variants if self.name in RULE_SPECS else {}
        variant = specs.get(network.neuron.kind)
        if variant is None or not variant.trains_conv:  # unregistered rules: dense only
            network.require_dense(f"rule {self.name!r}", conv_fix(network.neuron.kind))
        # the trainable weights: a pooled layer's pooled form (fused again by synaptic_parameters)
        self.weights = [torch.tensor(network.unfused_weight(i), dtype=self.dtype, device=self.device)
                        for i in range(len(network.layers))]
        self.biases = [torch.tensor(b, dtype=self.dtype, device=self.device) for b in network.biases]
        self.unfused_layers = [network.unfused(i) for i in range(len(network.layers))]  # (pool, shape, layer)
        self.generator = torch.Generator(device="cpu").manual_seed(int(training.seed))
        self.optimizer = make_optimizer(self.parameters(), training)

    def synaptic_parameters(self, weights: Optional[list] = None, biases: Optional[list] = None
                            ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The runnable (fused) weights and per-neuron biases, differentiable functions of
        :attr:`weights` / :attr:`biases` or of the ``weights`` / ``biases`` given in their place
        (the tensors themselves for a dense network)."""
        from neurocredit.conv import torch_fused_weight, torch_neuron_bias

        layers, shapes = self.spec.layers, self.spec.shapes
        weights = self.weights if weights is None else weights
        biases = self.biases if biases is None else biases
        return ([torch_fused_weight(layer, shapes[i], w) for i, (layer, w) in enumerate(zip(layers, weights))],
                [torch_neuron_bias(layer, b) for layer, b in zip(layers, biases)])

    def trainable_gradients(self, weight_grads: list[torch.Tensor],
                            bias_grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """Gradients with respect to the runnable (fused) weights and per-neuron biases of
        :meth:`synaptic_parameters` -> gradients of :attr:`weights` and :attr:`biases` (the order of
        :meth:`parameters`): a pooled layer's sums over each pool block, a conv's bias sums over
        positions (the adjoint of the fusion, by autograd). Unchanged for a dense network."""
        if self.spec.is_dense:
            return [*weight_grads, *bias_grads]
        with torch.enable_grad():
            leaves = [p.detach().requires_grad_(True) for p in [*self.weights, *self.biases]]
            count = len(self.weights)
            weights, biases = self.synaptic_parameters(leaves[:count], leaves[count:])
            return list(torch.autograd.grad([*weights, *biases], leaves, [*weight_grads, *bias_grads]))

    def parameters(self) -> list[torch.Tensor]:
        """Tensors the optimizer updates (weights and biases; rules may add their own)."""
        return [*self.weights, *self.biases]

    def local_gradients(self, deltas: list[torch.Tensor], inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Gradients of every weight, then every bias (the order of :meth:`parameters`), from each
        layer's own factors: ``deltas[i]`` (batch, n_out) its neurons' errors, ``inputs[i]``
        (batch, n_in) its presynaptic activity; summed over the batch. A conv layer's shared
        kernel gets the sum over positions (:func:`neurocredit.conv.torch_local_gradients`)."""
        from neurocredit.conv import torch_local_gradients

        pairs = [torch_local_gradients(unfused, delta, source)
                 for unfused, delta, source in zip(self.unfused_layers, deltas, inputs)]
        return [weight for weight, _ in pairs] + [bias for _, bias in pairs]

    def set_epoch(self, epoch: int) -> None:
        """Called before each epoch (0-based): applies the learning-rate schedule."""
        for group in self.optimizer.param_groups:
            group["lr"] = scheduled_learning_rate(self.training, epoch)

    def apply_gradients(self, gradients: list[torch.Tensor]) -> None:
        """One optimizer step with ``gradients`` (same order as :meth:`parameters`)."""
        for parameter, gradient in zip(self.parameters(), gradients):
            parameter.grad = gradient
        self.optimizer.step()

    def train_batch(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        raise TypeError(f"{type(self).__name__} must define train_batch")

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} must define predict")

    def extras(self) -> dict[str, np.ndarray]:
        """Arrays saved with the network (feedback matrices, learning-signal projections...)."""
        return {}

    # -- checkpoint state (neurocredit.checkpoint): everything training changes or drew at random

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors besides weights and biases that a resumed run needs (feedback matrices, a
        trainable projection...); subclasses add theirs."""
        return {}

    def optimizers(self) -> list[torch.optim.Optimizer]:
        """Every optimizer the rule steps (rules with per-layer optimizers list theirs)."""
        return [self.optimizer]

    def generators(self) -> dict[str, torch.Generator]:
        """Every ``torch.Generator`` the rule holds as an attribute, by attribute name."""
        return {name: value for name, value in sorted(vars(self).items()) if isinstance(value, torch.Generator)}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"weight_{i}": w for i, w in enumerate(self.weights)}
        tensors.update({f"bias_{i}": b for i, b in enumerate(self.biases)})
        tensors.update({f"extra/{name}": t for name, t in self.extra_tensors().items()})
        return tensors

    def state_dict(self) -> dict[str, Any]:
        """Tensors (copies), optimizer states and generator states: with :meth:`load_state_dict`
        a rule built from the same network and options continues bit for bit."""
        return {
            "tensors": {name: t.detach().clone() for name, t in self.state_tensors().items()},
            "optimizers": [optimizer.state_dict() for optimizer in self.optimizers()],
            "generators": {name: g.get_state() for name, g in self.generators().items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` in place (tensors shared with layers or optimizers stay
        shared). A state of another rule or network shape raises ``ValueError``."""
        tensors = self.state_tensors()
        if set(state["tensors"]) != set(tensors):
            raise ValueError(f"tensors {sorted(state['tensors'])} do not match the rule's {sorted(tensors)}")
        for name, tensor in tensors.items():
            if tuple(state["tensors"][name].shape) != tuple(tensor.shape):
                raise ValueError(f"{name}: shape {tuple(state['tensors'][name].shape)}, the rule has "
                                 f"{tuple(tensor.shape)}")
        optimizers, generators = self.optimizers(), self.generators()
        if len(state["optimizers"]) != len(optimizers) or set(state["generators"]) != set(generators):
            raise ValueError("optimizers or generators do not match the rule's")
        with torch.no_grad():
            for name, tensor in tensors.items():
                tensor.copy_(state["tensors"][name])
        for optimizer, saved in zip(optimizers, state["optimizers"]):
            optimizer.load_state_dict(saved)
        for name, generator in generators.items():
            generator.set_state(state["generators"][name])

    def to_network(self) -> Network:
        with torch.no_grad():
            weights = self.synaptic_parameters()[0]
        network = self.spec.with_parameters(
            [w.detach().cpu().numpy().astype(np.float32) for w in weights],
            [b.detach().cpu().numpy().astype(np.float32) for b in self.biases],
        )
        extras = dict(self.spec.extras)
        extras.update(self.extras())
        return network.replace(extras=extras)


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


class LocallyLearning:
    """Mixin of rules whose layers learn alone, each with its own :class:`LocalLearner`
    (:meth:`learners`): the schedule and the checkpoint reach every layer's optimizer."""

    def learners(self) -> list[LocalLearner]:
        raise TypeError(f"{type(self).__name__} must define learners")

    def set_epoch(self, epoch: int) -> None:
        for learner in self.learners():
            learner.set_epoch(epoch)

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.optimizer, *(learner.optimizer for learner in self.learners())]


class RateRule(Rule):
    """Shared by rate-network rules: the forward pass and argmax-of-logits prediction."""

    def forward(self, features: torch.Tensor):
        weights, biases = self.synaptic_parameters()  # the tensors themselves for dense layers
        return rate_forward(weights, biases, self.spec.neuron.activation, features, layers=self.spec.layers)

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> torch.Tensor:
        return self.forward(features)[1][-1]


def one_hot(labels: torch.Tensor, n_classes: int, dtype=torch.float32) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, n_classes).to(dtype)
