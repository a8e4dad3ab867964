"""Quantization to Lava fixed point: integers Lava accepts unchanged, errors within half a step,
12-bit decays with Lava's du offset, 17-bit thresholds, 13+3-bit biases, the per-layer report."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import small_lif_network
from neurocredit.deploy.emulator import lava_dense_weights
from neurocredit.deploy.quantize import (
    LAVA,
    clip_to_quantile,
    decay_to_fixed,
    mantissa_range,
    quantize,
    quantize_bias,
    quantize_layer,
    round_preserving_sums,
    sign_mode_of,
)
from neurocredit.errors import NeurocreditError
from neurocredit.network import EncoderSpec, Layer, LIFParameters, Network, NeuronSpec


def weight_step(layer) -> float:
    """Float units per weight mantissa unit of a quantized dense layer."""
    return mantissa_range(layer.sign_mode, layer.num_weight_bits)[2] * 2.0 ** (layer.weight_exp + 6) / layer.scale


def test_decays_follow_lavas_offsets():
    # du = round(du * 4096) - 1 (Lava adds ds_offset = 1 back); dv = round(dv * 4096).
    assert decay_to_fixed(0.2, 0.1) == (818, 410)
    assert decay_to_fixed(1.0, 1.0) == (4095, 4095)
    assert decay_to_fixed(0.0, 0.0) == (0, 0)
    assert decay_to_fixed(0.5, 0.25) == (2047, 1024)


def test_sign_modes_match_lavas_rule():
    assert sign_mode_of(np.array([[0.0, 1.0]])) == "excitatory"
    assert sign_mode_of(np.array([[-1.0, 0.0]])) == "inhibitory"
    assert sign_mode_of(np.array([[-1.0, 1.0]])) == "mixed"
    assert mantissa_range("mixed", 8) == (-128, 127, 2)
    assert mantissa_range("excitatory", 8) == (0, 255, 1)
    assert mantissa_range("inhibitory", 4) == (-15, 0, 16)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quantized_network_uses_the_int8_range_and_survives_lava_clipping(seed):
    network = small_lif_network(seed, bias_scale=0.2)
    quantized = quantize(network)
    assert (quantized.du, quantized.dv) == decay_to_fixed(0.2, 0.1)
    for float_layer, layer in zip(network.layers, quantized.layers):
        low, high, step = mantissa_range(layer.sign_mode, 8)
        mantissa = layer.weights // step
        assert np.array_equal(mantissa * step, layer.weights)
        assert mantissa.min() >= low and mantissa.max() <= high
        assert max(-mantissa.min() / -low if low else 0, mantissa.max() / high) == pytest.approx(1.0, abs=0.01)
        # Lava's clip_weights + truncate_weights leave our integers exactly as they are.
        assert np.array_equal(lava_dense_weights(layer.weights, layer.sign_mode, 8), layer.weights)
        # Reconstruction: each weight within one step, each neuron's summed weights within half a
        # step; the step is the finest that fits (mixed signs: max W / 127 or -min W / 128) made at
        # most 1/vth coarser so that the threshold is exact.
        finest = max(float_layer.weight.max() / 127, -float_layer.weight.min() / 128)
        delta = weight_step(layer)
        assert finest * (1 - 1e-12) <= delta <= finest * (1 + 1 / layer.vth)
        error = layer.float_weights() - float_layer.weight
        assert np.abs(error).max() < delta and np.abs(error.sum(axis=1)).max() <= delta / 2 + 1e-12
        assert 1 <= layer.vth <= LAVA.vth_max
        assert layer.float_vth() == pytest.approx(1.0, rel=1e-12)  # the threshold is exact
        assert np.all((layer.bias_exp >= 0) & (layer.bias_exp <= LAVA.bias_exponent_max))
        assert np.all((layer.bias_mant >= -4096) & (layer.bias_mant <= 4095))


def test_weight_exponent_is_the_largest_that_keeps_threshold_current_and_voltage_in_range():
    network = small_lif_network(3)
    quantized = quantize(network)
    for float_layer, layer in zip(network.layers, quantized.layers):
        report = {item["layer"]: item for item in quantized.report()["layers"]}[layer.name]
        assert report["current_headroom"] >= 1.0
        bigger = quantize_layer(float_layer.weight, float_layer.bias, 1.0, layer.name, 8,
                                quantized.effective_du, network.encoder.steps, quantized.effective_dv)
        assert bigger.weight_exp == layer.weight_exp
        # One more exponent step would break the 17-bit threshold or the 24-bit current bound (a
        # leaky voltage, dv > 0, is not bounded by its worst case).
        doubled_vth = 2 * layer.vth
        assert doubled_vth > LAVA.vth_max or report["current_headroom"] / 2 < 1.0
    # Without a voltage leak the voltage range bounds it too, down to exponent 0.
    integrator = network.replace(neuron=NeuronSpec("lif", lif=LIFParameters(0.2, 0.0, 1.0)))
    for layer, report in zip(quantize(integrator).layers, quantize(integrator).report()["layers"]):
        assert report["current_headroom"] >= 1.0 and (report["voltage_headroom"] >= 1.0 or layer.weight_exp == 0)
        assert 2 * layer.vth > LAVA.vth_max or report["voltage_headroom"] / 2 < 1.0 or report["current_headroom"] / 2 < 1


def test_rounding_preserves_each_neurons_sum():
    values = np.array([[0.6, 0.6, 0.6, 0.2], [-0.25, -0.25, 1.75, 2.0], [3.0, -2.0, 0.0, 0.0], [0.3, 0.3, 0.3, 0.3]])
    rounded = round_preserving_sums(values, -128, 127)
    # rint would give [1, 1, 1, 0] (sum 3 for 2.0), [0, 0, 2, 2] (4 for 3.25), ..., [0] * 4 (0 for 1.2)
    assert rounded.tolist() == [[1, 1, 0, 0], [0, 0, 1, 2], [3, -2, 0, 0], [1, 0, 0, 0]]
    assert np.all(np.abs(rounded - values) < 1)
    assert np.array_equal(rounded.sum(axis=1), np.rint(values.sum(axis=1)))
    # clipped to the mantissa range first; a conv kernel (C_out, C_in, KH, KW) by output channel
    assert round_preserving_sums(np.array([[300.4, -0.6]]), -128, 127).tolist() == [[127, -1]]
    kernel = np.random.default_rng(0).normal(0, 20, (3, 2, 3, 3))
    assert np.array_equal(round_preserving_sums(kernel, -128, 127).sum(axis=(1, 2, 3)),
                          np.rint(kernel.sum(axis=(1, 2, 3))))


def test_integrate_and_fire_voltage_stays_in_lavas_range():
    """An IF layer (du = 1, dv = 0) integrates inhibition for as long as it lasts: with every input
    spiking every step its voltage must fall step by step without reaching Lava's saturation."""
    from neurocredit.deploy.emulator import emulate, synapses

    rng = np.random.default_rng(0)
    weight = rng.normal(-0.5, 0.3, (3, 40))
    steps = 25
    network = Network((Layer(weight, np.zeros(3), "fc1"),), NeuronSpec("lif", lif=LIFParameters(1.0, 0.0, 1.0)),
                      EncoderSpec("bernoulli", steps, 1.0, 0))
    quantized = quantize(network)
    layer = quantized.layers[0]
    assert quantized.report()["layers"][0]["voltage_headroom"] >= 1.0
    inputs = np.ones((steps, 1, 40), bool)
    voltage = emulate(quantized, inputs, record_states=True).voltages[0][:, 0]
    drive = synapses(layer).drive(inputs[0])[0]  # a_in << 6 of one step, received one step later
    assert np.all(drive < 0)
    assert voltage.min() > -(LAVA.state_limit - 1)
    assert np.array_equal(voltage, np.arange(steps)[:, None] * drive[None, :])


