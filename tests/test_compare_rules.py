"""compare-rules and sweep: the table's numbers are those of the individual runs; Ray (embedded)
runs the same trials to the same numbers; the HTML page renders; without Ray both commands say
how to install it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from neurocredit.cli import main
from neurocredit.compare_rules import compare, make_trials, mean_std, parse_contenders, render, rule_criteria
from neurocredit.config import load_config
from neurocredit.train import train

CONTENDERS = "digits-dfa-rate,digits-bp-rate"
EPOCHS, MAX_BATCHES, SEEDS = 2, 3, 2


def _trials():
    return make_trials(parse_contenders(CONTENDERS), SEEDS, epochs=EPOCHS, max_batches=MAX_BATCHES,
                       targets=("loihi2", "cpu"))


@pytest.fixture(scope="module")
def local_payload():
    return compare(_trials(), runner="local", log=lambda line: None)


def test_table_numbers_are_those_of_the_individual_runs(local_payload):
    from neurocredit.report import build_report, select_targets

    summary = {row["label"]: row for row in local_payload["summary"]}
    assert list(summary) == ["digits-dfa-rate", "digits-bp-rate"]
    for name in ("digits-dfa-rate", "digits-bp-rate"):
        runs = [train(load_config(name), epochs=EPOCHS, seed=seed, progress=False, log=lambda line: None,
                      max_batches=MAX_BATCHES) for seed in range(SEEDS)]
        validation = [run.validation_accuracy for run in runs]
        test = [run.test_accuracy for run in runs]
        row = summary[name]
        assert row["validation_accuracy"] == (np.mean(validation), np.std(validation, ddof=1))
        assert row["test_accuracy"] == (np.mean(test), np.std(test, ddof=1))
        assert [p[0] for p in row["validation_curve"]] == [np.mean([r.history[e].validation_accuracy for r in runs])
                                                           for e in range(EPOCHS)]
        energies = [build_report(run.network, run.record, select_targets(["cpu"]))["targets"]["cpu"]
                    ["energy_per_sample_j"] for run in runs]
        assert row["energy_per_inference_j"]["cpu"][0] == pytest.approx(np.mean(energies), rel=1e-12)
        assert row["energy_per_inference_j"]["loihi2"] is None  # a rate network has no spiking-target figure
        assert row["criteria"] == rule_criteria(row["rule"], "rate")
        assert row["seconds_per_epoch"][0] > 0 and row["seeds"] == [0, 1]


def test_formats(local_payload, tmp_path):
    markdown = render(local_payload, "md")
    assert markdown.count("\n| digits-") == 2 and "weight transport" in markdown and " ± " in markdown
    import json

    assert json.loads(render(local_payload, "json"))["trials"] == 4
    page = render(local_payload, "html")
    assert page.count("data:image/png;base64,") == 2 and 'id="plot-curves"' in page and 'id="plot-scatter"' in page
    assert "<script" not in page.lower() and 'src="http' not in page.lower()


@pytest.mark.needs_browser
@pytest.mark.timeout(180)
def test_html_renders_in_headless_chromium(local_payload, tmp_path):
    from neurocredit.compare_rules import PALETTE

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (Debian package `chromium`; .ci/run installs it)")
    page = tmp_path / "rules.html"
    page.write_text(render(local_payload, "html"))
    screenshot = tmp_path / "out.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", f"--screenshot={screenshot}", "--window-size=1200,1600",
                        page.resolve().as_uri()], capture_output=True, timeout=150, check=False)
    assert screenshot.exists(), "Chromium wrote no screenshot"
    import matplotlib.image

    image = matplotlib.image.imread(screenshot)[..., :3]
    for colour in PALETTE[:2]:  # both contenders' curves and markers are drawn
        rgb = np.array([int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
        assert np.count_nonzero(np.all(np.abs(image - rgb) < 0.06, axis=-1)) > 40, colour


def test_contenders_from_a_listing_glob_and_errors(tmp_path):
    from neurocredit.errors import NeurocreditError

    listing = tmp_path / "contenders.yaml"
    listing.write_text("contenders:\n  - config: digits-dfa-rate\n    label: DFA fast\n"
                       "    overrides: {training.learning_rate: 0.003}\n  - digits-bp-rate\n")
    assert parse_contenders(str(listing)) == [("digits-dfa-rate", "DFA fast", {"training.learning_rate": 0.003}),
                                              ("digits-bp-rate", "", {})]
    from neurocredit.config import models_dir

    found = parse_contenders(str(models_dir() / "digits-*-rate.yaml"))
    expected = sorted(str(path) for path in models_dir().glob("digits-*-rate.yaml"))
    assert [name for name, _, _ in found] == expected and len(expected) >= 4
    with pytest.raises(NeurocreditError, match="no file matches"):
        parse_contenders(str(tmp_path / "none-*.yaml"))
    with pytest.raises(NeurocreditError, match="appears twice"):
        make_trials(parse_contenders("digits-dfa-rate,digits-dfa-rate"), 1)


def test_without_ray_both_commands_say_how_to_install_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    space = tmp_path / "space.yaml"
    space.write_text("config: digits-dfa-rate\nspace: {training.learning_rate: [0.001]}\n")
    for argv in (["compare-rules", "--configs", "digits-dfa-rate", "--seeds", "1"], ["sweep", str(space)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "pip install 'neurocredit[sweep]'" in err


def test_sweep_selects_on_validation_and_stops_early(tmp_path):
    from neurocredit.sweep import MedianStopping, load_sweep, make_trials as sweep_trials, run_sweep
    from neurocredit.trials import StopTrial

    space = tmp_path / "space.yaml"
    space.write_text("config: digits-dfa-rate\nsearch: grid\nepochs: 2\nscheduler: {kind: median, grace_epochs: 1}\n"
                     "space:\n  training.learning_rate: [0.003, 0.00001]\n")
    spec = load_sweep(str(space))
    payload = run_sweep(spec, sweep_trials(spec, max_batches=MAX_BATCHES), log=lambda line: None)
    first, second = payload["results"]
    assert not first["stopped_early"] and first["epochs"] == 2
    assert second["stopped_early"] and second["epochs"] == 1  # far below the first trial after one epoch
    assert [row["label"] for row in payload["ranking"]] == ["#1", "#2"]
    assert "test_accuracy" not in payload["ranking"][0] and payload["best"]["test_accuracy"] == first["test_accuracy"]
    # the rule itself: below the median of the earlier trials' running means -> stop
    rule = MedianStopping(grace_epochs=2)
    rule.current = [0.5, 0.6]
    rule.end_trial()
    rule.on_epoch(None, None, type("S", (), {"validation_accuracy": 0.1})())  # grace: no decision
    with pytest.raises(StopTrial):
        rule.on_epoch(None, None, type("S", (), {"validation_accuracy": 0.2})())


def test_sweep_space_errors(tmp_path):
    from neurocredit.errors import NeurocreditError
    from neurocredit.sweep import load_sweep

    space = tmp_path / "space.yaml"
    for text, message in [("config: x\nspace: {a: {uniform: [1, 2]}}\n", "needs search: random"),
                          ("config: x\nsearch: random\nspace: {a: {loguniform: [0, 2]}}\n", "low > 0"),
                          ("config: x\nspace: {}\n", "space must map"),
                          ("config: x\nspace: {a: [1]}\nscheduler: {kind: asha}\n", "scheduler must be")]:
        space.write_text(text)
        with pytest.raises(NeurocreditError, match=message):
            load_sweep(str(space))


def test_an_embedded_instance_never_joins_another_ray_on_the_machine(monkeypatch):
    """Without --address (or RAY_ADDRESS) ray.init() would join the latest cluster started on this
    machine (/tmp/ray/ray_current_cluster), e.g. a test's or a user's: ``address="local"`` starts
    a new instance, as the docs promise."""
    import types

    from neurocredit import trials

    calls = []
    fake = types.SimpleNamespace(is_initialized=lambda: False, init=lambda **kwargs: calls.append(kwargs),
                                 cluster_resources=lambda: {"CPU": 2.0})
    monkeypatch.setattr(trials, "import_ray", lambda: (fake, None))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert trials.ray_init(None, 2) == "embedded Ray on this machine (2 CPUs)"
    assert [(call["address"], call["num_cpus"]) for call in calls] == [("local", 2)]
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert trials.ray_init(None) == "Ray cluster at 10.0.0.1:6379"
    assert calls[-1]["address"] == "10.0.0.1:6379" and "num_cpus" not in calls[-1]


@pytest.mark.needs_ray
@pytest.mark.timeout(300)
def test_embedded_ray_runs_the_same_trials_to_the_same_numbers(local_payload, tmp_path):
    pytest.importorskip("ray")
    payload = compare(_trials(), runner="ray", storage=str(tmp_path / "ray"), num_cpus=2, log=lambda line: None)
    for ours, theirs in zip(local_payload["results"], payload["results"]):
        assert (ours["label"], ours["seed"]) == (theirs["label"], theirs["seed"])
        for key in ("validation_accuracy", "test_accuracy", "energy_per_inference_j", "energy_per_training_sample_j"):
            assert ours[key] == theirs[key], key
        assert [h["loss"] for h in ours["history"]] == [h["loss"] for h in theirs["history"]]


def test_batch_memory_grows_with_steps_for_bptt():
    """BPTT keeps every step for the backward pass: one batch at 2T steps needs clearly more memory
    than at T (the column the table shows as 'batch MiB vs T'); rate networks are not measured."""
    from neurocredit.data import load_digits
    from neurocredit.trials import Trial, batch_memory_in_steps, trial_config

    digits = load_digits()
    measured = batch_memory_in_steps(trial_config(Trial("bptt", "digits-bptt-snn")), digits)
    at_t, at_2t = measured["batch_peak_mib"]
    assert measured["steps"][1] == 2 * measured["steps"][0]
    assert at_2t > 1.2 * at_t > 0, measured
    assert batch_memory_in_steps(trial_config(Trial("dfa", "digits-dfa-rate")), digits) is None


@pytest.mark.needs_ray
@pytest.mark.timeout(300)
def test_sweep_on_embedded_ray_ranks_on_validation(tmp_path):
    pytest.importorskip("ray")
    from neurocredit.sweep import load_sweep, make_trials as sweep_trials, run_sweep

    space = tmp_path / "space.yaml"
    space.write_text("config: digits-dfa-rate\nsearch: grid\nepochs: 2\nscheduler: {kind: median, grace_epochs: 1}\n"
                     "space:\n  training.learning_rate: [0.003, 0.00001]\n")
    spec = load_sweep(str(space))
    trials = sweep_trials(spec, max_batches=MAX_BATCHES)
    payload = run_sweep(spec, trials, runner="ray", storage=str(tmp_path / "ray"), num_cpus=2, log=lambda line: None)
    local = run_sweep(spec, trials, runner="local", log=lambda line: None)
    assert payload["ranking"][0]["label"] == local["ranking"][0]["label"] == "#1"
    assert payload["ranking"][0]["validation_accuracy"] == local["ranking"][0]["validation_accuracy"]
    assert payload["best"]["test_accuracy"] == local["best"]["test_accuracy"]


def test_the_benchmark_grid_has_one_contender_per_rule_and_kind():
    """benchmarks/digits-rules.yaml (the issue's rule x {rate, lif} grid) lists every registered rule
    with each neuron kind it trains, once."""
    from pathlib import Path

    from neurocredit.rules import rule_specs
    from neurocredit.trials import Trial, trial_config

    grid = Path(__file__).resolve().parents[1] / "benchmarks" / "digits-rules.yaml"
    pairs = []
    for config, label, overrides in parse_contenders(str(grid)):
        loaded = trial_config(Trial(label, config, overrides=overrides))
        pairs.append((loaded.rule.name, loaded.network.neuron.kind))
        assert loaded.data.name == "digits" and not loaded.network.layers  # dense (hidden:) networks
    assert sorted(pairs) == sorted((spec.name, kind) for spec in rule_specs() for kind in spec.variants)


@pytest.mark.timeout(120)
def test_skipping_the_train_accuracy_pass_keeps_the_weights():
    """Trials skip the per-epoch pass over the training set; a spiking rule's predictor draws from
    its own generator, so the trained weights are those of a run with the pass."""
    config = load_config("digits-dfa-snn")
    runs = [train(config, epochs=2, progress=False, log=lambda line: None, max_batches=2, train_accuracy=flag)
            for flag in (True, False)]
    for ours, theirs in zip(runs[0].network.weights, runs[1].network.weights):
        np.testing.assert_array_equal(ours, theirs)
    assert [h.validation_accuracy for h in runs[0].history] == [h.validation_accuracy for h in runs[1].history]
    assert all(0 <= h.train_accuracy <= 1 for h in runs[0].history)
    assert all(np.isnan(h.train_accuracy) for h in runs[1].history)


def test_mean_std_is_the_sample_std_and_zero_for_a_spread_of_float_rounding():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([7.0]) == (7.0, 0.0)
    assert mean_std([1.0, None]) is None
    energy = 7.31e-4  # the same sum in different orders differs in the last bits
    mean, std = mean_std([energy, energy * (1 + 2e-16), energy * (1 - 2e-16)])
    assert std == 0.0 and mean == pytest.approx(energy, rel=1e-15)
    assert mean_std([energy, energy * (1 + 1e-9)])[1] > 0.0
