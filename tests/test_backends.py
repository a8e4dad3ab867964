"""One agreement suite for every backend of the registry (Nengo-style: a ``backend`` fixture
parametrized over :data:`neurocredit.sim.BACKENDS`, the same tests for each).

* A hand-computed golden trace: a 2-2-1 LIF network over 10 steps whose float arithmetic is
  exact (dyadic numbers), its currents, voltages and spikes per layer written below as numbers.
  Every float backend (reference, norse, brian2, Lava floating point) must reproduce it; the
  same network in Loihi fixed point has its own integer trace, which the emulator and Lava's
  bit-accurate models (``fixed_pt``) must reproduce bit for bit.
* Seeded random networks of several depths, compared per layer, spike for spike, with the
  reference of the backend's arithmetic: the numpy float64 ``reference`` for float backends, the
  ``emulator`` for Lava ``fixed_pt`` (the emulator itself is pinned by the integer golden trace).

A backend added to the registry fails :func:`test_every_registered_backend_is_in_the_suite`
until it has an entry in :data:`SUITE`.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, NamedTuple

import numpy as np
import pytest

from neurocredit.deploy.quantize import FixedLayer, QuantizedNetwork, quantize
from neurocredit.network import EncoderSpec, Layer, LIFParameters, Network, NeuronSpec, init_layers
from neurocredit.sim import BACKENDS

ALL = frozenset({"spikes", "voltages", "currents"})
FLOAT, FIXED = "float", "fixed"
# Float backends differ from each other only in the order of float64 operations (e.g. Norse's
# ``v + dv*(-v + u/dv)`` for ``v*(1-dv) + u``): far below this.
FLOAT_TOLERANCE = 1e-9


class Case(NamedTuple):
    """One way to run a registered backend: ``arithmetic`` float or fixed (Loihi integers),
    ``options`` keyword arguments of the backend's ``run``, ``env`` environment variables."""

    id: str
    backend: str
    arithmetic: str
    options: dict
    env: dict
    marks: tuple


LAVA_MARKS = (pytest.mark.needs_lava, pytest.mark.timeout(180))
# Per registered backend, the cases it runs in this suite. Lava floating point is chosen through
# $NEUROCREDIT_LAVA_MODE, as `neurocredit eval --backend lava` runs it; 2 lanes make a batch of 5
# samples 3 windows of one Lava run (state reset between samples); Brian2 likewise with 2 copies.
SUITE: dict[str, list[Case]] = {
    "rate": [],  # rate networks only (tested in test_rate_rules / test_cli)
    "reference": [Case("reference", "reference", FLOAT, {}, {}, ())],
    "norse": [Case("norse", "norse", FLOAT, {}, {}, ())],
    "brian2": [Case("brian2", "brian2", FLOAT, {"copies": 2}, {"NEUROCREDIT_BRIAN2_TARGET": "numpy"},
                    (pytest.mark.needs_brian2,))],
    "lava": [
        Case("lava-floating_pt", "lava", FLOAT, {"target": "none"},
             {"NEUROCREDIT_LAVA_MODE": "floating_pt", "NEUROCREDIT_LAVA_LANES": "2"}, LAVA_MARKS),
        Case("lava-fixed_pt", "lava", FIXED, {"mode": "fixed_pt", "target": "none", "lanes": 2}, {}, LAVA_MARKS),
    ],
    "emulator": [Case("emulator", "emulator", FIXED, {}, {}, ())],
}
CASES = [case for name in BACKENDS for case in SUITE.get(name, [])]
REFERENCE = {FLOAT: "reference", FIXED: "emulator"}


def params(cases):
    return [pytest.param(case, id=case.id, marks=case.marks) for case in cases]


