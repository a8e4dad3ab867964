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
``v*(1-dv) + u``) and its spikes are the canonical spikes. :func:`norse_lif_parameters` is the
one place this mapping is written (the BPTT baseline uses it too).

``dv = 0`` (no leak: NIR's ``IF``, e.g. Sinabs graphs) cannot be expressed this way. With
``du = 1`` (no synaptic current, what an imported ``IF`` is) it runs on Norse's ``IAFCell``,
``v' = v + x``, spike if ``v' > v_th``, ``v' <- 0`` where spiked, with ``x = a_in + bias``: the
canonical ``v' = (v + a_in) + bias`` up to the order of the two additions (identical without a
bias). Norse has no integrate-and-fire neuron with a synaptic current, so ``dv = 0`` with
``du < 1`` runs our own canonical step (:func:`neurocredit.neurons.lif_step`, in torch) on
Norse's side of the comparison: not an independent check for such networks.

Timing: Norse passes spikes through all layers within one step; the canonical model (Lava)
delays every Dense by one step. This backend steps the layers through
:func:`neurocredit.neurons.delayed_step`, so layer ``i`` sees its input ``i`` steps late, exactly
as in Lava.

Refractory period (``refractory = N > 0``, which ``LIFCell`` does not have): for the ``N`` steps
after a spike this backend discards what the cell did to ``v`` (it stays 0) and its spike, while
the current ``i`` evolves as the cell computed it -- the canonical refractory neuron.

Conv2d layers run ``torch.nn.functional.conv2d`` on the (C, H, W) view of the flattened
population (its weights divided by ``dv`` like a Dense's; ``v_leak`` per neuron from the
channel bias). A conv with a fused pool runs in its pooled form (sum pool, then the p x p
smaller kernel: :func:`neurocredit.conv.torch_synaptic_input`), the same sums with p**2 times
fewer products in another order of float64 additions: 2.3x faster on the 16/32-channel
Fashion-MNIST conv network, with the same spikes (100 samples, one thread). Runs batched in
float64 on CPU, or on CUDA when ``NEUROCREDIT_DEVICE=cuda`` is set and available.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from neurocredit.conv import torch_synaptic_input
from neurocredit.errors import NeurocreditError
from neurocredit.network import LIFParameters, Network
from neurocredit.neurons import delayed_step, lif_initial_state, lif_step
from neurocredit.record import RunRecord


def import_norse():
    """``norse.torch``, imported without the ``torch.jit.script`` deprecation warning that Norse
    1.1 triggers at import (the only warning silenced; it says nothing about our use)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
        import norse.torch
        import norse.torch.functional.lif  # noqa: F401  (its import scripts functions too)
    return norse.torch


def _device():
    import torch

    wanted = os.environ.get("NEUROCREDIT_DEVICE", "cpu")
    if wanted.startswith("cuda") and torch.cuda.is_available():
        return torch.device(wanted)
    return torch.device("cpu")


def norse_lif_parameters(params: LIFParameters, bias, dtype, device, **threshold):
    """``norse.torch.LIFParameters`` of a canonical LIF population with ``bias`` (module doc);
    ``threshold`` passes Norse's surrogate ``method``/``alpha`` (training only)."""
    import torch

    if params.dv <= 0:
        raise NeurocreditError(
            "Norse's LIF needs a voltage decay dv > 0 (it integrates dv*(v_leak - v + i)); this network has dv = 0, "
            "which BPTT cannot train (the norse backend simulates it on Norse's IAFCell)"
        )

    def scalar(value):
        return torch.as_tensor(value, dtype=dtype, device=device)

    return import_norse().LIFParameters(
        tau_syn_inv=scalar(params.du),
        tau_mem_inv=scalar(params.dv),
        v_leak=torch.as_tensor(bias, dtype=dtype, device=device) / params.dv,
        v_th=scalar(params.vth),
        v_reset=scalar(0.0),
        **threshold,
    )


def _voltage(state):
    return state.v if hasattr(state, "v") else state.membrane_voltage


