"""Shared fixtures and helpers: a per-test seed for every random number generator, small seeded
networks, a CLI runner, a torch memory probe.

Every test runs with ``random``, numpy's global generator and torch seeded from its node id
(:func:`seed_of`), so a test draws the same numbers on every machine, alone or in any order
(as Nengo's ``seed`` fixture does). Tests should still prefer explicit generators (the ``rng``
fixture, ``torch.Generator().manual_seed(...)``): the global seeding is the safety net.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

# Tests share 2 cores with whatever else runs; one torch thread keeps timings stable.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config):
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    if config.pluginmanager.hasplugin("randomly"):
        # pytest-randomly (``-p randomly``) only shuffles the order: its own reseeding before each
        # test phase would replace the per-test seed below with one that changes from run to run.
        config.option.randomly_reset_seed = False


def seed_of(nodeid: str) -> int:
    """The seed of the test ``nodeid`` (e.g. ``tests/test_x.py::test_y[param]``): its CRC-32,
    the same on every machine and in every order (unlike ``hash``, which Python salts)."""
    return zlib.crc32(nodeid.encode("utf-8"))


@pytest.fixture(autouse=True)
def seed(request) -> int:
    """Seeds ``random``, numpy's global generator and torch with :func:`seed_of` the test's node
    id before every test; returns the seed."""
    import torch

    value = seed_of(request.node.nodeid)
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)
    return value


@pytest.fixture
def rng(seed) -> np.random.Generator:
    """A numpy Generator seeded with the test's seed."""
    return np.random.default_rng(seed)


@pytest.fixture
def run_cli(tmp_path):
    """Run `python -m neurocredit ARGS` in a subprocess; returns CompletedProcess (text)."""

    def runner(*args, check_rc=None, env=None):
        merged = dict(os.environ)
        merged.update(env or {})
        result = subprocess.run(
            [sys.executable, "-m", "neurocredit", *map(str, args)],
            capture_output=True, text=True, cwd=tmp_path, env=merged, timeout=600,
        )
        if check_rc is not None:
            assert result.returncode == check_rc, (result.stdout, result.stderr)
        return result

    return runner


def small_lif_network(seed: int = 0, sizes=(20, 30, 10), steps: int = 30, bias_scale: float = 0.05,
                      weight_scale: float = 2.0):
    """A random LIF network that fires at moderate rates (for backend tests)."""
    from neurocredit.network import EncoderSpec, Layer, LIFParameters, Network, NeuronSpec, init_layers

    rng = np.random.default_rng(seed)
    layers = tuple(
        Layer(layer.weight.astype(np.float64) * weight_scale, rng.normal(0, bias_scale, layer.n_out), layer.name)
        for layer in init_layers(sizes, rng, gain=3.0)
    )
    return Network(layers, NeuronSpec("lif", lif=LIFParameters(0.2, 0.1, 1.0)),
                   EncoderSpec("bernoulli", steps, 0.5, seed), provenance={"rule": "test", "data": "synthetic"})


def small_spiking_chl_rule(training=None, network=None, **changes):
    """A spiking CHL rule on a random 12-16-4 LIF network (or ``network``), phases of 12 steps
    (2 settling); ``changes`` override SpikingCHLOptions, ``training`` the default
    TrainingConfig(seed=0)."""
    from neurocredit.config import TrainingConfig
    from neurocredit.network import EncoderSpec, LIFParameters, Network, NeuronSpec, init_layers
    from neurocredit.rules import rule_class
    from neurocredit.rules.chl import SpikingCHLOptions

    if network is None:
        layers = init_layers((12, 16, 4), np.random.default_rng(0), gain=2.0)
        network = Network(layers, NeuronSpec("lif", lif=LIFParameters(0.5, 0.2, 1.0)),
                          EncoderSpec("bernoulli", 10, 1.0, 0))
    options = SpikingCHLOptions(**{"free_steps": 12, "nudged_steps": 12, "free_settle": 2, "nudged_settle": 2,
                                   **changes})
    return rule_class("chl", "lif")(network, options, training or TrainingConfig(seed=0), network.n_outputs)


def peak_allocated_bytes(function) -> int:
    """Peak of the bytes allocated (minus freed) by torch while ``function`` runs."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        function()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    total = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        total += event.nbytes()
        peak = max(peak, total)
    return peak


def watch_spike_backward(monkeypatch) -> dict:
    """Patch :class:`SpikeWithoutGradient` so that its backward fails and counts, and its forward
    counts the spikes that are nodes of a graph: returns the counts ``{"backward", "in_graph"}``."""
    from neurocredit.rules.sigprop_lif import SpikeWithoutGradient

    calls = {"backward": 0, "in_graph": 0}
    original_apply = SpikeWithoutGradient.apply

    def failing_backward(ctx, grad_output):
        calls["backward"] += 1
        raise AssertionError("a spike backward was called")

    def recording_apply(voltage, vth):
        spikes = original_apply(voltage, vth)
        calls["in_graph"] += int(spikes.requires_grad)
        return spikes

    monkeypatch.setattr(SpikeWithoutGradient, "backward", staticmethod(failing_backward))
    monkeypatch.setattr(SpikeWithoutGradient, "apply", staticmethod(recording_apply))
    return calls


def forbid_autograd(monkeypatch, what: str = "the rule") -> None:
    """Make every autograd entry point raise (build the rule before: the optimizer's first import
    of torch._dynamo registers torch.autograd's functions and rejects a replaced one)."""
    import torch

    def forbidden(*args, **kwargs):
        raise AssertionError(f"{what} called autograd")

    monkeypatch.setattr(torch.autograd, "backward", forbidden)
    monkeypatch.setattr(torch.autograd, "grad", forbidden)
    monkeypatch.setattr(torch.Tensor, "backward", forbidden)
