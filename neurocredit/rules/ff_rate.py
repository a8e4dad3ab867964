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
    """FF's loss on mean-square goodness ``G/n`` of the positive and negative rows (batch,) of the
    same samples: ``logistic``, each row against the threshold; ``symba``, the logistic of their
    difference, ``softplus(-sharpness (G⁺ - G⁻))``."""
    softplus = torch.nn.functional.softplus
    if options.loss == "symba":
        return softplus(-options.sharpness * (positive - negative)).mean()
    margin = options.sharpness * (positive - options.threshold)
    return softplus(-margin).mean() + softplus(options.sharpness * (negative - options.threshold)).mean()


def peer_loss(running: torch.Tensor, activity: torch.Tensor, momentum: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Peer normalisation (loeweX/Forward-Forward): the running mean activity per neuron,
    ``m ← momentum · m + (1 - momentum) · mean_batch(activity)`` (the batch term carries the
    gradient), and the loss ``mean_j (mean(m) - m_j)²`` that pulls every neuron toward the layer's
    mean activity (no neuron always on or always off). Returns (loss, the new running mean, detached)."""
    mean = momentum * running + (1.0 - momentum) * activity.mean(dim=0)
    return (mean.mean() - mean).square().mean(), mean.detach()


def normalised_rows(options: FFOptions, activity: torch.Tensor) -> torch.Tensor:
    """The input a layer passes up: unit length per row (``normalise: length``) or unit root mean
    square, ``sqrt(n) · h / |h|`` (``rms``)."""
    unit = unit_rows(activity)
    return unit * activity.shape[-1] ** 0.5 if options.normalise == "rms" else unit


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


def hidden_loss(options: FFOptions, activity: torch.Tensor, batch: int,
                peer_mean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A hidden layer's loss from its nonnegative activity on the stacked rows [positive;
    negative; neutral] (3 batch, n): the goodness loss on the mean squares, plus the peer
    normalisation when ``options.peer`` > 0. Returns (loss, the new running mean activity)."""
    goodness = activity[: 2 * batch].square().mean(dim=1)
    loss = goodness_loss(options, goodness[:batch], goodness[batch:])
    if options.peer > 0:
        peer, peer_mean = peer_loss(peer_mean, activity[:batch], options.peer_momentum)
        loss = loss + options.peer * peer
    return loss, peer_mean


def label_code(labels: torch.Tensor, n_classes: int, options: FFOptions, dtype) -> torch.Tensor:
    """Label inputs (rows, classes): ``label_scale · onehot``, centred (``- label_scale / n``) when
    ``options.neutral`` is ``mean`` (the neutral row, zero, is then the mean of the codes)."""
    code = options.label_scale * one_hot(labels, n_classes, dtype)
    return code - options.label_scale / n_classes if options.neutral == "mean" else code


def label_rows(labels: torch.Tensor, negatives: torch.Tensor, n_classes: int, options: FFOptions,
               dtype) -> torch.Tensor:
    """Label inputs of the stacked rows [positive; negative; neutral] (3 batch, classes)."""
    return torch.cat([label_code(labels, n_classes, options, dtype), label_code(negatives, n_classes, options, dtype),
                      torch.zeros(labels.shape[0], n_classes, dtype=dtype, device=labels.device)])


def hard_negative_labels(scores: torch.Tensor, labels: torch.Tensor, sharpness: float,
                         uniform: torch.Tensor) -> torch.Tensor:
    """A wrong label per sample drawn with probability ∝ ``exp(sharpness · score)`` among the wrong
    labels (``scores`` (batch, classes): the goodness of each label), by inverse transform of
    ``uniform`` (batch,) in [0, 1): one draw per sample serves every layer, so a layer's negatives
    do not depend on how many layers draw after it."""
    logits = (sharpness * scores).masked_fill(torch.nn.functional.one_hot(labels, scores.shape[1]).bool(),
                                              float("-inf"))
    cumulative = torch.softmax(logits.double(), dim=1).cumsum(dim=1)
    drawn = torch.searchsorted(cumulative, uniform.double()[:, None].to(cumulative.device), right=True).squeeze(1)
    # first label whose cumulative probability exceeds u (a zero-probability label never is);
    # rounding can leave the last cumulative value a hair below u: take the last wrong label then
    last_wrong = torch.where(labels == scores.shape[1] - 1, scores.shape[1] - 2, scores.shape[1] - 1)
    return torch.where(drawn >= scores.shape[1], last_wrong, drawn)


class ForwardForwardLayers(LocallyLearning):
    """What both FF variants hold besides weights and biases: the label weights ``L``, one
    :class:`LocalLearner` per layer (the first over ``W_1``, ``L``, ``b_1``; the others over
    ``layer_parameters(i)``), and each hidden layer's running mean activity (peer normalisation)."""

    def build_layers(self, layer_parameters) -> None:
        if len(self.weights) < 2:
            raise NeurocreditError("rule ff needs at least one hidden layer (network.hidden) below its readout")
        self.label_weight = torch.tensor(label_weights_from_network(self.spec, self.n_classes, self.training.seed),
                                         dtype=self.dtype, device=self.device)
        self.layers = [LocalLearner([self.weights[0], self.label_weight, self.biases[0]], self.training)]
        self.layers += [LocalLearner(layer_parameters(i), self.training) for i in range(1, len(self.weights))]
        self.peer_means = [torch.zeros(w.shape[0], dtype=self.dtype, device=self.device) for w in self.weights[:-1]]

    def learners(self) -> list[LocalLearner]:
        return self.layers

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {"label_weight": self.label_weight}
        if self.options.peer > 0:
            tensors.update({f"peer_mean_{i}": mean for i, mean in enumerate(self.peer_means)})
        return tensors

    def extras(self) -> dict[str, np.ndarray]:
        return {LABEL_WEIGHTS_KEY: self.label_weight.detach().cpu().numpy().astype(np.float32)}


class RateFF(ForwardForwardLayers, RateRule):
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
        for index, bias in enumerate(self.biases[1:], start=2):
            if bool(bias.ne(0).any()):
                raise NeurocreditError(f"rule ff keeps the biases of layers 2.. at zero, but layer {index} of the "
                                       "initial network has nonzero biases (start from a fresh network)")
        self.build_layers(lambda index: [self.weights[index]])  # layers 2.. and the readout: no bias

    def first_layer(self, features: torch.Tensor, label_inputs: torch.Tensor) -> torch.Tensor:
        return torch.relu(features @ self.weights[0].T + label_inputs @ self.label_weight.T + self.biases[0])

    def train_batch(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        features = features.to(self.dtype)
        batch, options = features.shape[0], self.options
        hard = options.negatives == "hard"
        if hard:  # every label's pass through the hidden layers, before this batch's updates
            passes, scores = self.label_passes(features), 0.0
            uniform = torch.rand(batch, generator=self.generator)
            negatives = labels  # replaced per layer below
        else:
            negatives = negative_labels(labels, self.n_classes, self.generator)
        label_inputs = label_rows(labels, negatives, self.n_classes, options, self.dtype)
        stacked = features.repeat(3, 1)
        losses = []
        last = len(self.weights) - 1
        for index in range(last):
            if hard:  # layer index's own hard negatives, from the goodness of the layers up to it
                scores = scores + passes[index].square().mean(dim=2).T
                negatives = hard_negative_labels(scores, labels, options.sharpness, uniform)
                if index == 0:
                    label_inputs[batch : 2 * batch] = label_code(negatives, self.n_classes, options, self.dtype)
                else:
                    stacked[batch : 2 * batch] = normalised_rows(options, passes[index - 1][negatives, torch.arange(batch)])
            if index == 0:
                activity = self.first_layer(stacked, label_inputs)
            else:
                activity = torch.relu(stacked @ self.weights[index].T)
            loss, self.peer_means[index] = hidden_loss(options, activity, batch, self.peer_means[index])
            self.layers[index].update(loss)
            losses.append(float(loss.detach()))
            stacked = normalised_rows(options, activity.detach())
        logits = stacked[2 * batch :] @ self.weights[last].T  # neutral rows; the readout has no bias
        loss = torch.nn.functional.cross_entropy(logits, labels)
        self.layers[last].update(loss)
        losses.append(float(loss.detach()))
        return float(np.mean(losses))

    @torch.no_grad()
    def label_passes(self, features: torch.Tensor) -> list[torch.Tensor]:
        """Every hidden layer's activity (classes, batch, n_i) with each label embedded in turn
        (the features' product with ``W_1`` computed once)."""
        drive = features.to(self.dtype) @ self.weights[0].T + self.biases[0]
        codes = label_code(torch.arange(self.n_classes, device=self.device), self.n_classes, self.options, self.dtype)
        activity = torch.relu(drive + (codes @ self.label_weight.T)[:, None, :])
        passes = [activity]
        for index in range(1, len(self.weights) - 1):
            activity = torch.relu(normalised_rows(self.options, activity.flatten(0, 1)) @ self.weights[index].T).view(
                self.n_classes, drive.shape[0], -1)
            passes.append(activity)
        return passes

    def goodness_scores(self, features: torch.Tensor) -> torch.Tensor:
        """FF's own prediction scores (batch, classes): for every label, the mean-square goodness
        summed over the hidden layers of the sample with that label embedded."""
        return sum(activity.square().mean(dim=2) for activity in self.label_passes(features)).T
