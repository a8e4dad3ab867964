"""A small conv SNN on the 8x8 digits trained with BPTT (models/digits-bptt-conv-snn.yaml, made
smaller and shorter here): it learns, keeps its fused pool, and every CLI command runs on it."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import yaml

from neurocredit.cli import main
from neurocredit.config import load_config, models_dir, parse_config

BATCHES = 40


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory):
    """digits-bptt-conv-snn with one conv of 8 channels, a fused 2x2 pool before the output layer,
    8 steps, trained for 40 batches of 32 (seeded): (network, path, dataset)."""
    import torch

    from neurocredit.io import save_network
    from neurocredit.train import TrainingSession

    raw = yaml.safe_load((models_dir() / "digits-bptt-conv-snn.yaml").read_text())
    raw["network"]["encoder"]["steps"] = 8
    raw["network"]["layers"] = [{"conv": {"channels": 8, "kernel": 3, "padding": 1}}, {"pool": 2}]
    raw["training"]["learning_rate"] = 0.01
    session = TrainingSession(parse_config(raw))
    order = session.rng.permutation(len(session.dataset.x_train))
    x, y = session.dataset.x_train, session.dataset.y_train
    for batch in range(BATCHES):
        index = order[batch * 32:(batch + 1) * 32]
        session.rule.train_batch(torch.as_tensor(x[index]), torch.as_tensor(y[index]))
    network = session.network()
    path = save_network(network, tmp_path_factory.mktemp("conv") / "digits-conv.h5")
    return network, str(path), session.dataset


def test_both_conv_configs_load():
    for name in ("digits-bptt-conv-snn", "fmnist-bptt-conv-snn"):
        config = load_config(name)
        assert config.rule.name == "bp" and config.network.neuron.kind == "lif"
        assert [next(iter(item)) for item in config.network.layers][:2] == ["conv", "pool"]


def test_digits_conv_bptt_learns_and_keeps_its_pool(conv_model):
    from neurocredit.sim import simulate

    network, _, dataset = conv_model
    assert network.shapes == ((1, 8, 8), (8, 8, 8), (10,))
    assert network.layers[1].pool == 2 and network.unfused_weight(1).shape == (10, 8 * 4 * 4)
    record = simulate(network, dataset.x_test, dataset.y_test, backend="norse")
    assert record.accuracy >= 0.5  # chance is 0.1; 78 % measured with this seed (validation split held out)


def test_info_and_simulate_on_a_conv_model(conv_model, capsys):
    network, path, dataset = conv_model
    assert main(["info", path]) == 0
    text = capsys.readouterr().out
    assert "conv1: 1x8x8 -> conv2d -> 8x8x8, kernel 8x1x3x3, stride 1x1, padding 1x1" in text
    assert "fc1: 8x8x8 -> pool 2x2 (fused) + dense -> 10" in text
    assert main(["simulate", path, "--backend", "reference", "--limit", "20", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["samples"] == 20 and payload["sizes"] == [64, 512, 10]
    assert payload["mean_spikes_per_sample"][0] > 0


def test_compare_reference_norse_brian2_on_a_conv_model(conv_model, capsys):
    _, path, _ = conv_model
    assert main(["compare", path, "--backends", "reference,norse,brian2", "--limit", "6", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert len(payload["pairs"]) == 3
    for pair in payload["pairs"]:
        assert pair["overall"] == 1.0
        assert all(layer["events_a"] == layer["events_b"] > 0 for layer in pair["layers"])


def test_report_on_a_conv_model(conv_model, capsys):
    network, path, _ = conv_model
    assert main(["report", path, "--limit", "10", "--format", "json", "--target", "loihi2,cpu"]) == 0
    payload = json.loads(capsys.readouterr().out)
    conv = payload["layers"][0]
    assert conv["macs_per_sample"] == 8 * 64 * 9 and payload["input"]["fan_out"] == 8 * 9
    assert payload["ann_baseline"]["macs_per_sample"] == 8 * 64 * 9 + 512 * 10


@pytest.mark.needs_lava
@pytest.mark.timeout(300)
def test_deploy_verify_on_a_conv_model(conv_model, capsys):
    _, path, _ = conv_model
    assert main(["deploy", path, "--target", "loihi2", "--verify", "--limit", "30", "--lava-limit", "3",
                 "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["spike_agreement"] == {"emulator_vs_lava": 1.0, "float_vs_lava_floating": 1.0}
    assert payload["accuracy"]["lava"] == payload["accuracy"]["emulator_on_lava_samples"]
    assert [layer["kind"] for layer in payload["partition"]["layers"]] == ["conv2d", "dense"]
    assert abs(payload["accuracy_drop"]["emulator"]) <= 0.1
    assert np.isfinite(payload["quantization"]["layers"][0]["conv_buffer_headroom"])


def test_html_report_shows_feature_maps_of_conv_layers(conv_model, tmp_path):
    from neurocredit.report.html import plot_feature_maps

    _, path, _ = conv_model
    output = tmp_path / "report.html"
    assert main(["report", path, "--limit", "4", "--format", "html", "-o", str(output), "--target", "loihi2"]) == 0
    page = output.read_text()
    assert 'id="plot-feature-maps"' in page and "one panel per channel" in page
    # only (C, H, W) populations get panels: here one row (conv1), the flat input is skipped
    rasters = [np.zeros((3, 1, 4), bool), np.ones((3, 1, 2 * 2 * 2), bool)]
    png = base64.b64decode(plot_feature_maps(rasters, [[4], [2, 2, 2]], ["input", "conv1"]))
    assert png.startswith(b"\x89PNG")


def test_rate_backprop_trains_a_conv_network_and_converts_to_spikes(monkeypatch):
    import torch

    from neurocredit import conv
    from neurocredit.config import TrainingConfig
    from neurocredit.convert import ConversionOptions, convert
    from neurocredit.data import load_dataset
    from neurocredit.network import EncoderSpec, Network, NeuronSpec, init_typed_layers
    from neurocredit.rules import rule_class
    from neurocredit.sim import rate_backend, simulate

    digits = load_dataset("digits")
    layers = init_typed_layers((1, 8, 8), [{"conv": {"channels": 6, "kernel": 3, "stride": 1, "padding": 1}},
                                           {"pool": 2}], 10, np.random.default_rng(0))
    network = Network(layers, NeuronSpec("rate", "relu"), EncoderSpec())
    cls = rule_class("bp", "rate")
    rule = cls(network, cls.parse_options({}), TrainingConfig(learning_rate=0.01, seed=0), 10)
    generator = np.random.default_rng(0)
    for _ in range(60):
        index = generator.choice(len(digits.x_train), 32, replace=False)
        rule.train_batch(torch.as_tensor(digits.x_train[index]), torch.as_tensor(digits.y_train[index]))
    trained = rule.to_network()
    assert trained.layers[1].pool == 2  # the pooled form was trained, the fusion kept
    # the rule's torch conv2d forward and the numpy im2col backend compute the same logits
    logits = rule.predict(torch.as_tensor(digits.x_test[:50])).numpy()
    np.testing.assert_allclose(logits, rate_backend.forward(trained, digits.x_test[:50])[-1], atol=1e-4)
    accuracy = simulate(trained, digits.x_test, digits.y_test, backend="rate").accuracy
    assert accuracy >= 0.8  # chance is 0.1
    # im2col goes through the samples in groups (bounded memory): the logits of one group
    whole = rate_backend.forward(trained, digits.x_test[:50])[-1]
    monkeypatch.setattr(conv, "PATCH_BYTES", 7 * 64 * 9 * 8)  # 7 samples of conv1's patches
    grouped = rate_backend.forward(trained, digits.x_test[:50])[-1]
    np.testing.assert_allclose(grouped, whole, rtol=1e-12, atol=1e-12)
    assert grouped.shape == (50, 10)
    spiking = convert(trained, digits.x_train[:200], ConversionOptions(steps=20))
    assert [layer.kind for layer in spiking.layers] == ["conv2d", "dense"]
    converted = simulate(spiking, digits.x_test[:60], digits.y_test[:60], backend="reference")
    assert converted.accuracy >= 0.5
