"""Turn a network's outputs into predicted classes (the ``readout`` of the ``Network`` spec)."""

from __future__ import annotations

import numpy as np

from neurocredit.network import Network


def predict(network: Network, outputs: np.ndarray) -> np.ndarray:
    """Predicted class per row of ``outputs`` (batch, n_outputs), int64.

    ``argmax``: ties go to the lowest class index (numpy's argmax), identically in every
    backend because all of them hand over the same spike counts.
    ``nearest_prototype``: largest cosine similarity with ``extras['readout/prototypes']``.
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    if network.readout.kind == "nearest_prototype":
        prototypes = np.asarray(network.extras["readout/prototypes"], dtype=np.float64)
        norm_out = np.linalg.norm(outputs, axis=1, keepdims=True) + 1e-12
        norm_proto = np.linalg.norm(prototypes, axis=1, keepdims=True) + 1e-12
        similarity = (outputs / norm_out) @ (prototypes / norm_proto).T
        return np.argmax(similarity, axis=1).astype(np.int64)
    return np.argmax(outputs, axis=1).astype(np.int64)
