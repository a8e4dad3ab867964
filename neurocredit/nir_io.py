"""NIR interchange: a :class:`~neurocredit.network.Network` to and from a NIR graph
(``nir`` 1.0.8, the Neuromorphic Intermediate Representation). The only module that knows NIR.

Export (:func:`export_nir`), one ``Affine`` + one ``CubaLIF`` (or ``IF``, below) per layer::

    Input -> [Delay] -> Affine(W, 0) -> CubaLIF -> [Delay] -> Affine(W, 0) -> CubaLIF -> ... -> Output

NIR describes continuous time (``nir/ir/neuron.py``, ``CubaLIF``)::

    tau_syn dI/dt = -I + w_in S            tau_mem dv/dt = (v_leak - v) + r I
    spike when v > v_threshold, then v <- v_reset

and has no ``dt``. Our discrete LIF (:mod:`neurocredit.neurons`) is its forward-Euler step at a
chosen ``dt`` (1e-4 s by default, as snnTorch and the NIR paper) with, per neuron,
``tau_syn = dt/du``, ``tau_mem = dt/dv``, ``r = 1/dv``, ``w_in = 1/du``, ``v_leak = bias/dv``,
``v_threshold = vth``, ``v_reset = 0``: Euler gives ``I <- I (1 - du) + S`` and
``v <- v (1 - dv) + dv v_leak + I``, our ``u`` and ``v``. The bias goes into ``v_leak`` and the ``Affine``
bias is 0, because an ``Affine`` bias would enter the synaptic current. ``du = 1, dv = 0`` (no
current memory, no leak) is NIR's ``IF`` (``r = 1``) with the bias in the ``Affine``, where IF
adds it to the voltage; any other ``du = 0`` or ``dv = 0`` (an infinite time constant) has no NIR
form and is refused.

Timing: every neurocredit connection delivers one step late (Lava's ``Dense``), NIR's ``Affine``
has no delay. ``delays="metadata"`` (default) writes a delay-free graph and records the one-step
synaptic delay in the graph metadata (our importer restores it; another tool runs the graph
delay-free: layer ``i`` then spikes ``i`` steps earlier, the same trains otherwise).
``delays="nodes"`` puts an explicit ``nir.Delay(dt)`` before every ``Affine`` (Norse 1.1.0 and
nirtorch 2.6 cannot import ``Delay``).

Exactness: the graph metadata (``metadata["neurocredit"]``, JSON) holds the network's discrete
parameters, encoder, readout and provenance, and each neuron node holds the layer's float bias
in ``metadata["neurocredit_bias"]``. The importer uses them only where the node's NIR fields are
exactly what :func:`export_nir` writes for them (so an edited graph is read from its NIR fields),
which makes export -> ``nir.write`` -> ``nir.read`` -> import bit-identical.

Import (:func:`import_nir`), feed-forward chains of the node types in :data:`IMPORTERS`; each
neuron node becomes one layer. Forward Euler at ``dt`` with the NIR voltage kept as our ``v``
and our ``u = dv r I`` (so the per-neuron factor ``dv r du w_in`` moves into the weight rows):

* ``CubaLIF``: ``du = dt/tau_syn``, ``dv = dt/tau_mem``, ``W <- (dv r du w_in) W``,
  ``bias = dv v_leak``. An ``Affine`` bias ``b`` in front enters the synaptic current and is
  integrated by its leak; our (Lava's) bias enters the voltage. The two are the same only when
  ``du = 1`` (``tau_syn = dt``: the current has no memory), where ``b`` becomes the voltage bias
  ``dv r du w_in b``; otherwise the graph is refused (one line).
* ``LIF``: ``du = 1``, ``dv = dt/tau``, ``W <- (dv r) W``, ``bias = dv (v_leak + r b)``.
* ``IF``: ``du = 1``, ``dv = 0``, ``W <- r W``, ``bias = r b``: the input enters the voltage once
  per step, ``dt`` does not (the convention of Norse's ``IAFCell`` and Sinabs' ``IAF``).

``v_reset`` must be 0; all layers must share one ``du``, ``dv`` and ``vth`` (a ``Network`` has
one neuron parameter set), each within :data:`UNIFORM_RTOL`. ``Delay`` nodes are accepted as the
synaptic delay (``delay = dt`` before every synaptic node, or none). A delay-free graph from
another tool gets our one-step delay per layer: layer ``i`` (1-based) at step ``t + i`` equals the
delay-free layer ``i`` at step ``t``. NIR says nothing about the reset's discrete timing:
``refractory`` chooses it (0: our LIF, Lava's; 1: snnTorch's ``reset_mechanism="zero"``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union
from urllib.parse import quote, unquote

import numpy as np

from neurocredit.conv import fuse_conv_pool, fuse_dense_pool, pair
from neurocredit.errors import NeurocreditError
from neurocredit.io import atomic_path, json_default
from neurocredit.network import (
    ACTIVATIONS,
    Conv2d,
    EncoderSpec,
    Layer,
    LIFParameters,
    Network,
    NeuronSpec,
    ReadoutSpec,
)

DEFAULT_DT = 1e-4
"""Seconds per step when nothing says otherwise (snnTorch's exporter and the NIR paper use it)."""
DELAY_MODES = ("metadata", "nodes")
NIR_FORMAT = "neurocredit-nir"
NIR_SCHEMA_VERSION = 1
UNIFORM_RTOL = 1e-9
"""How far a per-neuron du, dv or vth may differ from the layer's first neuron (relative)."""
DEFAULT_IMPORT_ENCODER = EncoderSpec(kind="bernoulli", steps=25, max_rate=1.0, seed=0)
"""The encoder an imported graph from another tool gets (a NIR graph does not say)."""


def _nir():
    try:
        import nir
    except ModuleNotFoundError:
        raise NeurocreditError("NIR export/import needs the `nir` package (pip install nir==1.0.8)") from None
    return nir


# ----------------------------------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------------------------------

def _cubalif_fields(du: float, dv: float, vth: float, bias: np.ndarray, dt: float) -> dict[str, np.ndarray]:
    """The ``CubaLIF`` fields of one layer of our LIF at ``dt`` (see module doc), float64."""
    n = bias.shape[0]
    return dict(
        tau_syn=np.full(n, dt / du),
        tau_mem=np.full(n, dt / dv),
        r=np.full(n, 1.0 / dv),
        v_leak=np.asarray(bias, dtype=np.float64) / dv,
        v_threshold=np.full(n, float(vth)),
        v_reset=np.zeros(n),
        w_in=np.full(n, 1.0 / du),
    )


def _if_fields(vth: float, n: int) -> dict[str, np.ndarray]:
    """The ``IF`` fields of our LIF with ``du = 1``, ``dv = 0`` (its bias goes into the synapse)."""
    return dict(r=np.ones(n), v_threshold=np.full(n, float(vth)), v_reset=np.zeros(n))


def _is_if(params: LIFParameters) -> bool:
    """``du = 1``, ``dv = 0``: no current memory, no leak -- NIR's ``IF`` (module doc)."""
    return params.du == 1.0 and params.dv == 0.0


def _synapse_bias(network: Network, layer: Any) -> np.ndarray:
    """The bias a synaptic node carries: the layer's when the neurons are ``IF`` (it enters the
    voltage there), else 0 (it goes into the ``CubaLIF``'s ``v_leak``)."""
    spiking_if = network.neuron.spiking and _is_if(network.neuron.lif)
    return layer.bias if spiking_if else np.zeros_like(layer.bias)


def _pool_nodes(nir, layer: Any, index: int) -> list[tuple[str, Any]]:
    """The ``SumPool2d`` a fused pool came from (:meth:`Network.unfused_weight`), or none."""
    pool = layer.pool
    return [(f"pool{index + 1}", nir.SumPool2d(kernel_size=np.array([pool, pool]), stride=np.array([pool, pool]),
                                               padding=np.array([0, 0])))] if pool > 1 else []


def _export_dense(nir, network: Network, layer: Layer, index: int) -> list[tuple[str, Any]]:
    """``[SumPool2d] -> Flatten -> Affine`` after a (C, H, W) population, else ``Affine``; a fused
    pool is emitted again as the ``SumPool2d`` it came from (:meth:`Network.unfused_weight`)."""
    nodes = _pool_nodes(nir, layer, index)
    source = tuple(network.shapes[index])
    if len(source) == 3:  # a fused pool (pool > 1) only stands on a (C, H, W) source
        source = (source[0], source[1] // layer.pool, source[2] // layer.pool)
        nodes.append((f"flatten{index + 1}", nir.Flatten(input_type={"input": np.array(source)}, start_dim=0)))
    weight = network.unfused_weight(index)
    nodes.append((layer.name or f"fc{index + 1}", nir.Affine(weight=weight, bias=_synapse_bias(network, layer))))
    return nodes


def _export_conv(nir, network: Network, layer: Conv2d, index: int) -> list[tuple[str, Any]]:
    """``[SumPool2d] -> Conv2d`` (OIHW cross-correlation; a fused pool is emitted again)."""
    _, _, plain = network.unfused(index)  # the conv after the pool: pooled input, weight, stride and padding
    return _pool_nodes(nir, layer, index) + [(layer.name or f"conv{index + 1}", nir.Conv2d(
        input_shape=plain.input_shape[1:], weight=plain.weight, stride=plain.stride, padding=plain.padding,
        dilation=(1, 1), groups=1, bias=_synapse_bias(network, layer)))]


def _export_lif(nir, network: Network, layer: Layer, index: int, dt: float) -> tuple[str, Any]:
    params = network.neuron.lif
    neuron_bias = np.asarray(layer.neuron_bias)
    if _is_if(params):
        prefix, node_type, fields = "if", nir.IF, _if_fields(params.vth, neuron_bias.shape[0])
    else:
        prefix, node_type = "lif", nir.CubaLIF
        fields = _cubalif_fields(params.du, params.dv, params.vth, neuron_bias, dt)
    shape = tuple(layer.output_shape)
    return f"{prefix}{index + 1}", node_type(**{key: value.reshape(shape) for key, value in fields.items()},
                                             metadata={"neurocredit_bias": layer.bias})


def _refuse_rate(nir, network: Network, layer: Layer, index: int, dt: float):
    raise NeurocreditError(
        f"rate networks ({network.neuron.activation}) have no NIR form: NIR {nir.version} has no node for "
        f"{', '.join(ACTIVATIONS)} (its Threshold is a Heaviside step); convert the network to a spiking one "
        "first (`neurocredit convert RATE.h5`) and export that"
    )


SYNAPSE_EXPORTERS: dict[type, Callable] = {Layer: _export_dense, Conv2d: _export_conv}
"""Layer type -> ``f(nir, network, layer, index) -> [(node name, NIR node), ...]``."""
NEURON_EXPORTERS: dict[str, Callable] = {"lif": _export_lif, "rate": _refuse_rate}
"""Neuron kind -> ``f(nir, network, layer, index, dt) -> (node name, NIR node)``."""


def _check_exportable(network: Network, dt: float, delays: str) -> None:
    if delays not in DELAY_MODES:
        raise NeurocreditError(f"delays={delays!r} must be one of {', '.join(DELAY_MODES)}")
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise NeurocreditError(f"dt={dt!r} must be a finite number of seconds > 0 (e.g. 1e-4)")
    if network.neuron.spiking and not _is_if(network.neuron.lif):
        params = network.neuron.lif
        for name in ("du", "dv"):
            if getattr(params, name) <= 0:
                raise NeurocreditError(
                    f"{name} = 0 (no {'current' if name == 'du' else 'voltage'} leak) has no NIR form: NIR's "
                    f"CubaLIF needs a finite tau_{'syn' if name == 'du' else 'mem'} = dt/{name}; "
                    f"use a network with {name} > 0 (or du = 1 and dv = 0, which exports as IF)"
                )




def export_nir(network: Network, dt: float = DEFAULT_DT, delays: str = "metadata"):
    """``network`` as a ``nir.NIRGraph`` (see module doc for the mapping, ``dt`` and ``delays``)."""
    nir = _nir()
    _check_exportable(network, dt, delays)
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(network.input_shape)})}
    chain = ["input"]
    for index, layer in enumerate(network.layers):
        if type(layer) not in SYNAPSE_EXPORTERS:
            raise NeurocreditError(f"layer {index} ({layer.name}): no NIR export for {type(layer).__name__} layers")
        if delays == "nodes":
            nodes[f"delay{index + 1}"] = nir.Delay(delay=np.full(tuple(network.shapes[index]), float(dt)))
            chain.append(f"delay{index + 1}")
        synapse_nodes = SYNAPSE_EXPORTERS[type(layer)](nir, network, layer, index)
        neuron_node = NEURON_EXPORTERS[network.neuron.kind](nir, network, layer, index, dt)
        for name, node in (*synapse_nodes, neuron_node):
            if name in nodes:
                raise NeurocreditError(f"layer {index}: two layers are named {name!r}; rename one before export")
            nodes[name] = node
            chain.append(name)
    nodes["output"] = nir.Output(output_type={"output": np.array(network.shapes[-1])})
    chain.append("output")
    header = {
        "format": NIR_FORMAT,
        "schema_version": NIR_SCHEMA_VERSION,
        "dt": float(dt),
        "delays": delays,
        "synaptic_delay_steps": 1,
        "neuron": asdict(network.neuron),
        "encoder": asdict(network.encoder),
        "readout": network.readout.kind,
        "layer_names": [layer.name for layer in network.layers],
        "provenance": dict(network.provenance),
    }
    metadata: dict[str, Any] = {"neurocredit": json.dumps(header, sort_keys=True, default=json_default)}
    if network.extras:
        metadata["neurocredit_extras"] = {quote(key, safe=""): value for key, value in network.extras.items()}
    return nir.NIRGraph(nodes=nodes, edges=list(zip(chain[:-1], chain[1:])), metadata=metadata)


