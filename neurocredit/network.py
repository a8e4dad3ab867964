"""The backend-neutral network description: the only thing trainers produce and the only
thing simulators, deployers, exporters and reports consume.

A :class:`Network` is an ordered list of typed synaptic layers, each feeding one neuron
population:

* :class:`Dense` (alias :class:`Layer`): ``a = W h + b``, ``weight`` (n_out, n_in) (the Lava
  ``Dense`` / torch ``Linear`` convention), ``bias`` (n_out,); population shape (n_out,).
* :class:`Conv2d`: ``weight`` OIHW (C_out, C_in, KH, KW), cross-correlation with ``stride`` and
  zero ``padding`` (PyTorch / NIR semantics, :mod:`neurocredit.conv`), ``bias`` (C_out,) shared
  over positions, ``input_shape`` (C_in, H, W); population shape (C_out, OH, OW).

Populations are flattened in C order wherever a vector is needed (``n_in``/``n_out``, rasters,
the input features), so dense-only code keeps working on ``sizes``. A Dense layer after a
(C, H, W) population flattens it. Pooling is never a layer of its own (Lava has no pooling
process and cannot chain two synaptic layers): a p x p sum pool in front of a layer is fused
into it (:mod:`neurocredit.conv`), the layer's ``weight`` is the fused one (what every backend
runs) and ``pool = p`` records the fusion so exporters can emit the pool again.

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
from typing import Any, ClassVar, Mapping, Optional, Union

import numpy as np

from neurocredit.conv import (
    conv_output_hw,
    fuse_conv_pool,
    fuse_dense_pool,
    layer_im2col,
    pair,
    pooled_hw,
    unfuse_conv_pool,
    unfuse_dense_pool,
)
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


LAYER_KINDS = ("dense", "conv2d")


@dataclass(frozen=True)
class Layer:
    """One fully connected layer: ``weight`` (n_out, n_in) and ``bias`` (n_out,).

    ``pool`` > 1: a p x p sum pool (stride p) of the (C, H, W) source population and a flatten
    are fused into ``weight`` (:func:`neurocredit.conv.fuse_dense_pool`); the pooled-form weight
    is :meth:`Network.unfused_weight`.
    """

    weight: np.ndarray
    bias: np.ndarray
    name: str = ""
    pool: int = 1

    kind: ClassVar[str] = "dense"

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[0])

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.n_out,)

    @property
    def neuron_bias(self) -> np.ndarray:
        """(n_out,) the constant each neuron adds to its voltage every step."""
        return self.bias

    @property
    def n_synapses(self) -> int:
        """Synapses (connections) of the layer: n_in * n_out."""
        return self.n_in * self.n_out

    @property
    def n_weights(self) -> int:
        """Stored weight values (parameters): n_in * n_out."""
        return int(self.weight.size)

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one pass as a conventional ANN layer."""
        return self.n_in * self.n_out


Dense = Layer


