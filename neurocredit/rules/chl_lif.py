"""STDP-style spiking CHL on canonical LIF neurons (:mod:`neurocredit.rules.chl`): free and nudged
phases with feedback, pre/post spike-trace products accumulated online (memory flat in T)."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np
import torch

from neurocredit.encoders import encode_torch
from neurocredit.errors import NeurocreditError
from neurocredit.network import LIFParameters
from neurocredit.neurons import LIFState, delayed_step, lif_step
from neurocredit.rules.base import Rule, one_hot
from neurocredit.rules.chl import SpikingCHLOptions, layer_scales, phase_weights
from neurocredit.rules.chl_rate import CHLFeedback, downward, upward
from neurocredit.rules.chl_traces import (
    TraceParameters,
    TraceState,
    chl_trace_step,
    eligibility_shape,
    layer_product,
    trace_decay_step,
    trace_initial_state,
)
from neurocredit.rules.spiking import PREDICT_SEED


class SpikingState(NamedTuple):
    """LIF states per layer and what every population emitted at the previous step
    (``emitted[0]`` = input, ``emitted[i]`` = layer i), each (batch, n)."""

    neurons: list
    emitted: list


def spiking_initial_state(sizes: Sequence[int], batch: int, dtype, device, copies: int = 1) -> SpikingState:
    """The network at rest: ``copies`` copies of ``batch`` samples (``copies * batch`` rows) that
    share one input (``emitted[0]`` has ``batch`` rows; see :func:`spiking_settle_step`)."""
    def zeros(rows, n):
        return torch.zeros(rows, n, dtype=dtype, device=device)

    rows = copies * batch
    return SpikingState([LIFState(zeros(rows, n), zeros(rows, n)) for n in sizes[1:]],
                        [zeros(batch, sizes[0])] + [zeros(rows, n) for n in sizes[1:]])


def spiking_settle_step(
    params: LIFParameters, weights, biases, feedback, gain: float, state: SpikingState, input_spikes: torch.Tensor,
    teaching: Optional[torch.Tensor] = None, copies: int = 1, layers: Optional[Sequence[Any]] = None,
) -> SpikingState:
    """One LIF step of the network with feedback (module doc): every connection delivers what
    its source emitted at the previous step; ``teaching`` (batch, n_out) is added to the
    output's input current (already computed from the previous output spikes). ``copies`` > 1:
    the neurons hold ``copies`` stacked copies of the batch that see the same input
    (``input_spikes`` has the batch's rows only), so the input product is computed once.
    ``layers``: the layer specs of a network with Conv2d layers (fused weights, per-neuron
    biases; feedback through the transposed convolution), None for a dense one."""
    last = len(weights) - 1

    def population(index: int):
        def step(neuron: LIFState, previous: Sequence[torch.Tensor]):
            current = upward(layers, index, weights[index], previous[index])
            if index == 0 and copies > 1:
                current = current.repeat(copies, 1)
            if index < last:
                current = current + gain * downward(layers, index, feedback[index], previous[index + 2])
            elif teaching is not None:
                current = current + teaching
            return lif_step(params, neuron, current, biases[index])

        return step

    return SpikingState(*delayed_step([population(index) for index in range(len(weights))], state.neurons,
                                      state.emitted, input_spikes))


class SpikingCHL(CHLFeedback, Rule):
    """STDP-style spiking CHL on canonical LIF neurons (:mod:`neurocredit.rules.chl`)."""

    name = "chl"
    Options = SpikingCHLOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.spec.neuron.spiking:
            raise NeurocreditError("rule chl (lif) needs a lif network")
        options = self.options
        self.params = self.spec.neuron.lif
        self.trace_params = TraceParameters(options.trace_decay, options.trace_decay)
        self.init_feedback()
        self.scales = layer_scales(len(self.weights), options.feedback_gain)
        self.products = [layer_product(layer) for layer in self.spec.layers]
        self.free_weights, self.nudged_weights = (torch.tensor(w, dtype=self.dtype) for w in phase_weights(
            options.free_steps, options.free_settle, options.nudged_steps, options.nudged_settle))

    def _run(self, features: torch.Tensor, state: SpikingState, traces: list, steps: int, weights_per_step,
             betas: Optional[torch.Tensor], target_rates: Optional[torch.Tensor], generator, copies: int = 1,
             on_step: Optional[Callable[[SpikingState], None]] = None):
        """Run ``steps`` steps of ``copies`` copies of the batch that share one input train (state
        and traces made with the same ``copies``); ``weights_per_step[t]`` is the phase weight
        (copies * batch,) tensor of step t; ``on_step(state)`` sees the state after every step.
        Returns the state, traces and the output spike counts."""
        weights, biases = self.synaptic_parameters()
        feedback = self.feedback(weights)
        gain = self.options.feedback_gain
        counts = torch.zeros_like(state.emitted[-1])
        for t in range(steps):
            spikes_in = encode_torch(self.spec.encoder, features, 1, generator, start=t, window=self.spec.encoder.steps)[0]
            teaching = None if betas is None else betas[:, None] * (target_rates - state.emitted[-1])
            state = spiking_settle_step(self.params, weights, biases, feedback, gain, state,
                                        spikes_in, teaching, copies, self.spec.layers)
            counts += state.emitted[-1]
            if on_step is not None:
                on_step(state)
            phase = weights_per_step[t]
            if traces is not None:
                if bool((phase != 0).any()):
                    traces = [chl_trace_step(self.trace_params, trace, state.emitted[i], state.emitted[i + 1], phase,
                                             copies if i == 0 else 1, self.products[i])
                              for i, trace in enumerate(traces)]
                else:
                    traces = [trace_decay_step(self.trace_params, trace, state.emitted[i], state.emitted[i + 1])
                              for i, trace in enumerate(traces)]
        return state, traces, counts

    def _fresh_traces(self, batch: int, copies: int = 1) -> list[TraceState]:
        """Zero traces for ``copies`` copies of ``batch`` samples sharing one input train."""
        sizes, layers = self.spec.sizes, self.spec.layers
        like = self.weights[0]
        return [trace_initial_state(batch if i == 0 else copies * batch, sizes[i], sizes[i + 1], like,
                                    copies if i == 0 else 1, eligibility_shape(layer, sizes[i], sizes[i + 1]))
                for i, layer in enumerate(layers)]

    def _side_by_side_schedule(self, batch: int) -> tuple[int, torch.Tensor, torch.Tensor]:
        """Two copies of the batch side by side on the same input train, free (or -β) then +β:
        both phases from rest (``nudged_start: rest``), or the ±β phases after a shared free
        phase (``free_state`` with ``nudge: symmetric``). Returns the steps, the phase weight per
        step and copy (steps, 2 batch) and the teaching gain per copy (2 batch,)."""
        o = self.options
        free_w, nudged_w = self.free_weights, self.nudged_weights
        steps = o.nudged_steps
        first_w, first_beta = (-nudged_w, -o.beta) if o.nudge == "symmetric" else (free_w, 0.0)
        per_step = torch.cat([first_w[:, None].expand(steps, batch), nudged_w[:, None].expand(steps, batch)], 1)
        betas = torch.cat([torch.full((batch,), first_beta), torch.full((batch,), o.beta)]).to(self.dtype)
        return steps, per_step, betas

    @torch.no_grad()
    def phase_spike_trains(self, features: torch.Tensor, labels: torch.Tensor,
                           seed: int = PREDICT_SEED) -> tuple[list[np.ndarray], np.ndarray]:
        """The spikes of one training run of the two phases (``nudged_start: rest`` only), without
        updating anything: per population (input, hidden..., output) a 0/1 array (steps, 2 batch, n),
        free (or -β) copies first, and the phase weight per step and copy (steps, 2 batch), float64.
        Replaying them through :func:`replay_eligibility` gives the eligibilities of that run;
        ``chl_brian2.eligibility`` gives the same from Brian2 synapses."""
        if self.options.nudged_start != "rest":
            raise NeurocreditError("phase_spike_trains needs rule.nudged_start: rest (both phases from rest "
                                   f"side by side); this rule uses {self.options.nudged_start!r}")
        features = features.to(self.dtype)
        batch = features.shape[0]
        steps, per_step, betas = self._side_by_side_schedule(batch)
        target_rates = self.options.target_rate * one_hot(labels, self.n_classes, self.dtype)
        recorded: list[list[np.ndarray]] = [[] for _ in self.spec.sizes]

        def record(state: SpikingState) -> None:
            shared_input = state.emitted[0].repeat(2, 1)  # both copies saw it
            for population, spikes in zip(recorded, [shared_input, *state.emitted[1:]]):
                population.append(spikes.cpu().numpy().astype(np.float64))

        generator = torch.Generator(device="cpu").manual_seed(seed)
        state = spiking_initial_state(self.spec.sizes, batch, self.dtype, self.device, copies=2)
        self._run(features, state, None, steps, per_step, betas, target_rates.repeat(2, 1), generator, copies=2,
                  on_step=record)
        return [np.stack(population) for population in recorded], per_step.cpu().numpy().astype(np.float64)

    @torch.no_grad()
    def train_batch(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        o = self.options
        features = features.to(self.dtype)
        batch = features.shape[0]
        sizes = self.spec.sizes
        target_rates = o.target_rate * one_hot(labels, self.n_classes, self.dtype)
        symmetric = o.nudge == "symmetric"
        if o.nudged_start == "rest":
            steps, per_step, betas = self._side_by_side_schedule(batch)
            state = spiking_initial_state(sizes, batch, self.dtype, self.device, copies=2)
            traces = self._fresh_traces(batch, copies=2)
            _, traces, counts = self._run(features, state, traces, steps, per_step, betas,
                                          target_rates.repeat(2, 1), self.generator, copies=2)
            free_counts = counts[:batch]
        else:
            state = spiking_initial_state(sizes, batch, self.dtype, self.device)
            traces = self._fresh_traces(batch)
            if symmetric:  # the free phase only settles; the update compares +β with -β
                weights = torch.zeros(o.free_steps, batch, dtype=self.dtype)
            else:
                weights = self.free_weights[:, None].expand(o.free_steps, batch)
            state, traces, free_counts = self._run(features, state, traces, o.free_steps, weights, None, None,
                                                   self.generator)
            if symmetric:
                # the -β and +β copies share the input (emitted[0] and the first pre trace stay single)
                state = SpikingState([LIFState(n.synaptic_current.repeat(2, 1), n.membrane_voltage.repeat(2, 1))
                                      for n in state.neurons],
                                     [state.emitted[0]] + [e.repeat(2, 1) for e in state.emitted[1:]])
                traces = [TraceState(tr.pre_trace if i == 0 else tr.pre_trace.repeat(2, 1), tr.post_trace.repeat(2, 1),
                                     tr.eligibility, tr.post_eligibility) for i, tr in enumerate(traces)]
                steps, per_step, betas = self._side_by_side_schedule(batch)
                _, traces, _ = self._run(features, state, traces, steps, per_step, betas,
                                         target_rates.repeat(2, 1), self.generator, copies=2)
            else:
                per_step = self.nudged_weights[:, None].expand(o.nudged_steps, batch)
                betas = torch.full((batch,), o.beta, dtype=self.dtype)
                _, traces, _ = self._run(features, state, traces, o.nudged_steps, per_step, betas, target_rates,
                                         self.generator)
        denominator = (2.0 if symmetric else 1.0) * o.beta
        weight_grads, bias_grads = [], []
        for scale, trace in zip(self.scales, traces):
            factor = -scale / (denominator * batch)
            weight_grads.append(factor * trace.eligibility / self.trace_params.pair_window)
            bias_grads.append(factor * trace.post_eligibility if o.learn_bias
                              else torch.zeros_like(trace.post_eligibility))
        self.apply_gradients(self.trainable_gradients(weight_grads, bias_grads))
        rates = free_counts / o.free_steps
        return float(0.5 * ((rates - target_rates) ** 2).sum(dim=1).mean())

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Output spike counts of the free phase (with feedback) over ``free_steps`` steps; the
        encoder is seeded the same at every call. The saved network is evaluated feed-forward."""
        features = features.to(self.dtype)
        generator = torch.Generator(device="cpu").manual_seed(PREDICT_SEED)
        state = spiking_initial_state(self.spec.sizes, features.shape[0], self.dtype, self.device)
        zeros = torch.zeros(self.options.free_steps, features.shape[0], dtype=self.dtype)
        _, _, counts = self._run(features, state, None, self.options.free_steps, zeros, None, None, generator)
        return counts