def test_bias_mantissa_and_exponent():
    mant, exp = quantize_bias(np.array([0.0, 100.4, -4096.0, 4095.6, 10_000.0, -1e9]))
    assert mant.tolist()[:3] == [0, 100, -4096] and exp.tolist()[:3] == [0, 0, 0]
    assert (mant[3], exp[3]) == (2048, 1)  # 4096 does not fit 13 signed bits: 2048 << 1
    assert int(mant[4]) << int(exp[4]) == pytest.approx(10_000, abs=2 ** (int(exp[4]) - 1))
    assert (mant[5], exp[5]) == (-4096, 7)  # clipped at the largest exponent
    report = quantize(small_lif_network(0, bias_scale=0.3)).report()
    assert all(layer["bias_clipped"] == 0 for layer in report["layers"])


def test_one_sign_layers_and_zero_layers():
    rng = np.random.default_rng(0)
    weights = [np.abs(rng.normal(0, 0.3, (6, 5))), -np.abs(rng.normal(0, 0.3, (4, 6))), np.zeros((3, 4))]
    layers = tuple(Layer(w, np.zeros(w.shape[0]), f"fc{i + 1}") for i, w in enumerate(weights))
    network = Network(layers, NeuronSpec("lif", lif=LIFParameters(0.3, 0.2, 1.0)), EncoderSpec("bernoulli", 10, 0.5, 0))
    quantized = quantize(network, weight_bits=6)
    modes = [layer.sign_mode for layer in quantized.layers]
    assert modes == ["excitatory", "inhibitory", "excitatory"]
    assert quantized.layers[0].weights.min() >= 0 and quantized.layers[0].weights.max() == 252  # 63 << 2
    assert quantized.layers[1].weights.max() <= 0 and quantized.layers[1].weights.min() == -252
    assert not quantized.layers[2].weights.any()
    for layer in quantized.layers:
        assert np.array_equal(lava_dense_weights(layer.weights, layer.sign_mode, 6), layer.weights)


