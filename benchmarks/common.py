"""Shared by the benchmark scripts: machine/version facts, peak memory, and the results files.

Every benchmark run appends one dated section to ``benchmarks/history.md`` (the exact command,
the machine, the package versions and the measured figures; append-only) and replaces its own row
of the table in ``benchmarks/RESULTS.md`` (one row per benchmark script: its current headline
figures, command and date). Nothing here is run in CI.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import resource
import shlex
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HISTORY = Path(__file__).resolve().parent / "history.md"
HISTORY_HEADER = """# Benchmark history

Each section below was appended by a script in `benchmarks/` (command, date, machine, versions,
figures); nothing is ever rewritten. Figures are measured, never estimated; speed ratios compare
contenders run in the same process or the same benchmark run. Newest sections are at the bottom.
The current figure of each benchmark is in the table of [RESULTS.md](RESULTS.md).
"""
TABLE_START = "<!-- benchmark table: one row per script, replaced by benchmarks/common.py at each run -->"
TABLE_END = "<!-- end of benchmark table -->"
TABLE_HEAD = "| benchmark | current figures | command | date (UTC) |\n|---|---|---|---|"
RESULTS_HEADER = f"""# Benchmark results

One row per benchmark script: the headline figures of its latest run, with the command and the
date. Every run also appends its full section (machine, versions, all figures) to
[history.md](history.md), newest at the bottom.

