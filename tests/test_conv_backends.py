"""Conv networks through every backend, per layer: reference = Norse = Brian2 = Lava floating
point spike for spike; the emulator = Lava fixed point bit for bit (spikes, integer u and v),
including a conv buffer that wraps at 24 bits; pool fusion; quantization; partitioning; counts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from convnets import asymmetric_conv_network, small_conv_lif_network, spike_inputs
from neurocredit.conv import conv_forward, fuse_conv_pool, fuse_dense_pool, sum_pool, synaptic_input
from neurocredit.deploy import emulator, lif_compiled
from neurocredit.deploy.quantize import LAVA, quantize
from neurocredit.errors import NeurocreditError
from neurocredit.network import Conv2d, EncoderSpec, Layer, LIFParameters, Network, NeuronSpec
from neurocredit.neurons import lif_initial_state, lif_step
from neurocredit.sim import brian2_backend, norse_backend, reference_backend

ALL = frozenset({"spikes", "voltages", "currents"})


def assert_same_spikes(expected, actual, voltage_atol=1e-9):
    assert len(expected.spikes) == len(actual.spikes)
    for index, (a, b) in enumerate(zip(expected.spikes, actual.spikes)):
        assert a.shape == b.shape and np.array_equal(a, b), f"layer {index}: {int((a != b).sum())} spikes differ"
    for a, b in zip(expected.voltages, actual.voltages):
        np.testing.assert_allclose(b, a, rtol=0, atol=voltage_atol)


def test_reference_norse_brian2_agree_on_a_second_conv_network():
    """(Every backend against the reference on seed 0: tests/test_backends.py.)"""
    network = asymmetric_conv_network(1)
    inputs = spike_inputs(network, 3, 1)
    reference = reference_backend.run(network, inputs, ALL)
    assert all(raster.any() and not raster.all() for raster in reference.spikes)  # not vacuous
    assert [raster.shape for raster in reference.spikes] == [(12, 3, 96), (12, 3, 48), (12, 3, 5)]
    assert_same_spikes(reference, norse_backend.run(network, inputs, ALL))
    assert_same_spikes(reference, brian2_backend.run(network, inputs, ALL, copies=2))


def test_a_transposed_kernel_changes_the_spikes():
    """The asymmetric test network is sensitive to the H/W orientation of the kernel (so the
    agreement above would catch a missing flip or transpose)."""
    network = asymmetric_conv_network(0)
    conv1 = network.layers[0]
    flipped = dataclasses.replace(conv1, weight=np.ascontiguousarray(conv1.weight[:, :, ::-1, ::-1]))
    inputs = spike_inputs(network, 3, 0)
    a = reference_backend.run(network, inputs, {"spikes"}).spikes[0]
    b = reference_backend.run(network.replace(layers=(flipped, *network.layers[1:])), inputs, {"spikes"}).spikes[0]
    assert not np.array_equal(a, b)


def dyadic(rng, shape, denominator=32, spread=24):
    """Random weights that are multiples of 1/denominator: every sum of them is exact in float64,
    so two summation orders give the same bits."""
    return rng.integers(-spread, spread + 1, size=shape) / denominator


def test_pool_fusion_gives_the_spikes_of_the_pooled_network():
    rng = np.random.default_rng(5)
    params = LIFParameters(0.25, 0.125, 1.0)
    conv1 = Conv2d(dyadic(rng, (3, 1, 3, 3)), dyadic(rng, 3, 64, 4), (1, 8, 10), 1, 1, "conv1")
    small2 = dyadic(rng, (4, 3, 2, 2))
    kernel, stride, padding = fuse_conv_pool(small2, 1, 1, 2)  # 3x8x10 -> pool 2 -> 3x4x5 -> conv -> 4x5x6
    conv2 = Conv2d(kernel, dyadic(rng, 4, 64, 4), conv1.output_shape, stride, padding, "conv2", pool=2)
    small3 = dyadic(rng, (6, 4 * 2 * 3), 64)  # 4x5x6 -> pool 2 -> 4x2x3 -> dense 6
    dense = Layer(fuse_dense_pool(small3, conv2.output_shape, 2), np.zeros(6), "fc1", pool=2)
    network = Network((conv1, conv2, dense), NeuronSpec("lif", lif=params), EncoderSpec("bernoulli", 14, 0.7, 1))
    inputs = spike_inputs(network, 4, 2)
    fused = reference_backend.run(network, inputs, ALL)
    # the pooled network, stepped by hand: explicit sum pools between the layers
    plain2 = Conv2d(small2, conv2.bias, (3, 4, 5), 1, 1, "plain2")
    steps, batch = inputs.shape[:2]
    layers = [
        lambda s: synaptic_input(conv1, s),
        lambda s: synaptic_input(plain2, sum_pool(s.reshape(batch, 3, 8, 10), 2).reshape(batch, -1)),
        lambda s: sum_pool(s.reshape(batch, 4, 5, 6), 2).reshape(batch, -1) @ small3.T,
    ]
    biases = [conv1.neuron_bias, conv2.neuron_bias, dense.bias]
    states = [lif_initial_state(np.zeros((batch, n))) for n in (240, 120, 6)]
    previous = [np.zeros((batch, 80)), np.zeros((batch, 240)), np.zeros((batch, 120))]
    for t in range(steps):
        emitted = [inputs[t].astype(np.float64)]
        for index in range(3):
            states[index], spikes = lif_step(params, states[index], layers[index](previous[index]), biases[index])
            emitted.append(spikes)
            assert np.array_equal(spikes > 0, fused.spikes[index][t]), f"layer {index} step {t}"
        previous = emitted
    assert all(raster.any() for raster in fused.spikes)
    # Norse runs conv2 in its pooled form: the spikes of the fused layer (dyadic numbers, exact sums)
    pooled = norse_backend.run(network, inputs, ALL)
    for index in range(3):
        assert np.array_equal(pooled.spikes[index], fused.spikes[index]), f"norse layer {index}"


def test_quantized_conv_fits_lavas_conv():
    network = asymmetric_conv_network(0)
    quantized = quantize(network)
    report = quantized.report()["layers"]
    for fixed, entry in zip(quantized.layers[:2], report[:2]):
        assert fixed.is_conv and fixed.weight_exp == 0 and fixed.weights.shape == fixed.spec.weight.shape
        assert fixed.weights.min() >= -128 and fixed.weights.max() <= 127 and np.abs(fixed.weights).max() >= 127
        assert 1 <= fixed.vth <= LAVA.vth_max and entry["current_headroom"] >= 1
        # The threshold is an exact number of weight steps (no weight exponent to refine it).
        assert fixed.float_vth() == pytest.approx(network.neuron.lif.vth, rel=1e-12)
        assert entry["kind"] == "conv2d" and entry["conv_buffer_headroom"] > 1
        assert entry["weight_rms_relative_error"] < 0.01
    assert not quantized.layers[2].is_conv
    tiny = network.replace(neuron=NeuronSpec("lif", lif=LIFParameters(0.3, 0.2, 1e-5)))
    with pytest.raises(NeurocreditError, match=r"^layer conv1: the threshold vth=1e-05 is too small for conv weights"):
        quantize(tiny)


def test_emulator_conv_batches_independently():
    network = asymmetric_conv_network(1)
    inputs = spike_inputs(network, 5, 3)
    quantized = quantize(network)
    whole = emulator.emulate(quantized, inputs, record_states=True)
    for sample in range(5):
        alone = emulator.emulate(quantized, inputs[:, sample:sample + 1], record_states=True)
        for a, b in zip(whole.voltages + whole.spikes, alone.voltages + alone.spikes):
            assert np.array_equal(a[:, sample:sample + 1], b)


def test_emulator_runs_a_fused_pool_in_its_pooled_form_with_the_same_sums():
    """A pooled conv's integer kernel is constant over p x p blocks, so the emulator sums the
    pooled spikes with the small kernel (Synapses); a kernel that is not falls back to the fused one."""
    rng = np.random.default_rng(2)
    kernel, stride, padding = fuse_conv_pool(rng.normal(0, 0.5, (4, 3, 2, 3)), (1, 2), (1, 0), 2)
    conv = Conv2d(kernel, rng.normal(0, 0.05, 4), (3, 8, 12), stride, padding, "conv", pool=2)
    network = Network((conv, Layer(rng.normal(0, 0.5, (5, conv.n_out)), np.zeros(5), "fc1")),
                      NeuronSpec("lif", lif=LIFParameters(0.3, 0.2, 1.0)), EncoderSpec("bernoulli", 6, 0.8, 0))
    fixed = quantize(network).layers[0]
    spikes = spike_inputs(network, 5, 1).reshape(-1, network.n_inputs)
    bumped = fixed.weights.copy()
    bumped[0, 0, 0, 0] += 1  # no longer constant over its 2x2 block
    for weights, pooled in ((fixed.weights, 2), (bumped, 1)):
        layer = dataclasses.replace(fixed, weights=weights)
        synapses = emulator.synapses(layer)
        assert synapses.pool == pooled
        expected = conv_forward(conv, spikes.astype(np.float64), weights.astype(np.float64))
        assert np.array_equal(emulator.conv_accumulate(spikes, layer, synapses), expected)
        assert np.abs(expected).max() > 0


@pytest.mark.parametrize("out_channels, group", [(3, 5), (8, 2), (16, 1), (20, 1)])
def test_a_conv_with_few_channels_sums_several_images_at_once_with_the_same_integers(out_channels, group):
    """Below oneDNN's block of 16 output channels the emulator stacks 16 // C_out images as the
    channels of one conv with a block-diagonal kernel: each image's sums are its own conv's, also
    for a row count that is not a multiple of the group (zero images pad it)."""
    rng = np.random.default_rng(out_channels)
    conv = Conv2d(rng.normal(0, 0.5, (out_channels, 2, 3, 3)), np.zeros(out_channels), (2, 7, 9), (2, 1), (1, 0),
                  "conv")
    network = Network((conv, Layer(rng.normal(0, 0.5, (4, conv.n_out)), np.zeros(4), "fc1")),
                      NeuronSpec("lif", lif=LIFParameters(0.3, 0.2, 1.0)), EncoderSpec("bernoulli", 7, 0.8, 0))
    layer = quantize(network).layers[0]
    synapses = emulator.synapses(layer)
    assert synapses.group == group and synapses.weights.shape == (group * out_channels, group * 2, 3, 3)
    spikes = spike_inputs(network, 3, 1).reshape(-1, network.n_inputs)  # 21 rows
    expected = conv_forward(conv, spikes.astype(np.float64), layer.weights.astype(np.float64))
    assert np.abs(expected).max() > 0
    assert np.array_equal(emulator.conv_accumulate(spikes, layer, synapses), expected)


@pytest.mark.parametrize("build", [small_conv_lif_network, asymmetric_conv_network])
def test_conv_sums_stay_exact_with_onednn_switched_off(build, monkeypatch):
    """torch's float32 conv2d is exact on integer operands only on oneDNN: switched off, the
    stride-1 layers of the small network came back one unit off after truncation (torch 2.14).
    The emulator then sums in float64: the integers and spikes it gives with oneDNN on."""
    import torch

    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN: exact_float32_conv() is False, every conv sums in float64")
    network = build(1)
    quantized = quantize(network)
    inputs = spike_inputs(network, 64, 3)
    with_onednn = emulator.emulate(quantized, inputs, record_states=True)
    assert emulator.exact_float32_conv()
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    assert not emulator.exact_float32_conv()
    presynaptic = (inputs, with_onednn.spikes[0])
    for index, layer in enumerate(quantized.layers[:2]):
        spikes = presynaptic[index].reshape(-1, layer.n_in)
        expected = conv_forward(layer.spec, spikes.astype(np.float64), layer.weights.astype(np.float64))
        assert np.array_equal(emulator.conv_accumulate(spikes, layer), expected), f"layer {index}"
    without = emulator.emulate(quantized, inputs, record_states=True)
    for name in ("spikes", "currents", "voltages"):
        for index, (a, b) in enumerate(zip(getattr(with_onednn, name), getattr(without, name))):
            assert np.array_equal(a, b), f"{name} of layer {index} differ"


def wrapping_network(seed=0):
    """The quantized asymmetric network with conv1's integer kernel scaled by 2**16 (far beyond
    8 bits; Lava's PyConvModelFixed does not clip), so its conv buffer wraps modulo 2**24."""
    network = asymmetric_conv_network(seed)
    quantized = quantize(network)
    first = quantized.layers[0]
    big = dataclasses.replace(first, weights=(first.weights.astype(np.int64) * 2**16).astype(np.int32),
                              vth=2**15)  # v saturates at 2**23 - 1, above vth << 6 = 2**21
    return network, dataclasses.replace(quantized, layers=(big, *quantized.layers[1:]))