def write_nir(network: Network, path: Union[str, os.PathLike], dt: float = DEFAULT_DT,
              delays: str = "metadata") -> Path:
    """:func:`export_nir` written to ``path`` with ``nir.write`` (atomically)."""
    graph = export_nir(network, dt=dt, delays=delays)
    nir = _nir()
    with atomic_path(path) as temp:
        nir.write(temp, graph)
    return Path(path)


# ----------------------------------------------------------------------------------------------
# Import
# ----------------------------------------------------------------------------------------------

@dataclass
class _Synapse:
    """A synaptic node waiting for its neurons: its weight and the bias NIR adds to the synaptic
    current, per neuron (n_out,). Knows how to become our layer (one class per synaptic node
    kind; a convolution is another subclass)."""

    name: str
    weight: np.ndarray
    current_bias: np.ndarray
    delayed: bool
    pool: int = 1  # a SumPool2d in front, fused into the weight

    @property
    def geometry(self) -> Union[Layer, Conv2d]:
        """Our layer of this weight with a zero bias: ``n_out`` and ``output_shape`` are its own
        (one definition, in :class:`Layer` / :class:`Conv2d`)."""
        return self.exact_layer(np.zeros(self.weight.shape[0], dtype=np.asarray(self.weight).dtype))

    @property
    def n_out(self) -> int:
        return self.geometry.n_out

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(self.geometry.output_shape)

    def layer(self, scale: np.ndarray, voltage_bias: np.ndarray) -> Layer:
        """Our layer with the per-neuron ``scale`` moved into the weight rows and ``voltage_bias``
        (n_out,) as its bias (float64)."""
        weight = np.asarray(scale, dtype=np.float64)[:, None] * np.asarray(self.weight, dtype=np.float64)
        return Layer(weight, np.asarray(voltage_bias, dtype=np.float64), pool=self.pool)

    def exact_layer(self, bias: np.ndarray) -> Layer:
        """Our own exported layer, unchanged: the weight and the metadata bias in their dtypes."""
        return Layer(self.weight, bias, pool=self.pool)


