"""NIR interchange (:mod:`neurocredit.nir_io`): export -> nir.write -> nir.read -> import is exact
(parameters bit for bit, reference spikes identical) for every dense model config, with and
without biases and in both delay conventions; norse.torch.from_nir runs our bias-free graphs with
our spikes (layer i shifted by i steps); the generic (metadata-free) reading of a graph follows
the NIR equations; unsupported graphs are one line naming the node; the CLI round trip."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from conftest import ROOT, small_lif_network
from neurocredit.config import build_network, load_config, models_dir
from neurocredit.errors import NeurocreditError
from neurocredit.network import EncoderSpec, Layer, LIFParameters, Network, NeuronSpec
from neurocredit.neurons import run_lif_network
from neurocredit.nir_io import check_import, export_nir, import_graph, import_nir, write_nir
from neurocredit.sim import encode_inputs

nir = pytest.importorskip("nir")
DATA = ROOT / "tests" / "data" / "nir"
CONFIGS = sorted(path.stem for path in models_dir().glob("*.yaml"))


def config_network(name: str, seed: int, biased: bool) -> Network:
    """The untrained network of a model config (digits or Fashion-MNIST sizes), optionally with
    random biases; float32 like a trained one."""
    config = load_config(models_dir() / f"{name}.yaml")
    n_inputs, image = (784, (28, 28)) if config.data.name in ("fashion-mnist", "mnist") else (64, (8, 8))
    network = build_network(config, n_inputs, 10, seed, image_shape=image)
    if biased:
        rng = np.random.default_rng(seed)
        network = network.replace(layers=tuple(
            dataclasses.replace(layer, bias=rng.normal(0, 0.1, layer.bias.shape).astype(layer.bias.dtype))
            for layer in network.layers))
    return network


def without_bias(network: Network) -> Network:
    return network.replace(layers=tuple(Layer(l.weight, np.zeros_like(l.bias), l.name) for l in network.layers))


def reference_spikes(network: Network, samples: int = 4, seed: int = 0) -> list[np.ndarray]:
    features = np.random.default_rng(seed).uniform(size=(samples, network.n_inputs))
    return run_lif_network(network, encode_inputs(network, features), record_states=False).spikes


def assert_same_network(a: Network, b: Network) -> None:
    assert len(a.layers) == len(b.layers)
    for left, right in zip(a.layers, b.layers):
        assert left.name == right.name
        assert left.weight.dtype == right.weight.dtype and np.array_equal(left.weight, right.weight)
        assert left.bias.dtype == right.bias.dtype and np.array_equal(left.bias, right.bias)
    assert a.neuron == b.neuron and a.encoder == b.encoder and a.readout == b.readout
    assert set(a.extras) == set(b.extras)
    for key in a.extras:
        assert np.array_equal(a.extras[key], b.extras[key])


@pytest.mark.parametrize("delays", ["metadata", "nodes"])
@pytest.mark.parametrize("biased", [False, True])
@pytest.mark.parametrize("config", CONFIGS)
def test_round_trip_is_exact_for_every_model_config(config, biased, delays, tmp_path):
    network = config_network(config, seed=3, biased=biased)
    if not network.neuron.spiking:
        with pytest.raises(NeurocreditError, match="rate networks .* have no NIR form"):
            export_nir(network)
        return
    path = write_nir(network, tmp_path / "net.nir", delays=delays)
    imported = import_graph(path)
    assert imported.exact and imported.delays == delays
    assert_same_network(network, imported.network)
    before, after = reference_spikes(network), reference_spikes(imported.network)
    assert sum(int(s.sum()) for s in before) > 0
    assert all(np.array_equal(x, y) for x, y in zip(before, after))


def test_exported_nodes_follow_the_mapping():
    network = small_lif_network(1)
    dt = 1e-3
    graph = export_nir(network, dt=dt)
    assert [type(graph.nodes[b]).__name__ for _, b in graph.edges] == ["Affine", "CubaLIF", "Affine", "CubaLIF",
                                                                        "Output"]
    lif, affine = graph.nodes["lif1"], graph.nodes["fc1"]
    p = network.neuron.lif
    assert np.array_equal(affine.weight, network.layers[0].weight) and not np.any(affine.bias)
    np.testing.assert_allclose(lif.tau_syn, dt / p.du)
    np.testing.assert_allclose(lif.tau_mem, dt / p.dv)
    np.testing.assert_allclose(lif.r, 1 / p.dv)
    np.testing.assert_allclose(lif.w_in, 1 / p.du)
    np.testing.assert_allclose(lif.v_leak, network.layers[0].bias / p.dv)
    assert np.all(lif.v_threshold == p.vth) and np.all(lif.v_reset == 0) and lif.tau_syn.shape == (30,)
    nodes = export_nir(network, dt=dt, delays="nodes")
    delay = nodes.nodes["delay1"]
    assert ("delay1", "fc1") in nodes.edges and np.all(delay.delay == dt) and delay.delay.shape == (20,)


def test_generic_reading_follows_the_nir_equations(tmp_path):
    """Metadata stripped: the graph is read from its NIR fields alone (forward Euler at dt);
    the parameters agree to rounding and the spikes are the same."""
    network = small_lif_network(2)
    write_nir(network, tmp_path / "net.nir")
    graph = nir.read(tmp_path / "net.nir")
    graph.metadata = {}
    for node in graph.nodes.values():
        node.metadata = {}
    imported = import_graph(graph)
    assert not imported.exact and imported.delays == "added"
    got = imported.network
    for mine, theirs in zip(network.layers, got.layers):
        np.testing.assert_allclose(theirs.weight, mine.weight, rtol=1e-12)
        np.testing.assert_allclose(theirs.bias, mine.bias, rtol=1e-12, atol=1e-15)
    assert got.neuron.lif.du == pytest.approx(0.2, rel=1e-12) and got.neuron.lif.dv == pytest.approx(0.1, rel=1e-12)
    got = got.replace(encoder=network.encoder)
    assert all(np.array_equal(x, y) for x, y in zip(reference_spikes(network, 8), reference_spikes(got, 8)))


def test_lif_and_if_nodes_map_onto_the_discrete_neuron():
    """A hand-built Affine -> LIF and Affine -> IF: the imported network's voltage is the NIR
    voltage stepped by forward Euler (LIF) or by plain summation (IF), biases included."""
    rng = np.random.default_rng(0)
    weight, bias = rng.normal(0, 1, (3, 4)), rng.normal(0, 0.1, 3)
    dt, tau, r, v_leak = 1e-3, 4e-3, 1.5, 0.05
    for kind in ("LIF", "IF"):
        if kind == "LIF":
            neuron = nir.LIF(tau=np.full(3, tau), r=np.full(3, r), v_leak=np.full(3, v_leak),
                             v_threshold=np.full(3, 1.0))
        else:
            neuron = nir.IF(r=np.full(3, r), v_threshold=np.full(3, 1.0))
        graph = nir.NIRGraph.from_list(nir.Input(input_type={"input": np.array([4])}), nir.Affine(weight, bias),
                                       neuron, nir.Output(output_type={"output": np.array([3])}))
        network = import_nir(graph, dt=dt)
        x = (rng.uniform(size=(12, 1, 4)) < 0.5).astype(float)
        v, spikes = np.zeros(3), []
        for t in range(12):
            drive = weight @ x[t - 1, 0] + bias if t > 0 else bias  # one-step synaptic delay
            v = v + dt / tau * (v_leak - v + r * drive) if kind == "LIF" else v + r * drive
            spikes.append(v > 1.0)
            v = np.where(v > 1.0, 0.0, v)
        trace = run_lif_network(network, x)
        assert np.array_equal(trace.spikes[0][:, 0], np.array(spikes)), kind
        assert network.neuron.lif.du == 1.0


@pytest.mark.parametrize("delays", ["metadata", "nodes"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_norse_from_nir_runs_our_bias_free_graphs_with_our_spikes(seed, delays):
    pytest.importorskip("norse")
    network = without_bias(small_lif_network(seed, sizes=(16, 24, 8), steps=40))
    graph = export_nir(network, dt=1e-4, delays=delays)
    check = check_import(import_graph(graph), graph, samples=12, seed=seed)
    assert check["executor"] == "norse.torch.from_nir"
    assert [layer["compared_steps"] for layer in check["layers"]] == [39, 38]
    assert all(layer["reference_spikes"] > 100 for layer in check["layers"])
    assert [layer["differing"] for layer in check["layers"]] == [0, 0]


def test_check_names_why_there_is_no_executor_for_biased_graphs():
    network = small_lif_network(0)
    graph = export_nir(network)
    check = check_import(import_graph(graph), graph, samples=2)
    assert check["executor"] is None and "v_leak" in check["executor_skipped"] and check["reference_spikes"][0] > 0


def graph_of(*nodes):
    return nir.NIRGraph.from_list(*nodes)


def test_affine_bias_before_cubalif_is_refused_unless_tau_syn_is_dt():
    n = 3
    weight, bias = np.ones((n, 2)), np.full(n, 0.1)

    def cuba(du):
        return nir.CubaLIF(tau_syn=np.full(n, 1e-4 / du), tau_mem=np.full(n, 1e-3), r=np.ones(n), v_leak=np.zeros(n),
                           v_threshold=np.ones(n), w_in=np.ones(n))

    ends = (nir.Input(input_type={"input": np.array([2])}), nir.Output(output_type={"output": np.array([n])}))
    with pytest.raises(NeurocreditError, match="enters the synaptic current") as error:
        import_nir(graph_of(ends[0], nir.Affine(weight, bias), cuba(0.5), ends[1]))
    assert "\n" not in str(error.value)
    network = import_nir(graph_of(ends[0], nir.Affine(weight, bias), cuba(1.0), ends[1]))
    np.testing.assert_allclose(network.layers[0].bias, 0.1 * 1e-4 / 1e-3)


@pytest.mark.parametrize("build,match", [
    (lambda: nir.read(DATA / "braille.nir"), r"node 'lif1.lif' \(CubaLIF\) has 2 incoming edges .*recurrent"),
    (lambda: graph_of(nir.Input(input_type={"input": np.array([2])}), nir.Affine(np.ones((2, 2)), np.zeros(2)),
                      nir.Scale(np.ones(2)), nir.Output(output_type={"output": np.array([2])})),
     r"node 'scale' \(Scale\) is not supported; supported node types: Input, Output, Delay, .*Affine"),
    (lambda: graph_of(nir.Input(input_type={"input": np.array([2])}), nir.Affine(np.ones((2, 2)), np.zeros(2)),
                      nir.LIF(tau=np.full(2, 1e-3), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2),
                              v_reset=np.full(2, -0.5)), nir.Output(output_type={"output": np.array([2])})),
     r"node 'lif' \(LIF\) resets to v_reset = \[-0.5\]"),
    (lambda: graph_of(nir.Input(input_type={"input": np.array([2])}), nir.Affine(np.ones((2, 2)), np.zeros(2)),
                      nir.LIF(tau=np.full(2, 1e-5), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2)),
                      nir.Output(output_type={"output": np.array([2])})),
     r"dv = dt/tau_mem = 10 > 1 .*--dt <= 1e-05"),
    (lambda: graph_of(nir.Input(input_type={"input": np.array([2])}), nir.Affine(np.ones((2, 2)), np.zeros(2)),
                      nir.Affine(np.ones((2, 2)), np.zeros(2)), nir.Output(output_type={"output": np.array([2])})),
     r"node 'affine_1' \(Affine\) follows synaptic node 'affine' without neurons"),
])
def test_unsupported_graphs_are_one_line_naming_the_node(build, match):
    with pytest.raises(NeurocreditError, match=match) as error:
        import_nir(build())
    assert "\n" not in str(error.value)


def test_branch_and_mixed_parameters_are_refused():
    n = 2
    inp, out = nir.Input(input_type={"input": np.array([n])}), nir.Output(output_type={"output": np.array([n])})

    def lif(tau):
        return nir.LIF(tau=np.full(n, tau), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n))

    nodes = {"input": inp, "a": nir.Affine(np.ones((n, n)), np.zeros(n)), "l": lif(1e-3),
             "b": nir.Affine(np.ones((n, n)), np.zeros(n)), "m": lif(1e-3), "output": out}
    branch = nir.NIRGraph(nodes=nodes, edges=[("input", "a"), ("a", "l"), ("l", "output"), ("input", "b"),
                                              ("b", "m"), ("m", "output")])
    with pytest.raises(NeurocreditError, match="has 2 incoming edges|has 2 outgoing edges"):
        import_nir(branch)
    mixed = graph_of(inp, nir.Affine(np.ones((n, n)), np.zeros(n)), lif(1e-3), nir.Affine(np.ones((n, n)), np.zeros(n)),
                     lif(2e-3), out)
    with pytest.raises(NeurocreditError, match="shares one dv"):
        import_nir(mixed)


def test_rate_networks_and_zero_decays_are_refused():
    rate = config_network("digits-dfa-rate", 0, False)
    with pytest.raises(NeurocreditError, match="NIR 1.0.8 has no node for tanh, relu, sigmoid"):
        export_nir(rate)
    no_leak = small_lif_network(0).replace(neuron=NeuronSpec("lif", lif=LIFParameters(0.2, 0.0, 1.0)))
    with pytest.raises(NeurocreditError, match="dv = 0 .* has no NIR form"):
        export_nir(no_leak)


def test_norse_written_lif_graph_imports_and_runs():
    """NIRTorch's tests/lif_norse.nir (Affine 1x1 -> LIF tau 2.5 ms, threshold 0.1)."""
    imported = import_graph(DATA / "lif_norse.nir")
    network = imported.network
    assert imported.layer_types == ("LIF",) and imported.delays == "added" and network.sizes == (1, 1)
    assert network.neuron.lif.du == 1.0 and network.neuron.lif.dv == pytest.approx(1e-4 / 0.0025, rel=1e-6)
    x = np.ones((60, 1, 1))
    spikes = run_lif_network(network, x).spikes[0][:, 0, 0]
    # constant drive 1 per step: v_t = dv * sum (1 - dv)^k; the first step above 0.1 after each reset
    v, expected = 0.0, []
    for t in range(60):
        v = v * (1 - network.neuron.lif.dv) + (network.neuron.lif.dv if t > 0 else 0.0)
        expected.append(v > 0.1)
        v = 0.0 if v > 0.1 else v
    assert spikes.sum() > 5 and np.array_equal(spikes, np.array(expected))


