"""Forward-forward for canonical LIF networks, without surrogate gradients (equations and the
saved network: :mod:`neurocredit.rules.ff`).

Every layer runs a block of steps in place (:func:`neurocredit.neurons.lif_block`,
the canonical LIF with the one-step Dense delay) and keeps two running sums over the
presentation: its pre-reset voltage and its delivered input. At the end of the window its loss
reads the window-mean voltage ``v̄`` whose only dependence on the layer's parameters is the
within-step one, ``∂v̄/∂W = mean_t x[t-1]``, ``∂v̄/∂b = 1`` (state detached between steps): no
spike is ever differentiated, no gradient crosses layers or steps, memory does not grow with T.
"""

from __future__ import annotations

import numpy as np
import torch

from neurocredit.rules.ff import SpikingFFOptions
from neurocredit.neurons import lif_block
from neurocredit.rules.ff_rate import ForwardForwardLayers, hidden_loss, label_rows, negative_labels
from neurocredit.rules.spiking import SpikingRule, block_currents, zero_states


class SpikingFF(ForwardForwardLayers, SpikingRule):
    """Forward-forward on LIF layers with a local LIF readout (module doc of
    :mod:`neurocredit.rules.ff`); one update per layer per presentation."""

    name = "ff"
    Options = SpikingFFOptions

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.block_steps = self.options.block_steps
        self.build_layers(lambda index: [self.weights[index], self.biases[index]])

    def layer_weight(self, index: int) -> torch.Tensor:
        """Layer ``index``'s weight over its training input (the first layer: features, labels)."""
        if index == 0:
            return torch.cat([self.weights[0], self.label_weight], dim=1)
        return self.weights[index]

    @torch.no_grad()
    def window_sums(self, features: torch.Tensor, label_inputs: torch.Tensor):
        """Run one presentation of the stacked rows [positive; negative; neutral] of ``features``
        (batch, n_0) with ``label_inputs`` (3 batch, classes); per layer the sums over the window of
        its pre-reset voltage and of its delivered input, (3 batch, n) each. The three rows of a
        sample share one encoded spike train of its features (the label's spikes are encoded
        per row): the first layer's feature currents are one product per sample, and the
        positive-negative difference is the label's alone."""
        steps, rows = self.encoder.steps, label_inputs.shape[0]
        weights = [self.layer_weight(i) for i in range(len(self.weights))]
        zeros = lambda n: torch.zeros(rows, n, dtype=self.dtype, device=self.device)  # noqa: E731
        states = zero_states([w.shape[0] for w in weights], rows, self.dtype, self.device)
        carries = [zeros(w.shape[0]) for w in weights]
        last_sources = [zeros(w.shape[1]) for w in weights]
        voltage_sums = [zeros(w.shape[0]) for w in weights]
        input_sums = [zeros(w.shape[1]) for w in weights]
        for start in range(0, steps, self.block_steps):
            block = min(self.block_steps, steps - start)
            shared = self.encode(features, block)
            source = torch.cat([shared.repeat(1, 3, 1), self.encode(label_inputs, block)], dim=2)
            for index, (weight, bias) in enumerate(zip(weights, self.biases)):
                if index == 0:
                    currents = block_currents(shared, self.weights[0]).repeat(1, 3, 1)
                    currents += block_currents(source[:, :, features.shape[1]:], self.label_weight)
                else:
                    currents = block_currents(source, weight)
                total = voltage_sums[index]
                states[index], spikes, carries[index] = lif_block(
                    self.params, states[index], currents, carries[index], bias,
                    lambda voltage, current, total=total: total.add_(voltage))
                # delivered at this block's steps: the previous block's last step, then all but the last
                input_sums[index] += last_sources[index] + source[:-1].sum(dim=0)
                last_sources[index] = source[-1].clone()
                source = spikes
        return voltage_sums, input_sums

    def train_batch(self, features: torch.Tensor, labels: torch.Tensor) -> float:
        features = features.to(self.dtype)
        batch, options, steps = features.shape[0], self.options, self.encoder.steps
        negatives = negative_labels(labels, self.n_classes, self.generator)
        label_inputs = label_rows(labels, negatives, self.n_classes, options, self.dtype)
        voltage_sums, input_sums = self.window_sums(features, label_inputs)
        last = len(self.weights) - 1
        losses = []
        for index in range(last + 1):
            # v̄ as a value, with the within-step dependence on W and b as its graph
            dependent = (input_sums[index] / steps) @ self.layer_weight(index).T + self.biases[index]
            mean_voltage = voltage_sums[index] / steps + (dependent - dependent.detach())
            if index < last:
                loss, self.peer_means[index] = hidden_loss(options, torch.relu(mean_voltage), batch,
                                                           self.peer_means[index])
            else:
                loss = torch.nn.functional.cross_entropy(options.readout_scale * mean_voltage[2 * batch :], labels)
            self.layers[index].update(loss)
            losses.append(float(loss.detach()))
        return float(np.mean(losses))
