"""Convolution arithmetic shared by every backend: geometry, im2col indices, the synapse list
of a ``Conv2d``, the numpy and torch forward products, and pooling fusion.

Conventions (PyTorch / NIR): a population of shape (C, H, W) is flattened in C order
(``index = c*H*W + y*W + x``); a ``Conv2d`` weight is OIHW and computes the cross-correlation

    a[o, y, x] = sum_{c, i, j} K[o, c, i, j] * s_pad[c, y*sh + i, x*sw + j]

with ``s_pad`` the input zero-padded by ``(ph, pw)`` on both sides. Output size
``floor((H + 2 ph - KH) / sh) + 1`` (same for W).

Pooling fusion (Lava has no pooling process and cannot chain two synaptic layers): a p x p sum
pool with stride p followed by a conv ``W`` (stride s, padding q) equals one conv with kernel
``K[o, c, i, j] = W[o, c, i // p, j // p]``, stride ``s p`` and padding ``q p``; a sum pool
followed by a dense layer equals a dense layer whose columns repeat the pooled one's over each
p x p block (rows and columns beyond ``floor(H / p) * p`` get zeros, as pooling drops them).
With padding this holds only when H and W are multiples of p (otherwise the padded windows
would read the rows or columns the pool drops; the Network refuses such a layer). An average
pool is a sum pool with the next weights divided by ``p**2``. The fused layer keeps
``pool = p`` so exporters can emit the pool again (:func:`unfuse_conv_pool`,
:func:`unfuse_dense_pool`).

Nothing here imports torch at module level.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def pair(value: Any) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; ``(1, 2)`` -> ``(1, 2)``."""
    values = (int(value),) if np.isscalar(value) else tuple(int(v) for v in value)
    if len(values) == 1:
        return values[0], values[0]
    if len(values) != 2:
        raise ValueError(f"expected one or two integers, got {value!r}")
    return values  # type: ignore[return-value]


def conv_output_hw(input_hw: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                   padding: Sequence[int]) -> tuple[int, int]:
    """(OH, OW) of a convolution (may be < 1 when the kernel does not fit)."""
    return tuple(
        (int(size) + 2 * int(pad) - int(k)) // int(s) + 1
        for size, k, s, pad in zip(input_hw, kernel, stride, padding)
    )  # type: ignore[return-value]


def im2col_indices(input_shape: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                   padding: Sequence[int]) -> np.ndarray:
    """(C*KH*KW, OH*OW) int64: the flat input index that kernel tap ``r = (c, i, j)`` (C order)
    reads for output position ``l = y*OW + x``, or -1 where it reads the zero padding."""
    channels, height, width = (int(n) for n in input_shape)
    kh, kw = (int(k) for k in kernel)
    sh, sw = (int(s) for s in stride)
    ph, pw = (int(p) for p in padding)
    oh, ow = conv_output_hw((height, width), (kh, kw), (sh, sw), (ph, pw))
    c = np.arange(channels)[:, None, None, None, None]
    i = np.arange(kh)[None, :, None, None, None]
    j = np.arange(kw)[None, None, :, None, None]
    y = np.arange(oh)[None, None, None, :, None] * sh + i - ph
    x = np.arange(ow)[None, None, None, None, :] * sw + j - pw
    inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
    index = c * height * width + np.clip(y, 0, height - 1) * width + np.clip(x, 0, width - 1)
    index = np.where(inside, index, -1)
    return index.reshape(channels * kh * kw, oh * ow).astype(np.int64)


def layer_im2col(layer) -> np.ndarray:
    """:func:`im2col_indices` of a ``Conv2d`` layer."""
    return im2col_indices(layer.input_shape, layer.kernel_size, layer.stride, layer.padding)


