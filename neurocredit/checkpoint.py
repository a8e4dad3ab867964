"""Training checkpoints: everything a :class:`~neurocredit.train.TrainingSession` needs to
continue bit for bit.

A checkpoint folder holds ``checkpoint.pt`` (``torch.save`` of plain containers and tensors,
read back with ``weights_only=True``) and ``network.h5`` (the network after the same epoch, a
convenience for ``neurocredit eval``; the checkpoint alone is what resuming reads). Both are
written atomically (:func:`neurocredit.io.atomic_path`) after every epoch, so a run killed at
any moment leaves the last finished epoch's checkpoint intact. ``checkpoint.pt``
(``SCHEMA_VERSION`` 1)::

    format            "neurocredit-checkpoint"
    schema_version    1
    neurocredit_version
    epoch             epochs finished (1-based count)
    fingerprint       JSON of what must not change between the run and its resumption: the
                      config (network, rule, data, training except epochs and learning rate),
                      the data set's name and split sizes
    history           [EpochStats as a dict, ...]; seconds: training seconds so far
    rule              Rule.state_dict(): tensors (weights, biases, the rule's extra tensors),
                      optimizer states, the rule's torch generators
    shuffle_rng       JSON of the session's numpy Generator state (batch order)
    torch_rng         torch's global CPU generator state (uint8 tensor)
    numpy_rng         numpy's legacy global state: key (int64 tensor), pos, has_gauss, cached_gaussian

A damaged, truncated or foreign file, or one of another schema version, is one
:class:`NeurocreditError` naming the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from neurocredit.errors import NeurocreditError

CHECKPOINT_FORMAT = "neurocredit-checkpoint"
SCHEMA_VERSION = 1
CHECKPOINT_FILE = "checkpoint.pt"
NETWORK_FILE = "network.h5"
#: training keys that may change when resuming (e.g. more epochs, or a lower learning rate after divergence)
RESUMABLE_CHANGES = ("epochs", "learning_rate")


def fingerprint(session) -> str:
    """What must be equal between a run and its resumption (JSON, sorted keys)."""
    config = session.config
    training = {key: value for key, value in dataclasses.asdict(config.training).items()
                if key not in RESUMABLE_CHANGES}
    if not training.get("steps"):  # the default (encoder's window): as checkpoints written before the field
        training.pop("steps", None)
    dataset = session.dataset
    identity = {
        "network": dataclasses.asdict(config.network),
        "rule": {"name": config.rule.name, "options": config.rule.options},
        "data": {"validation": config.data.validation, "validation_seed": config.data.validation_seed,
                 "name": dataset.name, "train_samples": len(dataset.y_train),
                 "validation_samples": len(dataset.y_validation), "test_samples": len(dataset.y_test)},
        "training": training,
    }
    return json.dumps(identity, sort_keys=True, default=str)


def session_state(session) -> dict[str, Any]:
    """The checkpoint of ``session`` after its last finished epoch (see module doc)."""
    import numpy as np
    import torch

    from neurocredit import __version__

    legacy = np.random.get_state(legacy=True)
    return {
        "format": CHECKPOINT_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "neurocredit_version": __version__,
        "epoch": len(session.history),
        "fingerprint": fingerprint(session),
        "history": [dataclasses.asdict(stats) for stats in session.history],
        "seconds": float(session.seconds),
        "rule": session.rule.state_dict(),
        "shuffle_rng": json.dumps(session.rng.bit_generator.state),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": {"key": torch.from_numpy(legacy[1].astype(np.int64)), "pos": int(legacy[2]),
                      "has_gauss": int(legacy[3]), "cached_gaussian": float(legacy[4])},
    }


def save_checkpoint(session, directory: str | os.PathLike) -> Path:
    """Write ``session``'s checkpoint (and ``network.h5``) into ``directory`` atomically.

    Non-finite weights are not written: they raise :class:`~neurocredit.train.TrainingDiverged`
    and the previous checkpoint stays.
    """
    import torch

    from neurocredit.io import atomic_path, save_network
    from neurocredit.train import TrainingDiverged

    state = session_state(session)
    if not all(bool(torch.isfinite(t).all()) for t in state["rule"]["tensors"].values()):
        raise TrainingDiverged(f"training diverged in epoch {state['epoch']} (non-finite weights); lower "
                               f"training.learning_rate (now {session.config.training.learning_rate:g})")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_network(session.network(), directory / NETWORK_FILE)
    path = directory / CHECKPOINT_FILE
    with atomic_path(path) as temp:
        torch.save(state, temp)
    return path


def load_checkpoint(directory: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``directory/checkpoint.pt``; every problem is one clear error."""
    import torch

    path = Path(directory) / CHECKPOINT_FILE
    if not path.is_file():
        raise NeurocreditError(f"{path}: no checkpoint there (write one with `neurocredit train CONFIG "
                               f"--checkpoint-dir {directory}`)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - a damaged file fails inside the unpickler in many ways
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise NeurocreditError(f"{path}: damaged or truncated checkpoint ({first[:120]}); delete the folder "
                               "and train again") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise NeurocreditError(f"{path}: not a neurocredit checkpoint")
    if state.get("schema_version") != SCHEMA_VERSION:
        raise NeurocreditError(f"{path}: checkpoint schema version {state.get('schema_version')}, this neurocredit "
                               f"reads version {SCHEMA_VERSION}; resume with the version that wrote it")
    missing = [key for key in ("epoch", "fingerprint", "history", "seconds", "rule", "shuffle_rng", "torch_rng",
                               "numpy_rng") if key not in state]
    if missing:
        raise NeurocreditError(f"{path}: damaged checkpoint (missing {', '.join(missing)}); delete the folder and "
                               "train again")
    state["path"] = str(path)
    return state


def _first_difference(saved: Any, current: Any, where: str = "") -> str:
    if isinstance(saved, dict) and isinstance(current, dict):
        for key in sorted(set(saved) | set(current)):
            if saved.get(key) != current.get(key):
                return _first_difference(saved.get(key), current.get(key), f"{where}.{key}" if where else key)
    return f"{where} ({saved!r} in the checkpoint, {current!r} now)"


def restore_session(session, state: dict[str, Any]) -> None:
    """Continue ``session`` (built from the same config) from checkpoint ``state``."""
    import numpy as np
    import torch

    from neurocredit.train import EpochStats

    path = state.get("path", "checkpoint")
    current = fingerprint(session)
    if state["fingerprint"] != current:
        difference = _first_difference(json.loads(state["fingerprint"]), json.loads(current))
        raise NeurocreditError(f"{path}: the checkpoint was written by another setup: {difference}; resume with "
                               "the same config and overrides (only training.epochs and training.learning_rate "
                               "may change)")
    if state["epoch"] > session.config.training.epochs:
        raise NeurocreditError(f"{path}: the checkpoint is at epoch {state['epoch']}, beyond training.epochs "
                               f"({session.config.training.epochs}); pass --epochs {state['epoch']} or more")
    try:
        session.rule.load_state_dict(state["rule"])
    except (ValueError, KeyError, RuntimeError) as error:
        raise NeurocreditError(f"{path}: the rule state does not fit this rule ({error})") from None
    session.rng.bit_generator.state = json.loads(state["shuffle_rng"])
    torch.set_rng_state(state["torch_rng"])
    legacy = state["numpy_rng"]
    np.random.set_state(("MT19937", legacy["key"].numpy().astype(np.uint32), legacy["pos"], legacy["has_gauss"],
                         legacy["cached_gaussian"]))
    session.history = [EpochStats(**stats) for stats in state["history"]]
    session.seconds = float(state["seconds"])
