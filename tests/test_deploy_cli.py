"""`neurocredit deploy`: verification through the float model, the emulator and Lava in both
modes; limit violations and rate networks as one-line errors; `neurocredit eval --backend
emulator|lava`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurocredit.cli import main


@pytest.fixture(scope="module")
def spiking_model(tmp_path_factory):
    """A small converted digits LIF network (64-40-10, 16 steps) saved to disk."""
    from neurocredit.convert import converted_relu_network
    from neurocredit.io import save_network

    network = converted_relu_network(steps=16, epochs=20, hidden=(40,))
    return str(save_network(network, tmp_path_factory.mktemp("deploy") / "digits-snn.h5"))


def test_deploy_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["deploy", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--target", "--fixed-point", "--floating-point", "--verify", "--limit", "--json", "--weight-bits",
                   "--clip-quantile"):
        assert option in text
    from neurocredit.data import DATASETS

    flat = " ".join(text.split())  # argparse wraps the help
    for name in DATASETS:  # the --data help names every data set the loader takes
        assert name in flat


@pytest.mark.needs_lava
@pytest.mark.timeout(240)
def test_deploy_verify_reports_identical_spikes(spiking_model, capsys):
    # The float model and the emulator on 40 samples, Lava (both modes) on the first 24.
    assert main(["deploy", spiking_model, "--target", "loihi2", "--verify", "--limit", "40", "--lava-limit", "24",
                 "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload["accuracy"]) >= {"float", "emulator", "lava"}
    assert payload["spike_agreement"] == {"emulator_vs_lava": 1.0, "float_vs_lava_floating": 1.0}
    assert payload["accuracy"]["lava"] == payload["accuracy"]["emulator_on_lava_samples"]
    assert payload["accuracy"]["lava_floating_pt"] == payload["accuracy"]["float_on_lava_samples"]
    assert abs(payload["accuracy_drop"]["emulator"]) <= 0.1
    assert isinstance(payload["cores"], int) and payload["cores"] >= 2
    assert (payload["samples"], payload["lava_samples"], payload["mode"]) == (40, 24, "fixed_pt")
    layers = payload["quantization"]["layers"]
    assert [layer["layer"] for layer in layers] == ["fc1", "fc2"]
    assert all(layer["weight_rms_relative_error"] < 0.02 for layer in layers)


@pytest.mark.needs_lava
@pytest.mark.timeout(180)
def test_deploy_floating_point_text_and_eval_backends(spiking_model, capsys, monkeypatch):
    assert main(["deploy", spiking_model, "--floating-point", "--limit", "12"]) == 0
    text = capsys.readouterr().out
    assert "(floating_pt)" in text and "cores:" in text and "accuracy (lava floating_pt)" in text
    monkeypatch.delenv("NEUROCREDIT_LAVA_MODE", raising=False)
    results = {}
    for backend in ("emulator", "lava"):
        assert main(["eval", spiking_model, "--backend", backend, "--limit", "30", "--json"]) == 0
        results[backend] = json.loads(capsys.readouterr().out)
    assert results["emulator"]["samples"] == results["lava"]["samples"] == 30
    assert results["emulator"]["accuracy"] == results["lava"]["accuracy"]
    assert results["emulator"]["mean_spikes_per_sample"] == results["lava"]["mean_spikes_per_sample"]


def test_limit_violation_is_one_line_and_exit_2(spiking_model, tmp_path, run_cli):
    target = tmp_path / "tiny.yaml"
    target.write_text('name: tiny\nspiking: true\nlimits:\n  fan_in_per_core: {value: 32, source: "test sheet"}\n'
                      "energy: {}\n")
    result = run_cli("deploy", spiking_model, "--target", target, "--limit", "4", check_rc=2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "layer fc1" in lines[0] and "fan_in_per_core is 32" in lines[0] and "needs 64" in lines[0]
    assert "Traceback" not in result.stderr


def test_rate_network_and_bad_options_are_clear_errors(tmp_path, capsys):
    from neurocredit.io import save_network
    from neurocredit.network import Network, init_layers

    rate = Network(init_layers((64, 10), np.random.default_rng(0)), provenance={"data": "digits"})
    path = save_network(rate, tmp_path / "rate.h5")
    assert main(["deploy", str(path)]) == 2
    assert "rate network" in capsys.readouterr().err
    assert main(["deploy", str(path), "--target", "no-such-target"]) == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "1.5", "nan"])
def test_a_clip_quantile_outside_0_1_is_one_line_and_exit_2(spiking_model, value, capsys):
    assert main(["deploy", spiking_model, "--clip-quantile", value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"--clip-quantile={float(value)!r} must be a quantile in (0, 1], e.g. 0.999 (1: the largest "
                        "weight sets the step, no clipping)") and "\n" not in err


def test_verify_keeps_rasters_of_the_lava_samples_only():
    """deploy --verify's float and emulator runs keep the rasters of the first --lava-limit samples
    only (memory), with chunks and numbers unchanged: the kept head equals a full-raster run's head."""
    from conftest import small_lif_network

    from neurocredit.deploy.pipeline import _rasters_of_head
    from neurocredit.sim import get_backend, run_chunked

    network = small_lif_network(seed=3)
    features = np.random.default_rng(3).random((8, 20)).astype(np.float32)
    backend = get_backend("norse")

    def run_chunk(inputs):
        return backend.run(network, inputs, {"spikes"})

    full = run_chunked(run_chunk, network, features, batch_size=3)
    wrapped, head = _rasters_of_head(run_chunk, 5)
    light = run_chunked(wrapped, network, features, batch_size=3)
    assert light.spikes is None and np.array_equal(light.predictions, full.predictions)
    assert all(np.array_equal(a, b) for a, b in zip(light.spike_counts, full.spike_counts))
    kept = head()
    assert kept.samples == 5
    assert all(np.array_equal(a, b) for a, b in zip(kept.spikes, full.head(5).spikes))
    assert sum(int(raster.sum()) for raster in kept.spikes) > 0