def test_fewer_bits_give_larger_error():
    network = small_lif_network(4)
    errors = [quantize(network, weight_bits=bits).report()["layers"][0]["weight_rms_relative_error"]
              for bits in (2, 3, 4, 6, 8)]
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 0.01 < errors[0]


def test_report_lists_every_layer_and_the_decay_errors():
    network = small_lif_network(5)
    report = quantize(network).report()
    assert [layer["layer"] for layer in report["layers"]] == [layer.name for layer in network.layers]
    assert report["du_error"] == pytest.approx(abs((818 + 1) / 4096 - 0.2))
    assert report["dv_error"] == pytest.approx(abs(410 / 4096 - 0.1))
    for layer in report["layers"]:
        assert 0 < layer["weight_rms_relative_error"] < 0.01
        assert layer["vth_relative_error"] < 1e-12


def test_quantize_is_deterministic():
    network = small_lif_network(6)
    first, second = quantize(network), quantize(network)
    for a, b in zip(first.layers, second.layers):
        assert np.array_equal(a.weights, b.weights) and a.weight_exp == b.weight_exp and a.vth == b.vth
        assert np.array_equal(a.bias_mant, b.bias_mant) and np.array_equal(a.bias_exp, b.bias_exp)


def test_bad_requests_are_clear_errors():
    with pytest.raises(NeurocreditError, match="weight_bits"):
        quantize(small_lif_network(0), weight_bits=9)
    rate = Network(small_lif_network(0).layers)
    with pytest.raises(NeurocreditError, match="rate network"):
        quantize(rate)
    tiny_threshold = Network(small_lif_network(0).layers, NeuronSpec("lif", lif=LIFParameters(0.2, 0.1, 1e-9)),
                             EncoderSpec("bernoulli", 10, 0.5, 0))
    with pytest.raises(NeurocreditError, match="threshold"):
        quantize(tiny_threshold)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), bits=st.integers(1, 8), scale=st.floats(1e-3, 1e3),
       shift=st.sampled_from([-1.0, 0.0, 1.0]))