def test_the_wrapping_network_really_wraps_its_conv_buffer():
    network, quantized = wrapping_network()
    inputs = spike_inputs(network, 3, 0)
    raw = conv_forward(network.layers[0], inputs.astype(np.float64), quantized.layers[0].weights.astype(np.float64))
    assert np.abs(raw).max() > 2**23  # Lava's buffer wraps these
    wrapped = emulator.conv_accumulate(inputs, quantized.layers[0])
    assert np.array_equal(wrapped, ((raw.astype(np.int64) + 2**23) % 2**24 - 2**23))
    assert emulator.emulate(quantized, inputs).spikes[0].any()


@pytest.mark.skipif(not lif_compiled.available(), reason="numba (extra onchip) is not installed")
@pytest.mark.parametrize("case", ["asymmetric", "wraps", "pooled"])
def test_compiled_lif_equals_the_numpy_step_on_conv_layers(case, monkeypatch):
    """The numba window reads the conv buffer through its 24-bit wrap (dense: the 32-bit port);
    with a fused pool the compiled sum pool against the numpy one (numba switched off)."""
    network, quantized = wrapping_network(1) if case == "wraps" else (
        small_conv_lif_network(1) if case == "pooled" else asymmetric_conv_network(1), None)
    quantized = quantized or quantize(network)
    inputs = spike_inputs(network, 4, 2)
    compiled = emulator.emulate(quantized, inputs, record_states=True, compiled=True)
    monkeypatch.setattr(lif_compiled, "available", lambda: False)
    numpy_steps = emulator.emulate(quantized, inputs, record_states=True, compiled=False)
    assert case != "pooled" or emulator.synapses(quantized.layers[1]).pool == 2  # runs in its pooled form
    assert all(raster.any() for raster in compiled.spikes)
    for name in ("spikes", "currents", "voltages"):
        for layer, (a, b) in enumerate(zip(getattr(compiled, name), getattr(numpy_steps, name))):
            assert np.array_equal(a, b), f"{name} of layer {layer} differ"


