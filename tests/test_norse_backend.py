"""The Norse backend emits exactly the canonical spikes (float64): random networks, parameters
and inputs drawn by hypothesis, spike for spike against the numpy reference (the golden trace and
seeded random networks of every backend are in test_backends.py); saved networks; dv = 0 (integrate-and-fire)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import small_lif_network
from neurocredit.compare import spike_agreement
from neurocredit.errors import NeurocreditError
from neurocredit.io import load_network, save_network
from neurocredit.network import EncoderSpec, Layer, LIFParameters, Network, NeuronSpec, init_layers
from neurocredit.sim import encode_inputs, norse_backend, reference_backend, simulate

ALL = frozenset({"spikes", "voltages", "currents"})


def random_network(seed, sizes, du, dv, vth, gain, bias_scale, steps=25):
    rng = np.random.default_rng(seed)
    layers = tuple(
        Layer(layer.weight.astype(np.float64), rng.normal(0.0, bias_scale, layer.n_out), layer.name)
        for layer in init_layers(tuple(sizes), rng, gain=gain)
    )
    neuron = NeuronSpec("lif", lif=LIFParameters(du, dv, vth))
    return Network(layers, neuron, EncoderSpec("bernoulli", steps, 0.8, seed))


def assert_same_run(network, inputs):
    reference = reference_backend.run(network, inputs, ALL)
    norse = norse_backend.run(network, inputs, ALL)
    for ref_spikes, norse_spikes in zip(reference.spikes, norse.spikes):
        assert np.array_equal(ref_spikes, norse_spikes)
    for ref_v, norse_v in zip(reference.voltages, norse.voltages):
        np.testing.assert_allclose(norse_v, ref_v, rtol=0, atol=1e-9)
    for ref_counts, norse_counts in zip(reference.spike_counts, norse.spike_counts):
        assert np.array_equal(ref_counts, norse_counts)
    assert np.array_equal(reference.predictions, norse.predictions)
    assert spike_agreement(reference, norse)["overall"] == 1.0
    return reference


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    depth=st.integers(1, 3),
    du=st.floats(0.05, 1.0),
    dv=st.floats(0.02, 1.0),
    vth=st.floats(0.3, 2.0),
    gain=st.floats(1.0, 6.0),
    bias_scale=st.sampled_from([0.0, 0.05, 0.3]),
)
def test_norse_equals_reference_property(seed, depth, du, dv, vth, gain, bias_scale):
    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(3, 25)) for _ in range(depth + 1)]
    network = random_network(seed, sizes, du, dv, vth, gain, bias_scale, steps=int(rng.integers(5, 30)))
    inputs = encode_inputs(network, rng.random((int(rng.integers(1, 5)), sizes[0])))
    assert_same_run(network, inputs)


def test_saved_and_loaded_network_gives_the_same_spikes(tmp_path):
    network = small_lif_network(5, bias_scale=0.1)
    features = np.random.default_rng(5).random((8, network.n_inputs))
    before = simulate(network, features, backend="norse", record={"spikes"})
    loaded = load_network(save_network(network, tmp_path / "snn.h5"))
    after = simulate(loaded, features, backend="norse", record={"spikes"})
    assert spike_agreement(before, after)["overall"] == 1.0
    assert all(np.array_equal(a, b) for a, b in zip(before.spikes, after.spikes))
    assert sum(int(s.sum()) for s in before.spikes) > 0


@pytest.mark.parametrize("du, bias_scale", [(1.0, 0.0), (1.0, 0.1), (0.3, 0.1)])
def test_norse_runs_integrate_and_fire_networks(du, bias_scale):
    """dv = 0: du = 1 (NIR's IF) on Norse's IAFCell, du < 1 on our own step (module doc)."""
    network = small_lif_network(3, bias_scale=bias_scale, weight_scale=0.5)
    network = network.replace(neuron=NeuronSpec("lif", lif=LIFParameters(du, 0.0, 1.0)))
    inputs = encode_inputs(network, np.random.default_rng(3).random((4, network.n_inputs)))
    reference = reference_backend.run(network, inputs, ALL)
    norse = norse_backend.run(network, inputs, ALL)
    assert all(np.array_equal(a, b) for a, b in zip(reference.spikes, norse.spikes))
    assert all(int(raster.sum()) > 0 for raster in reference.spikes)
    for ref_v, norse_v in zip(reference.voltages, norse.voltages):
        np.testing.assert_allclose(norse_v, ref_v, rtol=0, atol=1e-9)
    if du < 1:  # our own step keeps u; Norse's IAF has none
        np.testing.assert_allclose(norse.currents[0], reference.currents[0], rtol=0, atol=1e-12)
    else:
        assert np.isnan(norse.currents[0]).all()
