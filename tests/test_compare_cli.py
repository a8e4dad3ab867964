"""`neurocredit compare`: several backends on the same encoded inputs, spike for spike, via the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neurocredit.cli import main
from neurocredit.io import save_network
from neurocredit.network import EncoderSpec, LIFParameters, Network, NeuronSpec, init_layers

pytestmark = pytest.mark.needs_brian2
pytest.importorskip("brian2")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def numpy_target(monkeypatch):
    monkeypatch.setenv("NEUROCREDIT_BRIAN2_TARGET", "numpy")  # no Cython compilation in the fast suite


def spiking_digits_model(path: Path) -> Path:
    """A digits-shaped (64-40-10) LIF network with random weights that fires in both layers."""
    layers = init_layers((64, 40, 10), np.random.default_rng(11), gain=1.5)
    network = Network(layers, NeuronSpec("lif", lif=LIFParameters(du=0.2, dv=0.1, vth=1.0)),
                      EncoderSpec("bernoulli", steps=20, max_rate=1.0, seed=4),
                      provenance={"data": "digits", "rule": "random"})
    save_network(network, path)
    return path


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neurocredit", *args], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ), timeout=240)


@pytest.mark.timeout(300)
def test_compare_json_norse_brian2(tmp_path):
    model = spiking_digits_model(tmp_path / "snn.h5")
    result = cli("compare", str(model), "--backends", "norse,brian2", "--limit", "15", "--data", "digits", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["samples"] == 15 and payload["steps"] == 20
    assert set(payload["accuracy"]) == {"norse", "brian2"}
    assert payload["accuracy"]["norse"] == payload["accuracy"]["brian2"]
    assert 0.0 <= payload["accuracy"]["brian2"] <= 1.0
    agreement = payload["spike_agreement"]
    assert agreement["overall"] == 1.0
    assert [layer["layer"] for layer in agreement["layers"]] == [0, 1]
    for layer in agreement["layers"]:
        assert layer["agreement"] == 1.0 and layer["first_diverging_step"] is None
        assert layer["events_a"] == layer["events_b"] > 0  # both layers spike: the check is not vacuous
    assert payload["pairs"][0]["backends"] == ["norse", "brian2"]


def test_compare_three_backends_and_steps(tmp_path, capsys):
    model = spiking_digits_model(tmp_path / "snn.h5")
    code = main(["compare", str(model), "--backends", "reference,brian2,norse", "--limit", "6", "--steps", "12",
                 "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["steps"] == 12 and payload["backends"] == ["reference", "brian2", "norse"]
    assert set(payload["spike_agreement"]) == {"reference:brian2", "reference:norse", "brian2:norse"}
    assert all(pair["overall"] == 1.0 for pair in payload["spike_agreement"].values())


def test_compare_text_report(tmp_path, capsys):
    model = spiking_digits_model(tmp_path / "snn.h5")
    assert main(["compare", str(model), "--backends", "reference,brian2", "--limit", "5"]) == 0
    out = capsys.readouterr().out
    assert "spike agreement reference vs brian2: 100.0000% of spike events identical" in out
    assert "fc1" in out and "fc2" in out and "identical rasters" in out


@pytest.mark.parametrize("backends, message", [
    ("norse", "at least two different backends"),
    ("norse,norse", "at least two different backends"),
    ("norse,spinnaker", "unknown backend 'spinnaker'"),
])
def test_compare_bad_backend_list(tmp_path, capsys, backends, message):
    model = spiking_digits_model(tmp_path / "snn.h5")
    assert main(["compare", str(model), "--backends", backends]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_compare_rejects_rate_model(tmp_path, capsys):
    network = Network(init_layers((64, 10), np.random.default_rng(0)), provenance={"data": "digits"})
    path = save_network(network, tmp_path / "rate.h5")
    assert main(["compare", str(path)]) == 2
    assert "rate network" in capsys.readouterr().err
