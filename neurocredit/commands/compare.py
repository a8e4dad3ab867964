"""`neurocredit compare MODEL.h5 --backends norse,brian2`: the same encoded inputs through several
backends, spike for spike.

Every backend receives the identical encoder output (:func:`neurocredit.sim.simulate` encodes
once per sample index); the rasters are compared with :func:`neurocredit.compare.spike_agreement`
(per layer: shared spike events / events of either backend, and the first step where the rasters
differ). JSON output::

    {"accuracy": {backend: float}, "seconds": {backend: float}, "samples": int, "steps": int,
     "backends": [...], "data": str, "model": str,
     "spike_agreement": {"layers": [...], "overall": float}          # two backends
                        or {"A:B": {"layers": [...], "overall": float}, ...},  # three or more
     "pairs": [{"backends": [A, B], "layers": [...], "overall": float}, ...]}
"""

from __future__ import annotations

import argparse
import itertools

from neurocredit.commands.common import add_data_arguments
from neurocredit.sim import spiking_backends

DEFAULT_LIMIT = 100


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "compare", help="run a spiking network in several backends and compare spikes",
        description="Simulate a saved spiking network with several backends on the same encoded test "
        f"inputs (first {DEFAULT_LIMIT} samples unless --limit) and report, per layer, the fraction of "
        "identical spike events, the first diverging step, and each backend's accuracy.",
    )
    parser.add_argument("model", help="network file (.h5) written by `neurocredit train`")
    parser.add_argument("--backends", default="norse,brian2", metavar="A,B[,...]",
                        help=f"comma-separated, from {', '.join(spiking_backends())} (default: norse,brian2)")
    add_data_arguments(parser)
    parser.set_defaults(limit=DEFAULT_LIMIT)
    parser.add_argument("--steps", type=int, default=None, help="time steps (default: the encoder's)")
    parser.add_argument("--json", action="store_true", help="print accuracy and spike agreement as JSON")
    return parser


def _backend_names(text: str) -> list[str]:
    from neurocredit.errors import NeurocreditError
    from neurocredit.sim import BACKENDS

    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if unknown:
        raise NeurocreditError(f"--backends: unknown backend {unknown[0]!r}; choose from {', '.join(BACKENDS)}")
    if len(set(names)) != len(names) or len(names) < 2:
        raise NeurocreditError(f"--backends needs at least two different backends, got {text!r} (e.g. norse,brian2)")
    return names


def run(args) -> int:
    from neurocredit.commands.common import load_test_split, print_json
    from neurocredit.compare import spike_agreement
    from neurocredit.errors import NeurocreditError
    from neurocredit.io import load_network
    from neurocredit.sim import simulate

    names = _backend_names(args.backends)
    network = load_network(args.model)
    if not network.neuron.spiking:
        raise NeurocreditError(
            f"{args.model} is a rate network; compare needs a spiking (lif) model (rate networks have no spikes)"
        )
    data_name, x, y = load_test_split(network, args)
    records = {name: simulate(network, x, y, backend=name, steps=args.steps, record={"spikes"}) for name in names}
    pairs = [{"backends": [first, second], **spike_agreement(records[first], records[second])}
             for first, second in itertools.combinations(names, 2)]
    if len(pairs) == 1:
        summary = {"layers": pairs[0]["layers"], "overall": pairs[0]["overall"]}
    else:
        summary = {f"{p['backends'][0]}:{p['backends'][1]}": {"layers": p["layers"], "overall": p["overall"]}
                   for p in pairs}
    first_record = records[names[0]]
    payload = {
        "model": args.model,
        "data": data_name,
        "samples": first_record.samples,
        "steps": first_record.steps,
        "backends": names,
        "accuracy": {name: records[name].accuracy for name in names},
        "seconds": {name: round(records[name].seconds, 3) for name in names},
        "spike_agreement": summary,
        "pairs": pairs,
    }
    if args.json:
        print_json(payload)
        return 0
    print(f"{args.model}: {network.summary()}")
    print(f"{first_record.samples} {data_name} test samples, {first_record.steps} steps, "
          "same encoded input for every backend")
    for name in names:
        record = records[name]
        print(f"  {name:<10} accuracy {record.accuracy:.2%}   {record.seconds:.2f} s")
    layer_names = [layer.name or f"layer {index}" for index, layer in enumerate(network.layers)]
    for pair in pairs:
        first, second = pair["backends"]
        print(f"spike agreement {first} vs {second}: {pair['overall']:.4%} of spike events identical")
        for entry in pair["layers"]:
            step = entry["first_diverging_step"]
            where = "identical rasters" if step is None else f"first diverging step {step}"
            print(f"  {layer_names[entry['layer']]:<8} {entry['agreement']:.4%}  "
                  f"({entry['events_a']} vs {entry['events_b']} spikes; {where})")
    return 0