def test_cli_export_import_round_trip_and_errors(run_cli, tmp_path):
    from neurocredit.io import load_network, save_network

    network = without_bias(small_lif_network(4, sizes=(12, 16, 5), steps=20))
    model = save_network(network, tmp_path / "m.h5")
    run_cli("export", model, "-o", tmp_path / "m.nir", "--delays", "nodes", "--dt", "1e-3", check_rc=0)
    result = run_cli("import", tmp_path / "m.nir", "-o", tmp_path / "back.h5", "--check", "--json", check_rc=0)
    payload = json.loads(result.stdout)
    assert payload["exact"] and payload["delays"] == "nodes" and payload["dt"] == 1e-3
    assert payload["check"]["executor"] == "norse.torch.from_nir"
    assert [layer["differing"] for layer in payload["check"]["layers"]] == [0, 0]
    assert_same_network(network, load_network(tmp_path / "back.h5"))
    digits = save_network(config_network("digits-dfa-snn", 1, True).replace(provenance={"data": "digits"}),
                          tmp_path / "d.h5")
    run_cli("export", digits, "-o", tmp_path / "d.nir", check_rc=0)
    run_cli("import", tmp_path / "d.nir", "-o", tmp_path / "d2.h5", check_rc=0)
    before, after = (json.loads(run_cli("eval", path, "--backend", "reference", "--limit", "30", "--json",
                                        check_rc=0).stdout) for path in (digits, tmp_path / "d2.h5"))
    assert before["accuracy"] == after["accuracy"] and after["samples"] == 30
    refused = run_cli("import", DATA / "braille.nir", "-o", tmp_path / "x.h5")
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and "recurrent" in lines[0] and "lif1.lif" in lines[0]
    rate = save_network(config_network("digits-bp-rate", 0, False), tmp_path / "rate.h5")
    refused = run_cli("export", rate, "-o", tmp_path / "rate.nir")
    assert refused.returncode == 2 and "no NIR form" in refused.stderr and not (tmp_path / "rate.nir").exists()


