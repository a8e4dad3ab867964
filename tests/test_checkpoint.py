"""Resumable training: a run killed after an epoch and resumed from its checkpoint ends with the
same weights, bit for bit, as the uninterrupted run (every rule x {rate, lif}); damaged
checkpoints and diverging runs are one clear error."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from neurocredit.config import load_config
from neurocredit.errors import NeurocreditError
from neurocredit.io import load_network

EPOCHS, MAX_BATCHES = 3, 3


def _rule_configs() -> list[str]:
    """For every registered rule x neuron kind, the first ready digits config that trains it."""
    from neurocredit.config import models_dir
    from neurocredit.rules import rule_specs

    configs = {}
    for path in sorted(models_dir().glob("digits-*.yaml"), key=lambda p: ("conv" in p.stem, p.stem)):  # dense first
        config = load_config(path)
        configs.setdefault((config.rule.name, config.network.neuron.kind), path.stem)
    wanted = [(spec.name, kind) for spec in rule_specs() for kind in spec.variants]
    missing = [pair for pair in wanted if pair not in configs]
    assert not missing, f"no ready digits config trains {missing}"
    return [configs[pair] for pair in wanted]


# every rule x neuron kind: the ready digits configs, made small (hidden 24, 3 batches an epoch)
CONFIGS = _rule_configs()


class Killed(Exception):
    """Stands for the process dying right after an epoch's checkpoint was written."""


def small(name: str, **training):
    config = load_config(name)
    config = dataclasses.replace(config, network=dataclasses.replace(config.network, hidden=[24]))
    return config.replace_training(epochs=EPOCHS, **training)


@pytest.fixture(scope="module")
def digits():
    from neurocredit.data import load_digits

    return load_digits()


def _train(config, dataset, **kwargs):
    from neurocredit.train import train

    return train(config, dataset=dataset, progress=False, log=lambda line: None, max_batches=MAX_BATCHES, **kwargs)


@pytest.mark.parametrize("name", CONFIGS)
def test_killed_and_resumed_run_ends_with_identical_weights(name, digits, tmp_path):
    config = small(name)
    whole = _train(config, digits)

    def kill_after_first(session, stats):
        if stats.epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        _train(config, digits, checkpoint_dir=tmp_path, on_epoch=kill_after_first)
    after_kill = load_network(tmp_path / "network.h5")
    resumed = _train(config, digits, resume=tmp_path)
    for a, b in zip(whole.network.weights + whole.network.biases, resumed.network.weights + resumed.network.biases):
        assert np.array_equal(a, b)
    assert [s.loss for s in resumed.history] == [s.loss for s in whole.history]
    assert resumed.test_accuracy == whole.test_accuracy
    # the epochs after the kill changed the weights (so equality above is not equality of untouched arrays)
    assert not np.array_equal(after_kill.weights[0], whole.network.weights[0])


def test_resume_restores_state_not_only_weights(digits, tmp_path):
    """Resuming must restore the optimizer moments and the shuffling generator: weights alone differ."""
    from neurocredit.checkpoint import load_checkpoint
    from neurocredit.train import TrainingSession

    config = small("digits-dfa-rate")
    first = _train(config.replace_training(epochs=1), digits, checkpoint_dir=tmp_path)
    whole = _train(config.replace_training(epochs=2), digits)
    state = load_checkpoint(tmp_path)
    session = TrainingSession(config.replace_training(epochs=2), dataset=digits)
    with __import__("torch").no_grad():
        for weight, saved in zip(session.rule.weights, [state["rule"]["tensors"][f"weight_{i}"]
                                                         for i in range(len(session.rule.weights))]):
            weight.copy_(saved)
    session.history = list(first.history)  # weights and epoch only: fresh optimizer moments and batch order
    session.run_epoch(progress=False, max_batches=MAX_BATCHES)
    assert not np.array_equal(session.rule.to_network().weights[0], whole.network.weights[0])