class Backend:
    """A registered backend run as one :class:`Case`."""

    def __init__(self, case: Case):
        self.case = case
        self.arithmetic = case.arithmetic
        self.module = importlib.import_module(BACKENDS[case.backend])

    def run(self, network: Network, inputs: np.ndarray, quantized: QuantizedNetwork | None = None):
        extra: dict[str, Any] = {} if quantized is None else {"quantized": quantized}
        record = self.module.run(network, inputs, ALL, **self.case.options, **extra)
        assert record.backend == self.case.backend and record.steps == inputs.shape[0]
        return record


@pytest.fixture(params=params(CASES))
def backend(request, monkeypatch) -> Backend:
    for name, value in request.param.env.items():
        monkeypatch.setenv(name, value)
    return Backend(request.param)


def test_every_registered_backend_is_in_the_suite():
    assert set(SUITE) == set(BACKENDS), f"add the backends {set(BACKENDS) - set(SUITE)} to SUITE"
    assert {case.id for case in CASES} >= {"reference", "norse", "brian2", "lava-floating_pt", "lava-fixed_pt",
                                           "emulator"}
    from neurocredit.deploy.lava_backend import MODES

    assert {case.options.get("mode", case.env.get("NEUROCREDIT_LAVA_MODE")) for case in SUITE["lava"]} == set(MODES)


# --- the golden trace ---------------------------------------------------------------------------
#
# Network: 2 inputs -> 2 LIF -> 1 LIF, du = 1/2, dv = 1/4, vth = 1, one step of Dense delay.
#   W1 = [[1, 1/2], [-5/8, 3/4]], b1 = [1/16, 65/512];  W2 = [[1, -3/4]], b2 = [-1/16]
# Input spikes x[t], t = 0..9: (1,0) (1,1) (0,1) (0,0) (1,0) (1,1) (0,0) (0,1) (0,0) (0,0).
# Per step and layer:  a[t] = W s_prev[t-1] (0 at t = 0);  u = u/2 + a;  v' = 3v/4 + u + b;
#   s = v' > 1;  v = 0 where s, else v'.
# Layer 1 receives a1 = W1 x[t-1]: t1 (1, -5/8), t2 (3/2, 1/8), t3 (1/2, 3/4), t4 0, t5 (1, -5/8), ...
#   neuron 1: t0 u 0, v 1/16;  t1 u 1, v' 3/64 + 1 + 1/16 = 71/64 > 1: spike, v 0;
#             t2 u 1/2 + 3/2 = 2, v' 2 + 1/16: spike;  t3 u 1 + 1/2 = 3/2: spike;  t4 u 3/4, v 13/16;
#             t5 u 3/8 + 1 = 11/8, v' 39/64 + 11/8 + 1/16 = 131/64: spike; ...
#   neuron 2: t0 v 65/512;  t1 u -5/8, v 195/2048 - 5/8 + 65/512 = -825/2048;  t2 u -5/16 + 1/8
#             = -3/16, v -2475/8192 - 3/16 + 65/512 = -2971/8192; ...; t8 u 741/1024, v' > 1: spike.
# Layer 2 receives a2 = W2 s1[t-1]: t2..t4 1 (s1 = (1, 0)), t5 0 (s1[4] = (0, 0)), t6..t8 1,
#   t9 1 - 3/4 = 1/4 (s1[8] = (1, 1));  t0 v -1/16;  t1 -3/64 - 1/16 = -7/64;
#   t2 u 1, v -21/256 + 1 - 1/16 = 219/256;  t3 u 3/2, v' 657/1024 + 3/2 - 1/16 > 1: spike; ...
# Every value is a dyadic fraction of at most 24 bits: exact in float64, whatever the order.
GOLDEN_INPUT = [(1, 0), (1, 1), (0, 1), (0, 0), (1, 0), (1, 1), (0, 0), (0, 1), (0, 0), (0, 0)]
GOLDEN_SPIKES = (
    [[0, 0], [1, 0], [1, 0], [1, 0], [0, 0], [1, 0], [1, 0], [1, 0], [1, 1], [0, 0]],
    [[0], [0], [0], [1], [1], [0], [1], [1], [1], [1]],
)
GOLDEN_FLOAT = {
    "currents": (
        [[0, 0], [1, -5 / 8], [2, -3 / 16], [3 / 2, 21 / 32], [3 / 4, 21 / 64], [11 / 8, -59 / 128],
         [35 / 16, -27 / 256], [35 / 32, -27 / 512], [67 / 64, 741 / 1024], [67 / 128, 741 / 2048]],
        [[0], [0], [1], [3 / 2], [7 / 4], [7 / 8], [23 / 16], [55 / 32], [119 / 64], [151 / 128]],
    ),
    "voltages": (
        [[1 / 16, 65 / 512], [0, -825 / 2048], [0, -2971 / 8192], [0, 16751 / 32768], [13 / 16, 109901 / 131072],
         [0, 154599 / 524288], [0, 508853 / 2097152], [0, 2149151 / 8388608], [0, 0], [75 / 128, 1001 / 2048]],
        [[-1 / 16], [-7 / 64], [219 / 256], [0], [0], [13 / 16], [0], [0], [0], [0]],
    ),
}
# The same network in Loihi fixed point, scale 1024 per float unit: weights x16 (Lava's a << 6
# makes them x1024), biases x1024 (mantissa, exponent 0), vth mantissa 16 (16 << 6 = 1024),
# du = 2047 (u * 2048 >> 12: halves), dv = 1024 (v * 3072 >> 12: 3/4), both toward zero.
# So the integers are the float trace x1024 except where a decay rounds toward zero:
#   layer 1 neuron 2: t0 v 130 (float 130);  t1 v trunc(97.5) - 640 + 130 = -413;
#   t2 u -320 + 128 = -192, v trunc(-309.75) - 192 + 130 = -371 (toward zero: -309, not -310);
#   t3 u -96 + 768 = 672, v trunc(-278.25) + 672 + 130 = 524;  t4 u 336, v 393 + 336 + 130 = 859; ...
#   t9 u trunc(370.5) = 370.  Same spikes as the float trace.
GOLDEN_FIXED = {
    "currents": (
        [[0, 0], [1024, -640], [2048, -192], [1536, 672], [768, 336], [1408, -472], [2240, -108], [1120, -54],
         [1072, 741], [536, 370]],
        [[0], [0], [1024], [1536], [1792], [896], [1472], [1760], [1904], [1208]],
    ),
    "voltages": (
        [[64, 130], [0, -413], [0, -371], [0, 524], [832, 859], [0, 302], [0, 248], [0, 262], [0, 0], [600, 500]],
        [[-64], [-112], [876], [0], [0], [832], [0], [0], [0], [0]],
    ),
}


