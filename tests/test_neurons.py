"""The canonical LIF step (Lava's float CUBA-LIF) against a hand-computed trace, and the
network-level one-step Dense delay of the reference simulation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurocredit.network import EncoderSpec, Layer, LIFParameters, Network, NeuronSpec
from neurocredit.neurons import LIFState, lif_initial_state, lif_step, run_lif_network

# du = 0.2, dv = 0.1, vth = 1, bias = 0.05, input currents 0.5, 0, 0, 0.8, 0, 0. By hand:
#   t0: u = 0.5                  v = 0.5 + 0.05                        = 0.55
#   t1: u = 0.4                  v = 0.495 + 0.4 + 0.05                = 0.945
#   t2: u = 0.32                 v = 0.8505 + 0.32 + 0.05   = 1.2205 > 1: spike, v -> 0 (u kept)
#   t3: u = 0.256 + 0.8 = 1.056  v = 0 + 1.056 + 0.05       = 1.106  > 1: spike, v -> 0
#   t4: u = 0.8448               v = 0.8448 + 0.05                     = 0.8948
#   t5: u = 0.67584              v = 0.80532 + 0.67584 + 0.05 = 1.53116 > 1: spike, v -> 0
PARAMS = LIFParameters(du=0.2, dv=0.1, vth=1.0)
BIAS = 0.05
INPUTS = [0.5, 0.0, 0.0, 0.8, 0.0, 0.0]
GOLDEN = [  # (u, v after reset, spike)
    (0.5, 0.55, 0),
    (0.4, 0.945, 0),
    (0.32, 0.0, 1),
    (1.056, 0.0, 1),
    (0.8448, 0.8948, 0),
    (0.67584, 0.0, 1),
]


def run_trace(make, params=PARAMS, bias=BIAS, inputs=INPUTS):
    state = lif_initial_state(make([[0.0]]))
    trace = []
    for current in inputs:
        state, spikes = lif_step(params, state, make([[current]]), bias)
        trace.append((float(state.synaptic_current[0, 0]), float(state.membrane_voltage[0, 0]),
                      int(spikes[0, 0])))
    return trace


@pytest.mark.parametrize("make", [
    lambda x: np.array(x, dtype=np.float64),
    lambda x: torch.tensor(x, dtype=torch.float64),
], ids=["numpy", "torch"])
def test_golden_trace_float64(make):
    trace = run_trace(make)
    assert [s for _, _, s in trace] == [s for _, _, s in GOLDEN]
    np.testing.assert_allclose([u for u, _, _ in trace], [u for u, _, _ in GOLDEN], rtol=0, atol=1e-12)
    np.testing.assert_allclose([v for _, v, _ in trace], [v for _, v, _ in GOLDEN], rtol=0, atol=1e-12)


def test_golden_trace_float32_same_spikes():
    trace = run_trace(lambda x: torch.tensor(x, dtype=torch.float32))
    assert [s for _, _, s in trace] == [s for _, _, s in GOLDEN]
    np.testing.assert_allclose([v for _, v, _ in trace], [v for _, v, _ in GOLDEN], atol=1e-6)


def test_threshold_is_strictly_greater():
    # du = dv = 1 (no memory of u; v keeps nothing between steps either): v = input exactly.
    params = LIFParameters(du=1.0, dv=1.0, vth=0.5)
    trace = run_trace(lambda x: np.array(x), params=params, bias=0.0, inputs=[0.5, 0.5 + 2**-20, 0.25])
    assert [s for _, _, s in trace] == [0, 1, 0]
    assert trace[0][1] == 0.5  # sitting exactly at threshold: no spike, no reset


def test_reset_keeps_current_and_there_is_no_refractory_period():
    # a large constant input makes the neuron fire at every step: no refractory period
    params = LIFParameters(du=0.5, dv=0.0, vth=1.0)
    state = LIFState(np.zeros((1, 1)), np.zeros((1, 1)))
    currents, spikes = [], []
    for _ in range(4):
        state, fired = lif_step(params, state, np.array([[2.0]]), 0.0)
        currents.append(float(state.synaptic_current[0, 0]))
        spikes.append(int(fired[0, 0]))
    assert spikes == [1, 1, 1, 1]
    assert currents == [2.0, 3.0, 3.5, 3.75]  # u is never reset
    assert float(state.membrane_voltage[0, 0]) == 0.0


def test_bias_alone_drives_the_neuron():
    # no input, bias 0.4, no leak: v = 0.4, 0.8, 1.2 -> spike at the third step, then again 3 later
    params = LIFParameters(du=0.1, dv=0.0, vth=1.0)
    trace = run_trace(lambda x: np.array(x), params=params, bias=0.4, inputs=[0.0] * 6)
    assert [s for _, _, s in trace] == [0, 0, 1, 0, 0, 1]


def test_step_is_batched_elementwise():
    rng = np.random.default_rng(0)
    currents = rng.normal(0.5, 0.5, (5, 7, 3))
    bias = rng.normal(0, 0.1, 3)
    batched = LIFState(np.zeros((7, 3)), np.zeros((7, 3)))
    single = [LIFState(np.zeros((1, 3)), np.zeros((1, 3))) for _ in range(7)]
    for t in range(5):
        batched, spikes = lif_step(PARAMS, batched, currents[t], bias)
        for row in range(7):
            single[row], row_spikes = lif_step(PARAMS, single[row], currents[t, row : row + 1], bias)
            assert np.array_equal(row_spikes[0], spikes[row])
            assert np.array_equal(single[row].membrane_voltage[0], batched.membrane_voltage[row])


def test_reference_network_delays_each_layer_by_one_step():
    # strong positive weights, no bias: layer 1 can first fire at step 1, layer 2 at step 2
    layers = (Layer(np.full((3, 4), 5.0), np.zeros(3)), Layer(np.full((2, 3), 5.0), np.zeros(2)))
    network = Network(layers, NeuronSpec("lif", lif=LIFParameters(1.0, 1.0, 1.0)), EncoderSpec("bernoulli", 6))
    trace = run_lif_network(network, np.ones((6, 1, 4)))
    first = [int(np.argmax(spikes[:, 0].any(axis=1))) for spikes in trace.spikes]
    assert first == [1, 2]
    assert trace.spikes[0][1:].all() and trace.spikes[1][2:].all()
