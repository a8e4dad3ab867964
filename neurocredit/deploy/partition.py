"""Check a ``Network`` against a hardware target's limits and assign its layers to cores.

The model of a neuromorphic core is the one Loihi's limits describe (``hardware_targets/*.yaml``,
each number with its source): a core holds up to ``neurons_per_core`` neurons and
``synapses_per_core`` synapses, receives at most ``fan_in_per_core`` input axons and sends at most
``fan_out_per_core`` output axons; a chip has ``cores_per_chip`` cores and a system ``chips``
chips (1 when not given). A fully connected layer ``n_in -> n_out`` split over cores:

* every core of the layer receives all ``n_in`` inputs: ``n_in <= fan_in_per_core``;
* a core holding ``k`` neurons stores ``k * n_in`` synapses: ``k <= synapses_per_core // n_in``;
* each neuron sends one axon to every core of the next layer: ``k * cores(next) <= fan_out_per_core``;
* ``k <= neurons_per_core``; the layer needs ``ceil(n_out / k)`` cores, placed after the previous
  layer's cores. The input spikes come from the host and use no core.

A ``Conv2d`` layer (neurons placed in C order, ``k`` consecutive ones per core) shares its
kernels: a core stores the kernel of every output channel it holds (``channels x C_in x KH x KW``
weights, checked against ``synapses_per_core``) and receives the input axons of the union of its
neurons' receptive fields (counted exactly from the im2col indices, checked against
``fan_in_per_core``); a neuron feeding a conv layer sends one axon to each core of that layer its
kernel reaches (counted exactly), one feeding a dense layer to all of its cores. ``k`` is the
largest that fits every limit.

The first limit a network breaks is one :class:`NeurocreditError` naming the layer, the limit
(with its source) and the value, raised before anything is built in Lava. Absent limits are not
checked.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Optional

import numpy as np

from neurocredit.errors import NeurocreditError
from neurocredit.network import Network
from neurocredit.targets import Target


@dataclass(frozen=True)
class LayerPlacement:
    """Where one layer goes: ``cores`` consecutive cores from ``first_core``, at most
    ``neurons_per_core`` neurons and ``synapses_per_core`` synapses on any of them."""

    layer: str
    n_in: int
    n_out: int
    cores: int
    first_core: int
    neurons_per_core: int
    synapses_per_core: int
    fan_out_per_core: int
    kind: str = "dense"
    fan_in_per_core: int = 0


@dataclass(frozen=True)
class Partition:
    """Layers on cores for one target; ``cores`` in total over ``chips`` chips."""

    target: str
    layers: tuple[LayerPlacement, ...]
    cores: int
    chips: int

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "cores": self.cores, "chips": self.chips,
                "layers": [asdict(layer) for layer in self.layers]}


def _violation(target: Target, layer: str, key: str, value: Any, fix: str) -> NeurocreditError:
    entry = target.limits[key]
    return NeurocreditError(
        f"{target.name}: layer {layer}: {key} is {entry.value} but the network needs {value} "
        f"(limit source: {entry.source}); {fix}"
    )


_SYNAPSE_CACHE: dict[int, tuple] = {}


def _synapses(layer) -> tuple[np.ndarray, np.ndarray]:
    """(pre, post) of a conv layer's synapses, cached per layer object (the capacity search asks
    many times; layers hold arrays, so they are not hashable)."""
    from neurocredit.conv import conv_synapses

    entry = _SYNAPSE_CACHE.get(id(layer))
    if entry is None or entry[0] is not layer:
        if len(_SYNAPSE_CACHE) >= 8:
            _SYNAPSE_CACHE.clear()
        pre, post, _ = conv_synapses(layer)
        entry = _SYNAPSE_CACHE[id(layer)] = (layer, pre, post)
    return entry[1], entry[2]


def _conv_core_needs(layer, per_core: int) -> tuple[int, int]:
    """(input axons, stored kernel weights) of the fullest core when ``per_core`` consecutive
    neurons (C order) of conv ``layer`` share a core."""
    pre, post = _synapses(layer)
    core = post // per_core
    pairs = np.unique(core * layer.n_in + pre)
    axons = int(np.bincount(pairs // layer.n_in).max(initial=0))
    positions = layer.n_out // int(layer.weight.shape[0])
    first = np.arange(0, layer.n_out, per_core)
    last = np.minimum(first + per_core, layer.n_out) - 1
    channels = int(np.max(last // positions - first // positions + 1))
    return axons, channels * int(np.prod(layer.weight.shape[1:]))


def _conv_capacity(layer, fits: int, fan_in: Optional[float], synapses_limit: Optional[float]) -> int:
    """Largest ``k <= fits`` neurons per core of a conv layer within the fan-in and weight limits,
    or 0 when not even one neuron fits."""

    def ok(k: int) -> bool:
        axons, weights = _conv_core_needs(layer, k)
        return (fan_in is None or axons <= fan_in) and (synapses_limit is None or weights <= synapses_limit)

    if ok(fits):
        return fits
    low, high = 0, fits  # ok(low) (or low == 0), not ok(high)
    while high - low > 1:
        middle = (low + high) // 2
        if ok(middle):
            low = middle
        else:
            high = middle
    return low


def _cores_reached(layer, per_core: int) -> int:
    """Most cores of ``layer`` that one of its source neurons reaches (conv: exact; dense: all)."""
    cores = math.ceil(layer.n_out / per_core)
    if layer.kind != "conv2d":
        return cores
    pre, post = _synapses(layer)
    pairs = np.unique(pre * cores + post // per_core)
    return int(np.bincount(pairs // cores).max(initial=0))


def check_and_partition(network: Network, target: Target, weight_bits: Optional[int] = None) -> Partition:
    """Check ``network`` (with ``weight_bits``-bit weights, if given) against ``target`` and place
    its layers on cores (see module doc). Raises one :class:`NeurocreditError` per call at the
    first violation."""
    names = [layer.name or f"layer{index + 1}" for index, layer in enumerate(network.layers)]
    models = target.limit("neuron_models")
    if models is not None and network.neuron.kind not in models:
        raise _violation(target, names[0], "neuron_models", network.neuron.kind,
                         f"{target.name} runs {', '.join(map(str, models))} neurons: "
                         "deploy a network of one of those kinds")
    bits_limit = target.limit("weight_bits")
    if weight_bits is not None and bits_limit is not None and weight_bits > bits_limit:
        raise _violation(target, names[0], "weight_bits", weight_bits,
                         f"quantize to at most {bits_limit} bits (--weight-bits)")
    fan_in = target.limit("fan_in_per_core")
    fan_out = target.limit("fan_out_per_core")
    neurons_limit = target.limit("neurons_per_core")
    synapses_limit = target.limit("synapses_per_core")

    # Limits of one layer alone, in network order.
    capacity: list[int] = []
    for layer, name in zip(network.layers, names):
        fits = layer.n_out if neurons_limit is None else min(layer.n_out, int(neurons_limit))
        if layer.kind == "conv2d":
            conv_fits = _conv_capacity(layer, fits, fan_in, synapses_limit)
            if conv_fits < 1:
                axons, weights = _conv_core_needs(layer, 1)
                if fan_in is not None and axons > fan_in:
                    raise _violation(target, name, "fan_in_per_core", axons,
                                     "one conv neuron's receptive field needs more input axons than a core "
                                     "receives: use a smaller kernel or fewer input channels")
                raise _violation(target, name, "synapses_per_core", weights,
                                 "one output channel's kernel does not fit a core: use a smaller kernel or "
                                 "fewer input channels")
            capacity.append(conv_fits)
            continue
        if fan_in is not None and layer.n_in > fan_in:
            raise _violation(target, name, "fan_in_per_core", layer.n_in,
                             "every core of a dense layer receives all its inputs: use fewer inputs to this layer")
        if synapses_limit is not None:
            by_synapses = int(synapses_limit) // layer.n_in
            if by_synapses < 1:
                raise _violation(target, name, "synapses_per_core", layer.n_in,
                                 "one neuron's synapses do not fit on a core: use fewer inputs to this layer")
            fits = min(fits, by_synapses)
        capacity.append(max(1, fits))
    # Fan-out depends on the next layer's cores, so place the last layer first.
    per_core: list[int] = [0] * len(network.layers)
    cores: list[int] = [0] * len(network.layers)
    next_cores: list[int] = [0] * len(network.layers)  # cores of the next layer one neuron reaches
    for index in reversed(range(len(network.layers))):
        per_core[index] = capacity[index]
        if index + 1 < len(network.layers):
            next_cores[index] = _cores_reached(network.layers[index + 1], per_core[index + 1])
        if fan_out is not None and next_cores[index] > 0:
            by_fan_out = int(fan_out) // next_cores[index]
            if by_fan_out < 1:
                raise _violation(target, names[index], "fan_out_per_core", next_cores[index],
                                 "one neuron projects to more cores than a core can address: "
                                 "make the next layer smaller")
            per_core[index] = min(per_core[index], by_fan_out)
        cores[index] = math.ceil(network.layers[index].n_out / per_core[index])

    placements, first = [], 0
    for index, layer in enumerate(network.layers):
        neurons = min(per_core[index], layer.n_out)
        if layer.kind == "conv2d":
            axons, weights = _conv_core_needs(layer, neurons)
        else:
            axons, weights = layer.n_in, neurons * layer.n_in
        placements.append(LayerPlacement(names[index], layer.n_in, layer.n_out, cores[index], first, neurons,
                                         weights, neurons * next_cores[index], layer.kind, axons))
        first += cores[index]
    total = sum(cores)
    per_chip = target.limit("cores_per_chip")
    chips_available = target.limit("chips") or 1
    chips = 1 if per_chip is None else math.ceil(total / int(per_chip))
    if per_chip is not None and chips > chips_available:
        entry = target.limits["cores_per_chip"]
        raise NeurocreditError(
            f"{target.name}: the network needs {total} cores "
            f"({', '.join(f'{p.layer}: {p.cores}' for p in placements)}) but {int(chips_available)} chip(s) x "
            f"cores_per_chip {entry.value} give {int(chips_available) * int(per_chip)} (limit source: {entry.source}); "
            "use smaller layers or a target with more cores"
        )
    return Partition(target.name, tuple(placements), total, chips)
