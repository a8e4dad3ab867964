"""Forward-forward's options (symba loss, hard negatives, centred label code, peer
normalisation): layer locality with all of them, what each one computes, checkpoints, errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from neurocredit.errors import NeurocreditError
from neurocredit.network import EncoderSpec, LIFParameters, Network, NeuronSpec, init_layers
from neurocredit.config import TrainingConfig
from neurocredit.rules import rule_class

ALL_RATE = {"negatives": "hard", "neutral": "mean", "loss": "symba", "peer": 0.05, "normalise": "rms"}
ALL_LIF = {"loss": "symba", "peer": 0.05}


def ff_rule(kind: str, sizes, options, steps: int = 8):
    layers = init_layers(sizes, np.random.default_rng(0), gain=2.0 if kind == "lif" else 1.0)
    if kind == "lif":
        network = Network(layers, NeuronSpec("lif", lif=LIFParameters(0.5, 0.2, 1.0)), EncoderSpec("bernoulli", steps, 1.0, 0))
    else:
        network = Network(layers, NeuronSpec("rate", "relu"))
    cls = rule_class("ff", kind)
    return cls(network, cls.parse_options(options), TrainingConfig(seed=0), sizes[-1])


def batches(count: int = 4, width: int = 12, classes: int = 3):
    generator = torch.Generator().manual_seed(2)
    return [(torch.rand(8, width, generator=generator), torch.randint(0, classes, (8,), generator=generator))
            for _ in range(count)]


@pytest.mark.parametrize("kind, options", [("rate", ALL_RATE), ("lif", ALL_LIF)])
def test_ff_layer_locality_holds_with_every_option(kind, options):
    """Hard negatives are drawn per layer from the goodness of the layers up to it (one uniform
    draw per sample), peer means are per layer: the first layer is bit-identical whatever is above."""
    first = []
    for sizes in [(12, 10, 9, 7, 3), (12, 10, 4, 3), (12, 10, 3)]:
        rule = ff_rule(kind, sizes, options)
        for features, labels in batches():
            rule.train_batch(features, labels)
        network = rule.to_network()
        first.append((network.layers[0].weight, network.layers[0].bias, network.extras["ff/label_weights"]))
    for other in first[1:]:
        for reference, array in zip(first[0], other):
            assert np.array_equal(reference, array)


def test_hard_negatives_are_wrong_labels_drawn_by_goodness():
    from neurocredit.rules.ff_rate import hard_negative_labels

    labels = torch.tensor([0, 1, 2, 3] * 250)
    scores = torch.zeros(1000, 4)
    scores[:, 2] = 1.0  # label 2 looks best
    drawn = hard_negative_labels(scores, labels, 5.0, torch.rand(1000, generator=torch.Generator().manual_seed(0)))
    assert not bool((drawn == labels).any())
    counts = np.bincount(drawn[labels != 2].numpy(), minlength=4)
    # exp(5) : 1 : 1 among the wrong labels of the samples whose label is not 2
    assert counts[2] / (labels != 2).sum().item() == pytest.approx(np.exp(5) / (np.exp(5) + 2), abs=0.03)
    flat = hard_negative_labels(torch.zeros(1000, 4), labels, 5.0, torch.rand(1000, generator=torch.Generator().manual_seed(1)))
    assert not bool((flat == labels).any()) and np.bincount(flat.numpy(), minlength=4).min() > 200


def test_rate_ff_goodness_scores_are_each_labels_goodness():
    from neurocredit.rules.ff_rate import label_code

    rule = ff_rule("rate", (12, 10, 9, 3), ALL_RATE)
    for features, labels in batches(2):
        rule.train_batch(features, labels)
    features = batches(1)[0][0]
    with torch.no_grad():
        for label in range(3):
            code = label_code(torch.full((8,), label), 3, rule.options, torch.float32)
            hidden = rule.first_layer(features, code)
            expected = hidden.square().mean(dim=1)
            rms = hidden / hidden.square().mean(dim=1, keepdim=True).sqrt()  # normalise: rms
            expected = expected + torch.relu(rms @ rule.weights[1].T).square().mean(dim=1)
            assert torch.allclose(rule.goodness_scores(features)[:, label], expected, atol=1e-6)


def test_rate_ff_saved_network_predicts_what_the_rms_normalised_readout_predicts():
    """normalise: rms passes sqrt(n) h / |h| up; the saved network (no normalisation) has the same
    argmax by positive homogeneity."""
    rule = ff_rule("rate", (12, 10, 9, 3), ALL_RATE)
    for features, labels in batches(3):
        rule.train_batch(features, labels)
    features = torch.rand(64, 12, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        hidden = rule.first_layer(features, torch.zeros(64, 3))
        hidden = torch.relu(10 ** 0.5 * hidden / hidden.norm(dim=1, keepdim=True) @ rule.weights[1].T)
        logits = 9 ** 0.5 * hidden / hidden.norm(dim=1, keepdim=True) @ rule.weights[2].T
        assert torch.equal(rule.predict(features).argmax(dim=1), logits.argmax(dim=1))
    from neurocredit.sim import simulate

    record = simulate(rule.to_network(), features.numpy(), logits.argmax(dim=1).numpy(), backend="rate")
    assert record.accuracy == 1.0


def test_centred_label_code_makes_the_saved_network_the_mean_label():
    """neutral: mean -> the saved first layer (features alone) is the first layer with the mean of
    the label codes embedded, and the codes' mean is zero."""
    from neurocredit.rules.ff_rate import label_code

    rule = ff_rule("rate", (12, 10, 3), {"neutral": "mean", "label_scale": 4.0})
    for features, labels in batches(2):
        rule.train_batch(features, labels)
    codes = label_code(torch.arange(3), 3, rule.options, torch.float32)
    assert torch.allclose(codes.mean(dim=0), torch.zeros(3), atol=1e-6) and float(codes.max()) == pytest.approx(4 * 2 / 3)
    features = batches(1)[0][0]
    network = rule.to_network()
    saved = features.numpy() @ network.layers[0].weight.T + network.layers[0].bias
    with torch.no_grad():
        mean_label = rule.first_layer(features, codes.mean(dim=0).expand(8, 3))
    assert np.allclose(np.maximum(saved, 0), mean_label.numpy(), atol=1e-6)