def test_stored_snntorch_graph_with_refractory_1_gives_the_stored_snntorch_spikes():
    """tests/data/nir/snntorch_synaptic.nir and the spikes snnTorch 1.0.0 computed for it
    (make_snntorch_graph.py): no snnTorch needed here."""
    stored = np.load(DATA / "snntorch_synaptic_spikes.npz")
    inputs = stored["inputs"].astype(np.float64)
    theirs = [stored["layer1"], stored["layer2"]]
    steps = inputs.shape[0]

    def differing(network):
        ours = run_lif_network(network, inputs).spikes
        return [int(np.count_nonzero(ours[i][i + 1:] != theirs[i][: steps - i - 1])) for i in range(2)]

    assert differing(import_nir(DATA / "snntorch_synaptic.nir", refractory=1)) == [0, 0]
    assert min(differing(import_nir(DATA / "snntorch_synaptic.nir", refractory=0))) > 20


def test_norse_from_nir_disagrees_on_biased_graphs():
    """Why --check has no executor for biased graphs: Norse 1.1.0 feeds v_leak into its synaptic
    current too. If this starts failing, Norse fixed it and check_import can use it with biases."""
    pytest.importorskip("norse")
    from neurocredit.nir_io import _norse_layer_spikes, graph_chain

    network = small_lif_network(0, sizes=(16, 24, 8), steps=40)
    graph = export_nir(network)
    inputs = np.asarray(encode_inputs(network, np.random.default_rng(0).uniform(size=(12, 16))), dtype=float)
    ours = run_lif_network(network, inputs).spikes[0][1:]
    theirs = _norse_layer_spikes(graph, graph_chain(graph), 0, inputs, 1e-4)[:-1]
    assert np.count_nonzero(ours != theirs) > 100


