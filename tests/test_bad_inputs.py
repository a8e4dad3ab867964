"""Bad input that used to escape: each is one clear line on stderr and exit code 2."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from neurocredit.errors import NeurocreditError
from neurocredit.io import load_network, save_network
from neurocredit.network import Network, NeuronSpec, init_layers


def _digits_rate_network(sizes=(64, 20, 10)) -> Network:
    layers = init_layers(sizes, np.random.default_rng(0))
    return Network(layers, NeuronSpec("rate", "tanh"), provenance={"rule": "dfa", "data": "digits"})


def _one_error_line(result, *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_negative_seed_is_one_line(run_cli, tmp_path):
    config = tmp_path / "negative.yaml"
    config.write_text("name: negative\ndata: {name: digits}\nnetwork: {hidden: [8]}\nrule: {name: dfa}\n"
                      "training: {epochs: 1, seed: -3}\n")
    _one_error_line(run_cli("train", config, "--out", tmp_path / "x.h5"), "negative.yaml: training.seed must be >= 0",
                    "got -3")
    assert not (tmp_path / "x.h5").exists()


def test_network_without_its_output_layer_is_refused(run_cli, tmp_path):
    network = _digits_rate_network()
    truncated = network.replace(layers=network.layers[:-1])  # the 20-wide hidden layer is now the output
    path = save_network(truncated, tmp_path / "truncated.h5")
    result = run_cli("eval", path)
    _one_error_line(result, "reads out 20 classes", "'digits' has 10")
    assert "accuracy" not in result.stdout


def test_extras_of_the_wrong_shape_are_refused(run_cli, tmp_path):
    network = _digits_rate_network().replace(extras={"dfa/feedback_1": np.zeros((20, 10), np.float32)})
    path = save_network(network, tmp_path / "dfa.h5")
    assert load_network(path).extras["dfa/feedback_1"].shape == (20, 10)
    with h5py.File(path, "r+") as handle:  # damage it: a feedback matrix for another network
        del handle["extras/dfa/feedback_1"]
        handle["extras/dfa/feedback_1"] = np.zeros((7, 10), np.float32)
    with pytest.raises(NeurocreditError, match=r"extras\['dfa/feedback_1'\] has shape \(7, 10\) but this "
                                               r"64-20-10 network needs \(20, 10\)"):
        load_network(path)
    _one_error_line(run_cli("info", path), "dfa/feedback_1", "needs (20, 10)")


def test_an_unknown_rule_array_is_refused(tmp_path):
    network = _digits_rate_network().replace(extras={"chl/feedback_9": np.zeros((3, 3), np.float32)})
    path = save_network(network, tmp_path / "chl.h5")
    with pytest.raises(NeurocreditError, match=r"extras\['chl/feedback_9'\] is not an array rule 'chl' saves"):
        load_network(path)


@pytest.mark.parametrize("rule, options, message", [
    ("dfa", "feedback_init: normal", "rule.feedback_init must be uniform or gaussian"),
    ("dfa", "feedback_layout: kernel", "rule.feedback_layout must be position or channel, got 'kernel'"),
    ("sigprop", "loss: hinge", "rule.loss must be one of"),
    ("chl", "beta: 0", "rule.beta=0.0 must be a number > 0"),
    ("bp", "surrogate: step", "rule.surrogate must be one of"),
])
def test_every_rules_option_errors_name_the_config_file(tmp_path, rule, options, message):
    from neurocredit.config import load_config

    kind = "lif" if rule == "bp" else "rate"
    encoder = "encoder: {kind: bernoulli, steps: 5}, " if kind == "lif" else ""
    config = tmp_path / f"bad-{rule}.yaml"
    config.write_text(f"name: bad\ndata: {{name: digits}}\nnetwork: {{hidden: [8], {encoder}neuron: {{kind: {kind}}}}}\n"
                      f"rule: {{name: {rule}, {options}}}\ntraining: {{epochs: 1}}\n")
    with pytest.raises(NeurocreditError) as error:
        load_config(config)
    assert str(error.value).startswith(f"{config}: {message}"), str(error.value)


@pytest.mark.parametrize("reader", ["config", "target", "sweep", "contenders"])
def test_malformed_yaml_is_one_line_with_its_position_in_every_reader(tmp_path, reader):
    from neurocredit.compare_rules import parse_contenders
    from neurocredit.config import load_config
    from neurocredit.sweep import load_sweep
    from neurocredit.targets import load_target

    load = {"config": load_config, "target": load_target, "sweep": load_sweep, "contenders": parse_contenders}[reader]
    path = tmp_path / f"broken-{reader}.yaml"
    path.write_text("contenders:\n  - config: [digits-dfa-rate\n")
    with pytest.raises(NeurocreditError) as error:
        load(str(path))
    message = str(error.value)
    assert message.startswith(f"{path}: malformed YAML at line 3, column 1:") and "\n" not in message, message
