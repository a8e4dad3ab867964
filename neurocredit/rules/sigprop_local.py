"""What rate and spiking sigprop share (:mod:`neurocredit.rules.sigprop`): the learning signals,
the layer losses (pure functions of one layer's activities), the per-layer learner, and the rule
plumbing (projection, extras, readout)."""

from __future__ import annotations

import numpy as np
import torch

from neurocredit.errors import NeurocreditError
from neurocredit.network import ReadoutSpec
from neurocredit.rules.base import LocalLearner, LocallyLearning, one_hot
from neurocredit.rules.sigprop import PROJECTION_KEY, PROTOTYPES_KEY, SigpropOptions, output_width, projection_from_network


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


def pooled_similarity(kind: str, activity: torch.Tensor, signals: torch.Tensor, maps=None) -> torch.Tensor:
    """:func:`similarity_matrix`; for the feature maps of a conv layer (``maps`` = (C, H, W),
    rows flattened in C order) the similarity of the C channel values at each position, averaged
    over the H*W positions (the reference code's pooling of a conv layer's loss,
    ``v9_input_target_max_all``: ``mean_p h_p t_pᵀ``)."""
    if maps is None or len(maps) != 3:
        return similarity_matrix(kind, activity, signals)

    def by_position(x: torch.Tensor) -> torch.Tensor:  # (..., rows, C*H*W) -> (..., H*W, rows, C)
        return x.reshape(*x.shape[:-1], maps[0], -1).movedim(-1, -3)

    return similarity_matrix(kind, by_position(activity), by_position(signals)).mean(dim=-3)


def layer_loss(options: SigpropOptions, activity: torch.Tensor, signals: torch.Tensor,
               labels: torch.Tensor, classes: torch.Tensor, maps=None) -> torch.Tensor:
    """The sigprop loss of one layer (module doc), averaged over samples and over any leading
    dimensions (time steps): ``activity`` (..., B, n), ``signals`` (..., M, n); ``maps``: the
    (C, H, W) shape of a conv layer's population (similarities pooled over positions,
    :func:`pooled_similarity`)."""
    target = same_class(labels, classes, activity.dtype)
    if options.loss == "l2":
        return (pooled_similarity("cosine", activity, signals, maps) - target).square().mean()
    logits = pooled_similarity(options.similarity, activity, signals, maps) / options.temperature
    target = target / target.sum(dim=1, keepdim=True)
    return -(target * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


def readout_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy of (..., B, classes) logits, averaged over samples and steps."""
    flat = logits.reshape(-1, logits.shape[-1])
    return torch.nn.functional.cross_entropy(flat, labels.repeat(flat.shape[0] // labels.shape[0]))



# --- layers that learn alone ---------------------------------------------------------------------


class Synapses:
    """How one layer's trainable tensors drive its neurons: ``current(W, x)`` = ``W x`` (a conv
    or pooled layer: the fused conv of the pooled-form ``W``, :func:`neurocredit.conv.torch_layer_input`,
    differentiable in ``W`` only) and ``bias(b)`` per neuron. ``layer=None``: a plain dense layer.
    ``maps``: the (C, H, W) shape of a conv layer's population (None for dense), for the loss."""

    def __init__(self, layer=None, source_shape=None) -> None:
        self.layer, self.source_shape = layer, source_shape
        self.maps = tuple(layer.output_shape) if layer is not None and layer.kind == "conv2d" else None

    @classmethod
    def of(cls, network) -> list["Synapses"]:
        """One per layer of ``network``."""
        return [cls(layer, network.shapes[index]) for index, layer in enumerate(network.layers)]

    def n_out(self, weight: torch.Tensor) -> int:
        return weight.shape[0] if self.layer is None else self.layer.n_out

    def n_in(self, weight: torch.Tensor) -> int:
        return weight.shape[1] if self.layer is None else self.layer.n_in

    def current(self, weight: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        if self.layer is None:
            return inputs @ weight.T
        from neurocredit.conv import torch_layer_input

        return torch_layer_input(self.layer, self.source_shape, weight, inputs)

    def bias(self, bias: torch.Tensor) -> torch.Tensor:
        if self.layer is None:
            return bias
        from neurocredit.conv import torch_neuron_bias

        return torch_neuron_bias(self.layer, bias)

    def drive(self, weight: torch.Tensor, bias: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """``W x + b``."""
        return self.current(weight, inputs) + self.bias(bias)


class SigpropMixin(LocallyLearning):
    """What the rate and spiking rules share: options, the projection, extras, readout."""

    name = "sigprop"

    @classmethod
    def output_size(cls, options: SigpropOptions, n_classes: int) -> int:
        return output_width(options, n_classes)

    def _setup_signal(self) -> None:
        if len(self.weights) == 1 and self.options.readout == "local":
            raise NeurocreditError("sigprop with readout 'local' needs at least one hidden layer "
                                   "(network.hidden), or use readout 'prototype'")
        projection = projection_from_network(self.spec, self.n_classes, self.options)
        self.projection = torch.tensor(projection, dtype=self.dtype, device=self.device)

    def learners(self) -> list[LocalLearner]:
        return [layer.learner for layer in self.layers]

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        return {"projection": self.projection}  # trained when signal_trainable

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
