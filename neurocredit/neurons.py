"""The canonical neuron models: pure step functions, batched, for numpy arrays and torch tensors.

The canonical LIF is Lava's current-based LIF (``lava.proc.lif`` float model). Per time step,
per neuron, in this order::

    u[t] = u[t-1] * (1 - du) + a_in[t]          # synaptic current
    v[t] = v[t-1] * (1 - dv) + u[t] + bias       # membrane voltage
    s[t] = v[t] > vth                            # spike (strictly greater)
    v[t] = 0 where s[t]                          # reset; u is not reset

With ``refractory = N > 0`` (Lava's ``LIFRefractory``, ``PyLifRefractoryModelFloat``): for the
``N`` steps after a spike the voltage line is skipped (v stays 0, so no spike) while u keeps
integrating; ``RefractoryLIFState.refractory`` counts the steps left. ``N = 0`` is the model above.

Network-level timing (the one convention every backend follows, Lava's): a ``Dense``
connection delivers at step ``t`` what its source emitted at step ``t - 1``. So layer ``i``
(1-based) receives ``a_in[t] = W_i s_{i-1}[t-1]`` with ``s_0`` the encoded input spikes; its
first possible spike is at step ``i`` (0-based ``t = i - 1`` receives nothing), and a run of
``T`` steps delivers input steps ``0 .. T-1-i`` to layer ``i``. :func:`delayed_step` is that
convention as code (the reference, the Norse backend and the rules step through it);
:func:`run_lif_network` is the reference simulation.

Rate neurons: ``h = f(a)`` with ``f`` one of tanh, relu, sigmoid; :func:`activation_derivative`
gives ``f'(a)`` for the local rules.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np

from neurocredit.network import LIFParameters, Network


class LIFState(NamedTuple):
    """State of a LIF population: ``synaptic_current`` u and ``membrane_voltage`` v, each (batch, n)."""

    synaptic_current: Any
    membrane_voltage: Any


class RefractoryLIFState(NamedTuple):
    """:class:`LIFState` plus ``refractory``: steps each neuron is still refractory (batch, n).
    :func:`lif_step` returns it when ``params.refractory > 0`` (and accepts a plain LIFState)."""

    synaptic_current: Any
    membrane_voltage: Any
    refractory: Any


def lif_initial_state(template: Any) -> LIFState:
    """Zero state shaped like ``template`` (numpy array or torch tensor of shape (batch, n))."""
    zeros = template * 0
    return LIFState(zeros, zeros.clone() if hasattr(zeros, "clone") else zeros.copy())


def lif_integrate(params: LIFParameters, state: LIFState, input_current: Any, bias: Any = 0.0) -> tuple[Any, Any]:
    """The sub-threshold part of one canonical step: ``(u[t], v[t])`` with ``v[t]`` before the
    threshold and reset (what surrogate-free rules differentiate)."""
    current = state.synaptic_current * (1.0 - params.du) + input_current
    voltage = state.membrane_voltage * (1.0 - params.dv) + current + bias
    return current, voltage


def lif_step(
    params: LIFParameters, state: LIFState, input_current: Any, bias: Any = 0.0
) -> tuple[LIFState, Any]:
    """One step of the canonical LIF. Returns ``(new_state, spikes)``; spikes have the input's
    dtype (0.0 / 1.0) so they can be fed to the next layer's matrix product."""
    current, voltage = lif_integrate(params, state, input_current, bias)
    if params.refractory:
        left = getattr(state, "refractory", None)
        left = voltage * 0 if left is None else left
        voltage = voltage * (left <= 0) + state.membrane_voltage * (left > 0)  # v held while refractory
    fired = voltage > params.vth
    spikes = fired.to(voltage.dtype) if hasattr(fired, "to") else fired.astype(voltage.dtype)
    voltage = voltage * (1.0 - spikes)
    if params.refractory:
        left = spikes * params.refractory + (1.0 - spikes) * (left - 1).clip(min=0)
        return RefractoryLIFState(current, voltage, left), spikes
    return LIFState(current, voltage), spikes


