"""Data sets, all local (nothing is ever downloaded).

* ``digits``: scikit-learn's bundled 8x8 digits (1797 samples, 64 features), the default;
  a fixed, seeded, stratified split of 1437 train / 360 test samples.
* ``fashion-mnist`` and ``mnist``: the standard IDX files (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, gzipped
  or raw), searched in ``--data-dir``, then ``$NEUROCREDIT_DATA`` (and its ``<name>``
  subfolder), then ``/usr/share/datasets/<name>/`` (Debian: ``apt-get install dataset-fashion-mnist``).
* ``synthetic``: a small seeded Gaussian-cluster problem for tests.

Features are float32 in [0, 1], labels int64.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from neurocredit.errors import NeurocreditError

DATASETS = ("digits", "fashion-mnist", "mnist", "synthetic")
SYSTEM_DATA_ROOT = Path("/usr/share/datasets")
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
HOW_TO_GET = {
    "fashion-mnist": "install it with `apt-get install dataset-fashion-mnist` or put the four IDX files "
    "in a folder given with --data-dir or NEUROCREDIT_DATA",
    "mnist": "put the four MNIST IDX files (train-images-idx3-ubyte[.gz], ...) in a folder given with "
    "--data-dir or NEUROCREDIT_DATA",
}


@dataclass(frozen=True)
class Dataset:
    """Train and test arrays: ``x_*`` (n, features) float32 in [0, 1], ``y_*`` (n,) int64."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    image_shape: tuple[int, ...] = ()

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])


def load_dataset(name: str = "digits", data_dir: Optional[str | os.PathLike] = None, seed: int = 0) -> Dataset:
    """Load a data set by name (see module doc). ``seed`` only affects ``synthetic``."""
    if name == "digits":
        return load_digits()
    if name in ("fashion-mnist", "mnist"):
        return load_idx_dataset(name, data_dir)
    if name == "synthetic":
        return make_synthetic(seed=seed)
    raise NeurocreditError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")


def load_digits(test_fraction: float = 0.2, split_seed: int = 0) -> Dataset:
    """scikit-learn's digits, scaled to [0, 1] (pixel values 0..16), fixed stratified split."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    features = (bunch.data / 16.0).astype(np.float32)
    labels = bunch.target.astype(np.int64)
    rng = np.random.default_rng(split_seed)
    test_index = []
    for label in range(10):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        test_index.extend(members[: int(round(len(members) * test_fraction))])
    test_mask = np.zeros(len(labels), dtype=bool)
    test_mask[np.asarray(test_index)] = True
    train_order = rng.permutation(np.flatnonzero(~test_mask))
    test_order = np.sort(np.flatnonzero(test_mask))
    return Dataset(
        "digits", features[train_order], labels[train_order], features[test_order], labels[test_order], 10, (8, 8)
    )


def candidate_dirs(name: str, data_dir: Optional[str | os.PathLike] = None) -> list[Path]:
    """Folders searched for ``name``'s IDX files, in order."""
    candidates: list[Path] = []
    if data_dir:
        candidates += [Path(data_dir), Path(data_dir) / name]
    env = os.environ.get("NEUROCREDIT_DATA")
    if env:
        candidates += [Path(env), Path(env) / name]
    candidates.append(SYSTEM_DATA_ROOT / name)
    return candidates


def _find_idx(folder: Path, stem: str) -> Optional[Path]:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzipped or raw) into a numpy array; a truncated file is a clear error."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            raw = stream.read()
    except (OSError, EOFError) as error:
        raise NeurocreditError(f"{path}: cannot read IDX file ({error}); the file is damaged, get it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise NeurocreditError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise NeurocreditError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise NeurocreditError(
            f"{path}: truncated or damaged IDX file ({len(raw) - header} bytes of data, expected {expected}); "
            "get the file again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_idx_dataset(name: str, data_dir: Optional[str | os.PathLike] = None) -> Dataset:
    """Fashion-MNIST or MNIST from the first folder that holds all four IDX files."""
    searched = candidate_dirs(name, data_dir)
    for folder in searched:
        paths = {key: _find_idx(folder, stem) for key, stem in IDX_FILES.items()}
        if all(paths.values()):
            break
    else:
        listing = ", ".join(str(folder) for folder in searched)
        raise NeurocreditError(f"{name}: IDX files not found (searched {listing}); {HOW_TO_GET[name]}")
    arrays = {key: read_idx(path) for key, path in paths.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape[0] != labels.shape[0]:
            raise NeurocreditError(
                f"{name} in {folder}: {split} images ({images.shape[0]}) and labels ({labels.shape[0]}) differ in count"
            )
    image_shape = tuple(arrays["train_images"].shape[1:])

    def flat(images):
        return (images.reshape(images.shape[0], -1).astype(np.float32) / 255.0)

    return Dataset(
        name,
        flat(arrays["train_images"]),
        arrays["train_labels"].astype(np.int64),
        flat(arrays["test_images"]),
        arrays["test_labels"].astype(np.int64),
        10,
        image_shape,
    )


def make_synthetic(
    n_train: int = 400, n_test: int = 200, n_features: int = 16, n_classes: int = 4, seed: int = 0
) -> Dataset:
    """Gaussian clusters squashed into [0, 1]: a small, learnable, seeded problem for tests."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.15, 0.85, size=(n_classes, n_features))

    def sample(count):
        labels = rng.integers(0, n_classes, size=count)
        features = centres[labels] + rng.normal(0, 0.08, size=(count, n_features))
        return np.clip(features, 0, 1).astype(np.float32), labels.astype(np.int64)

    x_train, y_train = sample(n_train)
    x_test, y_test = sample(n_test)
    return Dataset("synthetic", x_train, y_train, x_test, y_test, n_classes)
