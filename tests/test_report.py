"""Reports: JSON schema, markdown, identical counts whichever backend produced the run, `report`
through the CLI in every format, and the HTML page rendered in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
import yaml

from neurocredit.cli import main
from neurocredit.compare import spike_agreement
from neurocredit.data import load_dataset
from neurocredit.io import save_network
from neurocredit.network import EncoderSpec, Layer, LIFParameters, Network, NeuronSpec, init_layers
from neurocredit.report import PALETTE, build_report, render_html, render_markdown, report_model, select_targets
from neurocredit.sim import simulate
from neurocredit.targets import targets_dir

SAMPLES = 24


def digits_lif_network(steps=16, seed=0):
    """A random 64-40-10 LIF network on digits that fires at moderate rates."""
    rng = np.random.default_rng(seed)
    layers = tuple(Layer(layer.weight.astype(np.float64) * 2.5, rng.normal(0.0, 0.05, layer.n_out), layer.name)
                   for layer in init_layers((64, 40, 10), rng, gain=3.0))
    return Network(layers, NeuronSpec("lif", lif=LIFParameters(0.3, 0.2, 0.6)), EncoderSpec("bernoulli", steps, 0.6, 3),
                   provenance={"rule": "dfa", "data": "digits"})


def fixed_point_exact_network(steps=16):
    """A 64-40-10 LIF network whose float dynamics Loihi fixed point represents exactly: du = dv = 1
    (no decay arithmetic to round), weights on a 1/16 grid, no bias. Used for the emulator, whose
    rounding otherwise moves a few spikes of a general float network."""
    rng = np.random.default_rng(0)
    layers = (Layer(rng.integers(-4, 9, (40, 64)).astype(np.float64) / 16, np.zeros(40), "fc1"),
              Layer(rng.integers(-4, 9, (10, 40)).astype(np.float64) / 16, np.zeros(10), "fc2"))
    return Network(layers, NeuronSpec("lif", lif=LIFParameters(1.0, 1.0, 1.03125)),
                   EncoderSpec("bernoulli", steps, 0.6, 3), provenance={"rule": "sigprop", "data": "digits"})


def digits_rate_network():
    layers = init_layers((64, 20, 10), np.random.default_rng(0))
    return Network(layers, NeuronSpec("rate"), provenance={"rule": "bp", "data": "digits"})


@pytest.fixture(scope="module")
def digits():
    dataset = load_dataset("digits")
    return dataset.x_test[:SAMPLES], dataset.y_test[:SAMPLES]


@pytest.fixture(scope="module")
def norse_report(digits):
    network = digits_lif_network()
    report, rasters, record = report_model(network, *digits, backend="norse", model="digits-lif.h5", data="digits")
    return network, report, rasters, record


def test_json_schema(norse_report):
    network, report, _, record = norse_report
    payload = json.loads(json.dumps(report))
    assert payload["backend"] == "norse" and payload["samples"] == SAMPLES and payload["steps"] == 16
    assert 0.0 <= payload["accuracy"] <= 1.0
    assert [layer["name"] for layer in payload["layers"]] == ["fc1", "fc2"]
    for layer, counts in zip(payload["layers"], record.spike_counts):
        assert set(layer) >= {"name", "neurons", "spikes_per_sample", "synops_per_sample"}
        assert layer["neurons"] == counts.shape[1]
        assert layer["spikes_per_sample"] == pytest.approx(counts.sum() / SAMPLES)
    assert payload["layers"][0]["synops_per_sample"] == pytest.approx(record.input_spike_counts.sum() * 40 / SAMPLES)
    assert payload["layers"][1]["synops_per_sample"] == pytest.approx(record.spike_counts[0].sum() * 10 / SAMPLES)
    assert set(payload["targets"]) == {target.name for target in select_targets("all")}
    for name, entry in payload["targets"].items():
        assert {"energy_per_sample_j", "synop_energy_j", "neuron_energy_j", "sources"} <= set(entry)
        assert entry["estimate"] is True
        assert entry["energy_per_sample_j"] > 0
    baseline = payload["ann_baseline"]
    assert baseline["macs_per_sample"] == 64 * 40 + 40 * 10
    assert set(baseline["energy_per_sample_j"]) == {"arm", "cmos45", "cpu", "gpu"}
    assert payload["training"]["rule"] == "dfa"
    from neurocredit.rules import RULE_SPECS

    assert set(payload["training"]["rules"]) == set(RULE_SPECS)


def test_every_energy_is_traceable_to_its_yaml_entry(norse_report):
    _, report, _, _ = norse_report
    for name, entry in report["targets"].items():
        raw = yaml.safe_load((targets_dir() / f"{name}.yaml").read_text())
        total = 0.0
        for source in entry["sources"].values():
            assert source["file"] == f"hardware_targets/{name}.yaml"
            section, key = source["key"].split(".")
            assert section == "energy"
            assert source["value"] == float(raw["energy"][key]["value"])
            assert source["source"] == raw["energy"][key]["source"].strip()
            total += source["count_per_sample"] * source["value"]
        assert entry["energy_per_sample_j"] == pytest.approx(total, rel=1e-12)
    loihi = report["targets"]["loihi"]
    assert loihi["synop_energy_j"] == pytest.approx(report["totals"]["synops_per_sample"] * 23.6e-12)
    assert loihi["neuron_energy_j"] == pytest.approx(50 * 16 * 81e-12)


def test_markdown_names_backend_counts_and_sources(norse_report):
    _, report, _, _ = norse_report
    text = render_markdown(report)
    assert "Backend: **norse**" in text
    assert "estimates" in text
    assert "| fc1 | 40 | 64 | 10 |" in text
    assert "hardware_targets/loihi.yaml energy.synop_j" in text and "Davies" in text
    assert "**DFA (direct feedback alignment)** (trained)" in text


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    "backend",
    ["reference", pytest.param("brian2", marks=pytest.mark.needs_brian2), "emulator"],
)
def test_report_is_identical_whichever_backend_ran(norse_report, digits, backend):
    network, report, rasters, _ = norse_report
    if backend == "emulator":  # Loihi fixed point: identical spikes need an exactly representable network
        network = fixed_point_exact_network()
        report, rasters, _ = report_model(network, *digits, backend="norse", model="digits-lif.h5", data="digits")
    other, other_rasters, _ = report_model(network, *digits, backend=backend, model="digits-lif.h5", data="digits")
    assert other.pop("backend") == backend
    expected = dict(report)
    expected.pop("backend")
    assert other["layers"] == expected["layers"]
    assert other == expected
    for mine, theirs in zip(rasters, other_rasters):
        np.testing.assert_array_equal(mine, theirs)


def test_backends_agree_spike_for_spike_on_the_report_samples(digits):
    network = digits_lif_network()
    norse = simulate(network, digits[0][:6], backend="norse", record={"spikes"})
    reference = simulate(network, digits[0][:6], backend="reference", record={"spikes"})
    assert spike_agreement(norse, reference)["overall"] == 1.0


def test_rate_network_report_gives_ann_figures_only(digits):
    network = digits_rate_network()
    report, rasters, _ = report_model(network, *digits, model="rate.h5", data="digits")
    assert report["backend"] == "rate" and rasters is None
    assert all(layer["spikes_per_sample"] is None and layer["synops_per_sample"] is None for layer in report["layers"])
    assert set(report["targets"]) == {"arm", "cmos45", "cpu", "gpu"}
    assert any("do not apply" in note for note in report["notes"])
    assert report["ann_baseline"]["macs_per_sample"] == 64 * 20 + 20 * 10
    text = render_markdown(report)
    assert "spike counts do not apply" in text
    page = render_html(report)
    assert page.count("data:image/png;base64,") == 2  # energy + training plots, no raster or rates


def test_build_report_needs_targets(norse_report):
    network, _, _, record = norse_report
    from neurocredit.errors import NeurocreditError

    with pytest.raises(NeurocreditError, match="no hardware targets"):
        build_report(network, record, [])


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "digits-lif.h5"
    save_network(digits_lif_network(), path)
    return path


def test_cli_report_markdown_to_stdout(saved_model, capsys):
    assert main(["report", str(saved_model), "--limit", "12", "--target", "loihi,cpu"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# neurocredit report:")
    assert "| loihi | SNN, measured spikes |" in out and "| cpu | dense ANN |" in out
    assert "spinnaker2" not in out


def test_cli_report_json_to_file(saved_model, tmp_path, capsys):
    output = tmp_path / "report.json"
    assert main(["report", str(saved_model), "--limit", "12", "--format", "json", "-o", str(output),
                 "--backend", "reference", "--steps", "10"]) == 0
    payload = json.loads(output.read_text())
    assert payload["backend"] == "reference" and payload["samples"] == 12 and payload["steps"] == 10
    assert payload["data"] == "digits"
    assert oct(output.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_cli_report_errors_are_one_line(saved_model, capsys):
    assert main(["report", str(saved_model), "--target", "truenorth"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "truenorth" in err and "loihi2" in err
    assert main(["report", str(saved_model), "--steps", "0"]) == 2
    assert "--steps" in capsys.readouterr().err


@pytest.fixture(scope="module")
def html_page(saved_model, tmp_path_factory):
    """`neurocredit report --format html -o FILE` in a subprocess (the real command line)."""
    import sys

    output = tmp_path_factory.mktemp("html") / "report.html"
    result = subprocess.run([sys.executable, "-m", "neurocredit", "report", str(saved_model), "--limit", "20",
                             "--format", "html", "-o", str(output)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return output


def test_cli_report_html_is_self_contained(html_page):
    page = html_page.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("data:image/png;base64,") == 4  # raster, rates, energy, training
    for plot in ("plot-raster", "plot-rates", "plot-energy", "plot-training"):
        assert f'id="{plot}"' in page
    lowered = page.lower()
    assert 'src="http' not in lowered and "<link" not in lowered and "<script" not in lowered
    assert "norse backend" in page


def _colour_pixels(image: np.ndarray, hex_colour: str, tolerance: float = 0.06) -> int:
    rgb = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return int(np.count_nonzero(np.all(np.abs(image[..., :3] - rgb) < tolerance, axis=-1)))


@pytest.mark.needs_browser
@pytest.mark.timeout(180)
def test_html_renders_in_headless_chromium(html_page, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (Debian package `chromium`; .ci/run installs it)")
    screenshot = tmp_path / "out.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"--screenshot={screenshot}", "--window-size=1200,2000",
             html_page.resolve().as_uri()],
            capture_output=True, timeout=150, check=False,
        )
    assert screenshot.exists(), "Chromium wrote no screenshot"
    import matplotlib.image

    image = matplotlib.image.imread(screenshot)
    assert image.shape[:2] == (2000, 1200)
    not_white = np.any(image[..., :3] < 0.95, axis=-1)
    assert not_white.mean() > 0.05, "the page is blank"
    # each plot draws in its own colour: raster (input grey, fc1 orange), rates (green),
    # energy (blue SNN bars, red ANN bars), training (purple)
    for name, colour in (("raster fc1", PALETTE["raster"][1]), ("firing rates", PALETTE["rate"]),
                         ("SNN energy", PALETTE["snn"]), ("ANN energy", PALETTE["ann"]),
                         ("training", PALETTE["training"])):
        assert _colour_pixels(image, colour) > 40, f"the {name} plot is not drawn"
