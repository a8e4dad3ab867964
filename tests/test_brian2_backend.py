"""Brian2-specific behaviour: no voltage leak (dv = 0) and graded input, layers without weights,
the registry path with chunks, clear errors, the code-target choice and the Cython target. The
golden trace and the seeded random networks every backend must reproduce are in test_backends.py.
The numpy code target is used (identical arithmetic, no compilation) except in the slow Cython test.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurocredit.errors import NeurocreditError
from neurocredit.network import EncoderSpec, Layer, LIFParameters, Network, NeuronSpec, init_layers
from neurocredit.neurons import run_lif_network

pytestmark = pytest.mark.needs_brian2

brian2_backend = pytest.importorskip("neurocredit.sim.brian2_backend")
from neurocredit.sim import brian2_codegen  # noqa: E402
pytest.importorskip("brian2")

ALL_STATES = frozenset({"spikes", "voltages", "currents"})
TOLERANCE = 1e-9


@pytest.fixture(autouse=True)
def numpy_target(monkeypatch):
    monkeypatch.setenv(brian2_codegen.TARGET_ENV, "numpy")


def random_network(seed: int, sizes, gain: float, bias_scale: float, lif=LIFParameters()) -> Network:
    rng = np.random.default_rng(seed)
    layers = init_layers(tuple(sizes), rng, gain=gain)
    if bias_scale:
        layers = tuple(
            Layer(layer.weight, rng.normal(0.0, bias_scale, layer.n_out).astype(np.float32), layer.name)
            for layer in layers
        )
    return Network(layers, NeuronSpec("lif", lif=lif), EncoderSpec("bernoulli", steps=30, max_rate=1.0, seed=seed))


def random_spikes(seed: int, steps: int, batch: int, n_inputs: int, rate: float) -> np.ndarray:
    rng = np.random.default_rng(1000 + seed)
    return (rng.random((steps, batch, n_inputs)) < rate).astype(np.float32)


def test_no_voltage_leak_and_graded_input_match_reference():
    """dv = 0 (Norse cannot express it) and graded inputs (the ``current`` encoder) with bias."""
    network = random_network(5, (10, 15, 4), gain=1.0, bias_scale=0.02, lif=LIFParameters(du=0.3, dv=0.0, vth=2.0))
    rng = np.random.default_rng(7)
    inputs = np.broadcast_to(rng.uniform(0.0, 0.6, (1, 6, 10)), (25, 6, 10)).astype(np.float32).copy()
    inputs[:, 0, :3] = 0.0
    brian = brian2_backend.run(network, inputs, ALL_STATES, copies=4)
    reference = run_lif_network(network, inputs)
    assert sum(int(s.sum()) for s in reference.spikes) > 20
    for index in range(2):
        np.testing.assert_array_equal(brian.spikes[index], reference.spikes[index])
        np.testing.assert_allclose(brian.voltages[index], reference.voltages[index], rtol=0, atol=TOLERANCE)


def test_all_zero_weight_layer_fires_from_bias_alone():
    """A layer without any nonzero weight gets no Synapses object; its bias still drives it."""
    layers = (Layer(np.zeros((5, 4)), np.full(5, 0.3), "fc1"), Layer(np.ones((3, 5)), np.zeros(3), "fc2"))
    network = Network(layers, NeuronSpec("lif"), EncoderSpec("bernoulli", steps=12))
    inputs = np.ones((12, 3, 4), dtype=np.float32)
    brian = brian2_backend.run(network, inputs, {"spikes"}, copies=2)
    reference = run_lif_network(network, inputs)
    assert reference.spikes[0].sum() > 0 and reference.spikes[1].sum() > 0
    for index in range(2):
        np.testing.assert_array_equal(brian.spikes[index], reference.spikes[index])


def test_simulate_through_registry_gives_full_agreement():
    from neurocredit.compare import spike_agreement
    from neurocredit.sim import simulate

    network = random_network(6, (20, 25, 10), gain=2.0, bias_scale=0.05)
    features = np.random.default_rng(8).random((9, 20)).astype(np.float32)
    labels = np.arange(9) % 10
    brian = simulate(network, features, labels, backend="brian2", steps=20, record={"spikes"}, batch_size=5)
    norse = simulate(network, features, labels, backend="norse", steps=20, record={"spikes"}, batch_size=9)
    agreement = spike_agreement(brian, norse)
    assert agreement["overall"] == 1.0 and brian.spikes[0].sum() > 0
    assert all(layer["first_diverging_step"] is None for layer in agreement["layers"])
    assert brian.accuracy == norse.accuracy and brian.samples == 9
    assert brian.voltages is None and brian.currents is None


def test_clear_errors():
    rate = Network(init_layers((4, 3), np.random.default_rng(0)))
    with pytest.raises(NeurocreditError, match="lif networks only"):
        brian2_backend.run(rate, np.zeros((5, 2, 4)))
    network = random_network(0, (4, 3), gain=1.0, bias_scale=0.0)
    with pytest.raises(NeurocreditError, match=r"expected \(steps, batch, 4\)"):
        brian2_backend.run(network, np.zeros((5, 2, 6)))
    bad = np.zeros((5, 2, 4))
    bad[0, 0, 0] = np.nan
    with pytest.raises(NeurocreditError, match="NaN"):
        brian2_backend.run(network, bad)


def test_target_choice(monkeypatch, tmp_path):
    monkeypatch.setenv(brian2_codegen.TARGET_ENV, "fortran")
    with pytest.raises(NeurocreditError, match="NEUROCREDIT_BRIAN2_TARGET"):
        brian2_codegen.code_target()
    monkeypatch.setenv(brian2_codegen.TARGET_ENV, "auto")
    monkeypatch.setenv(brian2_codegen.CACHE_ENV, str(tmp_path))
    # small runs never compile on a fresh install
    assert brian2_codegen.code_target(expected_events=1e6, signature="sig") == "numpy"
    assert brian2_codegen.cache_dir() == tmp_path


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_cython_target_matches_reference(monkeypatch):
    """Compiled without -ffast-math and FMA contraction, Cython gives the reference's numbers.
    One layer keeps the compilation short (minutes the first time on a small machine, then
    cached); the arithmetic is the same code in every layer."""
    if not brian2_codegen._cython_works():
        pytest.skip("no working C compiler for Cython here")
    monkeypatch.setenv(brian2_codegen.TARGET_ENV, "cython")
    network = random_network(9, (20, 30), gain=3.0, bias_scale=0.05)
    inputs = random_spikes(9, steps=30, batch=6, n_inputs=20, rate=0.4)
    brian = brian2_backend.run(network, inputs, ALL_STATES, copies=4)
    reference = run_lif_network(network, inputs)
    assert reference.spikes[0].mean() > 0.1
    np.testing.assert_array_equal(brian.spikes[0], reference.spikes[0])
    np.testing.assert_allclose(brian.voltages[0], reference.voltages[0], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(brian.currents[0], reference.currents[0], rtol=0, atol=TOLERANCE)
