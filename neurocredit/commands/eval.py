"""`neurocredit eval MODEL.h5`: accuracy of a saved network on its test split."""

from __future__ import annotations

import argparse

from neurocredit.commands.common import add_backend_argument, add_data_arguments


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("eval", help="evaluate a saved network on test data",
                                   description="Accuracy of a saved network (any backend) on the test split.")
    parser.add_argument("model", help="network file (.h5) written by `neurocredit train`")
    add_data_arguments(parser)
    add_backend_argument(parser)
    parser.add_argument("--steps", type=int, default=None, help="time steps (spiking; default: the encoder's)")
    parser.add_argument("--json", action="store_true", help='print {"accuracy", "samples", ...} as JSON')
    return parser


def run(args) -> int:
    from neurocredit.commands.common import load_test_split, print_json, record_payload
    from neurocredit.io import load_network
    from neurocredit.sim import default_backend, simulate

    network = load_network(args.model)
    data_name, x, y = load_test_split(network, args)
    backend = args.backend or default_backend(network)
    record = simulate(network, x, y, backend=backend, steps=args.steps, progress=not args.json)
    payload = record_payload(record, backend, data_name, args.model)
    if network.neuron.spiking:
        payload["steps"] = record.steps
        payload["mean_spikes_per_sample"] = record.mean_spikes_per_sample()
    if args.json:
        print_json(payload)
    else:
        print(f"{args.model}: accuracy {record.accuracy:.2%} on {record.samples} {data_name} test samples "
              f"(backend {backend}, {record.seconds:.2f} s)")
    return 0
