"""What rate and spiking sigprop share (:mod:`neurocredit.rules.sigprop`): the learning signals,
the layer losses (pure functions of one layer's activities), the per-layer learner, and the rule
plumbing (projection, extras, readout)."""

from __future__ import annotations

import numpy as np
import torch

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


class SigpropMixin(LocallyLearning):
    """What the rate and spiking rules share: options, the projection, extras, readout."""

    name = "sigprop"

    @classmethod
    def output_size(cls, options: SigpropOptions, n_classes: int) -> int:
        return output_width(options, n_classes)

    def _setup_signal(self) -> None:
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
