"""Spike, operation and energy reports of one model on one data set: JSON, markdown and HTML.

:func:`build_report` (:mod:`neurocredit.report.build`) turns a ``Network`` and the ``RunRecord``
of a simulation into one plain, JSON-ready dict; :mod:`neurocredit.report.markdown` and
:mod:`neurocredit.report.html` only format that dict (the HTML page adds plots drawn from it and
from a few spike rasters). :func:`report_model` simulates and builds in one call.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from neurocredit.errors import NeurocreditError
from neurocredit.report.build import build_report, raster_populations, report_model, select_targets
from neurocredit.report.html import PALETTE, render_html
from neurocredit.report.markdown import format_joules, render_json, render_markdown

__all__ = ["FORMATS", "PALETTE", "build_report", "format_joules", "raster_populations", "render", "render_html",
           "render_json", "render_markdown", "report_model", "select_targets", "write_text"]

FORMATS = ("md", "json", "html")


def render(report: dict, fmt: str, rasters: Optional[Sequence[np.ndarray]] = None, raster_samples: int = 3) -> str:
    if fmt == "md":
        return render_markdown(report)
    if fmt == "json":
        return render_json(report)
    if fmt == "html":
        return render_html(report, rasters, raster_samples)
    raise NeurocreditError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")

def write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, with the permissions of a normally created file."""
    import os

    from neurocredit.io import atomic_path

    umask = os.umask(0)
    os.umask(umask)
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")
        os.chmod(temp, 0o666 & ~umask)