def _current(state, params: LIFParameters) -> np.ndarray:
    """The canonical ``u`` of a population's state: Norse's LIF keeps the decayed current
    divided by ``dv`` (the canonical ``u`` is undecayed); our own step keeps ``u``; Norse's IAF
    keeps none (NaN)."""
    if hasattr(state, "synaptic_current"):
        return state.synaptic_current.cpu().numpy()
    keep = 1.0 - params.du
    if not hasattr(state, "i") or keep <= 0:
        return np.full(tuple(state.v.shape), np.nan)
    return (state.i * params.dv / keep).cpu().numpy()


def run(network: Network, inputs: np.ndarray, record=frozenset()) -> RunRecord:
    """Simulate ``inputs`` (steps, batch, n_inputs) through ``network``; float64."""
    import torch

    norse = import_norse()
    from norse.torch.functional.lif import LIFFeedForwardState

    if not network.neuron.spiking:
        raise NeurocreditError("the norse backend runs lif networks only")
    device = _device()
    dtype = torch.float64
    steps, batch, _ = inputs.shape
    params = network.neuron.lif

    integrate_and_fire = params.dv == 0  # module doc: Norse's IAFCell, or our own step

    def population(index: int, layer):
        """``(initial_state, step)`` of layer ``index``."""
        bias = np.asarray(layer.neuron_bias, np.float64)  # a conv's bias per channel, repeated per position
        zero = torch.zeros(batch, layer.n_out, dtype=dtype, device=device)
        left = [zero.clone()]  # refractory steps left
        if not integrate_and_fire:
            cell = norse.LIFCell(p=norse_lif_parameters(params, bias, dtype, device), dt=1.0)
            weight = torch.as_tensor(layer.weight, dtype=dtype, device=device) / params.dv
            # Norse would start v at v_leak; the canonical neuron starts at rest (v = u = 0).
            initial = LIFFeedForwardState(v=zero, i=zero.clone())
        elif params.du == 1:
            cell = norse.IAFCell(p=norse.IAFParameters(v_th=torch.as_tensor(params.vth, dtype=dtype, device=device),
                                                       v_reset=torch.as_tensor(0.0, dtype=dtype, device=device)),
                                 dt=1.0)
            weight = torch.as_tensor(layer.weight, dtype=dtype, device=device)
            drive = torch.as_tensor(bias, dtype=dtype, device=device)
            initial = norse.IAFFeedForwardState(v=zero)
        else:
            weight = torch.as_tensor(layer.weight, dtype=dtype, device=device)
            drive = torch.as_tensor(bias, dtype=dtype, device=device)
            initial = lif_initial_state(zero)

        def step(state, previous):
            # Dense: s W^T; Conv2d: torch conv2d on the (C, H, W) view (neurocredit.conv)
            received = torch_synaptic_input(layer, weight, previous[index], pooled=True)
            if integrate_and_fire and params.du != 1:
                return lif_step(params, state, received, drive)
            spikes, state = cell(received + drive if integrate_and_fire else received, state)
            if params.refractory:  # module doc: the cell's v and spike are void while refractory
                active = (left[0] <= 0).to(dtype)
                spikes = spikes * active
                state = state._replace(v=state.v * active)
                left[0] = spikes * params.refractory + (1.0 - spikes) * (left[0] - 1).clamp(min=0)
            return state, spikes

        return initial, step

    built = [population(index, layer) for index, layer in enumerate(network.layers)]
    steppers = [step for _, step in built]
    states = [initial for initial, _ in built]
    previous = [torch.zeros(batch, n, dtype=dtype, device=device) for n in network.sizes]
    rasters = [np.zeros((steps, batch, layer.n_out), dtype=bool) for layer in network.layers]
    voltages = [np.zeros((steps, batch, layer.n_out)) for layer in network.layers] if "voltages" in record else None
    currents = [np.zeros((steps, batch, layer.n_out)) for layer in network.layers] if "currents" in record else None
    source = torch.as_tensor(np.asarray(inputs), dtype=dtype, device=device)
    with torch.no_grad():
        for t in range(steps):
            states, previous = delayed_step(steppers, states, previous, source[t])
            for index, state in enumerate(states):
                rasters[index][t] = (previous[index + 1] > 0).cpu().numpy()
                if voltages is not None:
                    voltages[index][t] = _voltage(state).cpu().numpy()
                if currents is not None:
                    currents[index][t] = _current(state, params)
    return RunRecord.from_rasters("norse", network, inputs, rasters, voltages, currents, record)
