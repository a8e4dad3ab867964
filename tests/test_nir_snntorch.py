"""A graph written by snnTorch's own exporter (``snntorch.export_nir.export_to_nir``, snnTorch
1.0.0): imported with ``refractory=1`` it gives the spikes snnTorch itself computes, spike for
spike (layer i shifted by our one-step delay per layer), and Lava floating point agrees.

snnTorch's ``Synaptic(alpha, beta, reset_mechanism="zero")`` is our LIF with du = 1 - alpha and
dv = 1 - beta, except that its reset signal is computed from the previous step's membrane: the
membrane is zeroed on the step *after* a spike (a one-step refractory period; reference file
section 4). With ``refractory=0`` (our default, Lava's LIF) the spikes differ, which the test
also shows."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from neurocredit.neurons import run_lif_network
from neurocredit.nir_io import import_graph

snn = pytest.importorskip("snntorch")
torch = pytest.importorskip("torch")


def synaptic(n: int, alpha: float, beta: float, output: bool = False):
    # per-neuron parameters: snnTorch 1.0.0 exports scalar ones with shape () that nir 1.0.8's
    # type check rejects
    return snn.Synaptic(alpha=torch.full((n,), alpha), beta=torch.full((n,), beta), threshold=torch.ones(n),
                        init_hidden=True, reset_mechanism="zero", output=output)


def snntorch_model(seed: int, alpha: float, beta: float):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(10, 50, bias=False), synaptic(50, alpha, beta),
                                torch.nn.Linear(50, 8, bias=False), synaptic(8, alpha, beta, output=True))
    with torch.no_grad():
        model[0].weight.mul_(3.0)
        model[2].weight.mul_(2.0)
    return model


def export(model):
    """snnTorch's graph of the float32 ``model`` (its tracer needs float32), then the model in
    float64 with the same (float32-valued) parameters for the run."""
    from snntorch.export_nir import export_to_nir

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = export_to_nir(model, torch.zeros(10))
    model.double()
    return graph


def snntorch_spikes(model, inputs: np.ndarray) -> list[np.ndarray]:
    """Per-layer spikes (steps, batch, n) of snnTorch running ``model`` step by step."""
    import snntorch.utils

    snntorch.utils.reset(model)
    first, second = [], []
    with torch.no_grad():
        for frame in torch.as_tensor(inputs):
            s1 = model[1](model[0](frame))
            s2, _, _ = model[3](model[2](s1.double()))
            first.append(s1.numpy() > 0)
            second.append(s2.numpy() > 0)
    return [np.array(first), np.array(second)]


def differing(ours: list[np.ndarray], theirs: list[np.ndarray]) -> list[int]:
    steps = ours[0].shape[0]
    return [int(np.count_nonzero(mine[i + 1:] != other[: steps - i - 1]))
            for i, (mine, other) in enumerate(zip(ours, theirs))]


@pytest.mark.parametrize("seed,alpha,beta", [(0, 0.5, 0.8), (1, 0.9, 0.95), (2, 0.4, 0.7)])
def test_snntorch_graph_with_refractory_1_gives_snntorch_spikes(seed, alpha, beta):
    model = snntorch_model(seed, alpha, beta)
    graph = export(model)
    inputs = (np.random.default_rng(seed).uniform(size=(40, 6, 10)) < 0.3).astype(np.float64)
    theirs = snntorch_spikes(model, inputs)
    imported = import_graph(graph, refractory=1)
    network = imported.network
    assert imported.layer_types == ("CubaLIF", "CubaLIF") and imported.delays == "added"
    # snnTorch computes tau = dt / (1 - alpha) in float32, so du comes back to about 1e-8
    assert network.neuron.lif.du == pytest.approx(1 - float(np.float32(alpha)), rel=1e-6)
    assert network.neuron.lif.dv == pytest.approx(1 - float(np.float32(beta)), rel=1e-6)
    ours = run_lif_network(network, inputs).spikes
    assert all(int(layer.sum()) > 50 for layer in theirs)
    assert differing(ours, theirs) == [0, 0]
    canonical = run_lif_network(import_graph(graph, refractory=0).network, inputs).spikes
    assert differing(canonical, theirs)[0] > 0


@pytest.mark.needs_lava
@pytest.mark.timeout(240)
def test_lava_floating_point_runs_the_snntorch_graph_with_snntorch_spikes():
    from neurocredit.deploy.lava_backend import run_lava

    model = snntorch_model(0, 0.5, 0.8)
    graph = export(model)
    inputs = (np.random.default_rng(0).uniform(size=(30, 4, 10)) < 0.3).astype(np.float64)
    network = import_graph(graph, refractory=1).network
    record = run_lava(network, inputs, "floating_pt", {"spikes"}, lanes=4)
    assert differing(record.spikes, snntorch_spikes(model, inputs)) == [0, 0]
