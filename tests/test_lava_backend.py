"""The Lava backend (its golden traces and random networks are in test_backends.py): the sample
layout of the long input buffer, limit violations before anything is built, runtimes stopped after
an exception and after Ctrl-C (no leftover processes), and a deployed digits model's accuracy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, small_lif_network
from neurocredit.deploy import lava_backend
from neurocredit.deploy.lava_backend import choose_lanes, default_mode, from_lanes, to_lanes
from neurocredit.errors import NeurocreditError
from neurocredit.sim import encode_inputs, simulate

def live_children(pid: int) -> set[int]:
    """Pids of the live (not zombie) child processes of ``pid``."""
    children = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            children.add(int(entry.name))
    return children


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_lane_layout_round_trips():
    inputs = np.random.default_rng(0).random((4, 7, 3))
    rows = to_lanes(inputs, 3)
    assert rows.shape == (3 * 4, 3 * 3)
    # sample 4 = window 1, lane 1: rows 4..7, columns 3..5
    assert np.array_equal(rows[4:8, 3:6], inputs[:, 4])
    assert not rows[8:12, 3:9].any(), "missing samples of the last window are zeros"
    assert np.array_equal(from_lanes(rows, 4, 7, 3), inputs)


def test_mode_and_lanes_options(monkeypatch):
    network = small_lif_network(0)
    monkeypatch.delenv(lava_backend.MODE_ENV, raising=False)
    assert default_mode() == "fixed_pt"
    monkeypatch.setenv(lava_backend.MODE_ENV, "floating_pt")
    assert default_mode() == "floating_pt"
    monkeypatch.setenv(lava_backend.MODE_ENV, "double")
    with pytest.raises(NeurocreditError, match="NEUROCREDIT_LAVA_MODE"):
        default_mode()
    monkeypatch.delenv(lava_backend.LANES_ENV, raising=False)
    assert choose_lanes(network, 3) == 3
    assert choose_lanes(small_lif_network(0, sizes=(784, 100, 10)), 1000) == 5  # 25 x 78400 <= 2e6 < 36 x 78400
    monkeypatch.setenv(lava_backend.LANES_ENV, "2")
    assert choose_lanes(network, 100) == 2


def test_limit_violation_is_one_clear_error_before_lava_is_built(tmp_path, monkeypatch):
    target = tmp_path / "tiny.yaml"
    target.write_text('name: tiny\nspiking: true\nlimits:\n  neurons_per_core: {value: 8, source: "test"}\n'
                      '  cores_per_chip: {value: 4, source: "test"}\nenergy: {}\n')
    network = small_lif_network(0, sizes=(20, 30, 10))

    def must_not_build(*args, **kwargs):
        raise AssertionError("Lava processes were built despite the violation")

    monkeypatch.setattr(lava_backend, "build_graph", must_not_build)
    inputs = encode_inputs(network, np.random.default_rng(0).random((2, 20)))
    with pytest.raises(NeurocreditError) as error:
        lava_backend.run(network, inputs, target=str(target))
    message = str(error.value)
    assert "needs 6 cores" in message and "cores_per_chip 4" in message and "fc1: 4" in message


@pytest.mark.needs_lava
@pytest.mark.timeout(120)
def test_runtime_is_stopped_after_an_exception(monkeypatch):
    network = small_lif_network(1)
    inputs = encode_inputs(network, np.random.default_rng(1).random((3, network.n_inputs)))
    before = live_children(os.getpid())

    def broken(*args, **kwargs):
        raise RuntimeError("reading the results failed")

    monkeypatch.setattr(lava_backend, "_read_rows", broken)
    with pytest.raises(RuntimeError, match="reading the results failed"):
        lava_backend.run(network, inputs, mode="fixed_pt", target="none")
    deadline = time.monotonic() + 10
    while live_children(os.getpid()) - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (live_children(os.getpid()) - before), "Lava worker processes were left running"


CTRL_C_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import numpy as np
    from conftest import small_lif_network
    from neurocredit.deploy import lava_backend
    network = small_lif_network(0, steps=5000)
    inputs = (np.random.default_rng(0).random((5000, 1, network.n_inputs)) < 0.3).astype(np.float32)
    try:
        lava_backend.run(network, inputs, mode="fixed_pt", target="none")
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
    print("finished", flush=True)
""")


@pytest.mark.needs_lava
@pytest.mark.timeout(150)
def test_ctrl_c_stops_every_lava_process():
    script = CTRL_C_SCRIPT.format(tests=str(ROOT / "tests"))
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=ROOT)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 90
        # Source, Dense x2, LIF x2, sinks x2, runtime service, shared-memory manager.
        while len(workers) < 8 and time.monotonic() < deadline and process.poll() is None:
            workers |= live_children(process.pid)
            time.sleep(0.2)
        assert len(workers) >= 8, f"Lava did not start its workers ({len(workers)} seen)"
        time.sleep(1.0)  # let it run some steps
        assert process.poll() is None, "the run finished before it could be interrupted"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130 and "interrupted" in out, (process.returncode, out, err[-2000:])
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if alive(pid)], "Lava worker processes survived Ctrl-C"


def digits_spiking_model():
    """A digits-trained spiking model made in seconds (rate net converted to LIF); the test does
    not depend on what `make demo` left in models/out, so it is the same on every checkout."""
    from neurocredit.convert import converted_relu_network
    from neurocredit.data import load_dataset

    return converted_relu_network(steps=20), load_dataset("digits")


@pytest.mark.needs_lava
@pytest.mark.timeout(240)
def test_deployed_digits_model_keeps_its_accuracy():
    network, dataset = digits_spiking_model()
    x, y = dataset.x_test[:50], dataset.y_test[:50]
    float_record = simulate(network, x, y, backend="norse")
    inputs = encode_inputs(network, x)
    lava = lava_backend.run(network, inputs, mode="fixed_pt", target="loihi2").replace(labels=y)
    assert float_record.accuracy > 0.5, "the model should have learned something"
    assert abs(lava.accuracy - float_record.accuracy) <= 0.02, (lava.accuracy, float_record.accuracy)
    emulated = simulate(network, x, y, backend="emulator")
    assert np.array_equal(emulated.outputs, lava.outputs)
