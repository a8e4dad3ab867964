"""`neurocredit simulate` through the CLI (subprocess): JSON fields, saved runs with rasters and
voltages, every spiking backend on the same model, clear one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import small_lif_network
from neurocredit.data import load_digits
from neurocredit.io import load_run, save_network
from neurocredit.network import EncoderSpec
from neurocredit.sim import BACKENDS, simulate


@pytest.fixture
def digits_snn(tmp_path):
    """A random but active 64-40-10 LIF network on digits (simulation does not need training)."""
    network = small_lif_network(0, sizes=(64, 40, 10), steps=20, bias_scale=0.1)
    network = network.replace(encoder=EncoderSpec("bernoulli", 20, 1.0, 0),
                              provenance={"rule": "test", "data": "digits"})
    return network, save_network(network, tmp_path / "snn.h5")


def test_simulate_json_reports_accuracy_and_spikes_per_layer(run_cli, digits_snn):
    network, path = digits_snn
    payload = json.loads(run_cli("simulate", path, "--backend", "norse", "--limit", "30", "--json", check_rc=0).stdout)
    assert payload["backend"] == "norse" and payload["samples"] == 30 and payload["steps"] == 20
    assert payload["sizes"] == [64, 40, 10] and len(payload["mean_spikes_per_sample"]) == 2
    digits = load_digits()
    expected = simulate(network, digits.x_test[:30], digits.y_test[:30], backend="norse")
    assert payload["accuracy"] == expected.accuracy
    assert payload["mean_spikes_per_sample"] == pytest.approx(expected.mean_spikes_per_sample())
    assert payload["mean_spikes_per_sample"][0] > 0


def test_simulate_saves_rasters_and_voltages(run_cli, digits_snn, tmp_path):
    _, path = digits_snn
    out = tmp_path / "run.h5"
    payload = json.loads(run_cli("simulate", path, "--limit", "7", "--steps", "12", "--record", "spikes,voltages",
                                 "--out", out, "--json", check_rc=0).stdout)
    assert payload["steps"] == 12 and payload["out"] == str(out)
    record = load_run(out)
    assert record.backend == "norse" and record.steps == 12 and record.samples == 7
    assert [s.shape for s in record.spikes] == [(12, 7, 40), (12, 7, 10)]
    assert [v.shape for v in record.voltages] == [(12, 7, 40), (12, 7, 10)]
    assert record.currents is None
    assert np.array_equal(record.spikes[0].sum(axis=0), record.spike_counts[0])


@pytest.mark.timeout(240)
@pytest.mark.parametrize("backend", sorted(set(BACKENDS) - {"rate"}))
def test_every_spiking_backend_runs_through_simulate(run_cli, digits_snn, backend):
    """Each registered backend answers through the same command (all of them are installed by
    `make venv`, so an error here is a failure)."""
    _, path = digits_snn
    result = run_cli("simulate", path, "--backend", backend, "--limit", "3", "--steps", "6", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    payload = json.loads(result.stdout)
    assert payload["backend"] == backend and payload["samples"] == 3 and payload["steps"] == 6


def test_simulate_errors_are_one_line(digits_snn, tmp_path, capsys):
    from neurocredit.cli import main

    _, path = digits_snn
    cases = [
        (("--record", "spikes,colors"), "cannot record colors"),
        (("--backend", "rate"), "runs rate networks only"),
        (("--backend", "nope"), "unknown backend 'nope'"),
        (("--steps", "0"), "--steps must be >= 1"),
        (("--limit", "0"), "--limit must be >= 1"),
    ]
    for extra, message in cases + [((), "no such file")]:
        target = tmp_path / "none.h5" if message == "no such file" else path
        assert main(["simulate", str(target), "--json", *extra]) == 2, extra
        stderr = capsys.readouterr().err
        assert message in stderr and len(stderr.strip().splitlines()) == 1, stderr
