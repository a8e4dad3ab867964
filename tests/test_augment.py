"""Training-image augmentation (random translations and flips): equal to a per-image reference,
seeded, in the training batches in their usual order, and a clear error where the data has no images."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurocredit.augment import AugmentParameters, augment_images, image_dims
from neurocredit.config import load_config
from neurocredit.errors import NeurocreditError


def reference_augment(features, dims, shift, flip, seed):
    """One image at a time: zero-pad, cut the window at the drawn offset, mirror if drawn."""
    rng = np.random.default_rng(seed)
    n = len(features)
    top, left = rng.integers(0, 2 * shift + 1, size=n), rng.integers(0, 2 * shift + 1, size=n)
    mirrored = rng.random(n) < 0.5 if flip else np.zeros(n, bool)
    channels, height, width = dims
    out = []
    for image, dy, dx, mirror in zip(features.reshape(n, *dims), top, left, mirrored):
        padded = np.pad(image, ((0, 0), (shift, shift), (shift, shift)))
        window = padded[:, dy : dy + height, dx : dx + width]
        out.append((window[:, :, ::-1] if mirror else window).reshape(-1))
    return np.stack(out)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 6), channels=st.integers(1, 3), height=st.integers(1, 7), width=st.integers(1, 7),
       shift=st.integers(0, 3), flip=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_augmentation_equals_the_per_image_reference(n, channels, height, width, shift, flip, seed):
    features = np.random.default_rng(seed).random((n, channels * height * width)).astype(np.float32)
    dims = (channels, height, width)
    out = augment_images(features, dims, AugmentParameters(shift, flip), np.random.default_rng(seed))
    assert out.dtype == np.float32 and out.shape == features.shape
    assert np.array_equal(out, reference_augment(features, dims, shift, flip, seed))


def test_a_translation_moves_every_pixel_by_the_same_offset():
    image = np.zeros((1, 1, 9, 9), np.float32)
    image[0, 0, 4, 4] = 1.0  # one bright pixel in the middle: it lands within 2 pixels of it
    rng = np.random.default_rng(0)
    out = augment_images(np.repeat(image.reshape(1, -1), 200, axis=0), (1, 9, 9), AugmentParameters(2), rng)
    rows, columns = np.nonzero(out.reshape(200, 9, 9).sum(axis=0))
    assert out.sum() == 200.0  # nothing lost, nothing added
    assert set(rows) == set(columns) == {2, 3, 4, 5, 6}  # every offset of -2..2 occurs


def test_no_augmentation_returns_the_batch_itself_and_draws_nothing():
    features = np.ones((3, 4), np.float32)
    rng = np.random.default_rng(5)
    assert augment_images(features, (1, 2, 2), AugmentParameters(), rng) is features
    assert rng.random() == np.random.default_rng(5).random()


def test_data_without_images_is_one_clear_error():
    with pytest.raises(NeurocreditError) as error:
        image_dims((), 20, "m.yaml: training.augment_*")
    assert str(error.value) == (
        "m.yaml: training.augment_*: augmentation needs image data (digits, fashion-mnist, mnist); this data set "
        "has 20 features without an image shape; set training.augment_shift to 0 and training.augment_flip to false")
    assert image_dims((8, 8), 64, "x") == (1, 8, 8)
    assert image_dims((2, 34, 34), 2 * 34 * 34, "x") == (2, 34, 34)


def test_negative_shift_is_refused_naming_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ndata: {name: digits}\nnetwork: {hidden: [8]}\nrule: {name: dfa}\n"
                    "training: {augment_shift: -1}\n")
    with pytest.raises(NeurocreditError, match=r"bad.yaml: training.augment_shift must be >= 0 \(pixels; 0: no "
                                               r"translation\), got -1"):
        load_config(path)


def _session(augment_shift=0, augment_flip=False):
    from neurocredit.train import TrainingSession

    config = load_config("digits-dfa-conv-rate").replace_training(epochs=2, augment_shift=augment_shift,
                                                                  augment_flip=augment_flip)
    return TrainingSession(config)


def _weights(session):
    return [np.asarray(w) for w in session.network().weights]


def test_training_sees_augmented_batches_only_and_is_seeded():
    from neurocredit.train import AUGMENT_STREAM

    plain, shifted, again = _session(), _session(augment_shift=1, augment_flip=True), _session(1, True)
    seen = []
    train_batch = shifted.rule.train_batch
    shifted.rule.train_batch = lambda features, labels: (seen.append(features.numpy().copy()),
                                                         train_batch(features, labels))[1]
    for session in (plain, shifted, again):
        session.run_epoch(progress=False, max_batches=4)
    # the same batch order as the plain run, other pixels
    first = shifted.dataset.x_train[np.random.default_rng(0).permutation(len(shifted.dataset.x_train))[:32]]
    assert seen[0].shape == first.shape and not np.array_equal(seen[0], first)
    assert np.array_equal(seen[0], augment_images(first, (1, 8, 8), AugmentParameters(1, True),
                                                  np.random.default_rng([0, 0, AUGMENT_STREAM])))
    assert all(np.array_equal(a, b) for a, b in zip(_weights(shifted), _weights(again)))
    assert not np.array_equal(_weights(plain)[0], _weights(shifted)[0])


def test_synthetic_data_with_augmentation_names_the_config():
    from neurocredit.data import load_dataset
    from neurocredit.train import TrainingSession

    config = load_config("digits-dfa-rate")
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, name="synthetic"))
    with pytest.raises(NeurocreditError, match=r"digits-dfa-rate.yaml: training.augment_\*: augmentation needs "
                                               r"image data"):
        TrainingSession(config.replace_training(augment_shift=2), dataset=load_dataset("synthetic"))