def lif_block(
    params: LIFParameters,
    state: LIFState,
    source_currents: Any,
    carry: Any,
    bias: Any,
    on_step: Optional[Callable[[Any, Any], None]] = None,
) -> tuple[LIFState, Any, Any]:
    """:func:`lif_step` for one population over a block of steps, in place (torch, no autograd),
    with the one-step synaptic delay.

    ``source_currents`` (steps, batch, n) is ``W s[t]`` for the source's spikes of this block;
    the population receives them one step late: ``carry`` (``W s`` of the source's last step
    before the block, zeros at the start) at the first step, then ``source_currents[t-1]``.
    ``on_step(v, u)`` receives every step's pre-reset voltage ``v`` and synaptic current ``u``, the
    state itself (read only: copy what you keep). Returns ``(state, spikes (steps, batch, n), carry for the
    next block)``. The same operations in the same order as :func:`lif_step`, so the same bits,
    without a fresh tensor per operation and step (tested against it).
    """
    import torch

    keep_current, keep_voltage, vth = 1.0 - params.du, 1.0 - params.dv, params.vth
    current = state.synaptic_current.clone()
    voltage = state.membrane_voltage.clone()
    spikes = torch.empty_like(source_currents)
    # comparisons written straight into float tensors: a bool mask copied into the spikes costs
    # more than a second comparison
    kept = torch.empty_like(voltage)
    for t in range(source_currents.shape[0]):
        current.mul_(keep_current).add_(carry if t == 0 else source_currents[t - 1])
        voltage.mul_(keep_voltage).add_(current).add_(bias)
        torch.gt(voltage, vth, out=spikes[t])
        if on_step is not None:
            on_step(voltage, current)
        voltage.mul_(torch.le(voltage, vth, out=kept))
    # the carry is copied: a view would keep the whole block of currents alive
    return LIFState(current, voltage), spikes, source_currents[-1].clone()


PopulationStep = Callable[[Any, Sequence[Any]], tuple[Any, Any]]


def delayed_step(population_steps: Sequence[PopulationStep], states: Sequence[Any], previous: Sequence[Any],
                 input_spikes: Any) -> tuple[list[Any], list[Any]]:
    """One time step of a network of populations under the one-step synaptic delay (the module
    doc's timing convention, the only place it is written down as code).

    ``previous`` is what every population emitted at the previous step (``previous[0]`` the
    input, ``previous[i]`` population i); ``population_steps[i](state, previous)`` advances
    population i + 1 from ``previous`` alone (a feed-forward layer reads ``previous[i]``, a layer
    with feedback also ``previous[i + 2]``) and returns ``(state, spikes)``. Returns the new
    states and what was emitted now, ``[input_spikes, spikes_1, ...]`` (the next step's
    ``previous``).
    """
    new_states, emitted = [], [input_spikes]
    for step, state in zip(population_steps, states):
        state, spikes = step(state, previous)
        new_states.append(state)
        emitted.append(spikes)
    return new_states, emitted


class LIFTrace(NamedTuple):
    """What :func:`run_lif_network` records, each a list over layers of (steps, batch, n) arrays."""

    spikes: list[np.ndarray]
    voltages: list[np.ndarray]
    currents: list[np.ndarray]


def run_lif_network(network: Network, input_spikes: np.ndarray, record_states: bool = True) -> LIFTrace:
    """Reference simulation (numpy, float64) of a LIF ``Network`` with the one-step Dense delay.

    ``input_spikes`` has shape (steps, batch, n_inputs). Voltages are recorded after reset.
    Dense and Conv2d layers alike (populations flattened in C order).
    Slow but obviously correct: the backends are tested against it.
    """
    if not network.neuron.spiking:
        raise ValueError("run_lif_network needs a lif network")
    from neurocredit.conv import synaptic_input

    steps, batch, _ = input_spikes.shape
    params = network.neuron.lif

    def population(index: int, layer, bias: np.ndarray) -> PopulationStep:
        # Dense: W s; Conv2d: the im2col cross-correlation (neurocredit.conv)
        return lambda state, previous: lif_step(params, state, synaptic_input(layer, previous[index]), bias)

    widths = [layer.n_out for layer in network.layers]
    steppers = [population(index, layer, layer.neuron_bias.astype(np.float64))
                for index, layer in enumerate(network.layers)]
    states = [lif_initial_state(np.zeros((batch, n))) for n in widths]
    previous = [np.zeros((batch, network.n_inputs))] + [np.zeros((batch, n)) for n in widths]
    trace = LIFTrace(*([np.zeros((steps, batch, n), dtype=dtype) for n in widths]
                       for dtype in (bool, np.float64, np.float64)))
    for t in range(steps):
        states, previous = delayed_step(steppers, states, previous, np.asarray(input_spikes[t], dtype=np.float64))
        for index, state in enumerate(states):
            trace.spikes[index][t] = previous[index + 1] > 0
            if record_states:
                trace.voltages[index][t] = state.membrane_voltage
                trace.currents[index][t] = state.synaptic_current
    return trace