{TABLE_START}
{TABLE_HEAD}
{TABLE_END}
"""


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}"


def versions() -> str:
    from importlib import metadata

    names = ["neurocredit", "torch", "norse", "brian2", "lava-nc", "numpy"]
    parts = [f"python {platform.python_version()}"]
    for name in names:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(parts)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_child(args: list[str]) -> dict:
    """Run ``python args...`` in a fresh process; it must print one JSON object as its last line."""
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_worker(args, workers: dict) -> bool:
    """In a worker process (``args.worker`` set by :func:`worker_command`): print the JSON result
    of ``workers[args.worker](args)`` on stdout for ``run_child`` and return True; else False."""
    if not args.worker:
        return False
    print(json.dumps(workers[args.worker](args)))
    return True


def worker_command(script, worker: str, threads: int, data_dir=None, **options) -> list[str]:
    """``run_child`` arguments that run ``script`` as its own ``--worker``: every option ``name=value``
    becomes ``--name value`` (a list: ``--name v1 v2 ...``; ``True``: the bare flag; ``None`` or
    ``False``: left out)."""
    command = [str(script), "--worker", worker, "--threads", str(threads)]
    if data_dir:
        command += ["--data-dir", str(data_dir)]
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        if value is True:
            command.append(flag)
        elif isinstance(value, (list, tuple)):
            command += [flag, *map(str, value)]
        elif value is not None and value is not False:
            command += [flag, str(value)]
    return command


def train_interleaved(sessions: dict) -> None:
    """Train ``{name: TrainingSession}`` with their epochs interleaved (one epoch of each in turn,
    each to its own ``training.epochs``), so that their seconds per epoch see the same machine
    load; one progress line per epoch on stderr."""
    for epoch in range(max(session.config.training.epochs for session in sessions.values())):
        for name, session in sessions.items():
            if epoch < session.config.training.epochs:
                stats = session.run_epoch(progress=False)
                print(f"{name} epoch {stats.epoch}: loss {stats.loss:.4f} val {stats.validation_accuracy:.2%} "
                      f"{stats.seconds:.1f} s", file=sys.stderr, flush=True)


def publish(title: str, figures_markdown: str, print_only: bool, summary: str = "") -> None:
    """Print the figures (``--no-append``) or record them (:func:`append_results`)."""
    if print_only:
        print(figures_markdown)
    else:
        append_results(title, figures_markdown, summary=summary)


def append_results(title: str, figures_markdown: str, notes: str = "", summary: str = "",
                   results: Path = RESULTS, history: Path = HISTORY) -> None:
    """Append a dated section to history.md and replace this script's row of the RESULTS.md table
    with ``summary`` (one line of headline figures; default: the clauses that end in a bold figure)."""
    command = "python " + " ".join(shlex.quote(arg) for arg in sys.argv)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"\n## {title}\n\n- date: {stamp}\n- command: `{command}`\n- machine: {machine()}\n"
        f"- versions: {versions()}\n\n{figures_markdown.strip()}\n"
    )
    if notes:
        section += f"\n{notes.strip()}\n"
    if not history.exists():
        history.write_text(HISTORY_HEADER)
    with open(history, "a") as stream:
        stream.write(section)
    if not summary:
        clauses = re.findall(r"[^;|\n]*?\*\*[^*]+\*\*", figures_markdown + "\n" + notes)
        summary = "; ".join(clause.strip(" -") for clause in clauses) or title
    update_row(Path(sys.argv[0]).name, summary, command, stamp[: -len(" UTC")], results)
    print(section)


def update_row(script: str, summary: str, command: str, date: str, results: Path = RESULTS) -> None:
    """Replace (or add) the row of ``script`` in the table of ``results``; rows sorted by script."""
    text = results.read_text() if results.exists() else RESULTS_HEADER
    if TABLE_START not in text or TABLE_END not in text:
        raise ValueError(f"{results} has no benchmark table (the lines {TABLE_START!r} ... {TABLE_END!r})")
    before, rest = text.split(TABLE_START, 1)
    table, after = rest.split(TABLE_END, 1)
    key = f"| `{script}` |"
    rows = [line for line in table.strip().splitlines()[2:] if line.strip() and not line.startswith(key)]

    def cell(value: str) -> str:
        return " ".join(value.split()).replace("|", "\\|")

    rows.append(f"{key} {cell(summary)} | `{cell(command)}` | {date} |")
    rows.sort()
    results.write_text(f"{before}{TABLE_START}\n{TABLE_HEAD}\n" + "\n".join(rows) + f"\n{TABLE_END}{after}")


def config_with(path, steps: int | None = None, epochs: int | None = None):
    """A config file's Config with the encoder's steps and/or the training epochs replaced; with
    ``steps``, training runs on that window too (``training.steps`` 0), so a benchmark at T trains at T."""
    import dataclasses

    from neurocredit.config import load_config

    config = load_config(path)
    if steps is not None:
        encoder = dataclasses.replace(config.network.encoder, steps=steps)
        config = dataclasses.replace(config, network=dataclasses.replace(config.network, encoder=encoder))
        config = config.replace_training(steps=0)
    if epochs is not None:
        config = config.replace_training(epochs=epochs)
    return config


def training_memory(config, data_dir, batches: int) -> dict:
    """Peak RSS and median seconds per batch of ``batches`` training batches of ``config`` (run it
    in a child process of its own, so the peak is this configuration's alone)."""
    import time

    import numpy as np
    import torch

    from neurocredit.config import build_network
    from neurocredit.data import load_dataset
    from neurocredit.rules import rule_class

    training = config.training
    torch.manual_seed(training.seed)
    dataset = load_dataset(config.data.name, data_dir or config.data.data_dir)
    cls = rule_class(config.rule.name, config.network.neuron.kind)
    options = config.rule_options()
    network = build_network(config, dataset.n_features, cls.output_size(options, dataset.n_classes), training.seed,
                            dataset.image_shape)
    rule = cls(network, options, training, dataset.n_classes)
    order = np.random.default_rng(training.seed).permutation(len(dataset.x_train))
    before = peak_rss_mb()
    times = []
    for batch in range(batches):
        index = order[(batch * training.batch_size) % len(order):][: training.batch_size]
        began = time.perf_counter()
        rule.train_batch(torch.as_tensor(dataset.x_train[index]), torch.as_tensor(dataset.y_train[index]))
        times.append(time.perf_counter() - began)
    return {"rule": config.rule.name, "steps": config.network.encoder.steps, "batches": batches,
            "rss_before_training_mb": before, "peak_rss_mb": peak_rss_mb(),
            "seconds_per_batch": float(np.median(times))}
