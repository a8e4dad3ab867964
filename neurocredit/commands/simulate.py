"""`neurocredit simulate MODEL.h5 --backend B`: run a saved network on test data with any backend,
report accuracy and spikes per layer, optionally save the run (rasters, voltages) as HDF5."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "simulate", help="simulate a saved network with a backend; spikes per layer, optional rasters",
        description="Run a saved network on its test split with one backend (norse, reference, brian2, lava, "
        "emulator for spiking networks; rate for rate networks) and report accuracy and spike counts.")
    parser.add_argument("model", help="network file (.h5)")
    from neurocredit.commands.common import add_backend_argument, add_data_arguments

    add_data_arguments(parser)
    add_backend_argument(parser)
    parser.add_argument("--steps", type=int, default=None, metavar="T", help="time steps (default: the encoder's)")
    parser.add_argument("--record", default="", metavar="WHAT",
                        help="comma-separated: spikes, voltages, currents (saved with --out)")
    parser.add_argument("--batch-size", type=int, default=1000, metavar="N", help="samples per backend call")
    parser.add_argument("--out", default=None, metavar="RUN.h5", help="save the RunRecord (HDF5)")
    parser.add_argument("--json", action="store_true",
                        help='print {"accuracy", "samples", "backend", "steps", "mean_spikes_per_sample", ...}')
    return parser


def run(args) -> int:
    from neurocredit.commands.common import load_test_split, print_json, record_payload
    from neurocredit.errors import NeurocreditError, require_at_least_one
    from neurocredit.io import load_network, save_run
    from neurocredit.sim import default_backend, simulate

    network = load_network(args.model)
    record_names = [name.strip() for name in args.record.split(",") if name.strip()]
    require_at_least_one("--steps", args.steps)
    require_at_least_one("--batch-size", args.batch_size)
    if record_names and not network.neuron.spiking:
        raise NeurocreditError("--record needs a spiking (lif) network; rate networks have no spikes or voltages")
    data_name, x, y = load_test_split(network, args)
    backend = args.backend or default_backend(network)
    record = simulate(network, x, y, backend=backend, steps=args.steps, record=record_names,
                      batch_size=args.batch_size, progress=not args.json)
    payload = record_payload(record, backend, data_name, args.model)
    payload.update(steps=record.steps, sizes=list(network.sizes),
                   mean_spikes_per_sample=record.mean_spikes_per_sample())
    if record.input_spike_counts is not None:
        payload["mean_input_spikes_per_sample"] = float(record.input_spike_counts.sum(axis=1).mean())
    if args.out:
        payload["out"] = str(save_run(record, args.out))
    if args.json:
        print_json(payload)
        return 0
    print(f"{args.model}: accuracy {record.accuracy:.2%} on {record.samples} {data_name} test samples "
          f"(backend {backend}, {record.steps} steps, {record.seconds:.2f} s)")
    if network.neuron.spiking:
        names = [layer.name or f"layer {i + 1}" for i, layer in enumerate(network.layers)]
        spikes = ", ".join(f"{name} {value:.1f}" for name, value in zip(names, payload["mean_spikes_per_sample"]))
        print(f"  mean spikes per sample: {spikes}")
    if args.out:
        print(f"  run saved to {payload['out']}")
    return 0
