"""NIR interchange of convolutional networks: Conv2d, SumPool2d (fused into the next synaptic
layer and emitted again on export) and Flatten. Round trip bit for bit for the conv model
configs; the NIR paper's Sinabs CNN (cnn_sinabs.nir: Conv2d / IF / SumPool2d / Flatten / Affine)
imports and norse.torch.from_nir runs it with our spikes; unsupported conv variants are one line."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import ROOT
from neurocredit.config import build_network, load_config, models_dir
from neurocredit.errors import NeurocreditError
from neurocredit.network import Conv2d
from neurocredit.neurons import run_lif_network
from neurocredit.nir_io import check_import, export_nir, import_graph, import_nir, write_nir
from neurocredit.sim import encode_inputs

nir = pytest.importorskip("nir")
DATA = ROOT / "tests" / "data" / "nir"
CONV_CONFIGS = sorted(path.stem for path in models_dir().glob("*conv*.yaml")  # spiking ones: rate nets have no NIR form
                      if load_config(path).network.neuron.kind == "lif")


def conv_network(name: str, biased: bool):
    config = load_config(models_dir() / f"{name}.yaml")
    n_inputs, image = (784, (28, 28)) if config.data.name in ("fashion-mnist", "mnist") else (64, (8, 8))
    network = build_network(config, n_inputs, 10, 0, image_shape=image)
    if biased:
        rng = np.random.default_rng(1)
        network = network.replace(layers=tuple(
            dataclasses.replace(layer, bias=rng.normal(0, 0.1, layer.bias.shape).astype(layer.bias.dtype))
            for layer in network.layers))
    return network


def spikes(network, samples: int = 3):
    features = np.random.default_rng(0).uniform(size=(samples, network.n_inputs))
    return run_lif_network(network, encode_inputs(network, features), record_states=False).spikes


def assert_same(a, b):
    for left, right in zip(a.layers, b.layers):
        assert type(left) is type(right) and left.pool == right.pool and left.name == right.name
        assert left.weight.dtype == right.weight.dtype and np.array_equal(left.weight, right.weight)
        assert left.bias.dtype == right.bias.dtype and np.array_equal(left.bias, right.bias)
        if isinstance(left, Conv2d):
            assert (left.input_shape, left.stride, left.padding) == (right.input_shape, right.stride, right.padding)
    assert a.neuron == b.neuron and a.encoder == b.encoder


@pytest.mark.parametrize("delays", ["metadata", "nodes"])
@pytest.mark.parametrize("biased", [False, True])
@pytest.mark.parametrize("config", CONV_CONFIGS)
def test_conv_round_trip_is_exact(config, biased, delays, tmp_path):
    network = conv_network(config, biased)
    assert any(layer.pool > 1 for layer in network.layers)
    imported = import_graph(write_nir(network, tmp_path / "c.nir", delays=delays))
    assert imported.exact
    assert_same(network, imported.network)
    assert all(np.array_equal(x, y) for x, y in zip(spikes(network), spikes(imported.network)))


def test_fused_pools_are_exported_as_sum_pools_and_read_back_from_the_nir_fields():
    network = conv_network(CONV_CONFIGS[0], biased=False)
    graph = export_nir(network)
    kinds = [type(graph.nodes[b]).__name__ for _, b in graph.edges]
    assert "SumPool2d" in kinds and "Conv2d" in kinds
    graph.metadata = {}
    for node in graph.nodes.values():
        node.metadata = {}
    generic = import_graph(graph)
    assert not generic.exact
    back = generic.network.replace(encoder=network.encoder)
    assert [layer.pool for layer in back.layers] == [layer.pool for layer in network.layers]
    for mine, theirs in zip(network.layers, back.layers):
        np.testing.assert_allclose(theirs.weight, mine.weight, rtol=1e-12)
    assert all(np.array_equal(x, y) for x, y in zip(spikes(network), spikes(back)))
    check = check_import(import_graph(export_nir(network)), export_nir(network), samples=3)
    assert check["executor"] == "norse.torch.from_nir"
    assert all(layer["differing"] == 0 and layer["reference_spikes"] > 0 for layer in check["layers"])


def test_sinabs_cnn_imports_and_norse_runs_it_with_our_spikes():
    """NIR paper's paper/02_cnn/cnn_sinabs.nir: 2x34x34 -> conv -> IF -> conv -> IF -> pool ->
    conv -> IF -> pool -> flatten -> affine -> IF -> affine -> IF."""
    graph = nir.read(DATA / "cnn_sinabs.nir")
    imported = import_graph(graph)
    network = imported.network
    assert imported.layer_types == ("IF",) * 5 and network.neuron.lif.du == 1.0 and network.neuron.lif.dv == 0.0
    assert [type(layer).__name__ for layer in network.layers] == ["Conv2d", "Conv2d", "Conv2d", "Layer", "Layer"]
    assert [layer.pool for layer in network.layers] == [1, 1, 2, 2, 1]
    assert network.input_shape == (2, 34, 34) and network.shapes[3] == (8, 8, 8)
    check = check_import(imported, graph, samples=2)
    assert check["executor"] == "norse.torch.from_nir"
    assert [layer["differing"] for layer in check["layers"]] == [0] * 5
    assert all(layer["reference_spikes"] > 0 for layer in check["layers"])
    back = import_graph(export_nir(network))  # IF networks export as IF with their pools
    assert back.exact
    assert_same(network, back.network)


def test_sinabs_cnn_gives_the_same_spikes_in_the_reference_norse_and_brian2():
    """IF neurons (dv = 0, du = 1): Norse runs them on its IAFCell, Brian2 on its own equations."""
    from neurocredit.sim import get_backend

    network = import_nir(nir.read(DATA / "cnn_sinabs.nir"))
    inputs = encode_inputs(network, np.random.default_rng(0).uniform(size=(2, network.n_inputs)), steps=10)
    runs = {name: get_backend(name).run(network, inputs, {"spikes"}) for name in ("reference", "norse", "brian2")}
    assert all(int(raster.sum()) > 0 for raster in runs["reference"].spikes)
    for name in ("norse", "brian2"):
        for index, (mine, theirs) in enumerate(zip(runs["reference"].spikes, runs[name].spikes)):
            assert np.array_equal(mine, theirs), (name, index)


@pytest.mark.needs_lava
@pytest.mark.timeout(300)
def test_sinabs_cnn_deploys_with_verify_on_digit_frames(run_cli, tmp_path):
    """digits-2x34x34: the digits in N-MNIST's shape (the graph's own data is not here)."""
    import json

    model = tmp_path / "sinabs.h5"
    run_cli("import", DATA / "cnn_sinabs.nir", "-o", model, check_rc=0)
    result = run_cli("deploy", model, "--verify", "--data", "digits-2x34x34", "--limit", "12", "--lava-limit", "2",
                     "--steps", "12", "--json", check_rc=0)
    payload = json.loads(result.stdout)
    assert payload["samples"] == 12 and payload["lava_samples"] == 2
    assert payload["spike_agreement"] == {"emulator_vs_lava": 1.0, "float_vs_lava_floating": 1.0}
    assert payload["accuracy"]["lava_fixed_pt"] == payload["accuracy"]["emulator_on_lava_samples"]
    assert sum(payload["mean_spikes_per_sample"]) > 0


def sumpool_graph(kernel, stride):
    conv = nir.Conv2d(input_shape=(4, 4), weight=np.ones((1, 1, 3, 3)), stride=1, padding=1, dilation=1, groups=1,
                      bias=np.zeros(1))
    return nir.NIRGraph.from_list(
        nir.Input(input_type={"input": np.array([1, 8, 8])}),
        nir.SumPool2d(kernel_size=np.array(kernel), stride=np.array(stride), padding=np.array([0, 0])), conv,
        nir.IF(r=np.ones((1, 4, 4)), v_threshold=np.ones((1, 4, 4))),
        nir.Output(output_type={"output": np.array([1, 4, 4])}), type_check=False)


def test_unsupported_conv_variants_are_one_line():
    with pytest.raises(NeurocreditError, match=r"SumPool2d\) .* is supported only as a p x p pool with stride p"):
        import_nir(sumpool_graph([2, 2], [1, 1]))
    network = import_nir(sumpool_graph([2, 2], [2, 2]))
    assert network.layers[0].pool == 2
    dilated = nir.NIRGraph.from_list(
        nir.Input(input_type={"input": np.array([1, 6, 6])}),
        nir.Conv2d(input_shape=(6, 6), weight=np.ones((1, 1, 3, 3)), stride=1, padding=0, dilation=2, groups=1,
                   bias=np.zeros(1)),
        nir.IF(r=np.ones((1, 2, 2)), v_threshold=np.ones((1, 2, 2))),
        nir.Output(output_type={"output": np.array([1, 2, 2])}))
    with pytest.raises(NeurocreditError, match="supported: dilation 1, groups 1") as error:
        import_nir(dilated)
    assert "\n" not in str(error.value)
