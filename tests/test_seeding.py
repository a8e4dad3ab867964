"""Every test runs seeded from its own name: the seed of a name is a fixed number (the same on
every machine and in every order), and ``random``, numpy and torch start from it."""

from __future__ import annotations

import random

import numpy as np
import torch

from conftest import seed_of


def test_the_seed_of_a_test_name_is_a_fixed_number(seed):
    assert seed == 2327910180  # this test's own seed, whatever ran before it
    # CRC-32 (zlib, the polynomial of gzip and PNG) of the node id's UTF-8 bytes
    assert seed_of("tests/test_neurons.py::test_lif_step") == 1385270983
    assert seed_of("tests/test_seeding.py::test_the_seed_of_a_test_name_is_a_fixed_number") == 2327910180
    assert seed_of("tests/test_neurons.py::test_lif_step[1]") != seed_of("tests/test_neurons.py::test_lif_step")


def test_every_generator_starts_from_the_test_seed(request, seed):
    assert seed == seed_of(request.node.nodeid) == seed_of("tests/test_seeding.py::"
                                                           "test_every_generator_starts_from_the_test_seed")
    drawn = (random.random(), np.random.random(3), torch.rand(3))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    assert drawn[0] == random.random()
    assert np.array_equal(drawn[1], np.random.random(3))
    assert torch.equal(drawn[2], torch.rand(3))


def test_rng_fixture_is_seeded_with_the_test_seed(rng, seed):
    assert np.array_equal(rng.random(4), np.random.default_rng(seed).random(4))
