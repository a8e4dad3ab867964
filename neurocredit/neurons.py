"""The canonical neuron models: pure step functions, batched, for numpy arrays and torch tensors.

The canonical LIF is Lava's current-based LIF (``lava.proc.lif`` float model). Per time step,
per neuron, in this order::

    u[t] = u[t-1] * (1 - du) + a_in[t]          # synaptic current
    v[t] = v[t-1] * (1 - dv) + u[t] + bias       # membrane voltage
    s[t] = v[t] > vth                            # spike (strictly greater)
    v[t] = 0 where s[t]                          # reset; u is not reset, no refractory period

Network-level timing (the one convention every backend follows, Lava's): a ``Dense``
connection delivers at step ``t`` what its source emitted at step ``t - 1``. So layer ``i``
(1-based) receives ``a_in[t] = W_i s_{i-1}[t-1]`` with ``s_0`` the encoded input spikes; its
first possible spike is at step ``i`` (0-based ``t = i - 1`` receives nothing), and a run of
``T`` steps delivers input steps ``0 .. T-1-i`` to layer ``i``. :func:`run_lif_network` is the
reference implementation of that convention.

Rate neurons: ``h = f(a)`` with ``f`` one of tanh, relu, sigmoid; :func:`activation_derivative`
gives ``f'(a)`` for the local rules.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

from neurocredit.network import LIFParameters, Network


class LIFState(NamedTuple):
    """State of a LIF population: ``synaptic_current`` u and ``membrane_voltage`` v, each (batch, n)."""

    synaptic_current: Any
    membrane_voltage: Any


def lif_initial_state(template: Any) -> LIFState:
    """Zero state shaped like ``template`` (numpy array or torch tensor of shape (batch, n))."""
    zeros = template * 0
    return LIFState(zeros, zeros.clone() if hasattr(zeros, "clone") else zeros.copy())


def lif_step(
    params: LIFParameters, state: LIFState, input_current: Any, bias: Any = 0.0
) -> tuple[LIFState, Any]:
    """One step of the canonical LIF. Returns ``(new_state, spikes)``; spikes have the input's
    dtype (0.0 / 1.0) so they can be fed to the next layer's matrix product."""
    current = state.synaptic_current * (1.0 - params.du) + input_current
    voltage = state.membrane_voltage * (1.0 - params.dv) + current + bias
    fired = voltage > params.vth
    spikes = fired.to(voltage.dtype) if hasattr(fired, "to") else fired.astype(voltage.dtype)
    voltage = voltage * (1.0 - spikes)
    return LIFState(current, voltage), spikes


class LIFTrace(NamedTuple):
    """What :func:`run_lif_network` records, each a list over layers of (steps, batch, n) arrays."""

    spikes: list[np.ndarray]
    voltages: list[np.ndarray]
    currents: list[np.ndarray]


def run_lif_network(network: Network, input_spikes: np.ndarray, record_states: bool = True) -> LIFTrace:
    """Reference simulation (numpy, float64) of a LIF ``Network`` with the one-step Dense delay.

    ``input_spikes`` has shape (steps, batch, n_inputs). Voltages are recorded after reset.
    Slow but obviously correct: the backends are tested against it.
    """
    if not network.neuron.spiking:
        raise ValueError("run_lif_network needs a lif network")
    steps, batch, _ = input_spikes.shape
    params = network.neuron.lif
    weights = [layer.weight.astype(np.float64) for layer in network.layers]
    biases = [layer.bias.astype(np.float64) for layer in network.layers]
    states = [lif_initial_state(np.zeros((batch, w.shape[0]))) for w in weights]
    previous = [np.zeros((batch, network.n_inputs))] + [np.zeros((batch, w.shape[0])) for w in weights]
    trace = LIFTrace([], [], [])
    for weight in weights:
        trace.spikes.append(np.zeros((steps, batch, weight.shape[0]), dtype=bool))
        trace.voltages.append(np.zeros((steps, batch, weight.shape[0])))
        trace.currents.append(np.zeros((steps, batch, weight.shape[0])))
    for t in range(steps):
        sources = previous  # what every population emitted at t-1
        emitted = [np.asarray(input_spikes[t], dtype=np.float64)]
        for index, (weight, bias) in enumerate(zip(weights, biases)):
            states[index], spikes = lif_step(params, states[index], sources[index] @ weight.T, bias)
            emitted.append(spikes)
            trace.spikes[index][t] = spikes > 0
            if record_states:
                trace.voltages[index][t] = states[index].membrane_voltage
                trace.currents[index][t] = states[index].synaptic_current
        previous = emitted
    return trace


def activation(name: str, pre_activation: Any) -> Any:
    """The rate nonlinearity ``f(a)`` for numpy arrays or torch tensors."""
    if name == "tanh":
        return pre_activation.tanh() if hasattr(pre_activation, "tanh") else np.tanh(pre_activation)
    if name == "relu":
        return pre_activation.clamp(min=0) if hasattr(pre_activation, "clamp") else np.maximum(pre_activation, 0)
    if name == "sigmoid":
        if hasattr(pre_activation, "sigmoid"):
            return pre_activation.sigmoid()
        return 1.0 / (1.0 + np.exp(-pre_activation))
    raise ValueError(f"unknown activation {name!r}")


def activation_derivative(name: str, pre_activation: Any, activity: Any = None) -> Any:
    """``f'(a)`` for the same nonlinearities (relu'(0) = 0). Pass ``activity = f(a)`` when it
    is at hand: tanh and sigmoid derivatives then reuse it instead of recomputing ``f``."""
    if name == "tanh":
        h = activation("tanh", pre_activation) if activity is None else activity
        return 1.0 - h * h
    if name == "relu":
        return (pre_activation > 0) * 1.0
    if name == "sigmoid":
        h = activation("sigmoid", pre_activation) if activity is None else activity
        return h * (1.0 - h)
    raise ValueError(f"unknown activation {name!r}")


def layer_delays(n_layers: int) -> Sequence[int]:
    """Steps between an input spike and the earliest effect on layer i (1-based): i."""
    return tuple(range(1, n_layers + 1))
