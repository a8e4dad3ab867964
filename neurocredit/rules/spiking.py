"""What the spiking (``lif``) rules share: training-time input, the canonical LIF network run
layer by layer over blocks of time steps, voltage surrogates, and the output-count readout.

Dynamics are exactly :func:`neurocredit.neurons.lif_step` with Lava's one-step Dense delay
(layer ``i`` receives ``W_i s_{i-1}[t-1]``, ``s_0`` the encoded input), the model that
``neurocredit eval`` runs through the ``norse`` backend. Because the network is feed-forward,
a block of ``C`` steps can be simulated one layer at a time: the whole block's input currents
of a layer are one matrix product ``(C*batch, n_in) @ W.T``, then the layer's neurons step
through the block, and their spikes, shifted by one step (the delay), are the next layer's
input. This gives the same spikes as stepping all layers together (up to float rounding of the
larger product) and is 2-3x faster on a CPU. Only the current block is held in memory, so
memory does not grow with the number of steps ``T``.

The output of a spiking network is its output layer's spike counts; the class is their argmax
(:mod:`neurocredit.readout`).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence

import torch

from neurocredit.encoders import encode_torch
from neurocredit.errors import NeurocreditError
from neurocredit.network import EncoderSpec, LIFParameters
from neurocredit.neurons import LIFState, lif_step
from neurocredit.rules.base import Rule

SURROGATES = ("boxcar", "triangle", "fast_sigmoid")
PREDICT_SEED = 12345  # seed of the (training-time) encoder used for per-epoch accuracy


def lif_step_with_voltage(params: LIFParameters, state: LIFState, input_current, bias):
    """:func:`lif_step` that also returns the voltage *before* threshold and reset, (batch, n).

    The voltage is recomputed with the same operations in the same order as inside
    :func:`lif_step`, so it is bit for bit the value that was compared with ``vth``.
    """
    new_state, spikes = lif_step(params, state, input_current, bias)
    voltage = state.membrane_voltage * (1.0 - params.dv) + new_state.synaptic_current + bias
    return new_state, spikes, voltage


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
    raise NeurocreditError(f"unknown surrogate {kind!r}; choose one of {', '.join(SURROGATES)}")


def delayed(block: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """The input a Dense connection delivers during ``block`` (steps, batch, n): the source's
    spikes one step late, ``last`` being what it emitted just before the block."""
    return torch.cat([last.unsqueeze(0), block[:-1]], dim=0)


def trace_weights(steps: int, decay: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """``a_k`` such that ``sum_t trace[t] = sum_k a_k x[k]`` for the filtered trace
    ``trace[t] = (1 - decay) trace[t-1] + x[t]`` over ``steps`` steps:
    ``a_k = sum_{j=0}^{steps-1-k} (1 - decay)^j``. Shape (steps,)."""
    remaining = torch.arange(steps, 0, -1, dtype=torch.float64)  # steps - k
    keep = 1.0 - float(decay)
    if keep <= 0.0:
        weights = torch.ones(steps, dtype=torch.float64)
    elif keep >= 1.0:
        weights = remaining
    else:
        weights = (1.0 - keep ** remaining) / (1.0 - keep)
    return weights.to(dtype=dtype, device=device)


class BlockResult(NamedTuple):
    """What one layer produced during one block: spikes and pre-reset voltages (steps, batch, n)."""

    spikes: torch.Tensor
    voltages: torch.Tensor


def run_layer_block(
    params: LIFParameters, state: LIFState, currents: torch.Tensor, bias: torch.Tensor
) -> tuple[LIFState, BlockResult]:
    """Step one LIF population through a block of input currents (steps, batch, n)."""
    spikes = torch.empty_like(currents)
    voltages = torch.empty_like(currents)
    for t in range(currents.shape[0]):
        state, spikes[t], voltages[t] = lif_step_with_voltage(params, state, currents[t], bias)
    return state, BlockResult(spikes, voltages)


def zero_states(widths: Sequence[int], batch: int, dtype, device) -> list[LIFState]:
    return [
        LIFState(torch.zeros(batch, n, dtype=dtype, device=device), torch.zeros(batch, n, dtype=dtype, device=device))
        for n in widths
    ]


@torch.no_grad()
def output_counts(
    weights: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor],
    params: LIFParameters,
    encoder: EncoderSpec,
    features: torch.Tensor,
    block_steps: int,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Output-layer spike counts (batch, n_out) of the canonical network on ``features``,
    simulated in blocks of ``block_steps`` steps with training-time encoding."""
    batch = features.shape[0]
    widths = [w.shape[0] for w in weights]
    states = zero_states(widths, batch, features.dtype, features.device)
    last = [torch.zeros(batch, w.shape[1], dtype=features.dtype, device=features.device) for w in weights]
    counts = torch.zeros(batch, widths[-1], dtype=features.dtype, device=features.device)
    for start in range(0, encoder.steps, block_steps):
        steps = min(block_steps, encoder.steps - start)
        source = encode_torch(encoder, features, steps, generator)
        for index, (weight, bias) in enumerate(zip(weights, biases)):
            delivered = delayed(source, last[index])
            last[index] = source[-1]
            currents = (delivered.reshape(-1, weight.shape[1]) @ weight.T).view(steps, batch, -1)
            states[index], block = run_layer_block(params, states[index], currents, bias)
            source = block.spikes
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
        generator = torch.Generator(device="cpu").manual_seed(PREDICT_SEED)
        return output_counts(self.weights, self.biases, self.params, self.encoder, features.to(self.dtype),
                             self.block_steps, generator)