def golden_network() -> tuple[Network, QuantizedNetwork]:
    layers = (Layer(np.array([[1.0, 0.5], [-0.625, 0.75]]), np.array([1 / 16, 65 / 512]), "fc1"),
              Layer(np.array([[1.0, -0.75]]), np.array([-1 / 16]), "fc2"))
    network = Network(layers, NeuronSpec("lif", lif=LIFParameters(du=0.5, dv=0.25, vth=1.0)),
                      EncoderSpec("bernoulli", steps=10))
    fixed = (
        FixedLayer("fc1", np.array([[16, 8], [-10, 12]], np.int32), 0, 8, "mixed", np.array([64, 130], np.int32),
                   np.zeros(2, np.int32), 16, 1024.0),
        FixedLayer("fc2", np.array([[16, -12]], np.int32), 0, 8, "mixed", np.array([-64], np.int32),
                   np.zeros(1, np.int32), 16, 1024.0),
    )
    return network, QuantizedNetwork(network, fixed, du=2047, dv=1024, weight_bits=8)


def test_golden_trace(backend):
    network, quantized = golden_network()
    inputs = np.array(GOLDEN_INPUT, dtype=np.float32)[:, None, :]  # (steps, batch 1, 2)
    if backend.arithmetic == FLOAT:
        record, expected = backend.run(network, inputs), GOLDEN_FLOAT
    else:
        record, expected = backend.run(network, inputs, quantized=quantized), GOLDEN_FIXED
    for layer in range(2):
        np.testing.assert_array_equal(record.spikes[layer][:, 0], np.array(GOLDEN_SPIKES[layer], bool),
                                      err_msg=f"layer {layer + 1} spikes")
        for state in ("currents", "voltages"):
            got, want = getattr(record, state)[layer][:, 0], np.array(expected[state][layer], np.float64)
            if backend.arithmetic == FLOAT:
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, err_msg=f"layer {layer + 1} {state}")
            else:
                np.testing.assert_array_equal(got, want, err_msg=f"layer {layer + 1} {state}")
    assert record.spike_counts[1].tolist() == [[6]] and record.outputs.tolist() == [[6.0]]


