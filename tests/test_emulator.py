"""The fixed-point emulator: Lava's rounding/wrap/saturation rules, batching, and bit-exact
agreement with Lava's own fixed_pt models (same spikes, same integer u and v at every step) on a
net built to hit every edge case. Its hand-computed integer golden trace and the random nets it
must share bit for bit with Lava fixed_pt are in test_backends.py."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import small_lif_network
from neurocredit.compare import spike_agreement
from neurocredit.deploy import emulator, lif_compiled
from neurocredit.deploy.emulator import (
    FixedLIFParameters,
    FixedLIFState,
    decay_toward_zero,
    emulate,
    lava_dense_weights,
    lif_fixed_step,
)
from neurocredit.deploy.quantize import FixedLayer, QuantizedNetwork, quantize
from neurocredit.errors import NeurocreditError
from neurocredit.network import EncoderSpec, Layer, LIFParameters, Network, NeuronSpec
from neurocredit.sim import encode_inputs, reference_backend

M = 2**23


def _state(u, v):
    return FixedLIFState(np.array([u], dtype=np.int64), np.array([v], dtype=np.int64))


def test_decay_rounds_toward_zero():
    assert decay_toward_zero(np.array([5, -5, 4095, -4095]), 3072).tolist() == [3, -3, 3071, -3071]


def test_current_wraps_and_voltage_saturates_as_lava_writes_it():
    params = FixedLIFParameters(du=4095, dv=0, effective_vth=131071 << 6)  # u fully decays each step
    # u = a_in << 6: 2**23 exactly stays 2**23; one more wraps to -2**23 + 1; -2**23 becomes +2**23.
    for a_in, expected in ((M >> 6, M), ((M >> 6) + 1, -M + 64), (-(M >> 6), M)):
        state, _ = lif_fixed_step(params, _state(0, 0), np.array([a_in]), np.array([0]))
        assert int(state.current[0]) == expected
    # v saturates at -(2**23 - 1) and spikes at +(2**23 - 1) > vth << 6.
    state, spikes = lif_fixed_step(params, _state(0, -M + 10), np.array([-1000]), np.array([0]))
    assert int(state.voltage[0]) == -M + 1 and not spikes[0]
    state, spikes = lif_fixed_step(params, _state(0, M - 10), np.array([1000]), np.array([0]))
    assert spikes[0] and int(state.voltage[0]) == 0


def test_dense_weights_follow_lavas_clip_and_truncate():
    from lava.utils.weightutils import SignMode, clip_weights, truncate_weights

    rng = np.random.default_rng(0)
    for mode, low, high in (("mixed", -300, 300), ("excitatory", 0, 300), ("inhibitory", -300, 0)):
        weights = rng.integers(low, high + 1, (20, 30))
        for bits in (1, 3, 5, 8):
            sign = SignMode[mode.upper()]
            expected = truncate_weights(clip_weights(weights, sign, num_bits=8), sign, bits)
            assert np.array_equal(lava_dense_weights(weights, mode, bits), expected), (mode, bits)


def test_batch_is_independent_of_grouping():
    network = small_lif_network(1, bias_scale=0.2)
    quantized = quantize(network)
    inputs = encode_inputs(network, np.random.default_rng(0).random((7, network.n_inputs)))
    together = emulate(quantized, inputs, record_states=True)
    for sample in (0, 4, 6):
        alone = emulate(quantized, inputs[:, sample : sample + 1], record_states=True)
        for layer in range(len(network.layers)):
            assert np.array_equal(together.spikes[layer][:, sample], alone.spikes[layer][:, 0])
            assert np.array_equal(together.voltages[layer][:, sample], alone.voltages[layer][:, 0])


def test_emulator_tracks_the_float_model_and_its_timing():
    network = small_lif_network(2)
    inputs = encode_inputs(network, np.random.default_rng(1).random((20, network.n_inputs)))
    fixed = emulator.run(network, inputs, {"spikes"})
    reference = reference_backend.run(network, inputs, {"spikes"})
    assert fixed.backend == "emulator" and fixed.outputs.shape == (20, network.n_outputs)
    assert spike_agreement(fixed, reference)["overall"] > 0.9
    # Lava timing: with zero bias, layer i (1-based) cannot fire before step i.
    quiet = network.with_parameters(network.weights, [np.zeros_like(b) for b in network.biases])
    trace = emulate(quantize(quiet), inputs)
    for index, spikes in enumerate(trace.spikes):
        assert not spikes[: index + 1].any()


def test_graded_input_is_a_clear_error():
    network = small_lif_network(0)
    with pytest.raises(NeurocreditError, match="binary spike inputs"):
        emulator.run(network, np.full((5, 2, network.n_inputs), 0.5, np.float32))


def edge_case_network() -> tuple[Network, QuantizedNetwork]:
    """Integers chosen to hit every edge of Lava's arithmetic: current wrap (large weights,
    weight_exp 7, almost no current decay), negative voltage saturation, weights Lava must clip
    and truncate, a negative weight_exp (floor shift), 5-bit weights, excitatory and inhibitory
    layers, biases with exponents, a threshold at the 17-bit maximum."""
    rng = np.random.default_rng(7)
    w1 = rng.integers(-256, 256, (6, 4))
    w1[0] = 254  # drives u past 2**23 within a few steps: wrap
    w1[1] = -256  # drives v to the negative saturation bound
    w1[2, :2] = (255, -255)  # not representable in mixed 8-bit: Lava truncates
    w2 = rng.integers(0, 256, (5, 6))
    w3 = -rng.integers(0, 256, (3, 5))
    layers = (
        FixedLayer("fc1", w1.astype(np.int32), 7, 8, "mixed", rng.integers(-4096, 4096, 6).astype(np.int32),
                   rng.integers(0, 8, 6).astype(np.int32), 131071, 1.0),
        FixedLayer("fc2", w2.astype(np.int32), -3, 5, "excitatory", np.full(5, -300, np.int32),
                   np.full(5, 2, np.int32), 200, 1.0),
        FixedLayer("fc3", w3.astype(np.int32), 0, 8, "inhibitory", np.full(3, 3000, np.int32),
                   np.full(3, 3, np.int32), 500, 1.0),
    )
    float_layers = tuple(Layer(layer.weights.astype(np.float64), np.zeros(layer.n_out), layer.name) for layer in layers)
    network = Network(float_layers, NeuronSpec("lif", lif=LIFParameters(0.0, 0.05, 1.0)),
                      EncoderSpec("bernoulli", 24, 0.8, 3))
    return network, QuantizedNetwork(network, layers, du=0, dv=200, weight_bits=8)


def edge_case_inputs(network: Network, samples: int = 2) -> np.ndarray:
    inputs = encode_inputs(network, np.random.default_rng(3).random((samples, network.n_inputs)))
    inputs[:, :, :2] = 1.0  # channels 0 and 1 spike at every step
    return inputs


def test_edge_case_network_really_wraps_and_saturates():
    network, quantized = edge_case_network()
    trace = emulate(quantized, edge_case_inputs(network), record_states=True)
    current, voltage = trace.currents[0].astype(np.int64), trace.voltages[0].astype(np.int64)
    assert (current[:, :, 0] < 0).any(), "neuron 0 only gets positive input: a negative u means it wrapped"
    assert voltage[:, :, 1].min() == -(M - 1), "neuron 1 saturates at -(2**23 - 1)"
    assert all(spikes.any() for spikes in trace.spikes)


def _assert_bit_exact(expected, lava):
    for layer in range(len(expected.spikes)):
        first = np.flatnonzero((expected.spikes[layer] != lava.spikes[layer]).reshape(expected.steps, -1).any(axis=1))
        assert first.size == 0, f"layer {layer}: spikes differ from step {first[:1]}"
        assert np.array_equal(expected.currents[layer], lava.currents[layer]), f"layer {layer}: u differs"
        assert np.array_equal(expected.voltages[layer], lava.voltages[layer]), f"layer {layer}: v differs"


@pytest.mark.needs_lava
@pytest.mark.timeout(180)
def test_bit_exact_against_lava_on_wrap_saturation_and_truncation():
    from neurocredit.deploy import lava_backend

    network, quantized = edge_case_network()
    inputs = edge_case_inputs(network)
    record = {"spikes", "voltages", "currents"}
    expected = emulator.run(network, inputs, record, quantized=quantized)
    lava = lava_backend.run(network, inputs, record, mode="fixed_pt", quantized=quantized, lanes=1, target="none")
    _assert_bit_exact(expected, lava)


needs_numba = pytest.mark.skipif(not lif_compiled.available(), reason="numba (extra onchip) is not installed")


@needs_numba
@pytest.mark.parametrize("samples", [1, 5, emulator.BATCH_CHUNK + 3])
def test_compiled_lif_equals_the_numpy_step_on_every_edge(samples):
    """The numba window (per element, int64) against :func:`lif_exact_step` (numpy, float64
    integers) on the net that wraps u, saturates v, clips and truncates weights and floor-shifts:
    the same spikes, u and v at every step, in one chunk and across chunks."""
    network, quantized = edge_case_network()
    inputs = edge_case_inputs(network, samples)
    compiled = emulate(quantized, inputs, record_states=True, compiled=True)
    numpy_steps = emulate(quantized, inputs, record_states=True, compiled=False)
    assert (compiled.currents[0][:, :, 0] < 0).any()  # the wrap really happens in this run
    for name in ("spikes", "currents", "voltages"):
        for layer, (a, b) in enumerate(zip(getattr(compiled, name), getattr(numpy_steps, name))):
            assert np.array_equal(a, b), f"{name} of layer {layer} differ"


@needs_numba
@pytest.mark.parametrize("pool,shape,dtype", [(2, (3, 2, 6, 8), np.bool_), (3, (2, 3, 7, 8), np.float32),
                                              (2, (1, 1, 5, 5), np.bool_)])
def test_compiled_sum_pool_equals_torch_avg_pool_with_divisor_one(pool, shape, dtype):
    """The emulator's compiled pool (0/1 spikes -> counts) against torch's, sizes that do not
    divide by the pool included (the rest is cut off)."""
    import torch

    spikes = (np.random.default_rng(sum(shape) + pool).random(shape) < 0.5).astype(dtype)
    out = np.full((shape[0], shape[1], shape[2] // pool, shape[3] // pool), -1.0, np.float32)
    lif_compiled.sum_pool(spikes, pool, out)
    expected = torch.nn.functional.avg_pool2d(torch.from_numpy(spikes.astype(np.float32)), pool,
                                              divisor_override=1).numpy()
    assert np.array_equal(out, expected)


@needs_numba
def test_the_emulator_steps_with_the_compiled_kernel_when_numba_is_there(monkeypatch):
    """So that the Lava agreement tests check the path users run."""
    calls = []
    kernel = lif_compiled.lif_window
    monkeypatch.setattr(lif_compiled, "lif_window", lambda *args: calls.append(1) or kernel(*args))
    network, quantized = edge_case_network()
    emulate(quantized, edge_case_inputs(network))
    assert len(calls) >= len(quantized.layers) * 2


def test_chunks_run_side_by_side_with_the_same_integers(monkeypatch):
    """With two torch threads the chunks are emulated by two workers (each on one torch thread);
    the rasters and states equal a one-thread run, and the caller's torch setting is kept."""
    import threading

    import torch

    network, quantized = edge_case_network()
    inputs = edge_case_inputs(network, 2 * emulator.BATCH_CHUNK + 5)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = emulate(quantized, inputs, record_states=True)
        torch.set_num_threads(2)
        workers, chunk = set(), emulator._emulate_chunk
        monkeypatch.setattr(emulator, "_emulate_chunk", lambda *args: workers.add(
            (threading.get_ident(), torch.get_num_threads())) or chunk(*args))
        side_by_side = emulate(quantized, inputs, record_states=True)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert {count for _, count in workers} == {1} and threading.get_ident() not in {ident for ident, _ in workers}
    for name in ("spikes", "currents", "voltages"):
        for a, b in zip(getattr(alone, name), getattr(side_by_side, name)):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("precision", ["highest", "medium"])
