"""Norse backend: the canonical LIF network built from ``norse.torch.LIFCell`` modules.

Mapping (checked spike for spike against :func:`neurocredit.neurons.run_lif_network`):

Norse's feed-forward step is ``i' = i + x``; ``v' = v + dt*tau_mem_inv*(v_leak - v + i')``;
``i <- i' (1 - dt*tau_syn_inv)``; spike if ``v' > v_th``; ``v' <- v_reset`` where spiked. With
``dt = 1``, ``tau_syn_inv = du``, ``tau_mem_inv = dv``, ``v_reset = 0``, Norse's current is the
canonical current divided by ``dv`` and its leak potential absorbs the bias:

* input current ``x = a_in / dv`` (so the Dense weights are divided by ``dv``),
* ``v_leak = bias / dv`` (per neuron),
* ``v_th = vth``.

Then Norse's ``v`` equals the canonical ``v`` (up to float rounding: ``v + dv*(-v + u/dv)`` vs.
``v*(1-dv) + u``) and its spikes are the canonical spikes. ``dv = 0`` (no leak) cannot be
expressed this way and is rejected with a clear error.

Timing: Norse passes spikes through all layers within one step; the canonical model (Lava)
delays every Dense by one step. This backend keeps each layer's previous-step spikes and feeds
those to the next layer, so layer ``i`` sees its input ``i`` steps late, exactly as in Lava.

Runs batched in float64 on CPU, or on CUDA when ``NEUROCREDIT_DEVICE=cuda`` is set and available.
"""

from __future__ import annotations

import os

import numpy as np

from neurocredit.errors import NeurocreditError
from neurocredit.network import Network
from neurocredit.readout import predict
from neurocredit.record import RunRecord


def _device():
    import torch

    wanted = os.environ.get("NEUROCREDIT_DEVICE", "cpu")
    if wanted.startswith("cuda") and torch.cuda.is_available():
        return torch.device(wanted)
    return torch.device("cpu")


def norse_parameters(network: Network, bias, dtype, device):
    """``norse.torch.LIFParameters`` for one layer of ``network`` (see module doc)."""
    import torch
    from norse.torch import LIFParameters as NorseLIFParameters

    params = network.neuron.lif
    if params.dv <= 0:
        raise NeurocreditError(
            "the Norse backend needs a voltage decay dv > 0 (Norse integrates dv*(v_leak - v + i)); "
            "this network has dv = 0: use the reference, brian2, lava or emulator backend"
        )

    def scalar(value):
        return torch.as_tensor(value, dtype=dtype, device=device)

    return NorseLIFParameters(
        tau_syn_inv=scalar(params.du),
        tau_mem_inv=scalar(params.dv),
        v_leak=torch.as_tensor(np.asarray(bias, dtype=np.float64) / params.dv, dtype=dtype, device=device),
        v_th=scalar(params.vth),
        v_reset=scalar(0.0),
    )


def run(network: Network, inputs: np.ndarray, record=frozenset()) -> RunRecord:
    """Simulate ``inputs`` (steps, batch, n_inputs) through ``network``; float64."""
    import torch
    from norse.torch import LIFCell
    from norse.torch.functional.lif import LIFFeedForwardState

    if not network.neuron.spiking:
        raise NeurocreditError("the norse backend runs lif networks only")
    device = _device()
    dtype = torch.float64
    steps, batch, _ = inputs.shape
    dv = network.neuron.lif.dv
    cells, weights = [], []
    for layer in network.layers:
        cells.append(LIFCell(p=norse_parameters(network, layer.bias, dtype, device), dt=1.0))
        weights.append(torch.as_tensor(layer.weight, dtype=dtype, device=device) / dv if dv > 0 else None)
    # Norse would start v at v_leak; the canonical neuron starts at rest (v = u = 0).
    states = [
        LIFFeedForwardState(
            v=torch.zeros(batch, layer.n_out, dtype=dtype, device=device),
            i=torch.zeros(batch, layer.n_out, dtype=dtype, device=device),
        )
        for layer in network.layers
    ]
    previous = [torch.zeros(batch, network.n_inputs, dtype=dtype, device=device)] + [
        torch.zeros(batch, layer.n_out, dtype=dtype, device=device) for layer in network.layers
    ]
    want_spikes = "spikes" in record
    want_voltages = "voltages" in record
    want_currents = "currents" in record
    counts = [torch.zeros(batch, layer.n_out, dtype=dtype, device=device) for layer in network.layers]
    rasters = [np.zeros((steps, batch, layer.n_out), dtype=bool) for layer in network.layers] if want_spikes else None
    voltages = [np.zeros((steps, batch, layer.n_out)) for layer in network.layers] if want_voltages else None
    currents = [np.zeros((steps, batch, layer.n_out)) for layer in network.layers] if want_currents else None
    source = torch.as_tensor(np.asarray(inputs), dtype=dtype, device=device)
    with torch.no_grad():
        for t in range(steps):
            emitted = [source[t]]
            for index, (cell, weight) in enumerate(zip(cells, weights)):
                spikes, states[index] = cell(previous[index] @ weight.T, states[index])
                emitted.append(spikes)
                counts[index] += spikes
                if want_spikes:
                    rasters[index][t] = (spikes > 0).cpu().numpy()
                if want_voltages:
                    voltages[index][t] = states[index].v.cpu().numpy()
                if want_currents:
                    # Norse keeps the decayed current divided by dv; the canonical u is undecayed.
                    decay = 1.0 - network.neuron.lif.du
                    undecayed = states[index].i * dv / decay if decay > 0 else torch.full_like(states[index].i, float("nan"))
                    currents[index][t] = undecayed.cpu().numpy()
            previous = emitted
    spike_counts = [c.cpu().numpy().round().astype(np.int64) for c in counts]
    outputs = spike_counts[-1].astype(np.float64)
    return RunRecord(
        backend="norse",
        steps=int(steps),
        outputs=outputs,
        predictions=predict(network, outputs),
        spike_counts=spike_counts,
        input_spike_counts=np.asarray(inputs).sum(axis=0).astype(np.int64),
        spikes=rasters,
        voltages=voltages,
        currents=currents,
        input_spikes=(np.asarray(inputs) > 0) if want_spikes else None,
    )