@pytest.mark.needs_lava
@pytest.mark.timeout(240)
def test_graded_input_through_conv_in_lava_floating_point_and_brian2():
    """The current encoder: Lava's Conv with num_message_bits > 0, Brian2's graded input group
    (spike inputs: tests/test_backends.py)."""
    from neurocredit.deploy import lava_backend

    network = asymmetric_conv_network(1).replace(encoder=EncoderSpec("current", 10, 0.5, 0))
    inputs = spike_inputs(network, 3, 1)
    assert len(np.unique(inputs)) > 2
    reference = reference_backend.run(network, inputs, ALL)
    assert_same_spikes(reference, lava_backend.run(network, inputs, ALL, mode="floating_pt", target="none"))
    assert_same_spikes(reference, brian2_backend.run(network, inputs, ALL))


@pytest.mark.needs_lava
@pytest.mark.timeout(240)
@pytest.mark.parametrize("wraps, lanes", [(False, 1), (True, None)])
def test_emulator_equals_lava_fixed_point_bit_for_bit(wraps, lanes):
    """One sample per window (lanes 1), or 3 samples side by side (the default: conv layers as
    groups of one Conv) with a conv buffer that wraps (2 lanes: tests/test_backends.py)."""
    from neurocredit.deploy import lava_backend

    if wraps:
        network, quantized = wrapping_network(0)
    else:
        network = asymmetric_conv_network(0)
        quantized = quantize(network)
    inputs = spike_inputs(network, 3, 0)
    emulated = emulator.run(network, inputs, ALL, quantized=quantized)
    assert lava_backend.choose_lanes(network, 3) == 3
    lava = lava_backend.run(network, inputs, ALL, mode="fixed_pt", quantized=quantized, target="none", lanes=lanes)
    assert all(raster.any() for raster in emulated.spikes)
    for name in ("spikes", "currents", "voltages"):
        for index, (a, b) in enumerate(zip(getattr(emulated, name), getattr(lava, name))):
            assert np.array_equal(a, b), f"{name} of layer {index} differ"


