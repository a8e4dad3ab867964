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

The first limit a network breaks is one :class:`NeurocreditError` naming the layer, the limit
(with its source) and the value, raised before anything is built in Lava. Absent limits are not
checked.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Optional

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
        if fan_in is not None and layer.n_in > fan_in:
            raise _violation(target, name, "fan_in_per_core", layer.n_in,
                             "every core of a dense layer receives all its inputs: use fewer inputs to this layer")
        fits = layer.n_out if neurons_limit is None else min(layer.n_out, int(neurons_limit))
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
    for index in reversed(range(len(network.layers))):
        per_core[index] = capacity[index]
        next_cores = cores[index + 1] if index + 1 < len(network.layers) else 0
        if fan_out is not None and next_cores > 0:
            by_fan_out = int(fan_out) // next_cores
            if by_fan_out < 1:
                raise _violation(target, names[index], "fan_out_per_core", next_cores,
                                 "one neuron projects to more cores than a core can address: "
                                 "make the next layer smaller")
            per_core[index] = min(per_core[index], by_fan_out)
        cores[index] = math.ceil(network.layers[index].n_out / per_core[index])

    placements, first = [], 0
    for index, layer in enumerate(network.layers):
        neurons = min(per_core[index], layer.n_out)
        next_cores = cores[index + 1] if index + 1 < len(network.layers) else 0
        placements.append(LayerPlacement(names[index], layer.n_in, layer.n_out, cores[index], first, neurons,
                                         neurons * layer.n_in, neurons * next_cores))
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
