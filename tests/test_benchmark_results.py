"""benchmarks/RESULTS.md opens with one row per benchmark script; a benchmark run appends its
section to benchmarks/history.md and replaces its own row (benchmarks/common.py)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from conftest import ROOT

BENCHMARKS = ROOT / "benchmarks"


@pytest.fixture
def common():
    spec = importlib.util.spec_from_file_location("benchmarks_common", BENCHMARKS / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table_rows(text: str, common) -> list[str]:
    table = text.split(common.TABLE_START, 1)[1].split(common.TABLE_END, 1)[0]
    return table.strip().splitlines()[2:]


def test_results_table_has_one_row_per_benchmark_script(common):
    rows = table_rows((BENCHMARKS / "RESULTS.md").read_text(), common)
    scripts = sorted(path.name for path in BENCHMARKS.glob("bench_*.py"))
    assert [row.split("`")[1] for row in rows] == scripts
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split(" | ")]
        assert len(cells) == 4 and cells[1] and cells[2].startswith("`") and cells[3][:4] == "2026", row


def test_a_run_appends_its_section_and_replaces_its_row(common, tmp_path, monkeypatch):
    results, history = tmp_path / "RESULTS.md", tmp_path / "history.md"
    monkeypatch.setattr(sys, "argv", ["benchmarks/bench_b.py", "--epochs", "2"])
    common.append_results("B", "| x |\n|---|\n| 1 |", summary="accuracy 90.00% | 2 epochs", results=results,
                          history=history)
    monkeypatch.setattr(sys, "argv", ["benchmarks/bench_a.py"])
    common.append_results("A", "- speed-up vs (a) = **3.0x**; memory 2 MiB", results=results, history=history)
    monkeypatch.setattr(sys, "argv", ["benchmarks/bench_b.py", "--epochs", "3"])
    common.append_results("B", "| x |\n|---|\n| 2 |", summary="accuracy 91.00%", results=results, history=history)

    rows = table_rows(results.read_text(), common)
    assert len(rows) == 2
    assert rows[0].startswith("| `bench_a.py` | speed-up vs (a) = **3.0x** | `python benchmarks/bench_a.py` |")
    assert rows[1].startswith("| `bench_b.py` | accuracy 91.00% | `python benchmarks/bench_b.py --epochs 3` |")
    text = history.read_text()
    assert text.startswith(common.HISTORY_HEADER) and text.count("\n## B\n") == 2 and text.count("\n## A\n") == 1
    assert text.index("| 1 |") < text.index("speed-up") < text.index("| 2 |")  # append-only, in run order
    monkeypatch.setattr(sys, "argv", ["benchmarks/bench_c.py"])
    common.append_results("C", "x", summary="a | b", results=results, history=history)
    assert "| `bench_c.py` | a \\| b |" in results.read_text()  # a pipe cannot break the table
