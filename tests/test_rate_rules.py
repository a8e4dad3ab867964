import numpy as np
import pytest
import torch

from neurocredit.config import load_config
from neurocredit.data import load_digits
from neurocredit.sim import simulate
from neurocredit.train import train


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def quiet(line):
    pass


def test_dfa_learns_digits_above_90_percent(digits):
    config = load_config("digits-dfa-rate")
    result = train(config, epochs=6, dataset=digits, progress=False, log=quiet)
    assert result.test_accuracy > 0.90
    # the accuracy train() reports is the saved network's, through the rate backend
    record = simulate(result.network, digits.x_test, digits.y_test)
    assert record.accuracy == result.test_accuracy


def test_dfa_never_uses_autograd(digits, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("DFA called autograd")

    monkeypatch.setattr(torch.autograd, "backward", forbidden)
    monkeypatch.setattr(torch.autograd, "grad", forbidden)
    monkeypatch.setattr(torch.Tensor, "backward", forbidden)
    config = load_config("digits-dfa-rate")
    before = [w.copy() for w in __import__("neurocredit.config", fromlist=["x"]).build_network(
        config, 64, 10, config.training.seed).weights]
    result = train(config, epochs=1, dataset=digits, progress=False, log=quiet)
    after = result.network.weights
    assert all(np.abs(a - b).max() > 1e-4 for a, b in zip(after, before))
    # feedback matrices are saved with the network and stay fixed
    assert result.network.extras["dfa/feedback_1"].shape == (256, 10)


def test_bp_baseline_learns(digits):
    result = train(load_config("digits-bp-rate"), epochs=4, dataset=digits, progress=False, log=quiet)
    assert result.test_accuracy > 0.90


def test_same_seed_same_weights(digits):
    config = load_config("digits-dfa-rate")
    first = train(config, epochs=1, dataset=digits, progress=False, log=quiet).network
    second = train(config, epochs=1, dataset=digits, progress=False, log=quiet).network
    third = train(config, epochs=1, seed=5, dataset=digits, progress=False, log=quiet).network
    for a, b in zip(first.weights, second.weights):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.weights[0], third.weights[0])