# --- seeded random networks ---------------------------------------------------------------------

# seed, layer sizes: one, two and three hidden layers. Lava runs one of them (a Lava run costs
# seconds per layer): its depth-1 and depth-2 stepping is covered by the golden trace.
RANDOM_NETWORKS = [(0, (12, 16, 6)), (1, (10, 14, 12, 5)), (2, (16, 12, 10, 8, 4))]
LAVA_RANDOM_SEEDS = (1,)
RANDOM_STEPS, RANDOM_BATCH = 25, 5


def random_network(seed: int, sizes) -> tuple[Network, np.ndarray]:
    """A random LIF network (random du, dv, vth, weights, biases) and random input spikes."""
    rng = np.random.default_rng(seed)
    lif = LIFParameters(du=float(rng.uniform(0.1, 0.9)), dv=float(rng.uniform(0.1, 0.9)),
                        vth=float(rng.uniform(0.5, 1.5)))
    layers = tuple(Layer(layer.weight.astype(np.float64) * lif.vth, rng.normal(0.0, 0.1, layer.n_out), layer.name)
                   for layer in init_layers(tuple(sizes), rng, gain=4.0))
    network = Network(layers, NeuronSpec("lif", lif=lif), EncoderSpec("bernoulli", RANDOM_STEPS, 1.0, seed))
    inputs = (rng.random((RANDOM_STEPS, RANDOM_BATCH, sizes[0])) < 0.4).astype(np.float32)
    return network, inputs


def threshold_margin(network: Network, record) -> float:
    """Smallest ``|v' - vth|`` of the pre-reset voltages ``v' = (1 - dv) v[t-1] + u[t] + b``."""
    params = network.neuron.lif
    margins = []
    for layer, currents, voltages in zip(network.layers, record.currents, record.voltages):
        previous = np.concatenate([np.zeros_like(voltages[:1]), voltages[:-1]])
        margins.append(np.abs(previous * (1.0 - params.dv) + currents + layer.neuron_bias - params.vth).min())
    return float(min(margins))


def random_network_params():
    """(backend, seed, sizes) for every backend but the two references."""
    for case in CASES:
        if case.backend == REFERENCE[case.arithmetic]:
            continue
        for seed, sizes in RANDOM_NETWORKS:
            if case.backend != "lava" or seed in LAVA_RANDOM_SEEDS:
                yield pytest.param(case, seed, sizes, id=f"{case.id}-layers{len(sizes) - 1}", marks=case.marks)


@pytest.mark.parametrize("backend, seed, sizes", list(random_network_params()), indirect=["backend"])
def test_random_networks_agree_with_the_reference(backend, seed, sizes):
    assert_agrees_with_the_reference(backend, *random_network(seed, sizes))