@pytest.mark.parametrize("delays", ["metadata", "nodes"])
def test_integrate_and_fire_networks_export_as_if_and_round_trip_exactly(delays, tmp_path):
    """du = 1, dv = 0 has no CubaLIF form but is NIR's IF, with the bias in the Affine (where IF
    adds it to the voltage); read back bit for bit, and without metadata by the IF mapping."""
    network = small_lif_network(5).replace(neuron=NeuronSpec("lif", lif=LIFParameters(1.0, 0.0, 1.0)))
    graph = export_nir(network, delays=delays)
    kinds = [type(graph.nodes[b]).__name__ for _, b in graph.edges if type(graph.nodes[b]).__name__ != "Delay"]
    assert kinds == ["Affine", "IF", "Affine", "IF", "Output"]
    assert np.array_equal(graph.nodes["fc1"].bias, network.layers[0].bias)
    path = write_nir(network, tmp_path / "if.nir", delays=delays)
    imported = import_graph(path)
    assert imported.exact
    assert_same_network(network, imported.network)
    stripped = nir.read(path)
    stripped.metadata = {}
    for node in stripped.nodes.values():
        node.metadata = {}
    generic = import_graph(stripped).network.replace(encoder=network.encoder)
    assert all(np.array_equal(x, y) for x, y in zip(reference_spikes(network, 6), reference_spikes(generic, 6)))
