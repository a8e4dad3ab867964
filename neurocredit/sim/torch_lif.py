"""Batched torch simulation of the canonical LIF network, for rules during training.

Exactly the dynamics and timing of :func:`neurocredit.neurons.run_lif_network` (Lava's one-step
Dense delay per layer), in the rule's dtype and device, with an optional per-step callback so
online rules can update eligibility traces without storing the time history.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch

from neurocredit.network import LIFParameters
from neurocredit.neurons import LIFState, lif_step

StepCallback = Callable[[int, list[torch.Tensor], list[LIFState], list[torch.Tensor]], None]


@torch.no_grad()
def run_counts(
    weights: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor],
    params: LIFParameters,
    input_spikes: torch.Tensor,
    on_step: Optional[StepCallback] = None,
) -> list[torch.Tensor]:
    """Spike counts per layer, each (batch, n), for ``input_spikes`` (steps, batch, n_inputs).

    ``on_step(t, sources, states, spikes)`` is called after every step with the inputs each
    layer received this step (``sources[i]`` = what population i-1 emitted at t-1), the new
    states and the new spikes.
    """
    steps, batch, n_inputs = input_spikes.shape
    dtype, device = input_spikes.dtype, input_spikes.device
    states = [
        LIFState(torch.zeros(batch, w.shape[0], dtype=dtype, device=device),
                 torch.zeros(batch, w.shape[0], dtype=dtype, device=device))
        for w in weights
    ]
    previous = [torch.zeros(batch, n_inputs, dtype=dtype, device=device)] + [
        torch.zeros(batch, w.shape[0], dtype=dtype, device=device) for w in weights
    ]
    counts = [torch.zeros(batch, w.shape[0], dtype=dtype, device=device) for w in weights]
    for t in range(steps):
        sources = previous
        emitted = [input_spikes[t]]
        for index, (weight, bias) in enumerate(zip(weights, biases)):
            states[index], spikes = lif_step(params, states[index], sources[index] @ weight.T, bias)
            counts[index] += spikes
            emitted.append(spikes)
        if on_step is not None:
            on_step(t, sources, states, emitted[1:])
        previous = emitted
    return counts