def test_dense_sums_stay_exact_when_torch_may_use_reduced_precision_products(precision):
    """The dense sums go through torch's matmul, float32 only where its products are plain float32
    (``exact_float32_matmul``); with TF32/bf16 allowed they run in float64. (Lava's dense weights
    fit 8 bits, exact even in bf16; weights up to 8191, as a Synapses of any integer matrix, are
    not.) The sums equal the int64 products either way."""
    import torch

    rng = np.random.default_rng(7)
    weights = rng.integers(-8191, 8192, size=(300, 12))
    layer = FixedLayer("dense", weights.T.astype(np.int32), 0, 8, "mixed", np.zeros(12, np.int32),
                       np.zeros(12, np.int32), 1, 1.0)
    synapses = emulator.Synapses(layer, weights.astype(np.float32))  # every partial sum below 2**24
    spikes = rng.random((2, 37, 300)) < 0.4
    expected = spikes.astype(np.int64) @ weights
    assert np.abs(expected).max() > 2**16
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        assert emulator.exact_float32_matmul() == (precision == "highest")
        assert np.array_equal(synapses.sums(spikes), expected)
    finally:
        torch.set_float32_matmul_precision(previous)


@needs_numba
@pytest.mark.parametrize("preset", [None, "+sse2"])
def test_numba_gets_the_hosts_own_features_with_512_bit_vectors_unless_the_user_chose(preset):
    """Importing the compiled kernels sets NUMBA_CPU_FEATURES to the host's features minus LLVM's
    256-bit preference where the host has AVX-512 (a fresh process: numba reads it once), and
    leaves a value the user set alone."""
    import os
    import subprocess
    import sys

    from llvmlite import binding

    host = binding.get_host_cpu_features().flatten()
    environment = {key: value for key, value in os.environ.items() if key != "NUMBA_CPU_FEATURES"}
    if preset is not None:
        environment["NUMBA_CPU_FEATURES"] = preset
    code = "import neurocredit.deploy.lif_compiled, numba; print(numba.config.CPU_FEATURES)"
    seen = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True,
                          check=True).stdout.strip()
    if preset is not None:
        assert seen == preset
    elif "+avx512f" in host.split(","):
        assert seen == host + ",-prefer-256-bit"
    else:
        assert seen == "None"