def test_any_layer_quantizes_to_integers_lava_keeps(seed, bits, scale, shift):
    rng = np.random.default_rng(seed)
    weight = (rng.normal(0, 1, (7, 9)) + shift) * scale
    vth = 1.0 * scale * 3
    layer = quantize_layer(weight, rng.normal(0, scale, 7), vth, "fc", bits, 0.2, 20, 0.1)
    assert np.array_equal(lava_dense_weights(layer.weights, layer.sign_mode, bits), layer.weights)
    assert 1 <= layer.vth <= LAVA.vth_max
    assert layer.float_vth() == pytest.approx(vth, rel=1e-12)  # the threshold is exact
    low, high, _ = mantissa_range(layer.sign_mode, bits)
    # The step is the finest that uses the whole mantissa range, at most 1/vth coarser (the
    # exact threshold); weights beyond a 1-bit range are clipped to its end; each weight within
    # one step of it and each neuron's sum within half a step.
    candidates = []
    if high > 0 and weight.max() > 0:
        candidates.append(weight.max() / high)
    if low < 0 and weight.min() < 0:
        candidates.append(weight.min() / low)
    finest, delta = max(candidates), weight_step(layer)
    assert finest * (1 - 1e-12) <= delta <= finest * (1 + 1 / layer.vth)
    expected = np.clip(weight, low * delta, high * delta)
    error = layer.float_weights() - expected
    assert np.abs(error).max() < delta * (1 + 1e-9)
    assert np.abs(error.sum(axis=1)).max() <= delta / 2 * (1 + 1e-9)


def test_clip_quantile_gives_the_bulk_a_finer_step_and_saturates_the_outliers():
    """One weight 8 times the others' largest: by default it takes the top mantissa and the rest
    use about a sixteenth of the range; with clip_quantile it saturates and the rest get the step
    of the quantile."""
    network = small_lif_network(7)
    first = network.layers[0]
    weight = first.weight.copy()
    weight[0, 0] = 8 * np.abs(weight).max()
    network = network.replace(layers=(dataclasses.replace(first, weight=weight), *network.layers[1:]))
    plain, clipped = quantize(network).layers[0], quantize(network, clip_quantile=0.99).layers[0]
    limit = float(np.quantile(np.abs(weight), 0.99))
    assert weight_step(plain) >= np.abs(weight).max() / 128
    assert weight_step(clipped) == pytest.approx(limit / 127, rel=0.05)  # the exact threshold may coarsen it a little
    top = mantissa_range(clipped.sign_mode, 8)[1] * mantissa_range(clipped.sign_mode, 8)[2]
    assert clipped.weights[0, 0] == top  # saturated
    bulk = np.abs(weight) <= limit
    plain_error = np.abs(plain.float_weights() - weight)[bulk].max()
    clipped_error = np.abs(clipped.float_weights() - weight)[bulk].max()
    assert clipped_error < plain_error / 4
    report = quantize(network, clip_quantile=0.99).report()
    assert report["clip_quantile"] == 0.99 and quantize(network).report()["clip_quantile"] is None
    for a, b in zip(quantize(network, clip_quantile=1.0).layers, quantize(network).layers):
        assert np.array_equal(a.weights, b.weights) and a.vth == b.vth  # 1: the largest weight, as by default


def test_clip_to_quantile_keeps_signs_and_a_fused_pool():
    from neurocredit.conv import fuse_conv_pool

    rng = np.random.default_rng(3)
    kernel = fuse_conv_pool(rng.normal(0, 1, (3, 2, 2, 2)), (1, 1), (0, 0), 2)[0]
    clipped = clip_to_quantile(kernel, 0.9)
    limit = float(np.quantile(np.abs(kernel), 0.9))
    assert np.array_equal(np.sign(clipped), np.sign(kernel)) and np.abs(clipped).max() == pytest.approx(limit)
    assert np.array_equal(clipped, np.repeat(np.repeat(clipped[:, :, ::2, ::2], 2, axis=2), 2, axis=3))
    assert clip_to_quantile(kernel, None) is kernel and clip_to_quantile(kernel, 1.0) is kernel


@pytest.mark.parametrize("value", [0, -0.5, 1.01, float("nan"), "often"])
def test_bad_clip_quantiles_are_clear_errors(value):
    with pytest.raises(NeurocreditError, match=r"clip_quantile=.* must be a quantile in \(0, 1\]"):
        quantize(small_lif_network(0), clip_quantile=value)
