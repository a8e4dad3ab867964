"""Every Lava script in scripts/ answers --help and does a real short run on a small saved model."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT

SCRIPTS = ("lava_deploy.py", "lava_export.py", "lava_sweep_bits.py")


def run_script(name, *args, timeout=240):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout)


@pytest.fixture(scope="module")
def spiking_model(tmp_path_factory):
    from neurocredit.convert import converted_relu_network
    from neurocredit.io import save_network

    network = converted_relu_network(steps=16, epochs=20, hidden=(40,))
    return save_network(network, tmp_path_factory.mktemp("scripts") / "digits-snn.h5")


@pytest.mark.parametrize("name", SCRIPTS)
def test_help(name):
    result = run_script(name, "--help", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout and "Example" in result.stdout


@pytest.mark.needs_lava
@pytest.mark.timeout(240)
def test_lava_deploy_runs_and_matches_the_emulator(spiking_model):
    result = run_script("lava_deploy.py", spiking_model, "--samples", "6", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads(result.stdout)
    assert payload["matches_neurocredit"] is True and payload["compared_with"] == "emulator"
    assert payload["samples"] == 6 and 0.0 <= payload["accuracy"] <= 1.0
    assert payload["output_spikes_per_sample"] > 0


@pytest.mark.needs_lava
@pytest.mark.timeout(240)
def test_lava_export_writes_the_integers_and_verifies_them(spiking_model, tmp_path):
    from neurocredit.deploy.quantize import quantize
    from neurocredit.io import load_network

    output = tmp_path / "net.npz"
    result = run_script("lava_export.py", spiking_model, "-o", output, "--verify", "4", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads(result.stdout)
    assert payload["verify"] == {"samples": 4, "identical_to_emulator": True}
    quantized = quantize(load_network(spiking_model))
    with np.load(output) as data:
        assert str(data["format"]) == "neurocredit-lava-fixed" and int(data["n_layers"]) == 2
        assert (int(data["du"]), int(data["dv"])) == (quantized.du, quantized.dv)
        for index, layer in enumerate(quantized.layers):
            assert np.array_equal(data[f"layer{index}_weights"], layer.weights)
            assert int(data[f"layer{index}_weight_exp"]) == layer.weight_exp
            assert int(data[f"layer{index}_vth"]) == layer.vth
            assert np.array_equal(data[f"layer{index}_bias_mant"], layer.bias_mant)


@pytest.mark.needs_lava
@pytest.mark.timeout(240)
def test_lava_sweep_bits_reports_accuracy_against_bits(spiking_model):
    result = run_script("lava_sweep_bits.py", spiking_model, "--bits", "2", "8", "--limit", "60",
                        "--lava-samples", "4", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads(result.stdout)
    rows = {row["bits"]: row for row in payload["rows"]}
    assert set(rows) == {2, 8} and payload["samples"] == 60
    assert all(row["lava_identical"] for row in rows.values())
    assert rows[8]["weight_rms_relative_error"] < rows[2]["weight_rms_relative_error"]
    assert rows[8]["accuracy"] >= payload["float_accuracy"] - 0.05


def test_scripts_report_bad_models_as_one_line(tmp_path):
    missing = tmp_path / "missing.h5"
    result = run_script("lava_export.py", missing, "-o", tmp_path / "x.npz", timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(missing) in result.stderr
