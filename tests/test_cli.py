import json

import pytest

from neurocredit.config import models_dir


def test_train_eval_info_end_to_end(run_cli, tmp_path):
    model = tmp_path / "m.h5"
    result = run_cli("train", models_dir() / "digits-dfa-rate.yaml", "--epochs", "3", "--out", model,
                     "--no-progress", check_rc=0)
    assert "epoch   3/3" in result.stdout and "test accuracy" in result.stdout
    evaluated = json.loads(run_cli("eval", model, "--json", check_rc=0).stdout)
    assert evaluated["samples"] == 359 and evaluated["accuracy"] > 0.85 and evaluated["backend"] == "rate"
    limited = json.loads(run_cli("eval", model, "--json", "--limit", "50", check_rc=0).stdout)
    assert limited["samples"] == 50
    info = json.loads(run_cli("info", model, "--json", check_rc=0).stdout)
    assert info["sizes"] == [64, 256, 256, 10] and info["provenance"]["rule"] == "dfa"
    assert "digits-dfa-rate" in run_cli("models", check_rc=0).stdout


def one_line_error(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_bad_config_exits_2_with_one_line(run_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata: {name: digits}\nnetwork: {hidden: [4]}\nrule: {name: dfa}\n"
                   "training: {epochs: 1, batchsize: 3}\n")
    line = one_line_error(run_cli("train", bad))
    assert str(bad) in line and "unknown key 'batchsize'" in line


@pytest.mark.parametrize("content,expected", [
    (b"", "not a readable HDF5 file"),
    (b"\x89HDF\r\n\x1a\n" + b"\x00" * 64, "not a readable HDF5 file"),
])
def test_corrupted_model_exits_2(run_cli, tmp_path, content, expected):
    path = tmp_path / "broken.h5"
    path.write_bytes(content)
    for command in ("eval", "info"):
        assert expected in one_line_error(run_cli(command, path))


def test_missing_model_and_bad_flags(run_cli, tmp_path):
    assert "no such file" in one_line_error(run_cli("eval", tmp_path / "nope.h5"))
    assert "unrecognized arguments" in one_line_error(run_cli("eval", "x.h5", "--bogus"))
    assert "config file not found" in one_line_error(run_cli("train", "no-such-config"))
    assert "--threads must be >= 1, got 0" in one_line_error(run_cli("--threads", "0", "targets"))


def test_threads_option_sets_torch_threads(capsys):
    import torch

    from neurocredit.cli import main

    before = torch.get_num_threads()
    try:
        assert main(["--threads", "1", "targets", "--json"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert '"loihi2"' in capsys.readouterr().out