def conv_synapses(layer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every synapse of a ``Conv2d`` (padding taps excluded), from the im2col indices:
    ``(pre, post, tap)`` int64 arrays, ``tap`` indexing ``layer.weight.ravel()`` (so each synapse
    carries its own copy of a shared kernel weight). Ordered by output channel, tap, position."""
    columns = layer_im2col(layer)  # (taps, positions)
    taps, positions = columns.shape
    out_channels = layer.weight.shape[0]
    tap, position = np.nonzero(columns >= 0)
    pre = columns[tap, position]
    channel = np.repeat(np.arange(out_channels), pre.size)
    return (np.tile(pre, out_channels), channel * positions + np.tile(position, out_channels),
            channel * taps + np.tile(tap, out_channels))


def synapse_lists(layer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pre, post, weight)`` of every synapse of a Dense (every entry of the matrix) or Conv2d
    layer (one per kernel tap that reaches an output, borders excluded), float64 weights."""
    if getattr(layer, "kind", "dense") == "conv2d":
        pre, post, tap = conv_synapses(layer)
        return pre, post, np.asarray(layer.weight, dtype=np.float64).ravel()[tap]
    post, pre = np.indices(layer.weight.shape).reshape(2, -1)
    return pre, post, np.asarray(layer.weight, dtype=np.float64).ravel()


def fan_out(layer) -> np.ndarray:
    """(n_in,) int64: how many neurons of ``layer`` one spike of each source neuron reaches
    (``n_out`` for a dense layer; for a conv the outputs its kernel reaches, borders included)."""
    if getattr(layer, "kind", "dense") == "conv2d":
        columns = layer_im2col(layer)
        reach = np.bincount(columns[columns >= 0], minlength=layer.n_in)
        return reach.astype(np.int64) * int(layer.weight.shape[0])
    return np.full(layer.n_in, layer.n_out, dtype=np.int64)


def dense_matrix(layer) -> np.ndarray:
    """The (n_out, n_in) float64 matrix a layer applies (a conv's is mostly zeros)."""
    if getattr(layer, "kind", "dense") != "conv2d":
        return np.asarray(layer.weight, dtype=np.float64)
    pre, post, weight = synapse_lists(layer)
    matrix = np.zeros((layer.n_out, layer.n_in))
    np.add.at(matrix, (post, pre), weight)
    return matrix


PATCH_BYTES = 256 * 2**20


def conv_forward(layer, inputs: np.ndarray, weight: Any = None) -> np.ndarray:
    """``a = K (*) s`` for a batch: ``inputs`` (..., n_in) -> (..., n_out), by im2col and a
    matrix product (numpy; ``weight`` overrides ``layer.weight``, e.g. with integers held as
    float64). The im2col patches take positions x taps values per sample (7.5 MB of float64 for
    the pool-fused second conv of ``fmnist-sigprop-conv-rate``), so the samples go through in
    groups whose patches fit :data:`PATCH_BYTES`."""
    weight = np.asarray(layer.weight if weight is None else weight)
    columns = layer_im2col(layer)  # (taps, positions)
    lead = inputs.shape[:-1]
    flat = inputs.reshape(-1, inputs.shape[-1])
    kernel = weight.reshape(weight.shape[0], -1).astype(np.result_type(weight, flat))  # (C_out, taps)
    result = np.empty((flat.shape[0], kernel.shape[0], columns.shape[1]), dtype=np.result_type(kernel, flat))
    group = max(1, PATCH_BYTES // (columns.size * result.itemsize))
    for start in range(0, flat.shape[0], group):
        rows = flat[start : start + group]
        padded = np.concatenate([rows, np.zeros((rows.shape[0], 1), dtype=rows.dtype)], axis=1)
        patches = padded[:, columns.T]  # (group, positions, taps); -1 reads the appended zero
        products = patches.reshape(-1, columns.shape[0]) @ kernel.T  # (group * positions, C_out)
        result[start : start + group] = products.reshape(rows.shape[0], columns.shape[1], -1).transpose(0, 2, 1)
    return result.reshape(*lead, -1)


def synaptic_input(layer, inputs: np.ndarray) -> np.ndarray:
    """What ``layer`` delivers for source activity ``inputs`` (..., n_in), float64 numpy."""
    inputs = np.asarray(inputs, dtype=np.float64)
    if getattr(layer, "kind", "dense") == "conv2d":
        return conv_forward(layer, inputs, np.asarray(layer.weight, dtype=np.float64))
    return inputs @ np.asarray(layer.weight, dtype=np.float64).T


def torch_synaptic_input(layer, weight, inputs, pooled: bool = False):
    """The torch version for a rule's or backend's ``weight`` tensor: ``inputs`` (..., n_in) ->
    (..., n_out); a conv runs ``torch.nn.functional.conv2d`` (differentiable).

    ``pooled``: a conv with a fused pool (``layer.pool = p > 1``) sum-pools its input first and
    convolves with the pooled-form kernel ``weight[:, :, ::p, ::p]`` (stride and padding / p): the
    same sums as the fused kernel (module doc), with p**2 times fewer multiplications, in another
    order of float additions. Training and the Norse backend use it; the reference, Brian2 and Lava run
    the fused layer."""
    if getattr(layer, "kind", "dense") != "conv2d":
        return inputs @ weight.T
    import torch

    lead = inputs.shape[:-1]
    images = inputs.reshape(-1, *layer.input_shape)
    stride, padding = layer.stride, layer.padding
    if pooled and layer.pool > 1:
        pool = int(layer.pool)
        images = torch_sum_pool(images, layer.input_shape, pool)
        weight = weight[:, :, ::pool, ::pool]
        stride, padding = tuple(s // pool for s in stride), tuple(q // pool for q in padding)
    out = torch.nn.functional.conv2d(images, weight, stride=stride, padding=padding)
    return out.reshape(*lead, -1)


def torch_transposed_input(layer, weight, outputs, pooled: bool = False):
    """The transpose of :func:`torch_synaptic_input`: what a population of ``layer``'s outputs
    ``outputs`` (..., n_out) sends back down through the same synapses, (..., n_in) — ``s @ W``
    for a dense layer, ``torch.nn.functional.conv_transpose2d`` (with the output padding that
    restores the input size) for a conv. The feedback of equilibrium propagation.

    ``pooled``: the adjoint of ``torch_synaptic_input(..., pooled=True)`` for a conv with a fused
    pool ``p``: the transposed conv of the pooled-form kernel onto the pooled maps, then each
    pooled value spread over its p x p block (the sum pool's adjoint; remainder rows and columns
    get 0). The same sums as the fused kernel's, p**2 times fewer multiplications."""
    if getattr(layer, "kind", "dense") != "conv2d":
        return outputs @ weight
    import torch

    lead = outputs.shape[:-1]
    images = outputs.reshape(-1, *layer.output_shape)
    _, full_height, full_width = layer.input_shape
    height, width = full_height, full_width
    (kh, kw), stride, padding = layer.kernel_size, layer.stride, layer.padding
    pool = int(layer.pool) if pooled else 1
    if pool > 1:
        weight = weight[:, :, ::pool, ::pool]
        kh, kw = weight.shape[2:]
        stride, padding = tuple(s // pool for s in stride), tuple(q // pool for q in padding)
        height, width = pooled_hw(full_height, full_width, pool)
    (sh, sw), (ph, pw) = stride, padding
    _, oh, ow = layer.output_shape
    extra = (height - ((oh - 1) * sh - 2 * ph + kh), width - ((ow - 1) * sw - 2 * pw + kw))
    back = torch.nn.functional.conv_transpose2d(images, weight, stride=stride, padding=padding, output_padding=extra)
    if pool > 1:
        back = back.repeat_interleave(pool, dim=2).repeat_interleave(pool, dim=3)
        back = torch.nn.functional.pad(back, (0, full_width - width * pool, 0, full_height - height * pool))
    return back.reshape(*lead, -1)


def torch_weight_product(layer, post, pre):
    """``Σ_batch post ⊗ pre`` through ``layer``'s synapses, shaped like its (fused) weight: the
    dense outer product ``postᵀ pre`` (n_out, n_in), or for a conv each kernel tap's products
    summed over every output position it connects (``torch.nn.grad.conv2d_weight``; equal to
    summing the per-synapse products of :func:`conv_synapses` by tap). ``post`` (batch, n_out),
    ``pre`` (batch, n_in)."""
    if getattr(layer, "kind", "dense") != "conv2d":
        return post.T @ pre
    import torch

    shape = (layer.weight.shape[0], layer.input_shape[0], *layer.kernel_size)
    return torch.nn.grad.conv2d_weight(pre.reshape(-1, *layer.input_shape), shape,
                                       post.reshape(-1, *layer.output_shape), stride=layer.stride,
                                       padding=layer.padding)


# --------------------------------------------------------------------------- pooling fusion


def fuse_conv_pool(weight: np.ndarray, stride: Sequence[int], padding: Sequence[int], pool: int,
                   average: bool = False) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """``pool x pool`` sum (or average) pool, stride ``pool``, then conv ``weight`` (OIHW, stride,
    padding) -> one conv ``(kernel, stride * pool, padding * pool)`` (module doc)."""
    pool = int(pool)
    kernel = np.repeat(np.repeat(np.asarray(weight), pool, axis=2), pool, axis=3)
    if average:
        kernel = kernel / pool**2
    return (kernel.astype(np.asarray(weight).dtype), tuple(int(s) * pool for s in pair(stride)),
            tuple(int(p) * pool for p in pair(padding)))


def unfuse_conv_pool(kernel: np.ndarray, pool: int) -> np.ndarray:
    """The conv weight behind a fused kernel (the sum-pool form): ``K[:, :, ::p, ::p]``."""
    return np.asarray(kernel)[:, :, :: int(pool), :: int(pool)]


def pooled_hw(height: int, width: int, pool: int) -> tuple[int, int]:
    return int(height) // int(pool), int(width) // int(pool)


def fuse_dense_pool(weight: np.ndarray, source_shape: Sequence[int], pool: int,
                    average: bool = False) -> np.ndarray:
    """Sum (average) pool of a (C, H, W) source, flatten, then dense ``weight``
    (n_out, C*Hp*Wp) -> one dense (n_out, C*H*W) layer with repeated columns (module doc)."""
    channels, height, width = (int(n) for n in source_shape)
    pool = int(pool)
    hp, wp = pooled_hw(height, width, pool)
    small = np.asarray(weight).reshape(-1, channels, hp, wp)
    fused = np.zeros((small.shape[0], channels, height, width), dtype=small.dtype)
    fused[:, :, : hp * pool, : wp * pool] = np.repeat(np.repeat(small, pool, axis=2), pool, axis=3)
    if average:
        fused = fused / pool**2
    return fused.reshape(small.shape[0], -1).astype(np.asarray(weight).dtype)


def unfuse_dense_pool(weight: np.ndarray, source_shape: Sequence[int], pool: int) -> np.ndarray:
    """The (n_out, C*Hp*Wp) dense weight behind a fused one (the sum-pool form)."""
    channels, height, width = (int(n) for n in source_shape)
    full = np.asarray(weight).reshape(-1, channels, height, width)
    return full[:, :, :: int(pool), :: int(pool)][:, :, : height // int(pool), : width // int(pool)].reshape(
        full.shape[0], -1)


def sum_pool(images: np.ndarray, pool: int) -> np.ndarray:
    """p x p sum pool, stride p, of (..., C, H, W) (remainder rows/columns dropped)."""
    pool = int(pool)
    *lead, channels, height, width = images.shape
    hp, wp = pooled_hw(height, width, pool)
    total = np.zeros((*lead, channels, hp, wp), dtype=images.dtype)
    for i in range(pool):  # p**2 strided views (faster than a reshaped sum)
        for j in range(pool):
            total += images[..., i : hp * pool : pool, j : wp * pool : pool]
    return total


def torch_fused_weight(layer, source_shape: Sequence[int], weight):
    """A layer's runnable weight from its trainable pooled-form ``weight`` tensor (the inverse of
    :func:`unfuse_conv_pool` / :func:`unfuse_dense_pool`, differentiable): the tensor itself when
    ``layer.pool`` is 1."""
    pool = int(layer.pool)
    if pool == 1:
        return weight
    if getattr(layer, "kind", "dense") == "conv2d":
        return weight.repeat_interleave(pool, dim=2).repeat_interleave(pool, dim=3)
    import torch

    channels, height, width = (int(n) for n in source_shape)
    hp, wp = pooled_hw(height, width, pool)
    blocks = weight.reshape(-1, channels, hp, wp).repeat_interleave(pool, dim=2).repeat_interleave(pool, dim=3)
    blocks = torch.nn.functional.pad(blocks, (0, width - wp * pool, 0, height - hp * pool))
    return blocks.reshape(weight.shape[0], -1)


def torch_neuron_bias(layer, bias):
    """Per-neuron bias (n_out,) from a layer's bias tensor (a conv's is per channel)."""
    if getattr(layer, "kind", "dense") != "conv2d":
        return bias
    _, oh, ow = layer.output_shape
    return bias.repeat_interleave(oh * ow)


def torch_layer_input(layer, source_shape: Sequence[int], weight, inputs):
    """What ``layer`` delivers for ``inputs`` (..., n_in) given its trainable pooled-form
    ``weight`` (:func:`torch_fused_weight` then :func:`torch_synaptic_input`; differentiable in
    ``weight``, so a rule's *local* loss reaches the shared kernel through this layer only)."""
    return torch_synaptic_input(layer, torch_fused_weight(layer, source_shape, weight), inputs, pooled=True)


def torch_sum_pool(inputs, source_shape: Sequence[int], pool: int):
    """p x p sum pool (stride p) of (batch, C*H*W) or (batch, C, H, W) activity -> (batch, C,
    H//p, W//p) (remainder rows and columns dropped; sums, so 0/1 spikes stay exact)."""
    channels, height, width = (int(n) for n in source_shape)
    images = inputs.reshape(-1, channels, height, width)
    pool = int(pool)
    if pool == 1:
        return images
    hp, wp = pooled_hw(height, width, pool)
    blocks = images[:, :, : hp * pool, : wp * pool].reshape(-1, channels, hp, pool, wp, pool)
    # explicit sums in the order of ``blocks.sum(dim=(3, 5))`` (each block row's columns, then the
    # rows; the same bits, tested), about 3x faster on CPU than that strided reduction
    rows = blocks[..., 0]
    for column in range(1, pool):
        rows = rows + blocks[..., column]
    total = rows[:, :, :, 0]
    for row in range(1, pool):
        total = total + rows[:, :, :, row]
    return total


def torch_local_gradients(unfused, delta, inputs):
    """The gradient of a layer's trainable (pooled-form) weight and bias from purely local
    factors, summed over the batch. ``unfused``: the layer's
    :meth:`neurocredit.network.Network.unfused` ``(pool, source_shape, plain layer)``; ``delta``
    (batch, n_out) the error of each neuron (of every position of every map for a conv); ``inputs`` (batch, n_in) the layer's presynaptic activity
    (a rate, or a spike trace averaged over the presentation).

    Dense: ``deltaᵀ inputs`` and ``sum_batch delta``. Conv (shared kernel): the sum over every
    output position of ``delta[o, y, x] * input_patch[c, y*s + i, x*s + j]``
    (``torch.nn.grad.conv2d_weight``, a single correlation: no autograd) and the bias sums delta
    over positions. A fused pool is undone first: the inputs are sum-pooled and the layer's
    plain (pooled-form) geometry is used, so the gradient is that of the pooled-form weight the
    rule trains."""
    import torch

    pool, source_shape, plain = unfused
    if plain.kind != "conv2d":
        flat = inputs if pool == 1 else torch_sum_pool(inputs, source_shape, pool).reshape(inputs.shape[0], -1)
        return delta.T @ flat, delta.sum(dim=0)
    images = torch_sum_pool(inputs, source_shape, pool)
    maps = delta.reshape(delta.shape[0], *plain.output_shape)
    weight = torch.nn.grad.conv2d_weight(images, tuple(plain.weight.shape), maps, stride=plain.stride,
                                         padding=plain.padding)
    return weight, maps.sum(dim=(0, 2, 3))
