"""Training-time image augmentation: random translations and horizontal flips.

What the signal propagation reference code does to MNIST and Fashion-MNIST training images
(``RandomCrop(28, padding=2)``, plus ``RandomHorizontalFlip`` for Fashion-MNIST): each image is
zero-padded by ``shift`` pixels on every side and a random ``H x W`` window of the padded image
is kept, i.e. the image moves by ``dy, dx`` uniform in ``-shift..shift`` with zeros shifted in;
with ``flip`` it is mirrored left-right with probability 1/2. Only training batches are
augmented; validation and test images never are. Features stay flat ``(n, C*H*W)`` rows in
[0, 1], as :class:`~neurocredit.data.Dataset` holds them.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from neurocredit.config import input_shape_of
from neurocredit.errors import NeurocreditError


class AugmentParameters(NamedTuple):
    """shift: largest translation in pixels (0: none); flip: mirror left-right at random."""

    shift: int = 0
    flip: bool = False

    @property
    def active(self) -> bool:
        return self.shift > 0 or self.flip


def image_dims(image_shape: tuple[int, ...], n_features: int, where: str) -> tuple[int, int, int]:
    """(C, H, W) of a data set's images, from its ``image_shape`` ((H, W) or (C, H, W)), as the
    network's input shape is read (:func:`neurocredit.config.input_shape_of`)."""
    shape = input_shape_of(n_features, image_shape)
    if len(shape) != 3:
        raise NeurocreditError(f"{where}: augmentation needs image data (digits, fashion-mnist, mnist); this data "
                               f"set has {n_features} features without an image shape; set training.augment_shift "
                               "to 0 and training.augment_flip to false")
    return shape  # type: ignore[return-value]


def augment_images(features: np.ndarray, dims: tuple[int, int, int], parameters: AugmentParameters,
                   rng: np.random.Generator) -> np.ndarray:
    """``features`` (n, C*H*W), each row translated by its own random ``dy, dx`` in
    ``-shift..shift`` (zeros shifted in) and, with ``flip``, mirrored left-right with
    probability 1/2; a new float array of the same shape and dtype. Draws, in this order, the
    n vertical offsets, the n horizontal offsets and the n flip decisions from ``rng``."""
    if not parameters.active:
        return features
    channels, height, width = dims
    n = len(features)
    shift = int(parameters.shift)
    images = features.reshape(n, channels, height, width)
    padded = np.pad(images, ((0, 0), (0, 0), (shift, shift), (shift, shift)))
    top = rng.integers(0, 2 * shift + 1, size=n)
    left = rng.integers(0, 2 * shift + 1, size=n)
    columns = left[:, None] + np.arange(width)
    if parameters.flip:
        mirrored = rng.random(n) < 0.5
        columns[mirrored] = columns[mirrored, ::-1]
    rows = top[:, None] + np.arange(height)
    out = padded[np.arange(n)[:, None, None, None], np.arange(channels)[None, :, None, None],
                 rows[:, None, :, None], columns[:, None, None, :]]
    return np.ascontiguousarray(out.reshape(n, -1), dtype=features.dtype)
