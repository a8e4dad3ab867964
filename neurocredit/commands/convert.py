"""`neurocredit convert RATE.h5`: a trained rate network -> a canonical LIF network
(data-based weight normalization, :mod:`neurocredit.convert`), evaluated as a spiking network."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "convert", help="convert a trained rate network (relu) to a spiking LIF network",
        description="Rate-to-spike conversion with data-based weight/threshold balancing (Diehl et al. 2015, "
        "Rueckauer et al. 2017); evaluates the rate and the spiking network on the test split.")
    parser.add_argument("model", help="rate network file (.h5), e.g. from `neurocredit train models/...-rate.yaml`")
    parser.add_argument("--steps", type=int, default=50, help="time steps of the spiking network (default 50)")
    parser.add_argument("--out", default=None, metavar="SNN.h5", help="where to save (default: MODEL-snn.h5)")
    parser.add_argument("--percentile", type=float, default=99.9,
                        help="percentile of positive activations used as each layer's full scale (default 99.9)")
    parser.add_argument("--du", type=float, default=1.0, help="synaptic-current decay of the LIF (default 1)")
    parser.add_argument("--dv", type=float, default=0.001, help="membrane-voltage decay of the LIF (default 0.001)")
    parser.add_argument("--norm-samples", type=int, default=10000, metavar="N",
                        help="training samples used for the normalization (default 10000)")
    from neurocredit.commands.common import add_data_arguments

    add_data_arguments(parser)
    parser.add_argument("--backend", default="norse", help="backend that evaluates the spiking network (default norse)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def run(args) -> int:
    from pathlib import Path

    from neurocredit.commands.common import print_json
    from neurocredit.convert import ConversionOptions, convert
    from neurocredit.data import load_dataset
    from neurocredit.errors import NeurocreditError, require_at_least_one
    from neurocredit.io import load_network, save_network
    from neurocredit.sim import simulate

    rate_network = load_network(args.model)
    require_at_least_one("--norm-samples", args.norm_samples)
    require_at_least_one("--limit", args.limit)
    data_name = args.data or rate_network.provenance.get("data", "digits")
    dataset = load_dataset(data_name, args.data_dir)
    if dataset.n_features != rate_network.n_inputs:
        raise NeurocreditError(
            f"data set {data_name!r} has {dataset.n_features} features but {args.model} expects "
            f"{rate_network.n_inputs}; pass the --data it was trained on"
        )
    options = ConversionOptions(steps=args.steps, percentile=args.percentile, du=args.du, dv=args.dv)
    spiking = convert(rate_network, dataset.x_train[: args.norm_samples], options)
    spiking = spiking.replace(provenance={**spiking.provenance, "converted_from_file": str(args.model)})
    out = Path(args.out) if args.out else Path(args.model).with_name(Path(args.model).stem + "-snn.h5")
    save_network(spiking, out)
    x, y = dataset.x_test[: args.limit], dataset.y_test[: args.limit]
    rate_record = simulate(rate_network, x, y, backend="rate")
    spike_record = simulate(spiking, x, y, backend=args.backend, progress=not args.json)
    payload = {
        "model": str(out),
        "source": str(args.model),
        "data": data_name,
        "samples": spike_record.samples,
        "rate_accuracy": rate_record.accuracy,
        "accuracy": spike_record.accuracy,
        "backend": args.backend,
        "steps": spike_record.steps,
        "scales": spiking.provenance["conversion"]["scales"],
        "mean_spikes_per_sample": spike_record.mean_spikes_per_sample(),
    }
    if "conversion_warning" in spiking.provenance:
        payload["warning"] = spiking.provenance["conversion_warning"]
    if args.json:
        print_json(payload)
        return 0
    print(f"saved {out}: {spiking.summary()}")
    if "warning" in payload:
        print(f"  warning: {payload['warning']}")
    print(f"  rate network    accuracy {rate_record.accuracy:.2%}")
    print(f"  spiking network accuracy {spike_record.accuracy:.2%} ({args.backend}, {spike_record.steps} steps, "
          f"{spike_record.samples} {data_name} test samples)")
    return 0
