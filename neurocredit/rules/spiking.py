"""What the spiking (``lif``) rules share: training-time input, the canonical LIF network run
layer by layer over blocks of time steps, voltage surrogates, and the output-count readout.

Dynamics are exactly :func:`neurocredit.neurons.lif_step` with Lava's one-step Dense delay
(layer ``i`` receives ``W_i s_{i-1}[t-1]``, ``s_0`` the encoded input), the model that
``neurocredit eval`` runs through the ``norse`` backend. Because the network is feed-forward,
a block of ``C`` steps can be simulated one layer at a time: the whole block's input currents
of a layer are one matrix product ``(C*batch, n_in) @ W.T``, then the layer's neurons step
through the block, and their spikes, shifted by one step (the delay), are the next layer's
input. This gives the same spikes as stepping all layers together (up to float rounding of the
larger product), with one large product instead of ``C`` small ones (faster: see
benchmarks/RESULTS.md). Only the current block is held in memory, so
memory does not grow with the number of steps ``T`` (the carry between blocks is copied, so no
view keeps a finished block alive).

The output of a spiking network is its output layer's spike counts; the class is their argmax
(:mod:`neurocredit.readout`).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch

from neurocredit.encoders import encode_torch
from neurocredit.errors import NeurocreditError
from neurocredit.network import EncoderSpec, LIFParameters
from neurocredit.neurons import LIFState, lif_block
from neurocredit.rules.base import Rule
from neurocredit.rules.spec import VOLTAGE_SURROGATES

PREDICT_SEED = 12345  # seed of the (training-time) encoder used for per-epoch accuracy


def voltage_surrogate(kind: str, voltage: torch.Tensor, vth: float, width: float) -> torch.Tensor:
    """A function of the membrane voltage that stands in for f' (voltage units of ``vth``).

    With ``x = |v - vth| / (width * vth)`` (distance to threshold in units of the half-width):
    ``boxcar``: 1 for ``x < 1`` else 0 (eRBP, Neftci et al. 2017); ``triangle``: ``max(0, 1 - x)``;
    ``fast_sigmoid``: ``1 / (1 + x)^2`` (SuperSpike, Zenke & Ganguli 2018).
    """
    distance = (voltage - vth).abs() / (width * vth)
    if kind == "boxcar":
        return (distance < 1.0).to(voltage.dtype)
    if kind == "triangle":
        return (1.0 - distance).clamp(min=0.0)
    if kind == "fast_sigmoid":
        return (1.0 + distance).reciprocal().square()
    raise NeurocreditError(f"unknown surrogate {kind!r}; choose one of {', '.join(VOLTAGE_SURROGATES)}")


def add_voltage_surrogate(total: torch.Tensor, kind: str, voltage: torch.Tensor, vth: float, width: float) -> None:
    """``total += voltage_surrogate(kind, voltage, vth, width)``, in place, with fewer temporaries
    (``voltage`` is only read)."""
    distance = (voltage - vth).abs_()
    if kind == "boxcar":
        total.add_(distance < width * vth)
    else:
        total.add_(voltage_surrogate(kind, distance + vth, vth, width))


def accumulate_voltage_surrogate(total: torch.Tensor, kind: str, vth: float, width: float,
                                 voltage: torch.Tensor, current: torch.Tensor) -> None:
    """A :func:`neurocredit.neurons.lif_block` ``on_step`` callback (bind the first four arguments):
    ``total += voltage_surrogate(kind, voltage, vth, width)``; ``current`` is not used."""
    add_voltage_surrogate(total, kind, voltage, vth, width)


def delayed_trace_weights(steps: int, decay: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """``c_j`` such that ``sum_t trace[t] = sum_j c_j s[j]`` where ``trace[t] = (1 - decay)
    trace[t-1] + s[t-1]`` is the trace of what a Dense connection delivers (its source's spikes
    ``s``, one step late), over ``steps`` steps: ``c_j = sum_{i=0}^{steps-2-j} (1 - decay)^i``
    (0 for the last step, whose spikes arrive after the run). Shape (steps,)."""
    remaining = torch.arange(steps - 1, -1, -1, dtype=torch.float64)  # steps - 1 - j
    keep = 1.0 - float(decay)
    if keep <= 0.0:
        weights = (remaining > 0).to(torch.float64)
    elif keep >= 1.0:
        weights = remaining
    else:
        weights = (1.0 - keep ** remaining) / (1.0 - keep)
    return weights.to(dtype=dtype, device=device)


def zero_states(widths: Sequence[int], batch: int, dtype, device) -> list[LIFState]:
    return [
        LIFState(torch.zeros(batch, n, dtype=dtype, device=device), torch.zeros(batch, n, dtype=dtype, device=device))
        for n in widths
    ]


def block_currents(source: torch.Tensor, weight: torch.Tensor, layer: Any = None) -> torch.Tensor:
    """``W s[t]`` for every step of a block ``source`` (steps, batch, n_in): one matrix product
    (one ``conv2d`` over steps x batch images when ``layer`` is a Conv2d; a fused pool is run as
    sum pool then the pooled-form conv, :func:`neurocredit.conv.torch_synaptic_input`)."""
    steps, batch, n_in = source.shape
    if layer is not None and layer.kind == "conv2d":
        from neurocredit.conv import torch_synaptic_input

        return torch_synaptic_input(layer, weight, source.reshape(steps * batch, n_in), pooled=True).view(
            steps, batch, -1)
    return (source.reshape(steps * batch, n_in) @ weight.T).view(steps, batch, -1)


@torch.no_grad()
def output_counts(
    weights: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor],
    params: LIFParameters,
    encoder: EncoderSpec,
    features: torch.Tensor,
    block_steps: int,
    generator: Optional[torch.Generator] = None,
    layers: Optional[Sequence[Any]] = None,
) -> torch.Tensor:
    """Output-layer spike counts (batch, n_out) of the canonical network on ``features``,
    simulated in blocks of ``block_steps`` steps with training-time encoding. ``layers`` (the
    layer specs) are needed for Conv2d layers; ``biases`` are then per neuron."""
    batch = features.shape[0]
    widths = [w.shape[0] for w in weights] if layers is None else [layer.n_out for layer in layers]
    states = zero_states(widths, batch, features.dtype, features.device)
    carries = [torch.zeros(batch, n, dtype=features.dtype, device=features.device) for n in widths]
    counts = torch.zeros(batch, widths[-1], dtype=features.dtype, device=features.device)
    for start in range(0, encoder.steps, block_steps):
        steps = min(block_steps, encoder.steps - start)
        source = encode_torch(encoder, features, steps, generator)
        for index, (weight, bias) in enumerate(zip(weights, biases)):
            currents = block_currents(source, weight, None if layers is None else layers[index])
            states[index], source, carries[index] = lif_block(params, states[index], currents, carries[index], bias)
        counts += source.sum(dim=0)
    return counts


class SpikingRule(Rule):
    """Shared by rules for ``lif`` networks: training-time encoding and count prediction."""

    block_steps: int = 25

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.spec.neuron.spiking:
            raise NeurocreditError(f"rule {self.name!r} for lif networks got a {self.spec.neuron.kind} network")
        self.params = self.spec.neuron.lif
        self.encoder = self.spec.encoder

    def encode(self, features: torch.Tensor, steps: int) -> torch.Tensor:
        """Training input (steps, batch, n_in), from the rule's seeded generator."""
        return encode_torch(self.encoder, features.to(self.dtype), steps, self.generator)

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Output spike counts (batch, n_out); the encoder is seeded the same at every call."""
        return self.output_counts(features)

    @torch.no_grad()
    def output_counts(self, features: torch.Tensor) -> torch.Tensor:
        """:func:`output_counts` of the rule's current network (dense, conv or pooled layers) on
        ``features``, encoded from a generator seeded with ``PREDICT_SEED``."""
        generator = torch.Generator(device="cpu").manual_seed(PREDICT_SEED)
        weights, biases = self.synaptic_parameters()
        return output_counts(weights, biases, self.params, self.encoder, features.to(self.dtype),
                             self.block_steps, generator, self.spec.layers)