@dataclass
class _ConvSynapse(_Synapse):
    """A ``Conv2d`` node: OIHW ``weight`` (pool fused), ``current_bias`` per neuron (C*OH*OW,).
    Its kernel is shared over positions, so whatever the neurons add per neuron must be the same
    across each channel's positions."""

    input_shape: tuple[int, int, int] = (0, 0, 0)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    def _conv(self, weight: np.ndarray, bias: np.ndarray) -> Conv2d:
        return Conv2d(weight, bias, self.input_shape, self.stride, self.padding, pool=self.pool)

    def _per_channel(self, values: np.ndarray, what: str) -> np.ndarray:
        channels = np.asarray(values, dtype=np.float64).reshape(self.weight.shape[0], -1)
        first = channels[:, :1]
        if np.any(np.abs(channels - first) > UNIFORM_RTOL * np.abs(first)):
            raise NeurocreditError(
                f"node {self.name!r} (Conv2d): the {what} of its neurons differs between positions of one channel; a "
                "convolution shares its kernel and bias over positions, so neurocredit needs them equal per channel"
            )
        return first[:, 0]

    def layer(self, scale: np.ndarray, voltage_bias: np.ndarray) -> Conv2d:
        scale_c = self._per_channel(scale, "input scale (dv r du w_in)")
        weight = scale_c[:, None, None, None] * np.asarray(self.weight, dtype=np.float64)
        return self._conv(weight, self._per_channel(voltage_bias, "bias or leak potential"))

    def exact_layer(self, bias: np.ndarray) -> Conv2d:
        return self._conv(self.weight, bias)


@dataclass
class _ImportedLayer:
    """One neuron node with its synapse, as our layer (named later) and its discrete parameters
    per neuron (before the shared ones are checked)."""

    name: str
    layer: Any
    du: np.ndarray
    dv: np.ndarray
    vth: np.ndarray
    delayed: bool
    node_type: str
    biased: bool  # a bias or leak potential anywhere in this layer (Norse cannot check it)
    r_not_one: bool = False
    from_metadata: bool = False  # our own export, unchanged: the discrete parameters bit for bit