def naive_synops(network, record):
    """Synaptic operations recounted from rasters with explicit loops: for every spike of source
    neuron j, the number of (output channel, position, kernel tap) triples that read j."""
    counts = []
    sources = [record.input_spikes] + list(record.spikes[:-1])
    for layer, raster in zip(network.layers, sources):
        reach = np.zeros(layer.n_in, dtype=np.int64)
        if layer.kind == "dense":
            reach[:] = layer.n_out
        else:
            out_channels, in_channels, kh, kw = layer.weight.shape
            _, oh, ow = layer.output_shape
            _, height, width = layer.input_shape
            for y in range(oh):
                for x in range(ow):
                    for c in range(in_channels):
                        for i in range(kh):
                            for j in range(kw):
                                row = y * layer.stride[0] + i - layer.padding[0]
                                col = x * layer.stride[1] + j - layer.padding[1]
                                if 0 <= row < height and 0 <= col < width:
                                    reach[c * height * width + row * width + col] += out_channels
        total = 0
        for t, b, j in zip(*np.nonzero(raster)):
            total += int(reach[j])
        counts.append(total)
    return counts


def test_synops_equal_an_independent_recount_of_the_rasters():
    from neurocredit.energy import count_operations, dense_counts

    network = asymmetric_conv_network(0)
    record = reference_backend.run(network, spike_inputs(network, 3, 0), {"spikes"})
    counts = count_operations(network, record)
    assert [layer.synops for layer in counts.layers] == naive_synops(network, record)
    assert [layer.neuron_updates for layer in counts.layers] == [n * 12 * 3 for n in (96, 48, 5)]
    assert [layer.spikes for layer in counts.layers] == [int(raster.sum()) for raster in record.spikes]
    baseline = dense_counts(network)
    assert baseline.macs == 96 * 2 * 3 * 2 + 48 * 3 * 2 * 3 + 48 * 5
    assert baseline.memory_accesses == (36 + 126 + 96) + (72 + 96 + 48) + (240 + 48 + 5)


