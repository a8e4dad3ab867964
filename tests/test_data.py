import gzip

import numpy as np
import pytest

from neurocredit.data import load_dataset, read_idx
from neurocredit.errors import NeurocreditError


def write_idx(path, array, compress=True):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as stream:
            stream.write(payload)
    else:
        path.write_bytes(payload)


def make_idx_folder(folder, n_train=12, n_test=5, compress=True):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n_train, 28, 28)), compress)
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n_train), compress)
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n_test, 28, 28)), compress)
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n_test), compress)


def test_digits_is_default_split_fixed_and_scaled():
    first, second = load_dataset(), load_dataset("digits")
    assert first.x_train.shape == (1438, 64) and first.x_test.shape == (359, 64)
    assert first.x_train.dtype == np.float32 and first.y_train.dtype == np.int64
    assert 0.0 <= first.x_train.min() and first.x_train.max() <= 1.0
    np.testing.assert_array_equal(first.x_test, second.x_test)
    np.testing.assert_array_equal(first.y_train, second.y_train)
    assert set(np.unique(first.y_test)) == set(range(10))


@pytest.mark.parametrize("compress", [True, False])
def test_idx_loader_reads_gz_and_raw(tmp_path, compress):
    make_idx_folder(tmp_path / "fm", compress=compress)
    data = load_dataset("fashion-mnist", tmp_path / "fm")
    assert data.x_train.shape == (12, 784) and data.x_test.shape == (5, 784)
    assert data.x_train.dtype == np.float32 and data.y_test.dtype == np.int64
    assert data.x_train.max() <= 1.0 and data.image_shape == (28, 28)


def test_env_variable_and_subfolder_are_searched(tmp_path, monkeypatch):
    make_idx_folder(tmp_path / "mnist")
    monkeypatch.setenv("NEUROCREDIT_DATA", str(tmp_path))
    assert load_dataset("mnist").x_train.shape == (12, 784)


def test_missing_files_name_every_path_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROCREDIT_DATA", str(tmp_path / "env"))
    with pytest.raises(NeurocreditError) as error:
        load_dataset("mnist", tmp_path / "nowhere")
    message = str(error.value)
    assert str(tmp_path / "nowhere") in message and str(tmp_path / "env") in message
    assert "/usr/share/datasets/mnist" in message and "--data-dir" in message


def test_fashion_mnist_missing_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr("neurocredit.data.SYSTEM_DATA_ROOT", tmp_path / "none")
    monkeypatch.delenv("NEUROCREDIT_DATA", raising=False)
    with pytest.raises(NeurocreditError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist")


def test_truncated_idx_file_is_a_clear_error(tmp_path):
    make_idx_folder(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(NeurocreditError, match="truncated"):
        read_idx(path)
    with pytest.raises(NeurocreditError, match="truncated"):
        load_dataset("fashion-mnist", tmp_path)


def test_unknown_dataset():
    with pytest.raises(NeurocreditError, match="unknown data set 'cifar'"):
        load_dataset("cifar")


def test_digits_as_event_frames_put_each_pixel_in_a_4x4_block_of_both_channels():
    digits, frames = load_dataset("digits"), load_dataset("digits-2x34x34")
    assert frames.x_test.shape == (len(digits.y_test), 2 * 34 * 34) and frames.image_shape == (2, 34, 34)
    assert np.array_equal(frames.y_test, digits.y_test) and np.array_equal(frames.y_train, digits.y_train)
    images = frames.x_test.reshape(-1, 2, 34, 34)
    assert np.array_equal(images[:, 0], images[:, 1])
    assert not images[:, :, 0].any() and not images[:, :, 33].any() and not images[:, :, :, 0].any()
    pixels = digits.x_test.reshape(-1, 8, 8)
    for y, x in ((0, 0), (3, 5), (7, 7)):
        block = images[:, 0, 1 + 4 * y : 5 + 4 * y, 1 + 4 * x : 5 + 4 * x]
        assert np.array_equal(block, np.broadcast_to(pixels[:, y, x, None, None], block.shape))
