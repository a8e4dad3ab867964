"""Predictive coding for canonical LIF networks: value and error populations stepped together
(equations and Lava expressibility: :mod:`neurocredit.rules.pc`).

:func:`pc_lif_step` is one time step of the whole circuit as a pure function; the rule class
owns the time loop, the input encoding and the optimizer. Every value population steps with
:func:`neurocredit.neurons.lif_step`. No autograd; memory does not depend on T.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch

from neurocredit.network import LIFParameters
from neurocredit.neurons import LIFState, lif_integrate, lif_step
from neurocredit.rules.base import one_hot
from neurocredit.rules.pc import SpikingPCOptions
from neurocredit.rules.spiking import SpikingRule, voltage_surrogate, zero_states


class PCCircuitState(NamedTuple):
    """Everything one presentation carries from step to step, lists over layers ``i = 1..N``:
    the value populations' LIF ``states``; ``emitted``: what each population emitted at the last
    step (``emitted[0]`` the input, ``emitted[i]`` layer ``i``); ``traces[i-1]``: layer ``i``'s
    presynaptic trace; ``errors[i-1]``: ``c_i``."""

    states: list[LIFState]
    emitted: list[torch.Tensor]
    traces: list[torch.Tensor]
    errors: list[torch.Tensor]


def initial_circuit(n_inputs: int, widths: Sequence[int], batch: int, dtype, device) -> PCCircuitState:
    zeros = lambda n: torch.zeros(batch, n, dtype=dtype, device=device)  # noqa: E731
    return PCCircuitState(zero_states(widths, batch, dtype, device), [zeros(n_inputs)] + [zeros(n) for n in widths],
                          [zeros(n) for n in (n_inputs, *widths[:-1])], [zeros(n) for n in widths])


def pc_lif_step(params: LIFParameters, options: SpikingPCOptions, trace_decay: float,
                weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor],
                circuit: PCCircuitState, input_spikes: torch.Tensor, target: torch.Tensor) -> PCCircuitState:
    """One step ``t`` of the value and error populations (:mod:`neurocredit.rules.pc`): every
    population reads only what the others emitted at ``t - 1`` (the Dense delay), the error
    populations read the error above at ``t - 1`` and their value population's voltage at ``t``.
    ``target`` is ``ρ onehot(y)`` (batch, classes)."""
    last = len(weights) - 1
    gamma, kappa = options.error_rate, options.value_feedback
    states, emitted, traces = [], [input_spikes], []
    surrogates = []
    for index, (weight, bias) in enumerate(zip(weights, biases)):
        current = circuit.emitted[index] @ weight.T
        if kappa > 0.0 and index < last:
            current = current + kappa * circuit.errors[index]
        old = circuit.states[index]
        state, spikes = lif_step(params, old, current, bias)
        if index < last:  # the pre-reset voltage of the same step (lif_step's sub-threshold part)
            voltage = lif_integrate(params, old, current, bias)[1]
            surrogates.append(voltage_surrogate(options.surrogate, voltage, params.vth, options.surrogate_width))
        states.append(state)
        emitted.append(spikes)
        traces.append(circuit.traces[index] * (1.0 - trace_decay) + circuit.emitted[index])
    errors = [None] * len(weights)
    errors[last] = circuit.errors[last] * (1.0 - gamma) + gamma * (target - emitted[-1])
    for index in range(last):
        feedback = circuit.errors[index + 1] @ weights[index + 1]  # W_{i+1}ᵀ c_{i+1}[t-1]
        errors[index] = circuit.errors[index] * (1.0 - gamma) + gamma * surrogates[index] * feedback
    return PCCircuitState(states, emitted, traces, errors)


class SpikingPC(SpikingRule):
    """Predictive coding on canonical LIF populations, one update per presentation (module doc
    of :mod:`neurocredit.rules.pc`): ``-Σ_t c_i[t] x_{i-1}[t]ᵀ / T`` (batch mean) is handed to
    the optimizer as ``W_i``'s gradient."""

    name = "pc"
    Options = SpikingPCOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.trace_decay = self.params.du if self.options.trace_decay is None else self.options.trace_decay

    @torch.no_grad()
    def train_batch(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        features = features.to(self.dtype)
        steps, batch = self.encoder.steps, features.shape[0]
        widths = [w.shape[0] for w in self.weights]
        circuit = initial_circuit(self.spec.n_inputs, widths, batch, self.dtype, self.device)
        target = self.options.target_rate * one_hot(labels, self.n_classes, self.dtype)
        weight_sums = [torch.zeros_like(w) for w in self.weights]
        bias_sums = [torch.zeros_like(b) for b in self.biases]
        counts = torch.zeros(batch, widths[-1], dtype=self.dtype, device=self.device)
        for start in range(0, steps, self.block_steps):
            source = self.encode(features, min(self.block_steps, steps - start))
            for input_spikes in source:
                circuit = pc_lif_step(self.params, self.options, self.trace_decay, self.weights, self.biases,
                                      circuit, input_spikes, target)
                for index, (error, trace) in enumerate(zip(circuit.errors, circuit.traces)):
                    weight_sums[index].addmm_(error.T, trace)
                    bias_sums[index].add_(error.sum(dim=0))
                counts += circuit.emitted[-1]
            # the last input step is a view of the block: copy it so that the block is freed
            circuit = circuit._replace(emitted=[circuit.emitted[0].clone(), *circuit.emitted[1:]])
            del source, input_spikes
        scale = -1.0 / (steps * batch)
        self.apply_gradients([s * scale for s in weight_sums] + [s * scale for s in bias_sums])
        return float(0.5 * (target - counts / steps).square().sum(dim=1).mean())