@dataclass(frozen=True)
class Conv2d:
    """A 2-D convolution layer (cross-correlation, PyTorch/NIR semantics; module doc).

    weight: (C_out, C_in, KH, KW) float; bias: (C_out,) per output channel (``None`` -> zeros);
    input_shape: (C_in, H, W) of the source population; stride, padding: (rows, columns) or one
    int. ``pool`` > 1: a p x p sum pool of the source is fused into ``weight``/``stride``/
    ``padding`` (:func:`neurocredit.conv.fuse_conv_pool`); the weight is then constant over
    p x p blocks and stride and padding are multiples of p.
    """

    weight: np.ndarray
    bias: Optional[np.ndarray]
    input_shape: tuple[int, int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    name: str = ""
    pool: int = 1

    kind: ClassVar[str] = "conv2d"

    def __post_init__(self) -> None:
        label = f"conv layer {self.name or 'unnamed'}"
        try:
            object.__setattr__(self, "input_shape", tuple(int(n) for n in self.input_shape))
            object.__setattr__(self, "stride", pair(self.stride))
            object.__setattr__(self, "padding", pair(self.padding))
            object.__setattr__(self, "pool", int(self.pool))
        except (TypeError, ValueError):
            raise NeurocreditError(
                f"{label}: input_shape must be (C, H, W) and stride/padding one or two integers, got "
                f"{self.input_shape!r}, {self.stride!r}, {self.padding!r}"
            ) from None
        if self.bias is None and isinstance(self.weight, np.ndarray) and self.weight.ndim == 4:
            object.__setattr__(self, "bias", np.zeros(self.weight.shape[0], dtype=self.weight.dtype))

    @property
    def kernel_size(self) -> tuple[int, int]:
        return int(self.weight.shape[2]), int(self.weight.shape[3])

    @property
    def output_shape(self) -> tuple[int, int, int]:
        oh, ow = conv_output_hw(self.input_shape[1:], self.kernel_size, self.stride, self.padding)
        return int(self.weight.shape[0]), oh, ow

    @property
    def n_in(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def n_out(self) -> int:
        return int(np.prod(self.output_shape))

    @property
    def neuron_bias(self) -> np.ndarray:
        """(n_out,) per neuron: the channel's bias at every position (C order)."""
        _, oh, ow = self.output_shape
        return np.repeat(self.bias, oh * ow)

    @property
    def n_synapses(self) -> int:
        """Synapses (kernel taps that reach an output, padding excluded), as Brian2 builds them."""
        return int(np.count_nonzero(layer_im2col(self) >= 0)) * int(self.weight.shape[0])

    @property
    def n_weights(self) -> int:
        """Stored (shared) kernel weights: C_out * C_in * KH * KW."""
        return int(self.weight.size)

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one pass as a conventional conv layer (padding taps included):
        C_out * OH * OW * C_in * KH * KW."""
        return self.n_out * int(np.prod(self.weight.shape[1:]))


AnyLayer = Union[Layer, Conv2d]


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

    layers: tuple[AnyLayer, ...]  # Dense (Layer) and Conv2d
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
        source_shape: Optional[tuple[int, ...]] = None
        for index, layer in enumerate(self.layers):
            _check_layer(index, layer, source_shape)
            source_shape = layer.output_shape
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
        """Population sizes (flattened) from input to output, e.g. ``(64, 100, 10)``."""
        return (self.layers[0].n_in,) + tuple(layer.n_out for layer in self.layers)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample: (C, H, W) when the first layer is a conv, else (n_inputs,).
        Inputs are always passed flattened (C order)."""
        first = self.layers[0]
        return tuple(first.input_shape) if first.kind == "conv2d" else (first.n_in,)

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        """Population shapes from input to output, e.g. ``((1, 8, 8), (4, 8, 8), (10,))``."""
        return (self.input_shape,) + tuple(tuple(layer.output_shape) for layer in self.layers)

    @property
    def is_dense(self) -> bool:
        """True when every layer is an unpooled Dense layer (what the dense-only rules train)."""
        return all(layer.kind == "dense" and layer.pool == 1 for layer in self.layers)

    def require_dense(self, what: str,
                      fix: str = "train convolutional networks with rule bp (BPTT for lif, backprop for rate)") -> None:
        """Raise one clear line when ``what`` (e.g. "rule 'dfa'") cannot handle this network;
        ``fix`` ends the line."""
        for index, layer in enumerate(self.layers):
            if layer.kind != "dense" or layer.pool != 1:
                kind = "a Conv2d" if layer.kind == "conv2d" else f"a Dense with a fused {layer.pool}x{layer.pool} pool"
                raise NeurocreditError(
                    f"{what} handles dense layers only, but layer {index} ({layer.name or 'unnamed'}) is {kind}; {fix}"
                )

    def unfused(self, index: int) -> tuple[int, tuple[int, ...], "AnyLayer"]:
        """Layer ``index`` as ``(pool, source_shape, layer)``: a ``pool x pool`` sum pool (stride
        ``pool``) of the population of ``source_shape`` feeding it, then ``layer`` in its pooled
        form (a plain Conv2d or Dense with ``pool = 1``, on the pooled shape). ``pool == 1``: the
        layer itself. What an exporter writes as SumPool2d (+ Flatten) + layer."""
        layer, source = self.layers[index], tuple(self.shapes[index])
        if layer.pool == 1:
            return 1, source, layer
        pool = layer.pool
        weight = self.unfused_weight(index)
        if layer.kind == "conv2d":
            pooled = (source[0], *pooled_hw(source[1], source[2], pool))
            plain = Conv2d(weight, layer.bias, pooled, tuple(s // pool for s in layer.stride),
                           tuple(p // pool for p in layer.padding), layer.name)
        else:
            plain = Layer(weight, layer.bias, layer.name)
        return pool, source, plain

    def unfused_weight(self, index: int) -> np.ndarray:
        """Layer ``index``'s weight in its pooled form (the layer after the pool): the layer's own
        weight when ``pool`` is 1 (see :mod:`neurocredit.conv`)."""
        layer = self.layers[index]
        if layer.pool == 1:
            return layer.weight
        if layer.kind == "conv2d":
            return unfuse_conv_pool(layer.weight, layer.pool)
        return unfuse_dense_pool(layer.weight, self.shapes[index], layer.pool)

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
            dataclasses.replace(layer, weight=np.asarray(w), bias=np.asarray(b))
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
        if self.is_dense:
            shape = "-".join(map(str, self.sizes))
        else:
            shape = " -> ".join(["x".join(map(str, self.input_shape))]
                                + [describe_layer(layer) for layer in self.layers])
        return f"{shape} {kind} net, {neuron}{encoder}, trained with {rule}"


def describe_layer(layer: AnyLayer) -> str:
    """Short text of one layer: ``conv 4x3x3 s1 p1 -> 4x8x8`` or ``dense 10``, with its pool."""
    pool = f"pool{layer.pool} + " if layer.pool > 1 else ""
    if layer.kind == "conv2d":
        o, _, kh, kw = layer.weight.shape
        stride = "x".join(map(str, layer.stride))
        padding = "x".join(map(str, layer.padding))
        return f"{pool}conv {o}@{kh}x{kw} s{stride} p{padding} ({'x'.join(map(str, layer.output_shape))})"
    return f"{pool}dense {layer.n_out}"


def _check_layer(index: int, layer: Any, source_shape: Optional[tuple[int, ...]]) -> None:
    """Validate one layer against the population feeding it (``None``: the network input)."""
    label = f"layer {index} ({getattr(layer, 'name', '') or 'unnamed'})"
    kind = getattr(layer, "kind", None)
    if kind not in LAYER_KINDS:
        raise NeurocreditError(f"{label}: unknown layer type {type(layer).__name__}; expected Dense or Conv2d")
    pool = layer.pool
    if not isinstance(pool, (int, np.integer)) or pool < 1:
        raise NeurocreditError(f"{label}: pool={pool!r} must be an integer >= 1")
    if kind == "dense":
        _check_array(f"{label} weight", layer.weight, 2)
        _check_array(f"{label} bias", layer.bias, 1)
        if layer.bias.shape[0] != layer.weight.shape[0]:
            raise NeurocreditError(
                f"{label}: bias has {layer.bias.shape[0]} entries but the weight has {layer.weight.shape[0]} outputs"
            )
        if source_shape is not None and layer.n_in != int(np.prod(source_shape)):
            if len(source_shape) == 3:
                flat = "x".join(map(str, source_shape))
                raise NeurocreditError(
                    f"{label}: weight expects {layer.n_in} inputs but flattening the {flat} "
                    f"output of layer {index - 1} gives {int(np.prod(source_shape))}"
                )
            raise NeurocreditError(
                f"{label}: weight expects {layer.n_in} inputs but layer {index - 1} has {source_shape[0]} outputs"
            )
        if pool > 1:
            if source_shape is None or len(source_shape) != 3:
                raise NeurocreditError(f"{label}: a fused {pool}x{pool} pool needs a (C, H, W) source population")
            refused = fuse_dense_pool(unfuse_dense_pool(layer.weight, source_shape, pool), source_shape, pool)
            _check_fused(label, layer.weight, refused)
        return
    _check_array(f"{label} weight", layer.weight, 4)
    _check_array(f"{label} bias", layer.bias, 1)
    out_channels, in_channels, kh, kw = layer.weight.shape
    if layer.bias.shape[0] != out_channels:
        raise NeurocreditError(f"{label}: bias has {layer.bias.shape[0]} entries but the kernel has {out_channels} "
                               "output channels")
    if len(layer.input_shape) != 3 or min(layer.input_shape) < 1:
        raise NeurocreditError(f"{label}: input_shape {layer.input_shape} must be (C, H, W) with positive sizes")
    if min(layer.stride) < 1 or min(layer.padding) < 0:
        raise NeurocreditError(f"{label}: stride {layer.stride} must be >= 1 and padding {layer.padding} >= 0")
    if min(layer.weight.shape) < 1:
        raise NeurocreditError(f"{label}: kernel shape {layer.weight.shape} has an empty dimension")
    channels, height, width = layer.input_shape
    if in_channels != channels:
        raise NeurocreditError(f"{label}: the kernel takes {in_channels} input channels but the input has {channels} "
                               f"(input_shape {channels}x{height}x{width})")
    padded = (height + 2 * layer.padding[0], width + 2 * layer.padding[1])
    if kh > padded[0] or kw > padded[1]:
        raise NeurocreditError(f"{label}: the {kh}x{kw} kernel is larger than its padded {padded[0]}x{padded[1]} "
                               f"input ({height}x{width} with padding {layer.padding[0]}x{layer.padding[1]})")
    if source_shape is not None and tuple(source_shape) != tuple(layer.input_shape):
        flat = "x".join(map(str, source_shape))
        raise NeurocreditError(f"{label}: input_shape {'x'.join(map(str, layer.input_shape))} does not match the "
                               f"{flat} output of layer {index - 1}")
    if pool > 1:
        if any(size % pool for size in (kh, kw, *layer.stride, *layer.padding)):
            raise NeurocreditError(f"{label}: a fused {pool}x{pool} pool needs kernel, stride and padding that are "
                                   f"multiples of {pool} (got {kh}x{kw}, {layer.stride}, {layer.padding})")
        for axis, size in ((0, height), (1, width)):
            if layer.padding[axis] and size % pool:
                raise NeurocreditError(
                    f"{label}: a fused {pool}x{pool} pool with padding needs the map size divisible by {pool} "
                    f"(got {height}x{width}): the padded windows would read the rows/columns the pool drops"
                )
        refused = np.repeat(np.repeat(unfuse_conv_pool(layer.weight, pool), pool, axis=2), pool, axis=3)
        _check_fused(label, layer.weight, refused)


def _check_fused(label: str, weight: np.ndarray, refused: np.ndarray) -> None:
    if not np.array_equal(weight, refused):
        raise NeurocreditError(f"{label}: the weight is not a fused pool (it differs from its pooled form repeated "
                               "over each pool block); set pool to 1 or fuse it with neurocredit.conv")


def init_layers(sizes: tuple[int, ...] | list[int], rng: np.random.Generator, gain: float = 1.0) -> tuple[Layer, ...]:
    """Fresh layers for the given widths: uniform(+-gain/sqrt(n_in)) weights (as torch's
    ``Linear``), zero biases, float32, named ``fc1``, ``fc2``, ..."""
    layers = []
    for index, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = gain / np.sqrt(n_in)
        weight = rng.uniform(-bound, bound, size=(n_out, n_in)).astype(np.float32)
        layers.append(Layer(weight, np.zeros(n_out, dtype=np.float32), f"fc{index + 1}"))
    return tuple(layers)


LAYER_SPEC_KINDS = ("conv", "pool", "avgpool", "dense")


def init_typed_layers(input_shape: tuple[int, ...], specs: list[dict], n_outputs: int, rng: np.random.Generator,
                      gain: float = 1.0) -> tuple[AnyLayer, ...]:
    """Fresh layers from a list of layer specs (the config's ``network.layers``), then a dense
    output layer of ``n_outputs``:

    * ``{"conv": {"channels": C, "kernel": k, "stride": 1, "padding": 0}}``
      (kernel, stride and padding: one int or [rows, columns]);
    * ``{"pool": p}``: a p x p sum pool, fused into the next synaptic layer; ``{"avgpool": p}``
      the average pool (the same with the next layer's weights divided by p**2);
    * ``{"dense": n}``.

    Weights ~ U(+-gain/sqrt(fan_in)) of the pooled (unfused) layer, as torch initializes
    ``Conv2d``/``Linear``; zero biases; float32; names ``conv1``, ``fc1``, ... Errors name the
    spec's position.
    """
    layers: list[AnyLayer] = []
    shape = tuple(int(n) for n in input_shape)
    pool, average = 1, False
    counters = {"conv": 0, "fc": 0}
    items = list(specs) + [{"dense": int(n_outputs)}]
    for position, spec in enumerate(items):
        where = f"layers[{position}]" if position < len(specs) else "output layer"
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in LAYER_SPEC_KINDS:
            raise NeurocreditError(f"{where}: {spec!r} must be one of {{conv: {{channels, kernel, stride, padding}}}}, "
                                   "{pool: p}, {avgpool: p}, {dense: n}")
        kind, value = next(iter(spec.items()))
        if kind in ("pool", "avgpool"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise NeurocreditError(f"{where}: {kind} must be an integer >= 2, got {value!r}")
            if len(shape) != 3:
                raise NeurocreditError(f"{where}: pool needs a (C, H, W) population before it, got shape {shape}")
            if pool > 1:
                raise NeurocreditError(f"{where}: two pools in a row; use one pool of the product size")
            if min(pooled_hw(shape[1], shape[2], value)) < 1:
                raise NeurocreditError(f"{where}: a {value}x{value} pool does not fit the {shape[1]}x{shape[2]} map")
            pool, average = value, kind == "avgpool"
            continue
        if kind == "dense":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise NeurocreditError(f"{where}: dense width must be an integer >= 1, got {value!r}")
            n_in = int(np.prod(shape))
            small_in = n_in if pool == 1 else shape[0] * int(np.prod(pooled_hw(shape[1], shape[2], pool)))
            bound = gain / np.sqrt(small_in)
            weight = rng.uniform(-bound, bound, size=(value, small_in)).astype(np.float32)
            if pool > 1:
                weight = fuse_dense_pool(weight, shape, pool, average)
            counters["fc"] += 1
            layers.append(Layer(weight, np.zeros(value, dtype=np.float32), f"fc{counters['fc']}", pool))
        else:
            if not isinstance(value, dict):
                raise NeurocreditError(f"{where}: conv must be a mapping with channels and kernel, got {value!r}")
            unknown = sorted(set(value) - {"channels", "kernel", "stride", "padding"})
            if unknown or "channels" not in value or "kernel" not in value:
                raise NeurocreditError(f"{where}: conv needs channels and kernel (optional stride, padding); "
                                       f"got {sorted(value)}")
            if len(shape) != 3:
                raise NeurocreditError(f"{where}: conv needs a (C, H, W) input, but the population before it has "
                                       f"shape {shape}")
            try:
                channels = int(value["channels"])
                kernel = pair(value["kernel"])
                stride = pair(value.get("stride", 1))
                padding = pair(value.get("padding", 0))
            except (TypeError, ValueError):
                raise NeurocreditError(f"{where}: conv channels, kernel, stride and padding must be integers "
                                       "(or [rows, columns])") from None
            bound = gain / np.sqrt(shape[0] * kernel[0] * kernel[1])
            weight = rng.uniform(-bound, bound, size=(channels, shape[0], *kernel)).astype(np.float32)
            if pool > 1:
                weight, stride, padding = fuse_conv_pool(weight, stride, padding, pool, average)
            counters["conv"] += 1
            bias = np.zeros(channels, dtype=np.float32)
            layer = Conv2d(weight, bias, shape, stride, padding, f"conv{counters['conv']}", pool)
            _check_layer(len(layers), layer, shape)
            layers.append(layer)
        shape = tuple(layers[-1].output_shape)
        pool, average = 1, False
    return tuple(layers)
