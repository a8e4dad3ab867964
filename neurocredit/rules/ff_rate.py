"""Forward-forward for rate networks (equations, label embedding and the saved network:
:mod:`neurocredit.rules.ff`).

Locality is structural: every layer is a :class:`~neurocredit.rules.base.LocalLearner` that owns its
parameters and its optimizer and receives its input detached, so no gradient crosses layers.
"""

from __future__ import annotations


import numpy as np
import torch

from neurocredit.errors import NeurocreditError
from neurocredit.rules.base import LocalLearner, LocallyLearning, RateRule, one_hot
from neurocredit.rules.ff import LABEL_WEIGHTS_KEY, FFOptions


def goodness_loss(options: FFOptions, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """FF's logistic loss on mean-square goodness ``G/n`` of positive and negative rows (batch,)."""
    margin = options.sharpness * (positive - options.threshold)
    return torch.nn.functional.softplus(-margin).mean() + torch.nn.functional.softplus(
        options.sharpness * (negative - options.threshold)).mean()


def unit_rows(activity: torch.Tensor) -> torch.Tensor:
    """``h / |h|`` per row (a zero row stays zero)."""
    return activity / activity.norm(dim=1, keepdim=True).clamp(min=torch.finfo(activity.dtype).tiny)


def negative_labels(labels: torch.Tensor, n_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A wrong label per sample, uniform among the other classes (drawn on the CPU generator)."""
    shift = torch.randint(1, n_classes, labels.shape, generator=generator).to(labels.device)
    return (labels + shift) % n_classes


def label_weights_from_network(network, n_classes: int, seed: int) -> np.ndarray:
    """The saved label weights ``L`` (n_1, classes) when the network has them, else fresh ones
    drawn like ``W_1`` (U(±1/sqrt(n_0)), seeded by ``seed``)."""
    saved = network.extras.get(LABEL_WEIGHTS_KEY)
    width = network.layers[0].n_out
    if saved is not None and saved.shape == (width, n_classes):
        return np.asarray(saved, dtype=np.float32)
    bound = 1.0 / np.sqrt(network.n_inputs)
    return np.random.default_rng(seed).uniform(-bound, bound, size=(width, n_classes)).astype(np.float32)


def label_rows(labels: torch.Tensor, negatives: torch.Tensor, n_classes: int, scale: float, dtype) -> torch.Tensor:
    """Label inputs of the stacked rows [positive; negative; neutral] (3 batch, classes)."""
    return scale * torch.cat([one_hot(labels, n_classes, dtype), one_hot(negatives, n_classes, dtype),
                              torch.zeros(labels.shape[0], n_classes, dtype=dtype, device=labels.device)])


class RateFF(LocallyLearning, RateRule):
    """Forward-forward on a rate network of relu layers with a local readout (module doc of
    :mod:`neurocredit.rules.ff`)."""

    name = "ff"
    Options = FFOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.spec.neuron.activation != "relu":
            raise NeurocreditError(f"rule ff needs relu hidden layers (network.neuron.activation: relu), got "
                                   f"{self.spec.neuron.activation!r}: the saved network drops the normalisation "
                                   "between layers, which only relu's positive homogeneity allows")
        if len(self.weights) < 2:
            raise NeurocreditError("rule ff needs at least one hidden layer (network.hidden) below its readout")
        for index, bias in enumerate(self.biases[1:], start=2):
            if bool(bias.ne(0).any()):
                raise NeurocreditError(f"rule ff keeps the biases of layers 2.. at zero, but layer {index} of the "
                                       "initial network has nonzero biases (start from a fresh network)")
        self.label_weight = torch.tensor(label_weights_from_network(self.spec, self.n_classes, self.training.seed),
                                         dtype=self.dtype, device=self.device)
        last = len(self.weights) - 1
        self.layers = [LocalLearner([self.weights[0], self.label_weight, self.biases[0]], self.training)]
        self.layers += [LocalLearner([self.weights[i]], self.training) for i in range(1, last + 1)]

    def learners(self) -> list[LocalLearner]:
        return self.layers

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        return {"label_weight": self.label_weight}

    def first_layer(self, features: torch.Tensor, label_inputs: torch.Tensor) -> torch.Tensor:
        return torch.relu(features @ self.weights[0].T + label_inputs @ self.label_weight.T + self.biases[0])

    def train_batch(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        features = features.to(self.dtype)
        batch, options = features.shape[0], self.options
        negatives = negative_labels(labels, self.n_classes, self.generator)
        label_inputs = label_rows(labels, negatives, self.n_classes, options.label_scale, self.dtype)
        stacked = features.repeat(3, 1)
        losses = []
        last = len(self.weights) - 1
        for index in range(last):
            if index == 0:
                activity = self.first_layer(stacked, label_inputs)
            else:
                activity = torch.relu(stacked @ self.weights[index].T)
            goodness = activity[: 2 * batch].square().mean(dim=1)
            loss = goodness_loss(options, goodness[:batch], goodness[batch:])
            self.layers[index].update(loss)
            losses.append(float(loss.detach()))
            stacked = unit_rows(activity.detach())
        logits = stacked[2 * batch :] @ self.weights[last].T  # neutral rows; the readout has no bias
        loss = torch.nn.functional.cross_entropy(logits, labels)
        self.layers[last].update(loss)
        losses.append(float(loss.detach()))
        return float(np.mean(losses))

    @torch.no_grad()
    def goodness_scores(self, features: torch.Tensor) -> torch.Tensor:
        """FF's own prediction scores (batch, classes): for every label, the mean-square goodness
        summed over the hidden layers of the sample with that label embedded."""
        features = features.to(self.dtype)
        scores = []
        for label in range(self.n_classes):
            label_inputs = self.options.label_scale * one_hot(
                torch.full((features.shape[0],), label, device=self.device), self.n_classes, self.dtype)
            activity = self.first_layer(features, label_inputs)
            total = activity.square().mean(dim=1)
            for index in range(1, len(self.weights) - 1):
                activity = torch.relu(unit_rows(activity) @ self.weights[index].T)
                total = total + activity.square().mean(dim=1)
            scores.append(total)
        return torch.stack(scores, dim=1)

    def extras(self) -> dict[str, np.ndarray]:
        return {LABEL_WEIGHTS_KEY: self.label_weight.detach().cpu().numpy().astype(np.float32)}
