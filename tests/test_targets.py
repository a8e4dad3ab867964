"""Hardware target files: every shipped YAML loads, every number has a source, bad files are
one clear error naming the key; `neurocredit targets` lists them."""

from __future__ import annotations

import json

import pytest
import yaml

from neurocredit.cli import main
from neurocredit.errors import NeurocreditError
from neurocredit.targets import ENERGY_KEYS, LIMIT_KEYS, available_targets, load_target, targets_dir

REQUIRED = ("loihi", "loihi2", "spinnaker2", "cpu", "gpu")


def test_required_targets_are_shipped():
    assert set(REQUIRED) <= set(available_targets())


@pytest.mark.parametrize("name", available_targets())
def test_every_shipped_target_loads_with_sources(name):
    target = load_target(name)
    assert target.name == name, "the file name and the name: field must agree"
    assert target.description
    raw = yaml.safe_load((targets_dir() / f"{name}.yaml").read_text())
    for section, allowed in (("limits", LIMIT_KEYS), ("energy", ENERGY_KEYS)):
        for key, entry in (raw.get(section) or {}).items():
            assert key in allowed
            assert isinstance(entry["source"], str) and len(entry["source"].strip()) > 10, f"{name}: {section}.{key}"
    for key, entry in target.energy.items():
        assert isinstance(entry.value, float) and entry.value > 0, f"{name}: energy.{key} = {entry.value!r}"
    if target.spiking:
        assert {"synop_j", "neuron_update_j"} <= set(target.energy), f"{name}: spiking targets price synops, neurons"
    else:
        assert "mac_j" in target.energy, f"{name}: a dense target prices MACs"


def test_loihi_figures_match_davies_2018_table_2():
    loihi = load_target("loihi")
    assert loihi.energy_value("synop_j") == pytest.approx(23.6e-12)
    assert loihi.energy_value("neuron_update_j") == pytest.approx(81e-12)
    assert loihi.energy_value("synaptic_update_j") == pytest.approx(120e-12)
    assert loihi.limit("cores_per_chip") == 128 and loihi.limit("neurons_per_core") == 1024
    assert "Table 2" in loihi.energy["synop_j"].source


def test_loihi2_energies_are_declared_proxies():
    loihi2 = load_target("loihi2")
    for key, entry in loihi2.energy.items():
        assert "proxy" in entry.source.lower() and entry.note, f"loihi2 energy.{key} must say it is a proxy"
    assert "derived" in loihi2.limits["neurons_per_core"].source


def _write_target(folder, text):
    path = folder / "bad.yaml"
    path.write_text(text)
    return path


GOOD = """
name: bad
description: test
spiking: true
energy:
  synop_j: {value: 1.0e-12, source: "a paper, Table 1"}
"""


@pytest.mark.parametrize(
    "text, expected",
    [
        (GOOD.replace('source: "a paper, Table 1"', 'note: "x"'), "energy.synop_j"),
        (GOOD.replace('source: "a paper, Table 1"', 'source: "  "'), "energy.synop_j.source"),
        (GOOD.replace("value: 1.0e-12", "value: lots"), "energy.synop_j.value"),
        (GOOD.replace("value: 1.0e-12", "value: -1.0"), "energy.synop_j.value"),
        (GOOD.replace("synop_j:", "synop_energy:"), "synop_energy"),
        (GOOD.replace("spiking: true", "spiking: maybe"), "'spiking'"),
        (GOOD.replace("spiking: true\n", ""), "missing key 'spiking'"),
        (GOOD + "limits:\n  cores_per_chip: 128\n", "limits.cores_per_chip"),
        ("name: [unclosed\n", "malformed YAML"),
    ],
)
def test_malformed_target_is_one_clear_error(tmp_path, text, expected):
    path = _write_target(tmp_path, text)
    with pytest.raises(NeurocreditError) as error:
        load_target(path)
    message = str(error.value)
    assert expected in message and str(path) in message
    assert "\n" not in message


def test_unknown_target_names_the_known_ones():
    with pytest.raises(NeurocreditError, match="loihi2"):
        load_target("truenorth")


def test_targets_command_json_lists_every_target_with_sources(capsys):
    assert main(["targets", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert set(listing) == set(available_targets())
    for name, entry in listing.items():
        assert entry["file"] == f"hardware_targets/{name}.yaml"
        for section in ("limits", "energy"):
            for key, item in entry[section].items():
                assert item["source"], f"{name}: {section}.{key}"


def test_targets_command_text_shows_values_and_sources(capsys):
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    assert "loihi (spiking, hardware_targets/loihi.yaml)" in out
    assert "synop_j" in out and "2.36e-11 J" in out and "Davies" in out


def test_targets_command_reports_a_malformed_folder_in_one_line(tmp_path, monkeypatch, capsys):
    _write_target(tmp_path, GOOD.replace('source: "a paper, Table 1"', 'note: "x"'))
    monkeypatch.setenv("NEUROCREDIT_TARGETS", str(tmp_path))
    assert main(["targets"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "energy.synop_j" in err and "bad.yaml" in err
