"""Rate-to-spike conversion: a trained rate ``Network`` -> a canonical LIF ``Network``.

The second baseline path to a spiking network (besides training one): data-based weight
normalization (Diehl et al. 2015, "Fast-classifying, high-accuracy spiking deep networks
through weight and threshold balancing", IJCNN; Rueckauer et al. 2017, "Conversion of
continuous-valued deep networks to efficient event-driven networks for image
classification", Front. Neurosci. 11:682).

A relu rate network ``h_i = relu(W_i h_{i-1} + b_i)`` (last layer linear, its argmax the class)
is mapped onto spike *rates* ``r_i = h_i / λ_i`` in spikes per step, where ``λ_i`` is the
``percentile``-th percentile of layer ``i``'s positive activations on training data
(``λ_0 = 1 / max_rate``: a feature ``x`` becomes a Bernoulli spike train of rate
``max_rate * x``). A LIF neuron driven by a constant current ``I`` per step with a threshold
``vth`` and almost no leak fires at about ``I / vth`` spikes per step, so the converted layer is::

    W'_i = W_i * vth * du * λ_{i-1} / λ_i,     b'_i = b_i * vth / λ_i

(``du``: the synaptic filter's steady-state gain is ``1 / du``). The network-wide threshold of
the canonical neuron is shared by all layers, so the per-layer balance lives in the weights.
Defaults: ``du = 1`` (no synaptic filter), ``dv = 0.001`` (almost an integrate-and-fire neuron;
the Norse backend needs ``dv > 0``), ``vth = 1``.

What is lost: Lava's neuron resets to 0 (the charge above threshold is discarded, so rates of
strongly driven neurons fall below ``I / vth``); a neuron fires at most once per step (rates
clip at 1); each layer sees its input one step later (the Dense delay), so layer ``i`` has
``T - i`` useful steps; and a rate is estimated from a finite number of steps.

``tanh`` networks: spike rates cannot be negative, so a converted tanh unit behaves like
``clip(a, 0, 1)``: the negative half of every hidden activation is lost and the next layer
sees a different input than it was trained on. How much that costs depends on the network
(``neurocredit convert`` measures both accuracies). The conversion is allowed, with a warning in the
provenance. ``sigmoid`` networks are refused: ``sigmoid(0) = 0.5`` has no spiking counterpart
without a bias shift that depends on the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from neurocredit.errors import NeurocreditError, require_at_least_one
from neurocredit.network import EncoderSpec, LIFParameters, Network, NeuronSpec, ReadoutSpec
from neurocredit.sim.rate_backend import forward

CONVERTIBLE = ("relu", "tanh")


@dataclass(frozen=True)
class ConversionOptions:
    """steps: time steps of the converted network's encoder; percentile: of the positive
    activations per layer used as that layer's full-scale value (100 = max, Diehl 2015; 99.9
    is robust to outliers, Rueckauer 2017); du, dv, vth: the canonical LIF parameters;
    max_rate: input spike probability per step of a feature equal to 1; encoder_seed: seed of
    the Bernoulli input encoder."""

    steps: int = 50
    percentile: float = 99.9
    du: float = 1.0
    dv: float = 0.001
    vth: float = 1.0
    max_rate: float = 1.0
    encoder_seed: int = 0

    def __post_init__(self) -> None:
        require_at_least_one("conversion steps", self.steps)
        if not 0.0 < self.percentile <= 100.0:
            raise NeurocreditError(f"conversion percentile must be in (0, 100], got {self.percentile}")
        if not 0.0 < self.max_rate <= 1.0:
            raise NeurocreditError(f"conversion max_rate must be in (0, 1], got {self.max_rate}")
        LIFParameters(self.du, self.dv, self.vth)  # validates ranges


def activation_scales(network: Network, features: np.ndarray, percentile: float) -> list[float]:
    """``λ_i`` per layer: the ``percentile``-th percentile of the layer's positive activations
    on ``features`` (1.0 for a layer that is never positive)."""
    scales = []
    for values in forward(network, features):
        positive = values[values > 0]
        scale = float(np.percentile(positive, percentile)) if positive.size else 1.0
        scales.append(scale if scale > 0 else 1.0)
    return scales



def converted_relu_network(data: str = "digits", steps: int = 20, dv: float = 0.02, epochs: Optional[int] = None,
                           hidden: Optional[Sequence[int]] = None, data_dir: Optional[str] = None,
                           progress: bool = False) -> Network:
    """The conversion baseline: ``models/digits-bp-relu-rate.yaml`` (on ``data``; ``epochs`` and
    ``hidden`` override the config) trained by the ordinary :func:`neurocredit.train.train`, then
    :func:`convert` with ``du = 1``, ``dv``, ``vth = 1`` and ``steps`` Bernoulli input steps,
    normalized on the training set. Seconds on 2 cores for digits; deterministic."""
    import dataclasses

    from neurocredit.config import load_config, models_dir
    from neurocredit.data import load_dataset
    from neurocredit.train import train

    config = load_config(models_dir() / "digits-bp-relu-rate.yaml")
    if hidden is not None:
        config = dataclasses.replace(config, network=dataclasses.replace(config.network, hidden=list(hidden)))
    dataset = load_dataset(data, data_dir)
    result = train(config, epochs=epochs, dataset=dataset, progress=progress, log=lambda line: None)
    return convert(result.network, dataset.x_train, ConversionOptions(steps=steps, dv=dv))


def convert(network: Network, features: np.ndarray, options: ConversionOptions = ConversionOptions()) -> Network:
    """The canonical LIF network that approximates the rate ``network`` (module doc).

    ``features`` (samples, n_inputs) in [0, 1] are training samples for the normalization.
    """
    if network.neuron.spiking:
        raise NeurocreditError("this network is already spiking (lif); conversion takes a rate network")
    if network.neuron.activation not in CONVERTIBLE:
        raise NeurocreditError(
            f"cannot convert a {network.neuron.activation} network to spikes: sigmoid(0) = 0.5 has no spiking "
            f"counterpart; train it with activation relu (preferred) or tanh"
        )
    if network.readout.kind != "argmax":
        raise NeurocreditError(f"conversion supports the argmax readout, this network uses {network.readout.kind}")
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[1] != network.n_inputs or len(features) == 0:
        raise NeurocreditError(
            f"normalization data has shape {features.shape}; expected (samples >= 1, {network.n_inputs})"
        )
    scales = activation_scales(network, features, options.percentile)
    previous = 1.0 / options.max_rate
    weights, biases = [], []
    for layer, scale in zip(network.layers, scales):
        gain = options.vth * options.du * previous / scale
        weights.append((layer.weight.astype(np.float64) * gain).astype(np.float32))
        biases.append((layer.bias.astype(np.float64) * options.vth / scale).astype(np.float32))
        previous = scale
    provenance = {
        "rule": "convert",
        "converted_from": dict(network.provenance),
        "conversion": {
            "percentile": options.percentile,
            "scales": scales,
            "source_activation": network.neuron.activation,
            "normalization_samples": int(len(features)),
        },
        "data": network.provenance.get("data", ""),
    }
    if network.neuron.activation == "tanh":
        provenance["conversion_warning"] = (
            "tanh source: negative activations cannot be represented by spike rates (clipped to 0)"
        )
    spiking = Network(
        layers=network.layers,
        neuron=NeuronSpec(kind="lif", activation=network.neuron.activation,
                          lif=LIFParameters(options.du, options.dv, options.vth)),
        encoder=EncoderSpec(kind="bernoulli", steps=options.steps, max_rate=options.max_rate,
                            seed=options.encoder_seed),
        readout=ReadoutSpec("argmax"),
        extras={},
        provenance=provenance,
    )
    return spiking.with_parameters(weights, biases)