def assert_agrees_with_the_reference(backend: Backend, network: Network, inputs: np.ndarray) -> None:
    """Per layer, spike for spike (and states: float within rounding, fixed point bit for bit),
    ``backend`` against the reference of its arithmetic."""
    reference = Backend(next(c for c in CASES if c.backend == REFERENCE[backend.arithmetic]))
    if backend.arithmetic == FLOAT:
        expected = reference.run(network, inputs)
        # No pre-reset voltage lies within float rounding of the threshold, so every spike is
        # decided the same way whatever the order of a backend's float operations.
        assert threshold_margin(network, expected) > 1e-6
        got = backend.run(network, inputs)
    else:
        quantized = quantize(network)
        expected, got = reference.run(network, inputs, quantized), backend.run(network, inputs, quantized)
    for layer, spikes in enumerate(expected.spikes):
        assert 0.02 < spikes.mean() < 0.8, f"layer {layer + 1} fires at {spikes.mean():.2f}: not a real test"
        differ = np.flatnonzero((got.spikes[layer] != spikes).any(axis=(1, 2)))
        assert differ.size == 0, f"layer {layer + 1}: spikes differ from step {differ[:1]}"
        for state in ("currents", "voltages"):
            mine, theirs = getattr(got, state)[layer], getattr(expected, state)[layer]
            if backend.arithmetic == FLOAT:
                np.testing.assert_allclose(mine, theirs, rtol=0, atol=FLOAT_TOLERANCE, err_msg=f"layer {layer + 1}")
            else:
                np.testing.assert_array_equal(mine, theirs, err_msg=f"layer {layer + 1} {state}")
        np.testing.assert_array_equal(got.spike_counts[layer], spikes.sum(axis=0))
    np.testing.assert_array_equal(got.predictions, expected.predictions)


FLOAT_CASES = [case for case in CASES if case.arithmetic == FLOAT and case.backend != REFERENCE[FLOAT]]


@pytest.mark.parametrize("backend", params(FLOAT_CASES), indirect=True)
def test_refractory_networks_agree_with_the_reference(backend):
    """A refractory period (``LIFParameters.refractory``; Lava's ``LIFRefractory``) in every float
    backend, with several sample windows (Brian2's copies, Lava's lanes) so the refractory state is
    cleared between samples too. Lava fixed point has no refractory model (it refuses, in
    test_refractory.py)."""
    network, inputs = random_network(0, (12, 16, 6))
    network = network.replace(neuron=NeuronSpec("lif", lif=dataclasses.replace(network.neuron.lif, refractory=2)))
    reference = Backend(next(c for c in CASES if c.backend == REFERENCE[FLOAT]))
    expected, got = reference.run(network, inputs), backend.run(network, inputs)
    plain = reference.run(network.replace(neuron=NeuronSpec("lif", lif=dataclasses.replace(network.neuron.lif,
                                                                                               refractory=0))), inputs)
    assert sum(s.sum() for s in plain.spikes) > sum(s.sum() for s in expected.spikes) > 50
    for layer, spikes in enumerate(expected.spikes):
        assert np.array_equal(got.spikes[layer], spikes), f"layer {layer + 1}"
        np.testing.assert_allclose(got.voltages[layer], expected.voltages[layer], rtol=0, atol=FLOAT_TOLERANCE)


# --- convolutional networks ---------------------------------------------------------------------


def conv_params():
    for case in CASES:
        if case.backend != REFERENCE[case.arithmetic]:
            yield pytest.param(case, id=f"{case.id}-conv", marks=case.marks)


@pytest.mark.parametrize("backend", list(conv_params()), indirect=True)
def test_conv_networks_agree_with_the_reference(backend):
    """2x7x9 -> conv 3@3x2 stride (2, 1) padding (1, 0) -> conv 4@2x3 stride (1, 2) padding
    (0, 1) -> dense 5 (tests/convnets.py): asymmetric kernels on non-square maps, so a missing
    flip or transpose of the kernel anywhere changes the spikes."""
    from convnets import asymmetric_conv_network, spike_inputs

    network = asymmetric_conv_network(0)
    assert_agrees_with_the_reference(backend, network, spike_inputs(network, RANDOM_BATCH, 0))
