import os

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurocredit.errors import NeurocreditError
from neurocredit.io import SCHEMA_VERSION, load_network, save_network
from neurocredit.network import (
    EncoderSpec, Layer, LIFParameters, Network, NeuronSpec, ReadoutSpec, init_layers,
)

from conftest import small_lif_network


def rate_network(seed=0, sizes=(8, 5, 3)):
    layers = init_layers(sizes, np.random.default_rng(seed))
    return Network(layers, NeuronSpec("rate", "relu"), extras={"dfa/feedback_1": np.ones((5, 3), np.float32)},
                   provenance={"rule": "dfa", "seed": seed, "data": "synthetic"})


def assert_same_network(a, b):
    assert a.sizes == b.sizes and a.neuron == b.neuron and a.encoder == b.encoder and a.readout == b.readout
    for la, lb in zip(a.layers, b.layers):
        assert la.name == lb.name and la.weight.dtype == lb.weight.dtype
        np.testing.assert_array_equal(la.weight, lb.weight)
        np.testing.assert_array_equal(la.bias, lb.bias)
    assert a.extras.keys() == b.extras.keys()
    for key in a.extras:
        np.testing.assert_array_equal(a.extras[key], b.extras[key])
    assert a.provenance == b.provenance


def test_shape_mismatch_names_the_layer():
    layers = (Layer(np.zeros((4, 3), np.float32), np.zeros(4, np.float32), "fc1"),
              Layer(np.zeros((2, 5), np.float32), np.zeros(2, np.float32), "fc2"))
    with pytest.raises(NeurocreditError, match=r"layer 1 \(fc2\): weight expects 5 inputs but layer 0 has 4"):
        Network(layers)


def test_bias_shape_dtype_and_nan_are_rejected():
    with pytest.raises(NeurocreditError, match="bias has 3 entries"):
        Network((Layer(np.zeros((4, 3), np.float32), np.zeros(3, np.float32), "fc1"),))
    with pytest.raises(NeurocreditError, match="dtype int64"):
        Network((Layer(np.zeros((4, 3), np.int64), np.zeros(4, np.float32), "fc1"),))
    weight = np.zeros((4, 3), np.float32)
    weight[1, 2] = np.nan
    with pytest.raises(NeurocreditError, match="1 NaN/inf values"):
        Network((Layer(weight, np.zeros(4, np.float32), "fc1"),))


def test_parameter_ranges_are_checked():
    with pytest.raises(NeurocreditError, match="du=1.5"):
        LIFParameters(du=1.5)
    with pytest.raises(NeurocreditError, match="vth"):
        LIFParameters(vth=0.0)
    with pytest.raises(NeurocreditError, match="activation 'gelu'"):
        NeuronSpec("rate", "gelu")
    with pytest.raises(NeurocreditError, match="needs a spike encoder"):
        Network(init_layers((3, 2), np.random.default_rng(0)), NeuronSpec("lif"))
    with pytest.raises(NeurocreditError, match="readout/prototypes"):
        Network(init_layers((3, 2), np.random.default_rng(0)), readout=ReadoutSpec("nearest_prototype"))


@pytest.mark.parametrize("network", [rate_network(), small_lif_network()], ids=["rate", "lif"])
def test_round_trip_is_bit_exact(tmp_path, network):
    path = save_network(network, tmp_path / "net.h5")
    assert_same_network(network, load_network(path))


@settings(max_examples=15, deadline=None)
@given(sizes=st.lists(st.integers(1, 9), min_size=2, max_size=4), seed=st.integers(0, 1000),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_round_trip_any_shape(tmp_path_factory, sizes, seed, dtype):
    rng = np.random.default_rng(seed)
    layers = tuple(Layer(l.weight.astype(dtype), rng.normal(size=l.n_out).astype(dtype), l.name)
                   for l in init_layers(sizes, rng))
    network = Network(layers, NeuronSpec("lif", lif=LIFParameters(0.3, 0.05, 0.7)),
                      EncoderSpec("latency", 7, 1.0, seed), provenance={"seed": seed})
    path = tmp_path_factory.mktemp("rt") / "n.h5"
    assert_same_network(network, load_network(save_network(network, path)))


def test_missing_file(tmp_path):
    with pytest.raises(NeurocreditError, match="no such file"):
        load_network(tmp_path / "absent.h5")


def test_truncated_and_garbage_files(tmp_path):
    path = save_network(rate_network(), tmp_path / "net.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(NeurocreditError, match="not a readable HDF5 file"):
        load_network(path)
    path.write_bytes(b"this is not hdf5" * 10)
    with pytest.raises(NeurocreditError, match="not a readable HDF5 file"):
        load_network(path)


def test_wrong_schema_version_and_missing_group(tmp_path):
    path = save_network(rate_network(), tmp_path / "net.h5")
    with h5py.File(path, "r+") as handle:
        handle.attrs["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(NeurocreditError, match=f"schema version {SCHEMA_VERSION + 1} is not supported"):
        load_network(path)
    path = save_network(rate_network(), tmp_path / "net2.h5")
    with h5py.File(path, "r+") as handle:
        del handle["layers/0/bias"]
    with pytest.raises(NeurocreditError, match="damaged network file"):
        load_network(path)


def test_nan_weights_in_file_are_rejected_on_load(tmp_path):
    path = save_network(rate_network(), tmp_path / "net.h5")
    with h5py.File(path, "r+") as handle:
        handle["layers/1/weight"][0, 0] = np.inf
    with pytest.raises(NeurocreditError, match=r"net.h5: layer 1 \(fc2\) weight contains 1 NaN/inf"):
        load_network(path)


def test_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_network(rate_network(seed=1), tmp_path / "net.h5")
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(h5py.Group, "create_dataset", crash)
    with pytest.raises(KeyboardInterrupt):
        save_network(rate_network(seed=2), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["net.h5"]  # no temp file left behind
    assert_same_network(rate_network(seed=1), load_network(path))


def test_crash_during_rename_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_network(rate_network(seed=1), tmp_path / "net.h5")
    before = path.read_bytes()
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        save_network(rate_network(seed=3), path)
    monkeypatch.undo()
    assert path.read_bytes() == before and len(list(tmp_path.iterdir())) == 1
