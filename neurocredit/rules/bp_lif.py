"""BPTT with a surrogate gradient through the canonical LIF network in Norse (the spiking
baseline; spec: :mod:`neurocredit.rules.bp`)."""

from __future__ import annotations

from typing import Sequence

import torch

from neurocredit.network import LIFParameters
from neurocredit.rules.bp import BPTTOptions
from neurocredit.rules.spiking import SpikingRule, block_currents


def norse_forward(
    weights: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor],
    params: LIFParameters,
    input_spikes: torch.Tensor,
    surrogate: str = "super",
    alpha: float = 2.0,
    specs=None,
) -> list[torch.Tensor]:
    """Spike trains (steps, batch, n) of every layer, differentiable through the surrogate.

    The canonical LIF in Norse's parametrization
    (:func:`neurocredit.sim.norse_backend.norse_lif_parameters`, input current ``W s / dv``);
    states start at 0. Layer by layer over the whole sequence: the
    input currents of a layer are one matrix product over all steps of its delayed input (one
    ``conv2d`` for a Conv2d layer: pass the network's layers as ``specs`` and per-neuron ``biases``).
    """
    from neurocredit.sim.norse_backend import import_norse, norse_lif_parameters

    import_norse()
    from norse.torch.functional.lif import LIFFeedForwardState, lif_feed_forward_step

    steps, batch, _ = input_spikes.shape
    dtype, device = input_spikes.dtype, input_spikes.device
    source = input_spikes
    layers = []
    for index, (weight, bias) in enumerate(zip(weights, biases)):
        # W s[t] / dv for every step; the layer receives step t-1's at step t (the Dense delay)
        layer = None if specs is None else specs[index]
        currents = (block_currents(source, weight, layer) / params.dv).unbind(0)
        norse_params = norse_lif_parameters(params, bias, dtype, device, method=surrogate, alpha=alpha)
        zeros = torch.zeros(batch, weight.shape[0] if layer is None else layer.n_out, dtype=dtype, device=device)
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
        # the runnable weights (conv and pooled layers: fused, differentiable in the pooled ones)
        weights, biases = self.synaptic_parameters()
        output = norse_forward(weights, biases, self.params, inputs, self.options.surrogate,
                               self.options.surrogate_alpha, self.spec.layers)[-1]
        logits = self.options.loss_scale * output.sum(dim=0) / steps
        loss = torch.nn.functional.cross_entropy(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())
