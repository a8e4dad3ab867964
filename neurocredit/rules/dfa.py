"""Direct feedback alignment (Nøkland 2016).

Rate networks, layers ``a_i = W_i h_{i-1} + b_i``, ``h_i = f(a_i)``, linear output ``a_N``::

    e      = softmax(a_N) - onehot(y)                 # output error, (batch, classes)
    δ_N    = e
    δ_i    = (e B_iᵀ) ⊙ f'(a_i)                       # B_i: fixed random (n_i, classes)
    ΔW_i   = -η mean_batch(δ_i h_{i-1}ᵀ),  Δb_i = -η mean_batch(δ_i)

No autograd, no weight transport, no backward locking: a layer's update uses only its own
input ``h_{i-1}``, its own pre-activation ``a_i`` and the projected error. The mean updates
are handed to the optimizer (Adam or SGD) as gradients. The feedback matrices are saved with
the network as ``extras['dfa/feedback_<i>']`` (1-based hidden layer index).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from neurocredit.errors import NeurocreditError
from neurocredit.neurons import activation_derivative
from neurocredit.rules.base import RateRule, one_hot
from neurocredit.rules.spiking import (
    SURROGATES,
    SpikingRule,
    accumulate_voltage_surrogate,
    block_currents,
    delayed_trace_weights,
    run_layer_block,
    zero_states,
)


@dataclass(frozen=True)
class DFAOptions:
    """feedback_init: ``uniform`` (U(-1/sqrt(classes), +1/sqrt(classes))) or ``gaussian``
    (N(0, 1/classes)); feedback_scale multiplies it; feedback_seed seeds the matrices
    (independent of the weight seed so the same B can be kept across runs)."""

    feedback_init: str = "uniform"
    feedback_scale: float = 1.0
    feedback_seed: int = 1234

    def __post_init__(self) -> None:
        if self.feedback_init not in ("uniform", "gaussian"):
            raise NeurocreditError(f"rule.feedback_init must be uniform or gaussian, got {self.feedback_init!r}")


def make_feedback(sizes: list[int], n_classes: int, options: DFAOptions) -> list[np.ndarray]:
    """One fixed random matrix (n_i, n_classes) per hidden layer width in ``sizes``."""
    rng = np.random.default_rng(options.feedback_seed)
    matrices = []
    for width in sizes:
        if options.feedback_init == "uniform":
            bound = options.feedback_scale / np.sqrt(n_classes)
            matrix = rng.uniform(-bound, bound, size=(width, n_classes))
        else:
            matrix = rng.normal(0.0, options.feedback_scale / np.sqrt(n_classes), size=(width, n_classes))
        matrices.append(matrix.astype(np.float32))
    return matrices


def feedback_from_network(network, n_classes: int, options: DFAOptions) -> list[np.ndarray]:
    """The saved feedback matrices of ``network`` if it has them, else fresh ones."""
    hidden = [layer.n_out for layer in network.layers[:-1]]
    saved = [network.extras.get(f"dfa/feedback_{i + 1}") for i in range(len(hidden))]
    if all(m is not None and m.shape == (w, n_classes) for m, w in zip(saved, hidden)):
        return [np.asarray(m, dtype=np.float32) for m in saved]
    return make_feedback(hidden, n_classes, options)


class RateDFA(RateRule):
    """DFA for rate networks (module doc)."""

    name = "dfa"
    Options = DFAOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.feedback = [
            torch.tensor(m, device=self.device)
            for m in feedback_from_network(self.spec, self.n_classes, self.options)
        ]

    @torch.no_grad()
    def train_batch(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        pre_activations, activities = self.forward(features)
        logits = activities[-1]
        probabilities = torch.softmax(logits, dim=1)
        error = probabilities - one_hot(labels, self.n_classes, logits.dtype)
        loss = float(torch.nn.functional.cross_entropy(logits, labels))
        inputs = [features] + activities[:-1]
        weight_updates, bias_updates = [], []
        error = error / features.shape[0]  # batch mean, applied to the small factor
        for index in range(len(self.weights)):
            if index == len(self.weights) - 1:
                delta = error
            else:
                delta = (error @ self.feedback[index].T) * activation_derivative(
                    self.spec.neuron.activation, pre_activations[index], activities[index]
                )
            weight_updates.append(delta.T @ inputs[index])
            bias_updates.append(delta.sum(dim=0))
        self.apply_gradients(weight_updates + bias_updates)
        return loss

    def extras(self) -> dict[str, np.ndarray]:
        return {f"dfa/feedback_{i + 1}": m.cpu().numpy() for i, m in enumerate(self.feedback)}


RULES = {"rate": RateDFA}


@dataclass(frozen=True)
class SpikingDFAOptions(DFAOptions):
    """Knobs of the online spiking DFA (see :class:`SpikingDFA`).

    error: ``rate`` (``e = r - target_rate * onehot(y)``, r = output spike rate per step: the
    eRBP-style rate error; the correct output is pulled toward ``target_rate`` spikes per step,
    below saturation, the others toward silence) or ``softmax`` (``e = softmax(error_scale * r)
    - onehot(y)``). With ``softmax`` the outputs saturate (one spike every step) and ties between
    saturated outputs cost accuracy under the argmax-of-counts readout (measured on
    Fashion-MNIST: ~10 % of test samples tied at T=25 vs ~4 % with ``rate``), so ``rate`` is
    the default.
    surrogate / surrogate_width: the function of the pre-reset membrane voltage that replaces
    f' (``boxcar``, ``triangle``, ``fast_sigmoid``; half-width in units of vth).
    trace_decay: decay per step of the presynaptic traces (None: the neuron's du, so the trace is
    the synaptic filter itself; 1: the trace is the spike train).
    output_surrogate: multiply the output error by the output layer's surrogate too (off: the
    output layer learns from ``e`` directly, as in rate DFA).
    block_steps: time steps simulated per block (memory grows with it, not with T).
    """

    error: str = "rate"
    error_scale: float = 10.0
    target_rate: float = 0.7
    surrogate: str = "triangle"
    surrogate_width: float = 1.0
    trace_decay: Optional[float] = None
    output_surrogate: bool = False
    block_steps: int = 25

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.error not in ("softmax", "rate"):
            raise NeurocreditError(f"rule.error must be softmax or rate, got {self.error!r}")
        if self.surrogate not in SURROGATES:
            raise NeurocreditError(f"rule.surrogate must be one of {', '.join(SURROGATES)}, got {self.surrogate!r}")
        if not self.surrogate_width > 0:
            raise NeurocreditError(f"rule.surrogate_width must be > 0, got {self.surrogate_width}")
        if self.trace_decay is not None and not 0.0 <= self.trace_decay <= 1.0:
            raise NeurocreditError(f"rule.trace_decay must be in [0, 1] (or null for du), got {self.trace_decay}")
        if not 0.0 < self.target_rate <= 1.0:
            raise NeurocreditError(f"rule.target_rate must be in (0, 1] spikes per step, got {self.target_rate}")
        if self.block_steps < 1:
            raise NeurocreditError(f"rule.block_steps must be >= 1, got {self.block_steps}")
        if not self.error_scale > 0:
            raise NeurocreditError(f"rule.error_scale must be > 0, got {self.error_scale}")


def output_error(options: SpikingDFAOptions, rates: torch.Tensor, labels: torch.Tensor, n_classes: int):
    """``(e, loss)`` for output spike rates (batch, classes) in spikes per step (options doc)."""
    target = one_hot(labels, n_classes, rates.dtype)
    if options.error == "softmax":
        logits = options.error_scale * rates
        error = torch.softmax(logits, dim=1) - target
        loss = float(torch.nn.functional.cross_entropy(logits, labels))
    else:
        error = rates - options.target_rate * target
        loss = float(0.5 * error.square().sum(dim=1).mean())
    return error, loss


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
        widths = [w.shape[0] for w in self.weights]
        zeros = lambda n: torch.zeros(batch, n, dtype=self.dtype, device=self.device)  # noqa: E731
        states = zero_states(widths, batch, self.dtype, self.device)
        carries = [zeros(n) for n in widths]
        traces = [zeros(w.shape[1]) for w in self.weights]
        surrogates = [zeros(n) for n in widths]
        counts = [zeros(n) for n in widths]
        options, vth = self.options, self.params.vth
        for start in range(0, steps, self.block_steps):
            block_steps = min(self.block_steps, steps - start)
            source = self.encode(features, block_steps)
            trace_weights = self.trace_weights[start : start + block_steps]
            for index, (weight, bias) in enumerate(zip(self.weights, self.biases)):
                traces[index] += torch.einsum("t,tbn->bn", trace_weights, source)
                on_step = None
                if index < len(widths) - 1 or options.output_surrogate:
                    on_step = functools.partial(accumulate_voltage_surrogate, surrogates[index], options.surrogate,
                                                vth, options.surrogate_width)
                currents = block_currents(source, weight)
                states[index], source, carries[index] = run_layer_block(
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
        weight_updates, bias_updates = [], []
        last_layer = len(self.weights) - 1
        for index in range(len(self.weights)):
            if index == last_layer:
                delta = error * (surrogates[index] / steps) if self.options.output_surrogate else error
            else:
                delta = (error @ self.feedback[index].T) * (surrogates[index] / steps)
            weight_updates.append(delta.T @ (traces[index] / steps) / batch)
            bias_updates.append(delta.mean(dim=0))
        self.apply_gradients(weight_updates + bias_updates)
        return loss

    def extras(self) -> dict[str, np.ndarray]:
        return {f"dfa/feedback_{i + 1}": m.cpu().numpy() for i, m in enumerate(self.feedback)}


RULES["lif"] = SpikingDFA
