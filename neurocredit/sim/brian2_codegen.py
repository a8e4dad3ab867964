"""Brian2 code generation for the brian2 backend: which target (Cython or numpy) a run uses, where
compiled code is cached, and Brian2 preferences for exact float arithmetic.

``NEUROCREDIT_BRIAN2_TARGET`` = ``auto`` (default), ``cython`` or ``numpy``. Both give the same
numbers. Cython runs large batches faster but its first use costs minutes of compilation per
network depth; ``auto`` therefore uses it only when it is already
compiled or the run is large enough to pay for it, and otherwise numpy (see :func:`code_target`);
a missing compiler is a one-line notice on stderr. Compiled modules are cached in
``NEUROCREDIT_BRIAN2_CACHE`` (default ``~/.cache/neurocredit/brian2``), never in the project.
For the numpy target the ``SpikeGeneratorGroup`` uses our own template (see
:data:`SPIKE_GENERATOR_NUMPY_TEMPLATE`): Brian2's costs O(all input spikes) per step.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from neurocredit.errors import NeurocreditError

TARGET_ENV = "NEUROCREDIT_BRIAN2_TARGET"
CACHE_ENV = "NEUROCREDIT_BRIAN2_CACHE"
TARGETS = ("auto", "cython", "numpy")
CYTHON_MIN_EVENTS = 1e9
"""Input synaptic events (input spikes x fan-out) from which ``auto`` compiles Cython code (a
few hundred Fashion-MNIST samples of 100 steps: where the time Cython saves pays for its
compilation; benchmarks/bench_brian2.py measures both)."""

# Compiler flags for the Cython target: Brian2's defaults minus -ffast-math (which allows
# reassociation) and with contraction into fused multiply-adds switched off.
EXACT_GCC_FLAGS = ["-w", "-O3", "-fno-fast-math", "-ffp-contract=off", "-std=c++11"]

_cython_checked: Optional[bool] = None
_notices: set = set()


def cache_dir() -> Path:
    """Where compiled Brian2/Cython modules are kept (outside the project tree)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "neurocredit" / "brian2")


@contextlib.contextmanager
def brian2_preferences(target: str) -> Iterator[None]:
    """Set Brian2's global preferences for this backend and put the caller's back afterwards."""
    from brian2 import prefs

    wanted = {
        "codegen.target": target,
        "core.default_float_dtype": np.float64,
        "codegen.runtime.cython.cache_dir": str(cache_dir()),
        "codegen.cpp.extra_compile_args_gcc": list(EXACT_GCC_FLAGS),
    }
    saved = {name: prefs[name] for name in wanted}
    try:
        for name, value in wanted.items():
            prefs[name] = value
        yield
    finally:
        for name, value in saved.items():
            prefs[name] = value


def _cython_works() -> bool:
    """Whether Brian2 can compile Cython code here (checked once per process)."""
    global _cython_checked
    if _cython_checked is None:
        from brian2.codegen.runtime.cython_rt import CythonCodeObject

        cache_dir().mkdir(parents=True, exist_ok=True)
        with brian2_preferences("numpy"), _quiet_brian2():
            try:
                _cython_checked = bool(CythonCodeObject.is_available())
            except Exception:  # any failure of the test compilation means: no Cython
                _cython_checked = False
    return _cython_checked


@contextlib.contextmanager
def _quiet_brian2() -> Iterator[None]:
    """Silence Brian2's console log (its failed-compilation warning) inside the block."""
    from brian2.utils.logger import BrianLogger

    handler = BrianLogger.console_handler
    level = handler.level if handler is not None else None
    try:
        if handler is not None:
            handler.setLevel("ERROR")
        yield
    finally:
        if handler is not None:
            handler.setLevel(level)


def ready_marker(signature: str) -> Path:
    return cache_dir() / f"ready-{signature}"


