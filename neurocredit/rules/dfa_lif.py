"""Online spiking DFA for canonical LIF networks (:class:`SpikingDFA`; the rule's spec is
:mod:`neurocredit.rules.dfa`)."""

from __future__ import annotations

import functools

import numpy as np
import torch

from neurocredit.neurons import lif_block
from neurocredit.rules.base import one_hot
from neurocredit.rules.dfa import SpikingDFAOptions, feedback_from_network
from neurocredit.rules.dfa_rate import output_error as softmax_error
from neurocredit.rules.spiking import (
    SpikingRule,
    accumulate_voltage_surrogate,
    block_currents,
    delayed_trace_weights,
    zero_states,
)


def output_error(options: SpikingDFAOptions, rates: torch.Tensor, labels: torch.Tensor, n_classes: int):
    """``(e, loss)`` for output spike rates (batch, classes) in spikes per step (options doc)."""
    if options.error == "softmax":
        return softmax_error(options.error_scale * rates, labels, n_classes)
    error = rates - options.target_rate * one_hot(labels, n_classes, rates.dtype)
    return error, float(0.5 * error.square().sum(dim=1).mean())


class SpikingDFA(SpikingRule):
    """Online direct feedback alignment for canonical LIF networks, one update per presentation.

    Per sample, during the T steps of one presentation (no history kept, only running sums)::

        x_{i-1}[t] = (1 - λ) x_{i-1}[t-1] + s_{i-1}[t-1]    # presynaptic trace of layer i's input
        X_{i-1}   += x_{i-1}[t]                              # its running sum
        G_i       += g(v_i[t])                              # voltage surrogate, pre-reset voltage
        C_i       += s_i[t]                                 # spike counts

    At the end of the window, with ``r = C_N / T`` the output rate and ``e`` the output error
    (:class:`SpikingDFAOptions`)::

        δ_N = e   (⊙ G_N / T with output_surrogate)
        δ_i = (e B_iᵀ) ⊙ G_i / T                            # B_i fixed random (n_i, classes)
        ΔW_i = -η mean_batch(δ_i (X_{i-1} / T)ᵀ),  Δb_i = -η mean_batch(δ_i)

    Conv layers: ``B_i`` projects ``e`` onto every neuron of the C x H x W maps (shape (C*H*W,
    classes)); the shared kernel's update is the sum over output positions of ``δ_i`` times the
    input patch's mean trace (one ``conv2d_weight`` correlation per layer and batch,
    :meth:`neurocredit.rules.base.Rule.local_gradients`); a channel's bias sums ``δ_i`` over
    positions.

    The sum over time of ``δ_i[t] x_{i-1}[t]ᵀ`` (per-step eRBP) is approximated by the product
    of the window averages, which costs one small matrix product per layer and batch. No
    autograd, no backpropagation through time, no weight transport; memory depends on the
    block size (``block_steps``), not on T. The sums of the traces are exact: they are
    computed in closed form per block (:func:`neurocredit.rules.spiking.delayed_trace_weights`).
    """

    name = "dfa"
    Options = SpikingDFAOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.block_steps = self.options.block_steps
        self.feedback = [
            torch.tensor(m, device=self.device)
            for m in feedback_from_network(self.spec, self.n_classes, self.options)
        ]
        decay = self.params.du if self.options.trace_decay is None else self.options.trace_decay
        self.trace_weights = delayed_trace_weights(self.encoder.steps, decay, self.dtype, self.device)

    @torch.no_grad()
    def window_sums(self, features: torch.Tensor):
        """Run one presentation; returns per layer the sums over time of (its input's trace,
        its voltage surrogate, its spikes), each (batch, n)."""
        steps, batch = self.encoder.steps, features.shape[0]
        layers = self.spec.layers
        weights, biases = self.synaptic_parameters()  # runnable (fused) weights, per-neuron biases
        widths = [layer.n_out for layer in layers]
        zeros = lambda n: torch.zeros(batch, n, dtype=self.dtype, device=self.device)  # noqa: E731
        states = zero_states(widths, batch, self.dtype, self.device)
        carries = [zeros(n) for n in widths]
        traces = [zeros(layer.n_in) for layer in layers]
        surrogates = [zeros(n) for n in widths]
        counts = [zeros(n) for n in widths]
        options, vth = self.options, self.params.vth
        for start in range(0, steps, self.block_steps):
            block_steps = min(self.block_steps, steps - start)
            source = self.encode(features, block_steps)
            trace_weights = self.trace_weights[start : start + block_steps]
            for index, (weight, bias) in enumerate(zip(weights, biases)):
                traces[index] += torch.einsum("t,tbn->bn", trace_weights, source)
                on_step = None
                if index < len(widths) - 1 or options.output_surrogate:
                    on_step = functools.partial(accumulate_voltage_surrogate, surrogates[index], options.surrogate,
                                                vth, options.surrogate_width)
                currents = block_currents(source, weight, layers[index])
                states[index], source, carries[index] = lif_block(
                    self.params, states[index], currents, carries[index], bias, on_step
                )
                counts[index] += source.sum(dim=0)
        return traces, surrogates, counts

    @torch.no_grad()
    def train_batch(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        features = features.to(self.dtype)
        steps, batch = self.encoder.steps, features.shape[0]
        traces, surrogates, counts = self.window_sums(features)
        error, loss = output_error(self.options, counts[-1] / steps, labels, self.n_classes)
        error = error / batch  # batch mean, applied to the small factor
        deltas = []
        last_layer = len(self.weights) - 1
        for index in range(len(self.weights)):
            if index == last_layer:
                deltas.append(error * (surrogates[index] / steps) if self.options.output_surrogate else error)
            else:
                deltas.append((error @ self.feedback[index].T) * (surrogates[index] / steps))
        self.apply_gradients(self.local_gradients(deltas, [trace / steps for trace in traces]))
        return loss

    def extras(self) -> dict[str, np.ndarray]:
        return {f"dfa/feedback_{i + 1}": m.cpu().numpy() for i, m in enumerate(self.feedback)}
