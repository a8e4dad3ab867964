"""The refractory neuron parameter (``LIFParameters.refractory``): a golden trace of the reference
step, the same spikes and voltages in Norse, Brian2 and Lava floating point, the emulator's hold,
HDF5 round trip (0 when absent), and the one-line refusal of Lava fixed point."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import small_lif_network
from neurocredit.errors import NeurocreditError
from neurocredit.network import LIFParameters, NeuronSpec
from neurocredit.neurons import LIFState, lif_initial_state, lif_step, run_lif_network
from neurocredit.sim import encode_inputs, get_backend


def refractory_network(refractory: int, seed: int = 0, steps: int = 25):
    network = small_lif_network(seed, sizes=(10, 12, 4), steps=steps)
    return network.replace(neuron=NeuronSpec("lif", lif=LIFParameters(0.2, 0.1, 1.0, refractory=refractory)))


@pytest.mark.parametrize("refractory,expected", [
    (0, [0.6, 0.0, 0.6, 0.0, 0.6, 0.0, 0.6]),   # spikes at steps 1, 3, 5
    (2, [0.6, 0.0, 0.0, 0.0, 0.6, 0.0, 0.0]),   # spike at 1, held 2-3, spike at 5, held 6-7
])
def test_golden_trace(refractory, expected):
    """u = input (du = 1), no leak (dv = 0), bias 0.6 per step, threshold 1."""
    params = LIFParameters(du=1.0, dv=0.0, vth=1.0, refractory=refractory)
    state = lif_initial_state(np.zeros((1, 1)))
    voltages, spikes = [], []
    for _ in range(7):
        state, fired = lif_step(params, state, np.zeros((1, 1)), 0.6)
        voltages.append(float(state.membrane_voltage[0, 0]))
        spikes.append(int(fired[0, 0]))
    np.testing.assert_allclose(voltages, expected, atol=1e-12)
    assert spikes == ([0, 1, 0, 1, 0, 1, 0] if refractory == 0 else [0, 1, 0, 0, 0, 1, 0])


def test_current_keeps_integrating_while_refractory():
    params = LIFParameters(du=0.5, dv=0.1, vth=0.5, refractory=3)
    plain = LIFParameters(du=0.5, dv=0.1, vth=0.5)
    a, b = lif_initial_state(np.zeros((1, 2))), LIFState(np.zeros((1, 2)), np.zeros((1, 2)))
    for t in range(10):
        drive = np.array([[1.0, 0.3]]) * (t % 3 == 0)
        a, _ = lif_step(params, a, drive)
        b, _ = lif_step(plain, b, drive)
        assert np.array_equal(a.synaptic_current, b.synaptic_current)


@pytest.mark.parametrize("backend", ["norse", pytest.param("brian2", marks=pytest.mark.needs_brian2)])
@pytest.mark.parametrize("refractory", [1, 3])
def test_backends_agree_with_the_reference(backend, refractory, monkeypatch):
    monkeypatch.setenv("NEUROCREDIT_BRIAN2_TARGET", "numpy")
    network = refractory_network(refractory)
    inputs = encode_inputs(network, np.random.default_rng(1).uniform(size=(6, 10)))
    reference = run_lif_network(network, inputs)
    record = get_backend(backend).run(network, inputs, {"spikes", "voltages"})
    plain = run_lif_network(refractory_network(0), inputs)
    assert sum(int(s.sum()) for s in plain.spikes) > sum(int(s.sum()) for s in reference.spikes) > 50
    for mine, theirs in zip(reference.spikes, record.spikes):
        assert np.array_equal(mine, theirs)
    for mine, theirs in zip(reference.voltages, record.voltages):
        np.testing.assert_allclose(theirs, mine, rtol=0, atol=1e-12)


@pytest.mark.needs_lava
@pytest.mark.timeout(240)
def test_lava_floating_point_agrees_and_fixed_point_refuses():
    from neurocredit.deploy.lava_backend import run_lava

    network = refractory_network(2, steps=15)
    inputs = encode_inputs(network, np.random.default_rng(2).uniform(size=(5, 10)))
    reference = run_lif_network(network, inputs).spikes
    for lanes in (5, 2):  # one window, and windows separated by the Reset processes
        record = run_lava(network, inputs, "floating_pt", {"spikes"}, lanes=lanes)
        assert [int((a != b).sum()) for a, b in zip(reference, record.spikes)] == [0, 0]
    with pytest.raises(NeurocreditError, match="no fixed-point model") as error:
        run_lava(network, inputs, "fixed_pt")
    assert "\n" not in str(error.value)


def test_fixed_point_deployment_says_so_in_one_line():
    from neurocredit.deploy.pipeline import deploy

    network = refractory_network(1)
    with pytest.raises(NeurocreditError, match="refractory period of 1 step.*no fixed-point model"):
        deploy(network, np.zeros((2, 10), np.float32), None, mode="fixed_pt")


def test_emulator_holds_the_voltage_after_a_spike():
    from neurocredit.deploy import emulator

    network = refractory_network(2)
    inputs = encode_inputs(network, np.random.default_rng(3).uniform(size=(6, 10)))
    held = emulator.run(network, inputs, {"spikes", "voltages", "currents"})
    free = emulator.run(refractory_network(0), inputs, {"spikes", "voltages", "currents"})
    assert np.array_equal(held.currents[0], free.currents[0])  # the first layer's u does not see its spikes
    spikes, voltages = held.spikes[0], held.voltages[0]
    assert spikes.sum() > 20 and free.spikes[0].sum() > spikes.sum()
    for lag in (1, 2):
        after = spikes[:-lag]
        assert not np.any(spikes[lag:] & after) and np.all(voltages[lag:][after] == 0)


def test_hdf5_round_trip_and_default(tmp_path):
    import h5py

    from neurocredit.io import load_network, save_network

    path = save_network(refractory_network(3), tmp_path / "r.h5")
    assert load_network(path).neuron.lif.refractory == 3
    with h5py.File(path, "a") as handle:
        del handle["neuron"].attrs["refractory"]  # a file written before the parameter existed
    assert load_network(path).neuron.lif.refractory == 0
    with pytest.raises(NeurocreditError, match="refractory=-1 must be a whole number"):
        LIFParameters(refractory=-1)
