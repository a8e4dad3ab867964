"""Shared fixtures: small seeded networks and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
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