def test_peer_normalisation_pulls_neurons_toward_the_layer_mean():
    from neurocredit.rules.ff_rate import peer_loss

    activity = torch.tensor([[1.0, 0.0, 0.5], [3.0, 0.0, 0.5]], requires_grad=True)
    loss, running = peer_loss(torch.zeros(3), activity, 0.9)
    loss.backward()
    assert torch.allclose(running, 0.1 * torch.tensor([2.0, 0.0, 0.5]))
    # neuron 0 above the layer's mean activity, neuron 1 below: descent lowers 0 and raises 1
    assert bool((activity.grad[:, 0] > 0).all()) and bool((activity.grad[:, 1] < 0).all())


@pytest.mark.parametrize("kind, options", [("rate", ALL_RATE), ("lif", ALL_LIF)])
def test_ff_with_every_option_resumes_bit_for_bit(kind, options):
    """Peer means and the generator are checkpoint state: a rule restored from a state dict
    continues exactly as the original (the state deep-copied, as a checkpoint file would be: in
    memory, torch's optimizers would share their step counters)."""
    data = batches(3)
    original = ff_rule(kind, (12, 10, 3), options)
    for features, labels in data[:2]:
        original.train_batch(features, labels)
    restored = ff_rule(kind, (12, 10, 3), options)
    restored.load_state_dict(copy.deepcopy(original.state_dict()))
    for rule in (original, restored):
        rule.train_batch(*data[2])
    for a, b in zip(original.to_network().layers, restored.to_network().layers):
        assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)


@pytest.mark.parametrize("kind, options, message", [
    ("rate", {"loss": "hinge"}, "rule.loss"),
    ("rate", {"neutral": "uniform"}, "rule.neutral"),
    ("rate", {"peer_momentum": 1.0}, "peer_momentum"),
    ("lif", {"negatives": "hard"}, "one presentation per label"),
    ("lif", {"neutral": "mean"}, "negative values"),
])
def test_bad_ff_options_are_one_clear_error(kind, options, message):
    with pytest.raises(NeurocreditError, match=message):
        rule_class("ff", kind).parse_options(options)
