"""Predictive coding (pc) and forward-forward (ff), rate and spiking: PC's equivalence with
backprop under the fixed-prediction assumption, FF's layer locality, the saved networks, memory
flat in T, option errors, digits learning bounds and CLI round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from neurocredit.config import TrainingConfig, load_config, models_dir
from neurocredit.data import load_digits
from neurocredit.errors import NeurocreditError
from neurocredit.network import EncoderSpec, LIFParameters, Network, NeuronSpec, init_layers
from neurocredit.rules import rule_class
from neurocredit.sim import simulate
from neurocredit.train import train
from conftest import peak_allocated_bytes


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def quiet(line):
    pass


def make_network(kind: str, sizes, steps: int = 10, seed: int = 0) -> Network:
    layers = init_layers(sizes, np.random.default_rng(seed), gain=2.0 if kind == "lif" else 1.0)
    if kind == "lif":
        return Network(layers, NeuronSpec("lif", lif=LIFParameters(0.5, 0.2, 1.0)), EncoderSpec("bernoulli", steps, 1.0, 0))
    return Network(layers, NeuronSpec("rate", "relu"))


def make_rule(name: str, kind: str, sizes, options=None, steps: int = 10, training=None):
    cls = rule_class(name, kind)
    return cls(make_network(kind, sizes, steps), cls.parse_options(options or {}), training or TrainingConfig(seed=0),
               sizes[-1])


# --- predictive coding ---------------------------------------------------------------------------


def backprop_gradients(weights, biases, features, labels, output_loss):
    parameters = [w.clone().requires_grad_(True) for w in weights]
    hidden = features
    for index, (weight, bias) in enumerate(zip(parameters, biases)):
        hidden = hidden @ weight.T + bias
        if index < len(weights) - 1:
            hidden = hidden.tanh()
    if output_loss == "ce":
        loss = torch.nn.functional.cross_entropy(hidden, labels)
    else:
        loss = 0.5 * (hidden - torch.nn.functional.one_hot(labels, 4).double()).square().sum(dim=1).mean()
    loss.backward()
    return [p.grad for p in parameters]


def tiny_pc_problem(seed: int, output_loss: str):
    """A 6-8-7-4 tanh network (float64), a batch of 5, its one-hot targets and backprop's
    weight gradients."""
    generator = torch.Generator().manual_seed(seed)
    sizes = (6, 8, 7, 4)
    weights = [torch.randn(n_out, n_in, dtype=torch.float64, generator=generator) / n_in ** 0.5
               for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    biases = [0.1 * torch.randn(n, dtype=torch.float64, generator=generator) for n in sizes[1:]]
    features = torch.rand(5, 6, dtype=torch.float64, generator=generator)
    labels = torch.tensor([0, 1, 2, 3, 1])
    target = torch.nn.functional.one_hot(labels, 4).double()
    return weights, biases, features, target, backprop_gradients(weights, biases, features, labels, output_loss)


@pytest.mark.parametrize("output_loss", ["ce", "mse"])
def test_pc_with_fixed_predictions_reproduces_backprop_gradient(output_loss):
    from neurocredit.rules.pc import PCOptions
    from neurocredit.rules.pc_rate import pc_errors

    weights, biases, features, target, expected = tiny_pc_problem(0, output_loss)
    cosines = {}
    for fixed in (True, False):
        options = PCOptions(inference_steps=100, inference_rate=0.2, fixed_prediction=fixed, output_loss=output_loss)
        errors, presynaptic = pc_errors(weights, biases, "tanh", features, target, options)
        gradients = [-(e.T @ p) / 5 for e, p in zip(errors, presynaptic)]
        cosines[fixed] = [float(torch.nn.functional.cosine_similarity(g.flatten(), b.flatten(), dim=0))
                          for g, b in zip(gradients, expected)]
    assert min(cosines[True]) > 0.99, cosines
    # without the assumption the values move and the update is only an approximation
    assert min(cosines[False]) < 0.99, cosines


@pytest.mark.parametrize("output_loss", ["ce", "mse"])
def test_pc_error_reaches_layer_below_as_scaled_backprop_delta(output_loss):
    """From the feed-forward initialisation the output error enters one layer per iteration:
    after j iterations the update of W_{N-j} is exactly γ^j times backprop's gradient (the
    truncated-inference regime the FMNIST config trains in, module doc of rules.pc)."""
    from neurocredit.rules.pc import PCOptions
    from neurocredit.rules.pc_rate import pc_errors

    weights, biases, features, target, expected = tiny_pc_problem(3, output_loss)
    rate = 0.3
    for steps in (1, 2):
        errors, presynaptic = pc_errors(weights, biases, "tanh", features, target,
                                        PCOptions(inference_steps=steps, inference_rate=rate, output_loss=output_loss))
        layer = len(weights) - 1 - steps
        gradient = -(errors[layer].T @ presynaptic[layer]) / 5
        assert torch.allclose(gradient, rate ** steps * expected[layer], rtol=1e-9, atol=1e-12), steps
        assert not torch.allclose(gradient, torch.zeros_like(gradient))
        # the layers below have not been reached yet
        assert all(not errors[i].any() for i in range(layer))


def test_rate_pc_update_is_the_batch_mean_of_error_times_presynaptic_value():
    rule = make_rule("pc", "rate", (5, 6, 3), {"fixed_prediction": True, "inference_steps": 50})
    features = torch.rand(4, 5, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 0])
    batch_gradients = rule.gradients(features, labels)
    single = [rule.gradients(features[i : i + 1], labels[i : i + 1]) for i in range(4)]
    for index, gradient in enumerate(batch_gradients):
        mean = torch.stack([s[index] for s in single]).mean(dim=0)
        assert torch.allclose(gradient, mean, atol=1e-6), index


def test_spiking_pc_memory_does_not_grow_with_steps(digits):
    features, labels = torch.as_tensor(digits.x_train[:32]), torch.as_tensor(digits.y_train[:32])
    peaks = {}
    for steps in (25, 100):
        rule = make_rule("pc", "lif", (64, 100, 10), steps=steps)
        rule.train_batch(features, labels)  # optimizer state allocated
        peaks[steps] = peak_allocated_bytes(lambda: rule.train_batch(features, labels))
    assert peaks[100] <= 1.2 * peaks[25], peaks


# --- forward-forward -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rate", "lif"])
def test_ff_layer_weights_do_not_depend_on_the_layers_above(kind):
    """Bit-identical first layer (weights, label weights, bias) whether the layers above are
    wider, narrower or absent: nothing from above reaches it."""
    generator = torch.Generator().manual_seed(2)
    batches = [(torch.rand(8, 12, generator=generator), torch.randint(0, 3, (8,), generator=generator))
               for _ in range(4)]
    first = []
    for sizes in [(12, 10, 9, 7, 3), (12, 10, 4, 3), (12, 10, 3)]:
        rule = make_rule("ff", kind, sizes, {"threshold": 0.5})
        for features, labels in batches:
            rule.train_batch(features, labels)
        network = rule.to_network()
        first.append((network.layers[0].weight, network.layers[0].bias, network.extras["ff/label_weights"]))
    assert not np.array_equal(first[0][0], make_network(kind, (12, 10, 3)).layers[0].weight)  # it learned
    for other in first[1:]:
        for reference, array in zip(first[0], other):
            assert np.array_equal(reference, array)


def test_rate_ff_saved_network_predicts_what_the_normalised_readout_predicts(digits):
    rule = make_rule("ff", "rate", (64, 40, 30, 10), {"threshold": 1.0})
    for start in range(0, 320, 32):
        rule.train_batch(torch.as_tensor(digits.x_train[start : start + 32]),
                         torch.as_tensor(digits.y_train[start : start + 32]))
    from neurocredit.rules.ff_rate import unit_rows

    features = torch.as_tensor(digits.x_test)
    with torch.no_grad():  # the training-time path: normalised inputs of layers 2.. and of the readout
        hidden = rule.first_layer(features, torch.zeros(len(features), 10))
        hidden = torch.relu(unit_rows(hidden) @ rule.weights[1].T)
        normalised = unit_rows(hidden) @ rule.weights[2].T
    network = rule.to_network()
    assert all(not np.any(layer.bias) for layer in network.layers[1:])
    record = simulate(network, digits.x_test, digits.y_test, backend="rate")
    assert np.array_equal(record.predictions, normalised.argmax(dim=1).numpy())


def test_spiking_ff_memory_does_not_grow_with_steps(digits):
    features, labels = torch.as_tensor(digits.x_train[:32]), torch.as_tensor(digits.y_train[:32])
    peaks = {}
    for steps in (25, 100):
        rule = make_rule("ff", "lif", (64, 100, 10), {"block_steps": 25}, steps=steps)
        rule.train_batch(features, labels)
        peaks[steps] = peak_allocated_bytes(lambda: rule.train_batch(features, labels))
    assert peaks[100] <= 1.2 * peaks[25], peaks


def graph_nodes(tensor: torch.Tensor) -> list[str]:
    """Names of every autograd node ``tensor`` depends on."""
    seen, stack, names = set(), [tensor.grad_fn], []
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.append(node.name())
        stack.extend(next_node for next_node, _ in node.next_functions)
    return names


def test_spiking_ff_never_differentiates_a_spike_or_a_step(monkeypatch):
    """The only autograd graph is the within-step dependence of the mean voltage on W and b: one
    loss per layer, the same small graph for any T (no node per step, no spike function)."""
    original = torch.Tensor.backward
    sizes = {}
    for steps in (5, 40):
        rule = make_rule("ff", "lif", (12, 10, 3), steps=steps)
        graphs = []

        def recording_backward(self, *args, graphs=graphs, **kwargs):
            graphs.append(graph_nodes(self))
            return original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, "backward", recording_backward)
        generator = torch.Generator().manual_seed(4)
        rule.train_batch(torch.rand(6, 12, generator=generator), torch.randint(0, 3, (6,), generator=generator))
        assert len(graphs) == 2  # one loss per layer
        assert not any("Spike" in name or "Gt" in name for graph in graphs for name in graph)
        sizes[steps] = [len(graph) for graph in graphs]
    assert sizes[5] == sizes[40] and max(sizes[5]) < 40, sizes


@pytest.mark.parametrize("name, kind, options, message", [
    ("pc", "rate", {"inference_steps": 0}, "inference_steps"),
    ("pc", "rate", {"output_loss": "hinge"}, "output_loss"),
    ("pc", "lif", {"error_rate": 0.0}, "error_rate"),
    ("pc", "lif", {"surrogate": "step"}, "surrogate"),
    ("ff", "rate", {"sharpness": 0}, "sharpness"),
    ("ff", "lif", {"block_steps": 0}, "block_steps"),
    ("ff", "rate", {"thresold": 1}, "unknown key 'thresold'"),
])
def test_bad_options_are_one_clear_error(name, kind, options, message):
    with pytest.raises(NeurocreditError, match=message):
        rule_class(name, kind).parse_options(options)


def test_rate_ff_needs_relu_and_a_hidden_layer():
    network = make_network("rate", (5, 4, 3)).replace(neuron=NeuronSpec("rate", "tanh"))
    with pytest.raises(NeurocreditError, match="relu"):
        rule_class("ff", "rate")(network, rule_class("ff", "rate").parse_options({}), TrainingConfig(), 3)
    with pytest.raises(NeurocreditError, match="hidden layer"):
        make_rule("ff", "rate", (5, 3))


# --- learning bounds and round trips --------------------------------------------------------------


@pytest.mark.timeout(300)
@pytest.mark.parametrize("config, epochs, bound", [
    # measured with these epochs (seed 0): 92.20 %, 88.58 %, 89.97 %, 90.81 %
    ("digits-pc-rate", 3, 0.90),
    ("digits-pc-snn", 2, 0.86),
    ("digits-ff-rate", 3, 0.87),
    ("digits-ff-snn", 2, 0.88),
])
def test_digits_learning_bounds(digits, config, epochs, bound):
    result = train(load_config(config), epochs=epochs, dataset=digits, progress=False, log=quiet)
    assert result.test_accuracy > bound, result.test_accuracy
    assert result.network.provenance["rule"] == config.split("-")[1]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("config, backend", [("digits-pc-snn", "norse"), ("digits-ff-rate", "rate")])
def test_train_eval_round_trip(run_cli, tmp_path, config, backend):
    model = tmp_path / "m.h5"
    result = run_cli("train", models_dir() / f"{config}.yaml", "--epochs", "1", "--out", model, "--no-progress",
                     check_rc=0)
    trained = float(result.stdout.split("test accuracy ")[1].split("%")[0]) / 100
    evaluated = json.loads(run_cli("eval", model, "--json", check_rc=0).stdout)
    assert evaluated["backend"] == backend and evaluated["samples"] == 359
    assert evaluated["accuracy"] == pytest.approx(trained, abs=1e-4)


# --- training cost ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rule, kind, expected", [
    # 5-4-3: S = 32, S_up = 12, H = 4, M = 7, T = 6 (lif) or 1 (rate); K = 20 inference steps
    ("pc", "rate", (21, 32, 20 * (12 + 4))),
    ("pc", "lif", (1, 6 * 32, 6 * (12 + 7))),
    ("ff", "rate", (3, 2 * 32, 2 * 7)),
    ("ff", "lif", (3, 2 * 32, 2 * 6 * 7)),
])
def test_training_cost_formulas(rule, kind, expected):
    from neurocredit.energy import training_cost

    network = make_network(kind, (5, 4, 3), steps=6)
    cost = training_cost(network, rule)
    assert (cost.forward_passes, cost.plasticity_ops, cost.error_ops) == expected
    assert cost.label and cost.formula


def test_spec_modules_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; import neurocredit.rules.pc, neurocredit.rules.ff; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("feedback, same", [(0.0, True), (2.0, False)])
def test_spiking_pc_value_populations_are_the_deployed_network_without_value_feedback(feedback, same):
    """With κ = 0 the value populations spike exactly as the saved feed-forward network (the
    reference simulation); with κ > 0 the error currents move them."""
    from neurocredit.neurons import run_lif_network
    from neurocredit.rules.pc import SpikingPCOptions
    from neurocredit.rules.pc_lif import initial_circuit, pc_lif_step

    network = make_network("lif", (12, 16, 4), steps=15)
    generator = torch.Generator().manual_seed(3)
    inputs = (torch.rand(15, 5, 12, generator=generator) < 0.5).to(torch.float64)
    weights = [torch.tensor(w, dtype=torch.float64) for w in network.weights]
    biases = [torch.tensor(b, dtype=torch.float64) for b in network.biases]
    target = 0.7 * torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 3, 0]), 4).double()
    options = SpikingPCOptions(value_feedback=feedback)
    circuit = initial_circuit(12, [16, 4], 5, torch.float64, "cpu")
    spikes = [[], []]
    for step in inputs:
        circuit = pc_lif_step(network.neuron.lif, options, 0.5, weights, biases, circuit, step, target)
        for index in range(2):
            spikes[index].append(circuit.emitted[index + 1].numpy() > 0)
    reference = run_lif_network(network, inputs.numpy())
    agree = all(np.array_equal(np.stack(s), r) for s, r in zip(spikes, reference.spikes))
    assert agree == same
    assert float(circuit.errors[0].abs().sum()) > 0  # the hidden errors received the output error
