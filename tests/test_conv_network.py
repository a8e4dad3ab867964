"""The typed Network spec (Dense, Conv2d, fused pooling): shapes, validation as one clear line,
the im2col arithmetic against a naive loop, pool fusion, HDF5 schema 2 and version-1 files,
config network.layers, and dense-only rules refusing conv networks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convnets import asymmetric_conv_network
from neurocredit.conv import (
    conv_synapses,
    dense_matrix,
    fan_out,
    fuse_conv_pool,
    fuse_dense_pool,
    im2col_indices,
    sum_pool,
    synaptic_input,
    torch_sum_pool,
    torch_synaptic_input,
    unfuse_conv_pool,
    unfuse_dense_pool,
)
from neurocredit.errors import NeurocreditError
from neurocredit.io import load_network, save_network
from neurocredit.network import (
    Conv2d,
    Dense,
    EncoderSpec,
    Layer,
    LIFParameters,
    Network,
    NeuronSpec,
    init_layers,
    init_typed_layers,
)

DATA = Path(__file__).resolve().parent / "data"


def naive_conv(weight, bias, image, stride, padding):
    """The textbook cross-correlation, one output at a time (C, H, W) -> (O, OH, OW)."""
    out_channels, in_channels, kh, kw = weight.shape
    _, height, width = image.shape
    oh = (height + 2 * padding[0] - kh) // stride[0] + 1
    ow = (width + 2 * padding[1] - kw) // stride[1] + 1
    out = np.zeros((out_channels, oh, ow))
    for o in range(out_channels):
        for y in range(oh):
            for x in range(ow):
                total = bias[o]
                for c in range(in_channels):
                    for i in range(kh):
                        for j in range(kw):
                            row, col = y * stride[0] + i - padding[0], x * stride[1] + j - padding[1]
                            if 0 <= row < height and 0 <= col < width:
                                total += weight[o, c, i, j] * image[c, row, col]
                out[o, y, x] = total
    return out


def test_shapes_sizes_and_layer_api():
    network = asymmetric_conv_network()
    conv1, conv2, fc = network.layers
    assert network.input_shape == (2, 7, 9)
    assert network.shapes == ((2, 7, 9), (3, 4, 8), (4, 3, 4), (5,))
    assert network.sizes == (126, 96, 48, 5) and network.n_inputs == 126 and network.n_outputs == 5
    assert (conv1.kind, fc.kind) == ("conv2d", "dense") and Dense is Layer
    assert conv1.kernel_size == (3, 2) and conv1.stride == (2, 1) and conv1.padding == (1, 0)
    assert conv1.neuron_bias.shape == (96,) and np.array_equal(conv1.neuron_bias[:32], np.full(32, conv1.bias[0]))
    assert conv1.n_weights == 36 and conv1.macs == 96 * 12
    assert conv1.n_synapses == len(conv_synapses(conv1)[0]) == np.count_nonzero(dense_matrix(conv1))
    assert not network.is_dense and fc.neuron_bias is fc.bias
    # an optional conv bias defaults to zeros; one int broadcasts to (rows, columns)
    plain = Conv2d(np.ones((2, 1, 3, 3)), None, (1, 5, 5), 1, 1, "c")
    assert np.array_equal(plain.bias, np.zeros(2)) and plain.stride == (1, 1) and plain.output_shape == (2, 5, 5)


@pytest.mark.parametrize("index", [0, 1])
def test_im2col_conv_equals_naive_loop_and_torch(index):
    import torch

    layer = asymmetric_conv_network(seed=index).layers[index]
    rng = np.random.default_rng(index)
    batch = rng.random((3, layer.n_in))
    fast = synaptic_input(layer, batch) + layer.neuron_bias
    for sample in range(3):
        naive = naive_conv(layer.weight, layer.bias, batch[sample].reshape(layer.input_shape), layer.stride,
                           layer.padding)
        np.testing.assert_allclose(fast[sample], naive.ravel(), rtol=0, atol=1e-12)
    torch_out = torch_synaptic_input(layer, torch.tensor(layer.weight), torch.tensor(batch)).numpy()
    np.testing.assert_allclose(torch_out + layer.neuron_bias, fast, rtol=0, atol=1e-12)
    np.testing.assert_allclose(batch @ dense_matrix(layer).T + layer.neuron_bias, fast, rtol=0, atol=1e-12)


def test_im2col_marks_padding_and_fan_out_counts_border_reach():
    columns = im2col_indices((1, 3, 3), (3, 3), (1, 1), (1, 1))
    assert columns.shape == (9, 9)
    assert columns[4].tolist() == list(range(9))  # the centre tap reads every pixel once
    assert columns[0, 0] == -1 and columns[0, 4] == 0  # top-left tap: padding at (0, 0), pixel 0 at (1, 1)
    layer = Conv2d(np.ones((2, 1, 3, 3)), None, (1, 3, 3), 1, 1, "c")
    # a corner pixel reaches 4 positions, an edge pixel 6, the centre 9; times 2 channels
    assert fan_out(layer).tolist() == [8, 12, 8, 12, 18, 12, 8, 12, 8]


@pytest.mark.parametrize("pool, shape", [(1, (3, 5, 4)), (2, (16, 28, 28)), (2, (4, 9, 7)), (3, (2, 8, 9)), (4, (3, 8, 8))])
def test_torch_sum_pool_is_the_strided_reduction_bit_for_bit(pool, shape):
    """The explicit sums add in the order of torch's own ``sum`` over the pool dimensions (float
    inputs, where the order shows), and agree with numpy's sum pool; remainder rows and columns
    are dropped."""
    import torch

    channels, height, width = shape
    hp, wp = height // pool, width // pool
    for dtype in (torch.float32, torch.float64):
        inputs = torch.randn(6, channels * height * width, dtype=dtype, generator=torch.Generator().manual_seed(pool))
        cut = inputs.reshape(-1, *shape)[:, :, : hp * pool, : wp * pool]
        reduced = cut.reshape(-1, channels, hp, pool, wp, pool).sum(dim=(3, 5))
        assert torch.equal(torch_sum_pool(inputs, shape, pool), reduced)
    np.testing.assert_allclose(torch_sum_pool(inputs, shape, pool).numpy(),
                               sum_pool(inputs.numpy().reshape(-1, *shape), pool), rtol=0, atol=1e-12)


@pytest.mark.parametrize("height, padding", [(10, (1, 0)), (9, (0, 0))])  # 9 rows: the pool drops one
def test_pool_fusion_equals_pool_then_layer(height, padding):
    rng = np.random.default_rng(3)
    images = rng.random((4, 3, height, 10))
    small = rng.normal(size=(5, 3, 2, 3))
    kernel, stride, fused_padding = fuse_conv_pool(small, (1, 2), padding, 2)
    assert kernel.shape == (5, 3, 4, 6) and stride == (2, 4) and fused_padding == (2 * padding[0], 0)
    assert np.array_equal(unfuse_conv_pool(kernel, 2), small)
    pooled = sum_pool(images, 2)
    fused = Conv2d(kernel, np.zeros(5), (3, height, 10), stride, fused_padding, "fused", pool=2)
    plain = Conv2d(small, np.zeros(5), pooled.shape[1:], (1, 2), padding, "plain")
    lif(fused)  # a valid layer
    assert fused.output_shape == plain.output_shape
    np.testing.assert_allclose(synaptic_input(fused, images.reshape(4, -1)),
                               synaptic_input(plain, pooled.reshape(4, -1)), rtol=0, atol=1e-12)
    # average pooling is the sum pool with the weights divided by p**2
    averaged, _, _ = fuse_conv_pool(small, (1, 2), (1, 0), 2, average=True)
    np.testing.assert_allclose(averaged, kernel / 4)
    dense_small = rng.normal(size=(6, pooled[0].size))
    dense = fuse_dense_pool(dense_small, (3, height, 10), 2)
    assert dense.shape == (6, 30 * height) and np.array_equal(unfuse_dense_pool(dense, (3, height, 10), 2), dense_small)
    np.testing.assert_allclose(images.reshape(4, -1) @ dense.T, pooled.reshape(4, -1) @ dense_small.T, atol=1e-12)


def test_unfused_form_is_the_pool_then_a_plain_layer():
    rng = np.random.default_rng(4)
    layers = init_typed_layers((2, 8, 10), [{"conv": {"channels": 3, "kernel": 3, "padding": 1}}, {"pool": 2},
                                            {"conv": {"channels": 4, "kernel": [2, 3], "padding": [1, 0]}},
                                            {"avgpool": 2}], 5, rng)
    network = lif(*layers)
    images = rng.random((3, 3 * 8 * 10))
    assert network.unfused(0) == (1, (2, 8, 10), layers[0])
    for index, source in ((1, images), (2, synaptic_input(layers[1], images))):
        pool, shape, plain = network.unfused(index)
        assert pool == 2 and shape == network.shapes[index] and plain.pool == 1
        pooled = sum_pool(source.reshape(3, *shape), pool).reshape(3, -1)
        np.testing.assert_allclose(synaptic_input(plain, pooled), synaptic_input(network.layers[index], source),
                                   rtol=0, atol=1e-9)
    conv = network.unfused(1)[2]
    assert (conv.input_shape, conv.stride, conv.padding, conv.kernel_size) == ((3, 4, 5), (1, 1), (1, 0), (2, 3))
    # the average pool is the sum pool with the dense weights divided by 4 (its pooled form)
    assert network.shapes[2] == (4, 5, 3) and network.unfused(2)[2].weight.shape == (5, 4 * 2 * 1)
    assert np.all(np.abs(network.unfused(2)[2].weight) <= 1.0 / np.sqrt(8) / 4 + 1e-7)


def lif(*layers):
    return Network(tuple(layers), NeuronSpec("lif"), EncoderSpec("bernoulli", 5))


@pytest.mark.parametrize("build, message", [
    (lambda: lif(Conv2d(np.ones((2, 1, 5, 5)), None, (1, 3, 3), 1, 0, "c1")),
     r"^layer 0 \(c1\): the 5x5 kernel is larger than its padded 3x3 input \(3x3 with padding 0x0\)$"),
    (lambda: lif(Conv2d(np.ones((2, 3, 3, 3)), None, (2, 6, 6), 1, 0, "c1")),
     r"^layer 0 \(c1\): the kernel takes 3 input channels but the input has 2 \(input_shape 2x6x6\)$"),
    (lambda: lif(Conv2d(np.ones((2, 1, 3, 3)), None, (1, 6, 6), 1, 1, "c1"), Layer(np.ones((4, 70)), np.zeros(4), "fc")),
     r"^layer 1 \(fc\): weight expects 70 inputs but flattening the 2x6x6 output of layer 0 gives 72$"),
    (lambda: lif(Layer(np.ones((72, 10)), np.zeros(72), "fc"), Conv2d(np.ones((2, 2, 3, 3)), None, (2, 6, 6), 1, 1, "c")),
     r"^layer 1 \(c\): input_shape 2x6x6 does not match the 72 output of layer 0$"),
    (lambda: lif(Conv2d(np.ones((2, 1, 3, 3)), None, (1, 6, 6), 1, 1, "c1"),
                 Conv2d(np.ones((2, 2, 3, 3)), None, (2, 5, 6), 1, 1, "c2")),
     r"^layer 1 \(c2\): input_shape 2x5x6 does not match the 2x6x6 output of layer 0$"),
    (lambda: lif(Conv2d(np.ones((2, 1, 3, 3)), np.zeros(3), (1, 6, 6), 1, 1, "c1")),
     r"^layer 0 \(c1\): bias has 3 entries but the kernel has 2 output channels$"),
    (lambda: lif(Conv2d(np.ones((2, 1, 3, 3)), None, (1, 6, 6), 0, 1, "c1")),
     r"^layer 0 \(c1\): stride \(0, 0\) must be >= 1 and padding \(1, 1\) >= 0$"),
    (lambda: lif(Conv2d(np.ones((2, 1, 4, 4)), None, (1, 8, 8), 2, 0, "c1", pool=2)),
     None),  # a valid fused layer (constant 2x2 blocks)
    (lambda: lif(Conv2d(np.arange(32.0).reshape(2, 1, 4, 4), None, (1, 8, 8), 2, 0, "c1", pool=2)),
     r"^layer 0 \(c1\): the weight is not a fused pool"),
    (lambda: lif(Conv2d(np.ones((2, 1, 3, 3)), None, (1, 8, 8), 2, 0, "c1", pool=2)),
     r"^layer 0 \(c1\): a fused 2x2 pool needs kernel, stride and padding that are multiples of 2"),
    (lambda: lif(Conv2d(np.ones((2, 1, 4, 4)), None, (1, 9, 8), 2, 2, "c1", pool=2)),
     r"^layer 0 \(c1\): a fused 2x2 pool with padding needs the map size divisible by 2 \(got 9x8\)"),
    (lambda: lif(Layer(np.ones((3, 8)), np.zeros(3), "fc", pool=2)),
     r"^layer 0 \(fc\): a fused 2x2 pool needs a \(C, H, W\) source population$"),
    (lambda: lif(Conv2d(np.ones((2, 1, 3, 3), np.float32) * np.nan, None, (1, 6, 6), 1, 1, "c1")),
     r"^layer 0 \(c1\) weight contains 18 NaN/inf values"),
])
def test_bad_specs_give_one_clear_line(build, message):
    if message is None:
        assert build().shapes[1] == (2, 3, 3)
        return
    with pytest.raises(NeurocreditError, match=message) as error:
        build()
    assert "\n" not in str(error.value)


def test_init_typed_layers_and_its_errors():
    rng = np.random.default_rng(0)
    layers = init_typed_layers((1, 8, 8), [{"conv": {"channels": 4, "kernel": 3, "padding": 1}}, {"pool": 2},
                                           {"dense": 12}], 10, rng)
    network = lif(*layers)
    assert network.shapes == ((1, 8, 8), (4, 8, 8), (12,), (10,))
    assert [layer.pool for layer in layers] == [1, 2, 1] and network.unfused_weight(1).shape == (12, 64)
    for specs, message in [
        ([{"conv": {"channels": 4}}], r"layers\[0\]: conv needs channels and kernel"),
        ([{"pool": 2}, {"pool": 2}], r"layers\[1\]: two pools in a row"),
        ([{"dense": 5}, {"conv": {"channels": 2, "kernel": 3}}], r"layers\[1\]: conv needs a \(C, H, W\) input"),
        ([{"conv": {"channels": 2, "kernel": 9}}], r"layer 0 \(conv1\): the 9x9 kernel is larger"),
        ([{"maxpool": 2}], r"layers\[0\]: \{'maxpool': 2\} must be one of"),
    ]:
        with pytest.raises(NeurocreditError, match=message):
            init_typed_layers((1, 8, 8), specs, 10, np.random.default_rng(0))


def every_layer_type_network():
    rng = np.random.default_rng(7)
    layers = init_typed_layers((2, 12, 14), [{"conv": {"channels": 3, "kernel": [3, 2], "stride": [1, 2],
                                                     "padding": [1, 0]}}, {"pool": 2},
                                           {"conv": {"channels": 4, "kernel": 2}}, {"pool": 2}, {"dense": 7}], 3, rng)
    layers = tuple(layer.__class__(**{**layer.__dict__, "bias": rng.normal(size=layer.bias.shape).astype(np.float32)})
                   for layer in layers)
    return Network(layers, NeuronSpec("lif", lif=LIFParameters(0.3, 0.2, 0.8)), EncoderSpec("bernoulli", 9, 0.5, 2),
                   provenance={"rule": "bp"})


def test_hdf5_round_trip_of_every_layer_type(tmp_path):
    network = every_layer_type_network()
    assert [(layer.kind, layer.pool) for layer in network.layers] == [("conv2d", 1), ("conv2d", 2), ("dense", 2),
                                                                      ("dense", 1)]
    loaded = load_network(save_network(network, tmp_path / "conv.h5"))
    assert loaded.shapes == network.shapes and loaded.summary() == network.summary()
    for a, b in zip(network.layers, loaded.layers):
        assert type(a) is type(b) and a.name == b.name and a.pool == b.pool and a.weight.dtype == b.weight.dtype
        assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
        if a.kind == "conv2d":
            assert (a.input_shape, a.stride, a.padding) == (b.input_shape, b.stride, b.padding)
    import h5py

    with h5py.File(tmp_path / "conv.h5") as handle:
        assert handle.attrs["schema_version"] == 2 and handle["layers/1"].attrs["kind"] == "conv2d"


def test_version_1_file_still_loads():
    # tests/data/v1-dense-lif.h5 was written by neurocredit at schema version 1 (before conv layers):
    # init_layers((4, 3, 2), default_rng(1)), lif(0.25, 0.125, 1.0), bernoulli x 5 steps, seed 3
    import h5py

    path = DATA / "v1-dense-lif.h5"
    with h5py.File(path) as handle:
        assert handle.attrs["schema_version"] == 1 and "kind" not in handle["layers/0"].attrs
    network = load_network(path)
    expected = init_layers((4, 3, 2), np.random.default_rng(1))
    assert network.is_dense and network.sizes == (4, 3, 2) and network.shapes == ((4,), (3,), (2,))
    for layer, reference in zip(network.layers, expected):
        assert layer.kind == "dense" and layer.pool == 1 and np.array_equal(layer.weight, reference.weight)
    assert network.neuron.lif == LIFParameters(0.25, 0.125, 1.0) and network.encoder.steps == 5


def test_dense_only_rules_refuse_conv_networks_in_one_line():
    from neurocredit.config import TrainingConfig
    from neurocredit.rules import rule_class

    network = every_layer_type_network()
    for name in ("pc", "ff"):
        with pytest.raises(NeurocreditError, match=rf"^rule '{name}' handles dense layers only, but layer 0 "
                                                   r"\(conv1\) is a Conv2d; train conv or pooled layers with rule "
                                                   r"dfa, sigprop, chl or bp$"):
            rule_class(name, "lif")(network, rule_class(name, "lif").parse_options({}), TrainingConfig(), 3)


def test_config_layers_and_their_errors(tmp_path):
    import yaml

    from neurocredit.config import build_network, load_config

    config = load_config("digits-bptt-conv-snn")
    network = build_network(config, 64, 10, 0, (8, 8))
    assert network.input_shape == (1, 8, 8) and network.layers[1].pool == 2 and network.n_outputs == 10
    raw = yaml.safe_load(Path(config.path).read_text())
    cases = [
        ({"hidden": [10]}, r"c.yaml: network: give either hidden \(dense widths\) or layers \(typed\), not both"),
        ({"layers": [{"conv": {"channels": 2, "kernel": 3}}]}, None),
    ]
    for change, message in cases:
        broken = {**raw, "network": {**raw["network"], **change}}
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(broken))
        if message is None:
            assert load_config(path).network.layers == change["layers"]
        else:
            with pytest.raises(NeurocreditError, match=message):
                load_config(path)
    pc = {**raw, "rule": {"name": "pc"}}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(pc))
    with pytest.raises(NeurocreditError, match=r"network.layers: rule 'pc' handles dense layers only; train conv "
                                               r"or pooled layers with rule dfa, sigprop, chl or bp"):
        load_config(tmp_path / "d.yaml")
    with pytest.raises(NeurocreditError, match=r"network.layers has conv/pool layers but the data set has no image"):
        build_network(config, 20, 3, 0, ())
