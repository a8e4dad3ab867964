"""The backend-neutral network description: the only thing trainers produce and the only
thing simulators, deployers, exporters and reports consume.

A :class:`Network` is a stack of fully connected layers ``a_i = W_i h_{i-1} + b_i``.
``weight`` has shape ``(n_out, n_in)`` (the Lava ``Dense`` / torch ``Linear`` convention),
``bias`` has shape ``(n_out,)``.

Two neuron kinds exist:

* ``rate``: hidden layers ``h_i = f(a_i)`` with ``f`` in :data:`ACTIVATIONS`; the last layer
  is linear (its pre-activation ``a_N`` is the output, "logits").
* ``lif``: every layer, the last included, is a population of the canonical current-based
  LIF neuron of :mod:`neurocredit.neurons` (Lava's ``LIF``); the bias is the per-neuron
  constant added to the voltage each step. Inputs are spike trains made by the encoder.

The network validates itself on construction (shapes, dtypes, finite values, parameter
ranges) so a bad checkpoint or a diverged training run is caught where it enters.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from neurocredit.errors import NeurocreditError

NEURON_KINDS = ("rate", "lif")
ACTIVATIONS = ("tanh", "relu", "sigmoid")
ENCODER_KINDS = ("none", "bernoulli", "poisson", "latency", "current")
READOUT_KINDS = ("argmax", "nearest_prototype")


@dataclass(frozen=True)
class LIFParameters:
    """Parameters of the canonical discrete-time CUBA LIF (Lava ``LIF``), shared by a population.

    du: synaptic-current decay per step, dimensionless in [0, 1] (``u <- u (1 - du) + a_in``).
    dv: membrane-voltage decay per step, dimensionless in [0, 1] (``v <- v (1 - dv) + u + bias``).
    vth: firing threshold, in voltage units (a spike when ``v > vth``, then ``v <- 0``).
    refractory: steps after a spike during which v is held at 0 while u keeps integrating (Lava's
        ``LIFRefractory(refractory_period=N)``; 1 is snnTorch's ``reset_mechanism="zero"``);
        0 (default) is Lava's ``LIF``: v is reset at the spike and may fire again next step.
    """

    du: float = 0.2
    dv: float = 0.1
    vth: float = 1.0
    refractory: int = 0

    def __post_init__(self) -> None:
        for name in ("du", "dv"):
            value = getattr(self, name)
            if not (np.isfinite(value) and 0.0 <= value <= 1.0):
                raise NeurocreditError(f"LIF parameter {name}={value!r} must be a number in [0, 1]")
        if not (np.isfinite(self.vth) and self.vth > 0):
            raise NeurocreditError(f"LIF parameter vth={self.vth!r} must be a finite number > 0")
        if isinstance(self.refractory, bool) or int(self.refractory) != self.refractory or self.refractory < 0:
            raise NeurocreditError(f"LIF parameter refractory={self.refractory!r} must be a whole number of steps >= 0")
        object.__setattr__(self, "refractory", int(self.refractory))


@dataclass(frozen=True)
class NeuronSpec:
    """Which neuron every layer uses: ``rate`` (with ``activation``) or ``lif`` (with ``lif``)."""

    kind: str = "rate"
    activation: str = "tanh"
    lif: LIFParameters = field(default_factory=LIFParameters)

    def __post_init__(self) -> None:
        if self.kind not in NEURON_KINDS:
            raise NeurocreditError(f"neuron kind {self.kind!r} is not one of {', '.join(NEURON_KINDS)}")
        if self.activation not in ACTIVATIONS:
            raise NeurocreditError(
                f"activation {self.activation!r} is not one of {', '.join(ACTIVATIONS)}"
            )

    @property
    def spiking(self) -> bool:
        return self.kind == "lif"


@dataclass(frozen=True)
class EncoderSpec:
    """How a sample (features in [0, 1]) becomes network input over ``steps`` time steps.

    ``none`` is for rate networks (the features are the input). The spike encoders are
    documented in :mod:`neurocredit.encoders`. ``max_rate`` is the spike probability per step
    of a feature equal to 1 (rate codes) or the injected current of a feature equal to 1
    (``current``). ``seed`` makes the encoding reproducible: the same seed and samples give the
    same spike trains in every backend.
    """

    kind: str = "none"
    steps: int = 0
    max_rate: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ENCODER_KINDS:
            raise NeurocreditError(f"encoder kind {self.kind!r} is not one of {', '.join(ENCODER_KINDS)}")
        if self.kind != "none" and int(self.steps) < 1:
            raise NeurocreditError(f"encoder steps={self.steps!r} must be >= 1 for a {self.kind} encoder")
        if not (np.isfinite(self.max_rate) and self.max_rate >= 0):
            raise NeurocreditError(f"encoder max_rate={self.max_rate!r} must be a finite number >= 0")


@dataclass(frozen=True)
class ReadoutSpec:
    """How outputs become a predicted class.

    ``argmax``: the class with the largest output (logit for rate nets, spike count for LIF nets).
    ``nearest_prototype``: the class whose prototype (``extras['readout/prototypes']``, shape
    ``(n_classes, n_outputs)``) has the largest cosine similarity with the output.
    """

    kind: str = "argmax"

    def __post_init__(self) -> None:
        if self.kind not in READOUT_KINDS:
            raise NeurocreditError(f"readout kind {self.kind!r} is not one of {', '.join(READOUT_KINDS)}")


@dataclass(frozen=True)
class Layer:
    """One fully connected layer: ``weight`` (n_out, n_in) and ``bias`` (n_out,)."""

    weight: np.ndarray
    bias: np.ndarray
    name: str = ""

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[0])


def _check_array(label: str, array: Any, ndim: int) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise NeurocreditError(f"{label} must be a numpy array, got {type(array).__name__}")
    if array.dtype not in (np.float32, np.float64):
        raise NeurocreditError(f"{label} has dtype {array.dtype}; expected float32 or float64")
    if array.ndim != ndim:
        raise NeurocreditError(f"{label} has shape {array.shape}; expected {ndim} dimensions")
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise NeurocreditError(
            f"{label} contains {bad} NaN/inf values; the training diverged or the file is damaged "
            "(lower the learning rate or retrain)"
        )
    return array


@dataclass(frozen=True)
class Network:
    """Layers + neuron model + encoder + readout + rule arrays + provenance (see module doc)."""

    layers: tuple[Layer, ...]
    neuron: NeuronSpec = field(default_factory=NeuronSpec)
    encoder: EncoderSpec = field(default_factory=EncoderSpec)
    readout: ReadoutSpec = field(default_factory=ReadoutSpec)
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "extras", dict(self.extras))
        object.__setattr__(self, "provenance", dict(self.provenance))
        if not self.layers:
            raise NeurocreditError("a network needs at least one layer")
        for index, layer in enumerate(self.layers):
            label = f"layer {index} ({layer.name or 'unnamed'})"
            _check_array(f"{label} weight", layer.weight, 2)
            _check_array(f"{label} bias", layer.bias, 1)
            if layer.bias.shape[0] != layer.weight.shape[0]:
                raise NeurocreditError(
                    f"{label}: bias has {layer.bias.shape[0]} entries but the weight has "
                    f"{layer.weight.shape[0]} outputs"
                )
            if index > 0 and layer.n_in != self.layers[index - 1].n_out:
                raise NeurocreditError(
                    f"{label}: weight expects {layer.n_in} inputs but layer {index - 1} has "
                    f"{self.layers[index - 1].n_out} outputs"
                )
        if self.neuron.spiking and self.encoder.kind == "none":
            raise NeurocreditError("a spiking (lif) network needs a spike encoder, not encoder kind 'none'")
        for key, value in self.extras.items():
            if not isinstance(key, str) or not key:
                raise NeurocreditError(f"extras key {key!r} must be a non-empty string")
            _check_array(f"extras[{key!r}]", value, np.ndim(value))
        if self.readout.kind == "nearest_prototype":
            prototypes = self.extras.get("readout/prototypes")
            if prototypes is None:
                raise NeurocreditError(
                    "readout 'nearest_prototype' needs extras['readout/prototypes'] (n_classes, n_outputs)"
                )
            if prototypes.ndim != 2 or prototypes.shape[1] != self.n_outputs:
                raise NeurocreditError(
                    f"extras['readout/prototypes'] has shape {prototypes.shape}; expected "
                    f"(n_classes, {self.n_outputs})"
                )

    @property
    def sizes(self) -> tuple[int, ...]:
        """Layer widths from input to output, e.g. ``(64, 100, 10)``."""
        return (self.layers[0].n_in,) + tuple(layer.n_out for layer in self.layers)

    @property
    def n_inputs(self) -> int:
        return self.sizes[0]

    @property
    def n_outputs(self) -> int:
        return self.sizes[-1]

    @property
    def n_classes(self) -> int:
        prototypes = self.extras.get("readout/prototypes")
        return int(prototypes.shape[0]) if prototypes is not None else self.n_outputs

    @property
    def weights(self) -> list[np.ndarray]:
        return [layer.weight for layer in self.layers]

    @property
    def biases(self) -> list[np.ndarray]:
        return [layer.bias for layer in self.layers]

    def replace(self, **changes: Any) -> "Network":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def with_parameters(self, weights: list[np.ndarray], biases: list[np.ndarray]) -> "Network":
        """A copy with new weights and biases (same layer names)."""
        if len(weights) != len(self.layers) or len(biases) != len(self.layers):
            raise NeurocreditError(
                f"expected {len(self.layers)} weights and biases, got {len(weights)} and {len(biases)}"
            )
        layers = tuple(
            Layer(np.asarray(w), np.asarray(b), layer.name)
            for w, b, layer in zip(weights, biases, self.layers)
        )
        return self.replace(layers=layers)

    def summary(self) -> str:
        """One line: sizes, neuron model, encoder, rule."""
        kind = self.neuron.kind
        if self.neuron.spiking:
            p = self.neuron.lif
            refractory = f", refractory={p.refractory}" if p.refractory else ""
            neuron = f"lif(du={p.du:g}, dv={p.dv:g}, vth={p.vth:g}{refractory})"
            encoder = f", {self.encoder.kind} encoder x {self.encoder.steps} steps"
        else:
            neuron = f"rate({self.neuron.activation})"
            encoder = ""
        rule = self.provenance.get("rule", "?")
        return f"{'-'.join(map(str, self.sizes))} {kind} net, {neuron}{encoder}, trained with {rule}"


def init_layers(sizes: tuple[int, ...] | list[int], rng: np.random.Generator, gain: float = 1.0) -> tuple[Layer, ...]:
    """Fresh layers for the given widths: uniform(+-gain/sqrt(n_in)) weights (as torch's
    ``Linear``), zero biases, float32, named ``fc1``, ``fc2``, ..."""
    layers = []
    for index, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = gain / np.sqrt(n_in)
        weight = rng.uniform(-bound, bound, size=(n_out, n_in)).astype(np.float32)
        layers.append(Layer(weight, np.zeros(n_out, dtype=np.float32), f"fc{index + 1}"))
    return tuple(layers)
