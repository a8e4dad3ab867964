"""Spike encoders: rates, determinism, independence of batching, and the torch training encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurocredit.encoders import counter_uniform, encode, encode_torch
from neurocredit.errors import NeurocreditError
from neurocredit.network import EncoderSpec

FEATURES = np.array([[0.0, 0.1, 0.5, 0.9, 1.0, 1.7, -0.3]])


@pytest.mark.parametrize("kind", ["bernoulli", "poisson"])
def test_rate_codes_fire_at_max_rate_times_feature(kind):
    spec = EncoderSpec(kind, steps=4000, max_rate=0.6, seed=3)
    spikes = encode(spec, FEATURES)
    assert spikes.shape == (4000, 1, 7) and spikes.dtype == np.float32
    assert set(np.unique(spikes)) <= {0.0, 1.0}
    rates = spikes.mean(axis=(0, 1))
    expected = 0.6 * np.clip(FEATURES[0], 0, 1)
    np.testing.assert_allclose(rates, expected, atol=0.025)
    assert rates[0] == 0.0 and rates[-1] == 0.0  # 0 and negative features never fire


def test_counter_uniform_is_uniform_and_decorrelated():
    values = counter_uniform(0, np.arange(50), 40, 30)
    assert values.min() >= 0.0 and values.max() < 1.0
    assert abs(values.mean() - 0.5) < 0.01 and abs(values.var() - 1 / 12) < 0.005
    flat = values.reshape(-1)
    assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 0.02


def test_same_seed_same_spikes_other_seed_other_spikes():
    features = np.random.default_rng(0).random((5, 20))
    first = encode(EncoderSpec("bernoulli", 30, 1.0, 7), features)
    again = encode(EncoderSpec("bernoulli", 30, 1.0, 7), features)
    other = encode(EncoderSpec("bernoulli", 30, 1.0, 8), features)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_a_sample_gets_the_same_spikes_in_any_batch():
    features = np.random.default_rng(1).random((9, 16))
    spec = EncoderSpec("bernoulli", 25, 0.9, 2)
    whole = encode(spec, features)
    alone = encode(spec, features[4:5], offset=4)
    chunk = encode(spec, features[3:8], offset=3)
    assert np.array_equal(whole[:, 4:5], alone)
    assert np.array_equal(whole[:, 3:8], chunk)
    # and a different position in the split is a different spike train
    assert not np.array_equal(whole[:, 4:5], encode(spec, features[4:5], offset=0))


def test_latency_code_fires_once_bright_first():
    spikes = encode(EncoderSpec("latency", 11), np.array([[1.0, 0.5, 0.1, 0.0]]))
    assert spikes[:, 0].sum(axis=0).tolist() == [1.0, 1.0, 1.0, 0.0]
    assert [int(np.argmax(spikes[:, 0, i])) for i in range(3)] == [0, 5, 9]


def test_current_code_is_a_constant_current():
    current = encode(EncoderSpec("current", 3, 2.0), np.array([[0.25, 1.0]]))
    assert current.shape == (3, 1, 2)
    assert np.all(current == np.array([0.5, 2.0], dtype=np.float32))


def test_bad_inputs_are_clear_errors():
    with pytest.raises(NeurocreditError, match="batch, features"):
        encode(EncoderSpec("bernoulli", 3), np.zeros(4))
    with pytest.raises(NeurocreditError, match="steps must be >= 1"):
        encode(EncoderSpec("bernoulli", 3), np.zeros((1, 4)), steps=0)
    with pytest.raises(NeurocreditError, match="cannot encode"):
        encode(EncoderSpec("none"), np.zeros((1, 4)), steps=3)


def test_torch_training_encoder_has_the_same_rates_and_is_seeded():
    spec = EncoderSpec("bernoulli", steps=3000, max_rate=0.8, seed=0)
    features = torch.tensor(FEATURES, dtype=torch.float32)
    first = encode_torch(spec, features, generator=torch.Generator().manual_seed(4))
    again = encode_torch(spec, features, generator=torch.Generator().manual_seed(4))
    assert torch.equal(first, again)
    np.testing.assert_allclose(first.mean(dim=(0, 1)).numpy(), 0.8 * np.clip(FEATURES[0], 0, 1), atol=0.03)
    # exact at the ends: a zero feature never fires, a full-rate one always does; odd sizes
    # (not a multiple of the four 16-bit draws per random word) work
    full = encode_torch(EncoderSpec("bernoulli", 5001, 1.0), torch.tensor([[0.0, 1.0, 0.25]], dtype=torch.float64),
                        generator=torch.Generator().manual_seed(1))
    assert full.shape == (5001, 1, 3) and full.dtype == torch.float64
    assert full[:, 0, 0].sum() == 0 and full[:, 0, 1].sum() == 5001
    assert abs(full[:, 0, 2].mean().item() - 0.25) < 0.02
    latency = encode_torch(EncoderSpec("latency", 11), torch.tensor([[1.0, 0.5, 0.1, 0.0]]))
    assert np.array_equal(latency.numpy(), encode(EncoderSpec("latency", 11), np.array([[1.0, 0.5, 0.1, 0.0]])))
