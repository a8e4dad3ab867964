"""Backpropagation baselines (the yardstick, not the product's rules).

* ``rate``: plain backpropagation through the rate network, softmax cross-entropy.
* ``lif``: backpropagation through time with a surrogate gradient through the spike threshold,
  through the canonical LIF network written with Norse's own step function
  (``norse.torch.functional.lif.lif_feed_forward_step`` and its threshold surrogates), with the
  canonical one-step Dense delay per layer. Autograd keeps every step: memory grows with T.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from neurocredit.errors import NeurocreditError
from neurocredit.network import LIFParameters
from neurocredit.rules.base import RateRule
from neurocredit.rules.spiking import SpikingRule, block_currents

NORSE_SURROGATES = ("super", "tanh", "triangle", "circ", "heavi_erfc")


class Backprop(RateRule):
    """Backpropagation (autograd) through a rate network; softmax cross-entropy on the logits."""

    name = "bp"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for parameter in self.parameters():
            parameter.requires_grad_(True)

    def train_batch(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        logits = self.forward(features)[1][-1]
        loss = torch.nn.functional.cross_entropy(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


RULES = {"rate": Backprop}


@dataclass(frozen=True)
class BPTTOptions:
    """surrogate: Norse's threshold method whose derivative replaces the step's (``super``:
    SuperSpike ``1/(|v - vth| + 1)^2``, whose backward in Norse 1.1 ignores alpha; ``tanh``,
    ``triangle``, ``circ``, ``heavi_erfc`` with sharpness ``surrogate_alpha``). loss_scale: the
    logits of the cross-entropy are ``loss_scale * output spike rate`` (spikes per step), the
    quantity the readout takes the argmax of."""

    surrogate: str = "super"
    surrogate_alpha: float = 2.0
    loss_scale: float = 10.0

    def __post_init__(self) -> None:
        if self.surrogate not in NORSE_SURROGATES:
            raise NeurocreditError(
                f"rule.surrogate must be one of {', '.join(NORSE_SURROGATES)} (Norse threshold methods), "
                f"got {self.surrogate!r}"
            )
        if not self.surrogate_alpha > 0:
            raise NeurocreditError(f"rule.surrogate_alpha must be > 0, got {self.surrogate_alpha}")
        if not self.loss_scale > 0:
            raise NeurocreditError(f"rule.loss_scale must be > 0, got {self.loss_scale}")


def norse_forward(
    weights: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor],
    params: LIFParameters,
    input_spikes: torch.Tensor,
    surrogate: str = "super",
    alpha: float = 2.0,
) -> list[torch.Tensor]:
    """Spike trains (steps, batch, n) of every layer, differentiable through the surrogate.

    The canonical LIF in Norse's parametrization (as in :mod:`neurocredit.sim.norse_backend`):
    ``tau_syn_inv = du``, ``tau_mem_inv = dv``, input current ``W s / dv``, ``v_leak = bias / dv``,
    ``v_reset = 0``, ``dt = 1``; states start at 0. Layer by layer over the whole sequence: the
    input currents of a layer are one matrix product over all steps of its delayed input.
    """
    from norse.torch.functional.lif import LIFFeedForwardState, lif_feed_forward_step
    from norse.torch.functional.lif import LIFParameters as NorseLIFParameters

    if params.dv <= 0:
        raise NeurocreditError("BPTT through Norse needs a voltage decay dv > 0 (network.neuron.dv)")
    steps, batch, _ = input_spikes.shape
    dtype, device = input_spikes.dtype, input_spikes.device
    source = input_spikes
    layers = []
    for weight, bias in zip(weights, biases):
        # W s[t] / dv for every step; the layer receives step t-1's at step t (the Dense delay)
        currents = (block_currents(source, weight) / params.dv).unbind(0)
        norse_params = NorseLIFParameters(
            tau_syn_inv=torch.as_tensor(params.du, dtype=dtype, device=device),
            tau_mem_inv=torch.as_tensor(params.dv, dtype=dtype, device=device),
            v_leak=bias / params.dv,
            v_th=torch.as_tensor(params.vth, dtype=dtype, device=device),
            v_reset=torch.as_tensor(0.0, dtype=dtype, device=device),
            method=surrogate,
            alpha=alpha,
        )
        zeros = torch.zeros(batch, weight.shape[0], dtype=dtype, device=device)
        state = LIFFeedForwardState(v=zeros, i=zeros)
        spikes = []
        for t in range(steps):
            delivered = zeros if t == 0 else currents[t - 1]
            z, state = lif_feed_forward_step(delivered, state, norse_params, dt=1.0)
            spikes.append(z)
        source = torch.stack(spikes)
        layers.append(source)
    return layers


class SurrogateBPTT(SpikingRule):
    """BPTT with a surrogate gradient through a Norse LIF network (module doc): cross-entropy
    on the scaled output spike rate, autograd through all T steps and all layers."""

    name = "bp"
    Options = BPTTOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for parameter in self.parameters():
            parameter.requires_grad_(True)

    def train_batch(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        steps = self.encoder.steps
        inputs = self.encode(features, steps)
        output = norse_forward(self.weights, self.biases, self.params, inputs,
                               self.options.surrogate, self.options.surrogate_alpha)[-1]
        logits = self.options.loss_scale * output.sum(dim=0) / steps
        loss = torch.nn.functional.cross_entropy(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


RULES["lif"] = SurrogateBPTT