@dataclass
class _Builder:
    """State while walking the chain: the pending delay and synapse, the finished layers."""

    dt: float
    exact: Optional[dict]  # our own header when the graph carries one
    shape: tuple = ()  # the current population's shape (the Input's, then each layer's output)
    delay_pending: Optional[str] = None
    pool_pending: Optional[tuple[str, int, tuple]] = None  # (node, p, shape before the pool)
    flatten_pending: Optional[str] = None
    synapse: Optional[_Synapse] = None
    layers: list = field(default_factory=list)


def _describe(name: str, node: Any) -> str:
    return f"node {name!r} ({type(node).__name__})"


def _supported() -> str:
    return ("neurocredit imports feed-forward chains Input -> [Delay] -> [SumPool2d] -> [Flatten] -> "
            "Affine|Linear|Conv2d -> CubaLIF|LIF|IF -> ... -> Output")


def _import_delay(name: str, node: Any, builder: _Builder) -> None:
    delay = np.asarray(node.delay, dtype=np.float64)
    if (builder.synapse is not None or builder.delay_pending is not None or builder.pool_pending is not None
            or builder.flatten_pending is not None):
        raise NeurocreditError(
            f"{_describe(name, node)} is not directly in front of a synaptic node (Affine/Linear); only the "
            f"one-step synaptic delay is supported; {_supported()}"
        )
    if delay.size == 0 or not np.allclose(delay, builder.dt, rtol=1e-9, atol=0):
        raise NeurocreditError(
            f"{_describe(name, node)} delays by {np.unique(delay)[:3].tolist()} s; only the synaptic delay of one "
            f"step (delay = dt = {builder.dt:g} s) is supported (pass the graph's --dt)"
        )
    builder.delay_pending = name


def _no_synapse_pending(name: str, node: Any, builder: _Builder) -> None:
    if builder.synapse is not None:
        raise NeurocreditError(
            f"{_describe(name, node)} follows synaptic node {builder.synapse.name!r} without neurons between them "
            f"(Lava cannot chain two synaptic layers); {_supported()}"
        )