def tiny_target(tmp_path, **limits):
    from neurocredit.targets import load_target

    lines = ["name: tiny", "spiking: true", "limits:"]
    lines += [f"  {key}: {{value: {value}, source: \"test limit\"}}" for key, value in limits.items()]
    path = tmp_path / "tiny.yaml"
    path.write_text("\n".join(lines + ["energy: {}"]) + "\n")
    return load_target(path)


def test_conv_layers_are_placed_with_shared_kernels(tmp_path):
    from neurocredit.deploy.partition import check_and_partition

    network = asymmetric_conv_network(0)
    partition = check_and_partition(network, tiny_target(tmp_path, neurons_per_core=40))
    conv1, conv2, fc = partition.layers
    assert (conv1.kind, conv1.cores, conv1.neurons_per_core, fc.kind) == ("conv2d", 3, 40, "dense")
    # the fullest conv1 core holds channel 0 (32 neurons) and 8 of channel 1: two 2x3x2 kernels,
    # and channel 0's 4x8 map reads every pixel of both input channels (2x7x9 = 126 axons)
    assert (conv1.synapses_per_core, conv1.fan_in_per_core) == (24, 126)
    assert conv1.fan_out_per_core == 40 * 2  # each conv1 neuron reaches both conv2 cores at most
    assert (conv2.cores, fc.cores, partition.cores) == (2, 1, 6)
    # kernel memory of 48 weights: all 3 conv1 kernels (36) on one core, 2 of conv2's (36) per core,
    # one fc1 neuron (48 synapses) per core
    shared = check_and_partition(network, tiny_target(tmp_path, synapses_per_core=48))
    assert [(p.cores, p.neurons_per_core, p.synapses_per_core) for p in shared.layers] == [(1, 96, 36), (2, 24, 36),
                                                                                          (5, 1, 48)]
    with pytest.raises(NeurocreditError, match=r"^tiny: layer conv2: synapses_per_core is 13 but the network needs 18 "
                                               r"\(limit source: test limit\); one output channel's kernel does not fit"):
        check_and_partition(network, tiny_target(tmp_path, synapses_per_core=13))
    with pytest.raises(NeurocreditError, match=r"^tiny: layer conv1: fan_in_per_core is 5 but the network needs 12 "
                                               r"\(limit source: test limit\); one conv neuron's receptive field"):
        check_and_partition(network, tiny_target(tmp_path, fan_in_per_core=5))