def code_target(expected_events: float = 0.0, signature: str = "") -> str:
    """The Brian2 code-generation target for a run: ``cython`` or ``numpy``.

    ``NEUROCREDIT_BRIAN2_TARGET=numpy`` or ``cython`` forces one (``cython`` without a working
    compiler is an error). ``auto`` (default): Cython when it works and either its modules for
    this network ``signature`` are already compiled (a marker in :func:`cache_dir`) or the run
    delivers at least :data:`CYTHON_MIN_EVENTS` synaptic events (``expected_events``), where the
    one-time compilation (minutes on a small machine) pays back; numpy otherwise. At run time
    both are equally fast for small runs; for a 784-100-10 net Cython is about 2x faster.
    """
    wanted = os.environ.get(TARGET_ENV, "auto").strip().lower() or "auto"
    if wanted not in TARGETS:
        raise NeurocreditError(f"{TARGET_ENV}={wanted!r} is not one of {', '.join(TARGETS)}")
    if wanted == "numpy":
        return "numpy"
    compiled = bool(signature) and ready_marker(signature).exists()
    if wanted == "auto" and not compiled and expected_events < CYTHON_MIN_EVENTS:
        return "numpy"
    if _cython_works():
        if not compiled and signature not in _notices:
            _notices.add(signature)
            sys.stderr.write(
                f"neurocredit: compiling the Brian2 network with Cython (once per network shape; can take "
                f"minutes; cached in {cache_dir()}; {TARGET_ENV}=numpy skips it)\n"
            )
        return "cython"
    if wanted == "cython":
        raise NeurocreditError(
            f"{TARGET_ENV}=cython but Cython code cannot be compiled here: install a C compiler "
            "(gcc) and the Python 3.10 headers (python3.10-dev), or set it to numpy"
        )
    if "no compiler" not in _notices:
        _notices.add("no compiler")
        sys.stderr.write(
            "neurocredit: no working C compiler/Python headers for Cython, so the brian2 backend uses "
            "Brian2's numpy target (about 2x slower on large runs); install gcc and python3.10-dev\n"
        )
    return "numpy"


def code_signature(network: Any, graded_input: bool, record: frozenset) -> str:
    """What the compiled code depends on (not sizes or parameters): Brian2 version, number of
    layers, input kind, recorded states, and the interpreter path (part of Brian2's Cython cache
    key). Names the compiled-modules marker in :func:`cache_dir`."""
    import hashlib

    from brian2 import __version__ as brian2_version

    states = "-".join(sorted(frozenset(record) & {"voltages", "currents"})) or "nostates"
    kind = "graded" if graded_input else "spikes"
    interpreter = hashlib.sha1(sys.executable.encode()).hexdigest()[:8]
    refractory = "-refractory" if network.neuron.lif.refractory else ""
    return f"brian2-{brian2_version}-{len(network.layers)}layers-{kind}-{states}{refractory}-{interpreter}"


# Brian2's numpy template for SpikeGeneratorGroup calls numpy.searchsorted(int32 time bins,
# int64 current step), which converts the whole remaining spike array to int64 every step
# (milliseconds per step for a large batch). Ours casts the step to int32 instead; same result
# (this backend never uses a period, and runs stay far below 2**31 steps).
SPIKE_GENERATOR_NUMPY_TEMPLATE = """\
{# USES_VARIABLES { _spikespace, neuron_index, _timebins, _lastindex, t_in_timesteps } #}
{% extends 'common_group.py_' %}
{% block maincode %}
_first = {{_lastindex}}
_count = _numpy.searchsorted({{_timebins}}[_first:], _numpy.int32({{t_in_timesteps}}), side='right')
{{_lastindex}} = _first + _count
{{_spikespace}}[:_count] = {{neuron_index}}[_first:_first + _count]
{{_spikespace}}[-1] = _count
{% endblock %}
"""
_spike_generator_numpy_class = None


def spike_generator_numpy_code_object():
    """A ``NumpyCodeObject`` whose ``spikegenerator`` template is the one above."""
    global _spike_generator_numpy_class
    if _spike_generator_numpy_class is None:
        from brian2.codegen.runtime.numpy_rt import NumpyCodeObject
        from brian2.codegen.templates import Templater
        from jinja2 import ChoiceLoader, DictLoader

        base = NumpyCodeObject.templater
        templater = Templater(base.package_names, base.extension, dict(base.env_globals), base.templates_dir)
        templater.env.loader = ChoiceLoader(
            [DictLoader({"spikegenerator.py_": SPIKE_GENERATOR_NUMPY_TEMPLATE}), templater.env.loader]
        )
        _spike_generator_numpy_class = type(
            "SpikeGeneratorNumpyCodeObject", (NumpyCodeObject,), {"templater": templater}
        )
    return _spike_generator_numpy_class
