"""Data sets, all local (nothing is ever downloaded).

* ``digits``: scikit-learn's bundled 8x8 digits (1797 samples, 64 features), the default;
  a fixed, seeded, stratified split of 1437 train / 360 test samples.
* ``fashion-mnist`` and ``mnist``: the standard IDX files (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, gzipped
  or raw), searched in ``--data-dir``, then ``$NEUROCREDIT_DATA`` (and its ``<name>``
  subfolder), then ``/usr/share/datasets/<name>/`` (Debian: ``apt-get install dataset-fashion-mnist``).
* ``synthetic``: a small seeded Gaussian-cluster problem for tests.
* ``digits-2x34x34``: the digits, each 8x8 image scaled x4 (nearest) into a 34x34 frame (one
  pixel of border) in both of two channels: a stand-in of N-MNIST's shape (2 polarities x 34 x 34)
  for graphs trained on N-MNIST elsewhere (the NIR paper's ``cnn_sinabs.nir``), whose own event
  data is not here. Same split and labels as ``digits``.

Features are float32 in [0, 1], labels int64.

A validation split (:func:`hold_out_validation`, config key ``data.validation``) is held out of
the training set, seeded and stratified: settings are chosen on it, and the test set is
measured once, at the end of training.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np

from neurocredit.errors import NeurocreditError

DATASETS = ("digits", "fashion-mnist", "mnist", "synthetic", "digits-2x34x34")
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
    """Train, test and (optionally) validation arrays: ``x_*`` (n, features) float32 in [0, 1],
    ``y_*`` (n,) int64. ``x_validation``/``y_validation`` are None until
    :func:`hold_out_validation` moves part of the training set there."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    image_shape: tuple[int, ...] = ()
    x_validation: Optional[np.ndarray] = None
    y_validation: Optional[np.ndarray] = None

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
    if name == "digits-2x34x34":
        return digits_as_event_frames(load_digits())
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
    test_order = np.sort(np.asarray(test_index))
    train_order = rng.permutation(np.setdiff1d(np.arange(len(labels)), test_order))
    return Dataset(
        "digits", features[train_order], labels[train_order], features[test_order], labels[test_order], 10, (8, 8)
    )


def digits_as_event_frames(digits: Dataset, scale: int = 4, channels: int = 2, size: int = 34) -> Dataset:
    """``digits`` as (``channels``, ``size``, ``size``) frames (module doc: ``digits-2x34x34``)."""
    def frames(features):
        images = np.kron(features.reshape(-1, 8, 8), np.ones((1, scale, scale), np.float32))
        framed = np.zeros((len(features), channels, size, size), np.float32)
        start = (size - 8 * scale) // 2
        framed[:, :, start : start + 8 * scale, start : start + 8 * scale] = images[:, None]
        return framed.reshape(len(features), -1)

    return Dataset(f"digits-{channels}x{size}x{size}", frames(digits.x_train), digits.y_train, frames(digits.x_test),
                   digits.y_test, digits.n_classes, (channels, size, size))


def validation_count(amount: float, n_train: int, where: str = "data.validation") -> int:
    """Samples to hold out: ``amount`` in [0, 1) is a fraction of ``n_train`` (rounded), a whole
    number >= 1 is a count. Anything else (negative, fractional above 1, too large) is one error."""
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not np.isfinite(amount) or amount < 0:
        raise NeurocreditError(f"{where} must be a fraction in [0, 1) or a count >= 1, got {amount!r}")
    if amount < 1:
        count = int(round(amount * n_train))
    elif float(amount).is_integer():
        count = int(amount)
    else:
        raise NeurocreditError(f"{where} = {amount!r}: a count must be a whole number (a fraction must be < 1)")
    if count >= n_train:
        raise NeurocreditError(f"{where} = {amount!r} holds out {count} of {n_train} training samples; "
                               "leave at least one for training")
    return count


def validation_split(labels: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded split of ``range(len(labels))`` into (train, validation) indices.

    Each class gives ``count * n_class / n`` samples, rounded down; the samples left over go to
    the classes with the largest remainders (ties: lower class first), so the validation set
    has exactly ``count`` samples and each class's share differs from its share of the
    training set by less than one sample. Within a class the samples are drawn by
    ``np.random.default_rng(seed)``. Both index arrays are sorted (the training order is kept).
    """
    labels = np.asarray(labels)
    classes, sizes = np.unique(labels, return_counts=True)
    exact = count * sizes / len(labels)
    quota = np.floor(exact).astype(int)
    leftover = count - int(quota.sum())
    if leftover:
        order = sorted(range(len(classes)), key=lambda i: (-(exact[i] - quota[i]), i))
        quota[order[:leftover]] += 1
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(labels == label))[:take] for label, take in zip(classes, quota)]
    validation = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
    return np.setdiff1d(np.arange(len(labels)), validation), validation


def hold_out_validation(dataset: Dataset, amount: float, seed: int = 0,
                        where: str = "data.validation") -> Dataset:
    """``dataset`` with a validation split (:func:`validation_split`) moved out of its training
    set; ``amount`` as in :func:`validation_count` (0: no validation set, arrays of length 0)."""
    if dataset.x_validation is not None:
        raise NeurocreditError(f"{dataset.name}: the validation split was already held out")
    count = validation_count(amount, len(dataset.y_train), where)
    train, validation = validation_split(dataset.y_train, count, seed)
    return replace(dataset, x_train=dataset.x_train[train], y_train=dataset.y_train[train],
                   x_validation=dataset.x_train[validation], y_validation=dataset.y_train[validation])


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
    return next((path for path in (folder / f"{stem}.gz", folder / stem) if path.is_file()), None)


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