def test_checkpoint_files_and_contents(digits, tmp_path):
    from neurocredit.checkpoint import SCHEMA_VERSION, load_checkpoint

    result = _train(small("digits-dfa-rate").replace_training(epochs=2), digits, checkpoint_dir=tmp_path)
    state = load_checkpoint(tmp_path)
    assert state["schema_version"] == SCHEMA_VERSION and state["epoch"] == 2
    assert [h["epoch"] for h in state["history"]] == [1, 2]
    saved = load_network(tmp_path / "network.h5")
    assert np.array_equal(saved.weights[0], result.network.weights[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "network.h5"]  # no temporary files left
    assert result.network.provenance["max_batches"] == MAX_BATCHES  # a shortened run says so


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_checkpoint_is_one_clear_error(damage, digits, tmp_path):
    _train(small("digits-dfa-rate").replace_training(epochs=1), digits, checkpoint_dir=tmp_path)
    path = tmp_path / "checkpoint.pt"
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00not a checkpoint" * 50, "empty": b""}[damage])
    with pytest.raises(NeurocreditError, match="checkpoint.pt: damaged or truncated checkpoint"):
        _train(small("digits-dfa-rate"), digits, resume=tmp_path)


def test_resume_with_another_config_is_refused(digits, tmp_path):
    _train(small("digits-dfa-rate").replace_training(epochs=1), digits, checkpoint_dir=tmp_path)
    with pytest.raises(NeurocreditError, match="another setup: training.batch_size"):
        _train(small("digits-dfa-rate", batch_size=16), digits, resume=tmp_path)
    config = small("digits-dfa-rate")
    other_split = dataclasses.replace(config, data=dataclasses.replace(config.data, validation=0.2))
    with pytest.raises(NeurocreditError, match=r"another setup: data\.(train_samples|validation)"):
        _train(other_split, digits, resume=tmp_path)
    with pytest.raises(NeurocreditError, match="no checkpoint there"):
        _train(small("digits-dfa-rate"), digits, resume=tmp_path / "elsewhere")


def test_diverging_loss_stops_and_keeps_the_last_good_checkpoint(digits, tmp_path):
    from neurocredit.checkpoint import load_checkpoint

    config = small("digits-bp-rate", optimizer="sgd")

    def blow_up(session, stats):  # after a good epoch 1, a learning rate no float32 survives
        if stats.epoch == 1:
            session.rule.set_epoch = lambda epoch: None
            for group in session.rule.optimizer.param_groups:
                group["lr"] = 1e38

    with pytest.raises(NeurocreditError, match=r"diverged in epoch 2 .*last good checkpoint \(epoch 1\) is kept in"):
        _train(config, digits, checkpoint_dir=tmp_path, on_epoch=blow_up)
    state = load_checkpoint(tmp_path)
    assert state["epoch"] == 1
    assert all(np.isfinite(t.numpy()).all() for t in state["rule"]["tensors"].values())


def test_train_cli_checkpoint_and_resume(run_cli, tmp_path):
    first = run_cli("train", "digits-dfa-rate", "--epochs", "1", "--no-progress", "--out", tmp_path / "a.h5",
                    "--checkpoint-dir", tmp_path / "ck", check_rc=0)
    assert "val acc" in first.stdout and "test acc" not in first.stdout.split("saved")[0]
    second = run_cli("train", "digits-dfa-rate", "--epochs", "2", "--no-progress", "--out", tmp_path / "b.h5",
                     "--resume", tmp_path / "ck", check_rc=0)
    assert second.stdout.startswith("epoch   2/2")
    (tmp_path / "ck" / "checkpoint.pt").write_bytes(b"junk")
    broken = run_cli("train", "digits-dfa-rate", "--epochs", "2", "--resume", tmp_path / "ck", check_rc=2)
    assert broken.stderr.count("\n") == 1 and "damaged or truncated checkpoint" in broken.stderr
