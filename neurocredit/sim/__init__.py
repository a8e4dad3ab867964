"""Backend registry and the one entry point that runs a ``Network`` on data.

A backend is a module with a function ``run(network, inputs, record) -> RunRecord``:

* ``inputs`` is the already-encoded input, (steps, batch, n_inputs) float32 for LIF networks
  (made once by :func:`neurocredit.encoders.encode`, so every backend sees identical spikes)
  or the features (batch, n_inputs) for rate networks;
* ``record`` is a set of names among ``spikes``, ``voltages``, ``currents``;
* the returned record has ``outputs``, ``predictions`` (via :func:`neurocredit.readout.predict`)
  and ``spike_counts`` filled; ``labels`` are added by :func:`simulate`.

Backends are imported lazily, so ``import neurocredit`` never imports Lava, Brian2 or torch.
"""

from __future__ import annotations

import importlib
import time
from typing import Callable, Iterable, Optional

import numpy as np

from neurocredit.encoders import encode
from neurocredit.errors import NeurocreditError
from neurocredit.network import Network
from neurocredit.record import RunRecord

BACKENDS = {
    "rate": "neurocredit.sim.rate_backend",
    "reference": "neurocredit.sim.reference_backend",
    "norse": "neurocredit.sim.norse_backend",
    "brian2": "neurocredit.sim.brian2_backend",
    "lava": "neurocredit.deploy.lava_backend",
    "emulator": "neurocredit.deploy.emulator",
}
RECORDABLE = ("spikes", "voltages", "currents")


def get_backend(name: str):
    """The backend module registered under ``name``."""
    if name not in BACKENDS:
        raise NeurocreditError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    try:
        return importlib.import_module(BACKENDS[name])
    except ModuleNotFoundError as error:
        raise NeurocreditError(
            f"backend {name!r} is not available ({error}); install the package with `make venv`"
        ) from None


def spiking_backends() -> list[str]:
    """The registered backends that run spiking (lif) networks."""
    return [name for name in BACKENDS if name != "rate"]


def backend_help(default: str = "norse for lif networks, rate for rate networks") -> str:
    """The ``--backend`` help text of every command, from the registry."""
    return f"one of {', '.join(BACKENDS)} (default: {default})"


def default_backend(network: Network) -> str:
    return "norse" if network.neuron.spiking else "rate"


def encode_inputs(network: Network, features: np.ndarray, steps: Optional[int] = None, offset: int = 0) -> np.ndarray:
    """The input a backend receives for ``features`` (see module doc)."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or features.shape[1] != network.n_inputs:
        raise NeurocreditError(
            f"input has shape {features.shape}; the network expects (batch, {network.n_inputs})"
        )
    if not network.neuron.spiking:
        return features
    return encode(network.encoder, features, steps=steps, offset=offset)


def simulate(
    network: Network,
    features: np.ndarray,
    labels: Optional[np.ndarray] = None,
    backend: Optional[str] = None,
    steps: Optional[int] = None,
    record: Iterable[str] = (),
    batch_size: int = 1000,
    progress: bool = False,
) -> RunRecord:
    """Run ``network`` on ``features`` (batch, n_inputs) with a backend; returns one RunRecord.

    Samples are encoded with their index in ``features`` (so the same sample gets the same spikes
    whatever the batching) and processed in chunks of ``batch_size``.
    """
    record = frozenset(record)
    unknown = record - set(RECORDABLE)
    if unknown:
        raise NeurocreditError(f"cannot record {', '.join(sorted(unknown))}; choose from {', '.join(RECORDABLE)}")
    name = backend or default_backend(network)
    if network.neuron.spiking and name == "rate":
        raise NeurocreditError("backend 'rate' runs rate networks only; use norse, brian2, lava or emulator")
    if not network.neuron.spiking and name != "rate":
        raise NeurocreditError(f"backend {name!r} runs spiking (lif) networks; this is a rate network (use 'rate')")
    module = get_backend(name)
    return run_chunked(lambda inputs: module.run(network, inputs, record), network, features, labels,
                       steps=steps, batch_size=batch_size, progress=progress, label=f"simulate ({name})")


def run_chunked(
    run_chunk: Callable[[np.ndarray], RunRecord],
    network: Network,
    features: np.ndarray,
    labels: Optional[np.ndarray] = None,
    steps: Optional[int] = None,
    batch_size: int = 1000,
    progress: bool = False,
    label: str = "simulate",
) -> RunRecord:
    """Encode ``features`` chunk by chunk (sample index = position in ``features``) and run each
    chunk with ``run_chunk(inputs)``; ``seconds`` counts the runs only, not the encoding."""
    features = np.asarray(features, dtype=np.float32)
    chunks = range(0, len(features), max(1, batch_size))
    if progress and len(chunks) > 1:
        from tqdm import tqdm

        chunks = tqdm(chunks, desc=label, unit="batch", leave=False)
    result: Optional[RunRecord] = None
    for start in chunks:
        inputs = encode_inputs(network, features[start : start + batch_size], steps=steps, offset=start)
        began = time.perf_counter()
        part = run_chunk(inputs).replace(seconds=time.perf_counter() - began)
        result = part if result is None else result.concatenate(part)
    if result is None:
        raise NeurocreditError("no samples to simulate")
    if labels is not None:
        result = result.replace(labels=np.asarray(labels, dtype=np.int64))
    return result