def rate_forward(weights: Sequence[Any], biases: Sequence[Any], activation_name: str, features: Any,
                 linear_output: bool = True, layers: Optional[Sequence[Any]] = None,
                 pooled: bool = False) -> tuple[list[Any], list[Any]]:
    """The rate network ``h_i = f(W_i h_{i-1} + b_i)`` for numpy arrays or torch tensors; the last
    layer is linear (its pre-activation is the output, "logits") unless ``linear_output`` is False.

    ``layers`` (the network's layer specs) make Conv2d layers convolve (numpy im2col or torch
    ``conv2d``, :mod:`neurocredit.conv`); ``biases`` must then be per neuron (``neuron_bias``).
    ``pooled`` (torch): a conv with a fused pool sum-pools, then convolves with its pooled-form
    kernel (:func:`neurocredit.conv.torch_synaptic_input`).
    Returns ``(pre_activations, activities)``, lists over layers; ``activities[-1]`` is the output.
    """
    hidden = features
    pre_activations, activities = [], []
    last = len(weights) - 1
    for index, (weight, bias) in enumerate(zip(weights, biases)):
        if layers is not None and layers[index].kind == "conv2d":
            from neurocredit.conv import conv_forward, torch_synaptic_input

            convolved = (torch_synaptic_input(layers[index], weight, hidden, pooled) if hasattr(hidden, "detach")
                         else conv_forward(layers[index], np.asarray(hidden, dtype=np.float64),
                                           np.asarray(weight, dtype=np.float64)))
            pre = convolved + bias
        else:
            pre = hidden @ weight.T + bias
        hidden = pre if (index == last and linear_output) else activation(activation_name, pre)
        pre_activations.append(pre)
        activities.append(hidden)
    return pre_activations, activities


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


def activation_change(name: str, pre_activation: Any, change: Any, activity: Any = None) -> Any:
    """``f(a + Δ) - f(a)`` for torch tensors, accurate to the precision of ``Δ`` when ``|Δ| << |a|``
    (subtracting the two activations loses it: float32 resolves ``f`` near 1 only to ~6e-8).
    tanh: ``(1 - h²) u / (1 + h u)`` with ``h = tanh(a)``, ``u = tanh(Δ)`` (the addition theorem);
    sigmoid through ``σ(x) = (1 + tanh(x/2)) / 2``;
    relu: ``max(Δ, -a)`` where ``a >= 0``, ``relu(a + Δ)`` elsewhere. Pass ``activity = f(a)``
    when it is at hand (a settling reuses it every step)."""
    if name == "tanh":
        h = pre_activation.tanh() if activity is None else activity
        u = change.tanh()
        w = h * u
        # (u - h w) / (1 + w), in place on this call's own temporaries (large conv states:
        # every fresh tensor costs page faults); so not differentiable through ``change``
        return u.addcmul_(h, w, value=-1.0).div_(w.add_(1.0))
    if name == "sigmoid":
        h = None if activity is None else 2.0 * activity - 1.0
        return 0.5 * activation_change("tanh", 0.5 * pre_activation, 0.5 * change, h)
    if name == "relu":
        return (pre_activation >= 0) * change.maximum(-pre_activation) + (pre_activation < 0) * (
            pre_activation + change).clamp(min=0)
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