def _start_synapse(name: str, node: Any, builder: _Builder, weight: np.ndarray, bias: np.ndarray) -> None:
    _no_synapse_pending(name, node, builder)
    if weight.ndim != 2:
        raise NeurocreditError(f"{_describe(name, node)} has a weight of shape {weight.shape}; expected (n_out, n_in)")
    pool = 1
    if builder.pool_pending is not None:
        _, pool, source = builder.pool_pending
        if len(source) != 3 or weight.shape[1] != source[0] * (source[1] // pool) * (source[2] // pool):
            raise NeurocreditError(f"{_describe(name, node)} expects {weight.shape[1]} inputs but the pooled {source} "
                                   "population does not have that many")
        weight = fuse_dense_pool(weight, source, pool)
    elif len(builder.shape) == 3 and builder.flatten_pending is None:
        raise NeurocreditError(f"{_describe(name, node)} follows a (C, H, W) population without a Flatten; {_supported()}")
    builder.synapse = _Synapse(name, weight, bias, builder.delay_pending is not None, pool)
    builder.delay_pending = builder.pool_pending = builder.flatten_pending = None


def _padding(name: str, node: Any, kernel: tuple[int, int], stride: tuple[int, int]) -> tuple[int, int]:
    padding = node.padding
    if isinstance(padding, (str, bytes)):
        padding = padding.decode() if isinstance(padding, bytes) else padding
        if padding == "valid":
            return (0, 0)
        if padding == "same" and stride == (1, 1) and all(k % 2 == 1 for k in kernel):
            return (kernel[0] // 2, kernel[1] // 2)
        raise NeurocreditError(f"{_describe(name, node)} has padding {padding!r}; supported: numbers, 'valid', and "
                               "'same' with stride 1 and odd kernels")
    values = np.broadcast_to(np.asarray(padding, dtype=np.int64).reshape(-1), (2,))
    return int(values[0]), int(values[1])


def _import_conv2d(name: str, node: Any, builder: _Builder) -> None:
    _no_synapse_pending(name, node, builder)
    weight = np.asarray(node.weight)
    if weight.ndim != 4:
        raise NeurocreditError(f"{_describe(name, node)} has a weight of shape {weight.shape}; expected OIHW")
    if pair(np.asarray(node.dilation).reshape(-1).tolist()) != (1, 1) or int(np.asarray(node.groups)) != 1:
        raise NeurocreditError(f"{_describe(name, node)} has dilation {np.asarray(node.dilation).tolist()} and groups "
                               f"{int(np.asarray(node.groups))}; supported: dilation 1, groups 1")
    stride = pair(np.asarray(node.stride).reshape(-1).tolist())  # one value or (rows, columns)
    padding = _padding(name, node, tuple(weight.shape[2:]), stride)
    shape = builder.shape
    if len(shape) != 3 or shape[0] != weight.shape[1]:
        raise NeurocreditError(f"{_describe(name, node)} expects {weight.shape[1]} input channels but its input has "
                               f"shape {tuple(shape)}")
    pool, source = 1, shape
    if builder.pool_pending is not None:
        _, pool, source = builder.pool_pending
        weight, stride, padding = fuse_conv_pool(weight, stride, padding, pool)
    bias = np.zeros(weight.shape[0]) if node.bias is None else np.broadcast_to(
        np.asarray(node.bias, dtype=np.float64).reshape(-1), (weight.shape[0],))
    synapse = _ConvSynapse(name, weight, np.zeros(0), builder.delay_pending is not None, pool,
                           tuple(int(n) for n in source), tuple(stride), tuple(padding))
    synapse.current_bias = np.repeat(bias, synapse.n_out // weight.shape[0])
    builder.synapse = synapse
    builder.delay_pending = builder.pool_pending = builder.flatten_pending = None


def _import_sumpool2d(name: str, node: Any, builder: _Builder) -> None:
    _no_synapse_pending(name, node, builder)
    kernel = np.asarray(node.kernel_size).reshape(-1)
    stride = np.asarray(node.stride).reshape(-1)
    padding = np.asarray(node.padding).reshape(-1)
    pool = int(kernel[0])
    if (np.any(kernel != pool) or np.any(stride != pool) or np.any(padding != 0) or pool < 1
            or builder.pool_pending is not None or len(builder.shape) != 3):
        raise NeurocreditError(
            f"{_describe(name, node)} (kernel {kernel.tolist()}, stride {stride.tolist()}, padding {padding.tolist()}) "
            "is supported only as a p x p pool with stride p and no padding on a (C, H, W) population, in front of "
            "a Conv2d or Flatten -> Affine (where it is fused into the weight)"
        )
    builder.pool_pending = (name, pool, tuple(builder.shape))
    channels, height, width = builder.shape
    builder.shape = (channels, height // pool, width // pool)


def _import_flatten(name: str, node: Any, builder: _Builder) -> None:
    _no_synapse_pending(name, node, builder)
    builder.flatten_pending = name
    builder.shape = (int(np.prod(builder.shape)),)


def _import_affine(name: str, node: Any, builder: _Builder) -> None:
    """``Affine`` (``W x + b``) or ``Linear`` (``W x``: no bias field)."""
    weight = np.asarray(node.weight)
    bias = getattr(node, "bias", None)
    bias = np.zeros(weight.shape[0]) if bias is None else np.asarray(bias)
    _start_synapse(name, node, builder, weight, np.broadcast_to(bias, weight.shape[:1]).copy())


def _take_synapse(name: str, node: Any, builder: _Builder, n: int) -> _Synapse:
    synapse = builder.synapse
    if synapse is None:
        raise NeurocreditError(
            f"{_describe(name, node)} is not preceded by a synaptic node (Affine/Linear/Conv2d); {_supported()}"
        )
    if synapse.n_out != n:
        raise NeurocreditError(
            f"{_describe(name, node)} has {n} neurons but {synapse.name!r} has {synapse.n_out} outputs"
        )
    builder.synapse = None
    builder.shape = tuple(synapse.output_shape)
    return synapse


def _per_neuron(node: Any, field_name: str, n: int) -> np.ndarray:
    """A node's field as one float64 value per neuron (scalars broadcast)."""
    value = np.asarray(1.0 if getattr(node, field_name) is None else getattr(node, field_name), dtype=np.float64)
    try:
        return np.broadcast_to(value.reshape(-1) if value.size == n else value, (n,)).astype(np.float64)
    except ValueError:
        raise NeurocreditError(
            f"{type(node).__name__} field {field_name} has shape {value.shape}, which does not fit its {n} neurons"
        ) from None


def _check_reset(name: str, node: Any, n: int) -> None:
    v_reset = _per_neuron(node, "v_reset", n) if getattr(node, "v_reset", None) is not None else np.zeros(n)
    if np.any(v_reset != 0):
        raise NeurocreditError(
            f"{_describe(name, node)} resets to v_reset = {np.unique(v_reset)[:3].tolist()}; neurocredit's LIF "
            "(Lava's) resets to 0 only"
        )


def _exact_layer(name: str, node: Any, builder: _Builder, synapse: _Synapse) -> Optional[_ImportedLayer]:
    """Our own export, unchanged: the discrete parameters from the metadata, bit for bit (None
    when the node is not exactly what :func:`export_nir` writes for them)."""
    header = builder.exact
    bias = (node.metadata or {}).get("neurocredit_bias")
    if header is None or bias is None:
        return None
    lif = header["neuron"]["lif"]
    kind = type(node).__name__
    if kind != ("IF" if _is_if(LIFParameters(lif["du"], lif["dv"], lif["vth"])) else "CubaLIF"):
        return None
    try:
        layer = synapse.exact_layer(np.asarray(bias))
        neuron_bias = np.asarray(getattr(layer, "neuron_bias", layer.bias)).reshape(-1)
    except (NeurocreditError, ValueError):
        return None
    if neuron_bias.shape != (synapse.n_out,):
        return None
    if kind == "IF":
        expected = _if_fields(lif["vth"], synapse.n_out)
    else:
        expected = _cubalif_fields(lif["du"], lif["dv"], lif["vth"], neuron_bias, header["dt"])
    # the synaptic node carries the bias only in front of IF neurons (:func:`_synapse_bias`)
    if not np.array_equal(synapse.current_bias, neuron_bias if kind == "IF" else np.zeros_like(neuron_bias)):
        return None
    for key, value in expected.items():
        found = getattr(node, key)
        if found is None or not np.array_equal(np.asarray(found, dtype=np.float64).reshape(-1), value):
            return None
    n = synapse.n_out
    return _ImportedLayer(name, layer, np.full(n, lif["du"]), np.full(n, lif["dv"]), np.full(n, lif["vth"]),
                          synapse.delayed, kind, bool(np.any(neuron_bias != 0)), from_metadata=True)


def _start_neuron(name: str, node: Any, builder: _Builder, exact: bool = True):
    """What every neuron importer does first: the population size ``n``, the synapse feeding it
    (taken from ``builder``), the reset checked; with ``exact``, a layer neurocredit exported is
    restored exactly (appended to ``builder``; returns None). Else returns ``(n, synapse)``."""
    n = int(np.size(node.v_threshold))
    synapse = _take_synapse(name, node, builder, n)
    _check_reset(name, node, n)
    if exact:
        layer = _exact_layer(name, node, builder, synapse)
        if layer is not None:
            builder.layers.append(layer)
            return None
    return n, synapse


def _import_cubalif(name: str, node: Any, builder: _Builder) -> None:
    started = _start_neuron(name, node, builder)
    if started is None:
        return
    n, synapse = started
    dt = builder.dt
    du = dt / _per_neuron(node, "tau_syn", n)
    dv = dt / _per_neuron(node, "tau_mem", n)
    scale = dv * _per_neuron(node, "r", n) * du * _per_neuron(node, "w_in", n)
    v_leak = _per_neuron(node, "v_leak", n)
    if np.any(synapse.current_bias != 0) and not np.all(du == 1.0):
        raise NeurocreditError(
            f"{_describe(name, node)}: the bias of {synapse.name!r} enters the synaptic current (w_in (W x + b), "
            f"integrated with tau_syn = {float(np.min(dt / du)):g} s), but neurocredit's LIF (Lava's) adds its bias "
            "to the voltage; this is the same only with tau_syn = dt, so the graph is refused rather than changed "
            "(export it without the Affine bias, or with tau_syn = dt)"
        )
    builder.layers.append(_ImportedLayer(
        name, synapse.layer(scale, dv * v_leak + scale * synapse.current_bias), du, dv,
        _per_neuron(node, "v_threshold", n), synapse.delayed, "CubaLIF",
        bool(np.any(synapse.current_bias != 0) or np.any(v_leak != 0)),
    ))


def _import_lif(name: str, node: Any, builder: _Builder) -> None:
    n, synapse = _start_neuron(name, node, builder, exact=False)
    dv = builder.dt / _per_neuron(node, "tau", n)
    r = _per_neuron(node, "r", n)
    v_leak = _per_neuron(node, "v_leak", n)
    builder.layers.append(_ImportedLayer(
        name, synapse.layer(dv * r, dv * (v_leak + r * synapse.current_bias)), np.ones(n), dv,
        _per_neuron(node, "v_threshold", n), synapse.delayed, "LIF",
        bool(np.any(synapse.current_bias != 0) or np.any(v_leak != 0)), bool(np.any(r != 1)),
    ))


def _import_if(name: str, node: Any, builder: _Builder) -> None:
    started = _start_neuron(name, node, builder)
    if started is None:
        return
    n, synapse = started
    r = _per_neuron(node, "r", n)
    builder.layers.append(_ImportedLayer(
        name, synapse.layer(r, r * synapse.current_bias), np.ones(n), np.zeros(n),
        _per_neuron(node, "v_threshold", n), synapse.delayed, "IF", bool(np.any(synapse.current_bias != 0)),
        bool(np.any(r != 1)),
    ))


IMPORTERS: dict[str, Callable[[str, Any, _Builder], None]] = {
    "Delay": _import_delay,
    "SumPool2d": _import_sumpool2d,
    "Flatten": _import_flatten,
    "Affine": _import_affine,
    "Linear": _import_affine,
    "Conv2d": _import_conv2d,
    "CubaLIF": _import_cubalif,
    "LIF": _import_lif,
    "IF": _import_if,
}
"""NIR node type name -> ``f(name, node, builder)``; ``Input`` and ``Output`` end the chain."""


def read_graph(path: Union[str, os.PathLike]):
    """``nir.read(path)`` with one-line errors."""
    nir = _nir()
    file_path = Path(path)
    if not file_path.exists():
        raise NeurocreditError(f"{file_path}: no such file")
    try:
        return nir.read(file_path)
    except OSError as error:
        raise NeurocreditError(f"{file_path}: not a readable NIR (HDF5) file ({error.__class__.__name__})") from None
    except (AssertionError, KeyError, ValueError, TypeError) as error:
        raise NeurocreditError(
            f"{file_path}: nir {nir.version} cannot read this graph ({error.__class__.__name__}: {error})"
        ) from None


def graph_chain(graph) -> list[str]:
    """The node names of a feed-forward chain from its one ``Input`` to its one ``Output``;
    any other topology is one :class:`NeurocreditError` naming the node."""
    nodes, edges = graph.nodes, list(graph.edges)
    for source, target in edges:
        for end in (source, target):
            if end not in nodes:
                raise NeurocreditError(f"edge ({source!r}, {target!r}) names {end!r}, which is not a node of the graph")
    kinds = {name: type(node).__name__ for name, node in nodes.items()}
    inputs = [name for name, kind in kinds.items() if kind == "Input"]
    outputs = [name for name, kind in kinds.items() if kind == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NeurocreditError(
            f"the graph has {len(inputs)} Input and {len(outputs)} Output nodes; {_supported()} (one of each)"
        )
    successors: dict[str, list[str]] = {name: [] for name in nodes}
    predecessors: dict[str, list[str]] = {name: [] for name in nodes}
    for source, target in edges:
        successors[source].append(target)
        predecessors[target].append(source)
    for name in nodes:
        for linked, edges_to, what in ((predecessors, "incoming edges (from", "recurrent edges and merges"),
                                       (successors, "outgoing edges (to", "branches")):
            if len(linked[name]) > 1:
                raise NeurocreditError(
                    f"{_describe(name, nodes[name])} has {len(linked[name])} {edges_to} "
                    f"{', '.join(map(repr, linked[name]))}): {what} are not supported; {_supported()}"
                )
    chain, current = [], inputs[0]
    while True:
        if current in chain:
            raise NeurocreditError(f"{_describe(current, nodes[current])} is on a cycle (a recurrent edge); {_supported()}")
        chain.append(current)
        if current == outputs[0] or not successors[current]:
            break
        current = successors[current][0]
    if chain[-1] != outputs[0]:
        raise NeurocreditError(f"the chain from {inputs[0]!r} ends at {chain[-1]!r}, not at the Output; {_supported()}")
    rest = sorted(set(nodes) - set(chain))
    if rest:
        raise NeurocreditError(
            f"{_describe(rest[0], nodes[rest[0]])} is not on the path from {inputs[0]!r} to {outputs[0]!r} "
            f"(a recurrent or disconnected part); {_supported()}"
        )
    for name in chain[1:-1]:
        if kinds[name] not in IMPORTERS:
            raise NeurocreditError(
                f"{_describe(name, nodes[name])} is not supported; supported node types: Input, Output, "
                f"{', '.join(IMPORTERS)}"
            )
    return chain


def _header(graph) -> Optional[dict]:
    text = (graph.metadata or {}).get("neurocredit") if isinstance(graph.metadata, dict) else None
    if text is None:
        return None
    try:
        header = json.loads(text if isinstance(text, str) else bytes(text).decode())
    except (ValueError, TypeError):
        return None
    if header.get("format") != NIR_FORMAT:
        return None
    if header.get("schema_version") != NIR_SCHEMA_VERSION:
        raise NeurocreditError(
            f"the graph's neurocredit metadata has schema version {header.get('schema_version')!r}; this "
            f"neurocredit reads version {NIR_SCHEMA_VERSION}"
        )
    return header


def _shared(layers: list[_ImportedLayer], attribute: str, label: str) -> float:
    first = float(getattr(layers[0], attribute)[0])
    for layer in layers:
        values = getattr(layer, attribute)
        if np.any(np.abs(values - first) > UNIFORM_RTOL * abs(first)):
            raise NeurocreditError(
                f"node {layer.name!r} ({layer.node_type}) has {label} = {np.unique(values)[:3].tolist()}, "
                f"layer {layers[0].name!r} has {first!r}: a neurocredit network shares one {label} across all "
                "neurons and layers"
            )
    return first


@dataclass(frozen=True)
class ImportedGraph:
    """What :func:`import_nir` made of a graph: the network and how it was read.

    ``exact``: the graph is our own export, read back from its metadata bit for bit.
    ``delays``: ``"nodes"`` (explicit Delay nodes), ``"metadata"`` (our delay-free export) or
    ``"added"`` (a delay-free graph from elsewhere: the one-step delay per layer is added).
    ``layer_types``: the NIR neuron type of each layer; ``biased``: whether any layer has a bias
    or leak potential; ``r_not_one``: whether a LIF/IF has ``r != 1`` (Norse ignores ``r``).
    """

    network: Network
    dt: float
    exact: bool
    delays: str
    layer_types: tuple[str, ...]
    biased: bool
    r_not_one: bool


def import_graph(graph_or_path, dt: Optional[float] = None, refractory: Optional[int] = None,
                 readout: Optional[str] = None, encoder: Optional[EncoderSpec] = None) -> ImportedGraph:
    """:func:`import_nir` with the details of how the graph was read (see :class:`ImportedGraph`)."""
    nir = _nir()
    source = None
    graph = graph_or_path
    if isinstance(graph_or_path, (str, os.PathLike)):
        source = str(graph_or_path)
        graph = read_graph(graph_or_path)
    if not isinstance(graph, nir.NIRGraph):
        raise NeurocreditError(f"expected a nir.NIRGraph or a path to a .nir file, got {type(graph).__name__}")
    header = _header(graph)
    if dt is None:
        dt = header["dt"] if header is not None else DEFAULT_DT
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise NeurocreditError(f"dt={dt!r} must be a finite number of seconds > 0 (e.g. 1e-4)")
    exact_header = header if header is not None and float(header["dt"]) == float(dt) else None
    chain = graph_chain(graph)
    input_shape = graph.nodes[chain[0]].input_type["input"]
    builder = _Builder(float(dt), exact_header, tuple(int(n) for n in np.asarray(input_shape).reshape(-1)))
    for name in chain[1:-1]:
        node = graph.nodes[name]
        IMPORTERS[type(node).__name__](name, node, builder)
    pending = [builder.synapse.name if builder.synapse is not None else None, builder.delay_pending,
               builder.pool_pending[0] if builder.pool_pending is not None else None, builder.flatten_pending]
    if any(pending):
        last = next(name for name in pending if name)
        raise NeurocreditError(f"node {last!r} is not followed by neurons before the Output; {_supported()}")
    layers = builder.layers
    if not layers:
        raise NeurocreditError(f"the graph has no neuron node; {_supported()}")
    delayed = [layer.delayed for layer in layers]
    if any(delayed) and not all(delayed):
        missing = [layer.name for layer in layers if not layer.delayed]
        raise NeurocreditError(
            f"some synaptic nodes have a Delay in front and others not (layers {', '.join(map(repr, missing))} "
            "have none): neurocredit networks delay every connection by one step, so a graph has it everywhere or "
            "nowhere"
        )
    n_inputs = int(np.prod(np.asarray(graph.nodes[chain[0]].input_type["input"])))
    if n_inputs != layers[0].layer.n_in:
        raise NeurocreditError(
            f"Input node {chain[0]!r} has {n_inputs} values but {layers[0].name!r} expects {layers[0].layer.n_in}"
        )
    du = _shared(layers, "du", "du (dt/tau_syn)")
    dv = _shared(layers, "dv", "dv (dt/tau_mem)")
    vth = _shared(layers, "vth", "v_threshold")
    for label, value, what in (("du", du, "tau_syn"), ("dv", dv, "tau_mem")):
        if not (0.0 <= value <= 1.0):
            raise NeurocreditError(
                f"{label} = dt/{what} = {value:g} > 1 at dt = {dt:g} s: the graph's {what} = {dt / value:g} s is "
                f"shorter than one step; import with --dt <= {dt / value:g}"
            )
    exact = exact_header is not None and all(layer.from_metadata for layer in layers)
    names = [f"{'conv' if isinstance(imported.layer, Conv2d) else 'fc'}{index + 1}"
             for index, imported in enumerate(layers)]
    if exact and len(exact_header["layer_names"]) == len(layers):
        names = exact_header["layer_names"]
    if refractory is None:
        refractory = int(header["neuron"]["lif"].get("refractory", 0)) if header is not None else 0
    neuron = NeuronSpec(kind="lif", lif=LIFParameters(du=du, dv=dv, vth=vth, refractory=refractory))
    if encoder is None:
        encoder = EncoderSpec(**header["encoder"]) if header is not None else DEFAULT_IMPORT_ENCODER
    if readout is None:
        readout = header["readout"] if header is not None else "argmax"
    extras = {}
    if exact and isinstance(graph.metadata.get("neurocredit_extras"), dict):
        extras = {unquote(key): np.asarray(value) for key, value in graph.metadata["neurocredit_extras"].items()}
    delays = "nodes" if all(delayed) else ("metadata" if header is not None else "added")
    provenance = dict(header["provenance"]) if header is not None else {}
    provenance.update({
        "nir_source": source or "<graph>",
        "nir_dt": float(dt),
        "nir_delays": delays,
        "nir_exact": bool(exact),
        "nir_layer_types": ",".join(layer.node_type for layer in layers),
    })
    if header is None:
        provenance.setdefault("rule", "imported (nir)")
    network = Network(
        tuple(dataclasses.replace(imported.layer, name=name) for imported, name in zip(layers, names)),
        neuron, encoder, ReadoutSpec(readout), extras, provenance,
    )
    return ImportedGraph(network, float(dt), bool(exact), delays, tuple(layer.node_type for layer in layers),
                         any(layer.biased for layer in layers), any(layer.r_not_one for layer in layers))


def import_nir(graph_or_path, dt: Optional[float] = None, refractory: Optional[int] = None,
               readout: Optional[str] = None, encoder: Optional[EncoderSpec] = None) -> Network:
    """A NIR graph (a ``nir.NIRGraph`` or a ``.nir`` path) as a ``Network`` (see module doc).

    ``dt``: seconds per step (default: our metadata's, else :data:`DEFAULT_DT`).
    ``refractory``: steps v is held at 0 after a spike (default: our metadata's, else 0).
    ``readout``: default our metadata's, else ``argmax``. ``encoder``: default our metadata's,
    else :data:`DEFAULT_IMPORT_ENCODER`.
    """
    return import_graph(graph_or_path, dt=dt, refractory=refractory, readout=readout, encoder=encoder).network


# ----------------------------------------------------------------------------------------------
# Verification: the imported network against an independent executor of the graph
# ----------------------------------------------------------------------------------------------

def norse_unavailable_reason(imported: ImportedGraph) -> Optional[str]:
    """Why ``norse.torch.from_nir`` cannot serve as the independent executor (None when it can)."""
    if imported.biased:
        return ("the graph has a bias or leak potential; Norse 1.1.0's from_nir also feeds v_leak into the synaptic "
                "current (norse/torch/utils/import_nir.py, LIBoxCell), so it would not run the graph's dynamics")
    if imported.r_not_one:
        return "a LIF/IF node has r != 1, which Norse 1.1.0's from_nir ignores"
    if imported.network.neuron.lif.refractory:
        return "the network has a refractory period, which Norse's from_nir does not model"
    return None


def _norse_layer_spikes(graph, chain: list[str], layer_index: int, inputs: np.ndarray, dt: float) -> np.ndarray:
    """Spikes (steps, batch, n) of the ``layer_index``-th neuron node of ``chain``, computed by
    ``norse.torch.from_nir`` on the delay-free sub-graph that ends there. Inputs are given the
    Input node's shape; a graph with a ``Flatten`` runs one sample at a time (Norse turns NIR's
    ``Flatten(start_dim=0)`` into ``torch.nn.Flatten(0)``, which would flatten the batch too)."""
    import torch

    from neurocredit.sim.norse_backend import import_norse

    norse_torch = import_norse()
    nir = _nir()
    kept = [name for name in chain[:-1] if type(graph.nodes[name]).__name__ != "Delay"]
    neurons = [name for name in kept if type(graph.nodes[name]).__name__ in ("CubaLIF", "LIF", "IF")]
    end = kept.index(neurons[layer_index])
    names = kept[: end + 1]
    out_shape = np.shape(graph.nodes[names[-1]].v_threshold)
    nodes = {name: graph.nodes[name] for name in names}
    nodes["output"] = nir.Output(output_type={"output": np.array(out_shape)})
    sub = nir.NIRGraph(nodes=nodes, edges=list(zip(names + ["output"], (names + ["output"])[1:])), metadata={})
    in_shape = tuple(int(n) for n in np.asarray(graph.nodes[chain[0]].input_type["input"]).reshape(-1))
    steps, batch = inputs.shape[:2]
    shaped = np.asarray(inputs, dtype=np.float32).reshape(steps, batch, *in_shape)
    per_sample = batch > 1 and any(type(graph.nodes[name]).__name__ == "Flatten" for name in names)
    groups = [slice(i, i + 1) for i in range(batch)] if per_sample else [slice(0, batch)]
    out = np.zeros((steps, batch, int(np.prod(out_shape))), dtype=bool)
    with torch.no_grad(), warnings.catch_warnings():
        # only nirtorch's torch.jit deprecation notice; Norse's own notes are off (ignore_warnings)
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
        for group in groups:
            module = norse_torch.from_nir(sub, dt=dt, ignore_warnings=True)
            state = None
            for t in range(steps):
                frame = torch.as_tensor(shaped[t, group.start] if per_sample else shaped[t, group])
                spikes, state = module(frame, state)
                out[t, group] = spikes.numpy().reshape(group.stop - group.start, -1) > 0
    return out


def check_import(imported: ImportedGraph, graph, samples: int = 16, seed: int = 0) -> dict:
    """Run the imported network in the reference backend on ``samples`` seeded random inputs
    (encoded by the network's encoder) and, where it can, the graph itself through
    ``norse.torch.from_nir``; per layer, the spikes of both and how many (step, sample, neuron)
    entries differ. Layer ``i`` (1-based) of the reference at step ``t + i`` is compared with the
    delay-free executor at step ``t`` (module doc), so ``T - i`` steps are compared."""
    from neurocredit.neurons import run_lif_network
    from neurocredit.sim import encode_inputs

    network = imported.network
    features = np.random.default_rng(seed).uniform(size=(samples, network.n_inputs))
    inputs = np.asarray(encode_inputs(network, features), dtype=np.float64)
    reference = run_lif_network(network, inputs, record_states=False).spikes
    steps = inputs.shape[0]
    result: dict[str, Any] = {
        "samples": samples,
        "steps": steps,
        "reference_spikes": [int(raster.sum()) for raster in reference],
        "executor": None,
        "layers": [],
    }
    reason = norse_unavailable_reason(imported)
    if reason is not None:
        result["executor_skipped"] = reason
        return result
    try:
        from neurocredit.sim.norse_backend import import_norse

        import_norse()  # without Norse's torch.jit deprecation notice
    except ModuleNotFoundError:
        result["executor_skipped"] = "norse is not installed"
        return result
    chain = graph_chain(graph)
    result["executor"] = "norse.torch.from_nir"
    for index, raster in enumerate(reference):
        shift = index + 1
        other = _norse_layer_spikes(graph, chain, index, inputs, imported.dt)
        compared = max(0, steps - shift)
        mine, theirs = raster[shift:], other[:compared]
        result["layers"].append({
            "layer": network.layers[index].name,
            "compared_steps": compared,
            "reference_spikes": int(mine.sum()),
            "executor_spikes": int(theirs.sum()),
            "differing": int(np.count_nonzero(mine != theirs)),
        })
    return result
