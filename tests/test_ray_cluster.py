"""A real two-node Ray cluster on this machine (head and a second node, one CPU each, own temp
dirs, ports and auth token, torn down afterwards): compare-rules spreads its trials over both
nodes, and a trial whose worker process is killed mid-run restarts from its last checkpoint and
ends with the same weights as an uninterrupted in-process run.

Opt-in (``NEUROCREDIT_RAY_CLUSTER_TEST=1``): it depends on Ray's scheduling and on when the kill
lands, and on a loaded 2-core machine it failed 2 of 3 consecutive runs (one run placed both
trials on one node, one killed the worker before a checkpoint was written), so it is not part of
``make test`` until it is made deterministic."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.needs_ray, pytest.mark.slow,
              pytest.mark.skipif(os.environ.get("NEUROCREDIT_RAY_CLUSTER_TEST") != "1",
                                 reason="opt-in: NEUROCREDIT_RAY_CLUSTER_TEST=1 (timing-dependent, see module doc)")]
ray = pytest.importorskip("ray")

RAY = str(Path(sys.executable).with_name("ray"))


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _pids_under(*folders: str) -> list[int]:
    """Processes whose command line names one of ``folders`` (the nodes' temp dirs): ours only."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(folder in cmdline for folder in folders):
            found.append(int(entry.name))
    return found


def _children(parents: set[int]) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        if ppid in parents:
            children.append((int(entry.name), cmdline))
    return children


@pytest.fixture
def cluster():
    root = tempfile.mkdtemp(prefix="nc-ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    token = Path(root) / "token"
    token.write_text(secrets.token_hex(32))
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token), RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    ports = _free_ports(12)
    head, node = f"{root}/head", f"{root}/node"
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    try:
        subprocess.run([RAY, "start", "--head", "--port", str(ports[0]), "--temp-dir", head,
                        "--include-dashboard=false", "--node-manager-port", str(ports[1]), "--object-manager-port",
                        str(ports[2]), "--dashboard-agent-listen-port", str(ports[3]), "--metrics-export-port",
                        str(ports[4]), "--min-worker-port", "0", "--max-worker-port", "0", *common],
                       env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([RAY, "start", "--address", f"127.0.0.1:{ports[0]}", "--temp-dir", node,
                        "--node-manager-port", str(ports[6]), "--object-manager-port", str(ports[7]),
                        "--dashboard-agent-listen-port", str(ports[8]), "--metrics-export-port", str(ports[9]),
                        "--min-worker-port", "0", "--max-worker-port", "0", *common],
                       env=env, check=True, capture_output=True, timeout=120)
        yield {"address": f"127.0.0.1:{ports[0]}", "env": env, "root": root, "dirs": (head, node)}
    finally:
        for _ in range(20):  # tear down: every process of these two nodes, by pid
            pids = _pids_under(head, node)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.timeout(420)
def test_trials_spread_over_two_nodes_and_a_killed_worker_resumes(cluster, tmp_path):
    storage = Path(cluster["root"]) / "shared"  # a folder both nodes see (same machine)
    output = tmp_path / "rules.json"
    command = [sys.executable, "-m", "neurocredit", "compare-rules", "--configs", "digits-dfa-rate", "--seeds", "2",
               "--epochs", "4", "--targets", "cpu", "--address", cluster["address"], "--storage", str(storage),
               "--format", "json", "-o", str(output)]
    driver = subprocess.Popen(command, env=cluster["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    try:
        deadline = time.time() + 300
        while killed is None and time.time() < deadline and driver.poll() is None:
            checkpoints = list(storage.glob("compare-rules/*/checkpoint_000000/ray_workers.json"))
            if checkpoints:  # kill the worker of a trial that has checkpointed (its pid is in the checkpoint)
                try:
                    pid = json.loads(checkpoints[0].read_text())[-1]["pid"]
                except (ValueError, IndexError, KeyError, OSError):  # still being copied into the storage
                    time.sleep(0.1)
                    continue
                raylets = {p for p in _pids_under(*cluster["dirs"])
                           if "raylet" in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")}
                if pid in {child for child, _ in _children(raylets)}:  # one of this cluster's workers
                    killed = pid
                    os.kill(killed, signal.SIGKILL)
            time.sleep(0.1)
        stdout, stderr = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert killed is not None, "no trial worker was found to kill"
    assert driver.returncode == 0, stderr[-3000:]
    payload = json.loads(output.read_text())
    results = payload["results"]
    assert len(results) == 2 and all(len(result["history"]) == 4 for result in results)
    assert len({worker["node"] for result in results for worker in result["ray_workers"]}) == 2, \
        "trials did not use both nodes"
    restarted = [result for result in results if len(result["ray_workers"]) > 1]
    assert restarted, "no trial was restarted after its worker was killed"
    assert any(worker["pid"] == killed for worker in restarted[0]["ray_workers"])
    assert restarted[0]["ray_workers"][-1]["resumed_at_epoch"] >= 1  # from its checkpoint, not from scratch

    from neurocredit.trials import Trial, run_trial

    for result in results:  # the same weights as uninterrupted in-process runs
        local = run_trial(Trial("digits-dfa-rate", "digits-dfa-rate", result["seed"], epochs=4, targets=("cpu",)))
        assert result["weights_sha256"] == local["weights_sha256"]
        assert [h["loss"] for h in result["history"]] == [h["loss"] for h in local["history"]]
