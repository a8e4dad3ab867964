"""`neurocredit learn MODEL --on loihi2 --rule dfa`: learn on the chip (Lava's learning engine)."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "learn", help="learn on the chip: spiking DFA as Lava three-factor learning rules",
        description="Start from a saved spiking network (.h5) or a fresh one from an on-chip config (.yaml, e.g. "
        "models/digits-dfa-onchip.yaml), learn with the rule expressed in Lava's learning engine (LearningDense + "
        "our learning LIF neurons), in the emulator (a bit-exact numpy copy of Lava's fixed-point engine) and/or "
        "in Lava itself; save the learned network and print the test accuracy before/after, the weight agreement "
        "between backends and the learning-engine operations with their energy per target.")
    parser.add_argument("model", help="spiking network (.h5) or on-chip config (.yaml or a models/ name)")
    parser.add_argument("--on", dest="target", default="loihi2", help="hardware target whose limits apply (default loihi2)")
    parser.add_argument("--rule", default=None, choices=["dfa", "chl"],
                        help="on-chip rule (default: the config's learn.rule, else dfa)")
    parser.add_argument("--backend", default=None, choices=["emulator", "lava", "both"],
                        help="where to learn (default: the config's, else emulator); both = emulator and Lava on "
                        "the same samples, weights compared")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fixed-point", dest="fixed", action="store_const", const=True,
                           help="Lava's fixed-point (bit_approximate_loihi) learning engine (default)")
    precision.add_argument("--floating-point", dest="fixed", action="store_const", const=False,
                           help="Lava's floating-point learning engine")
    parser.add_argument("--epochs", type=int, default=None, help="passes over the training samples (default 1)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="learn from the first N training samples")
    parser.add_argument("--test-limit", type=int, default=None, metavar="N", help="measure on the first N test samples")
    parser.add_argument("--validation", action="store_true",
                        help="choose settings: learn on the training split less the config's data.validation "
                        "(default 0.1, stratified) and measure on that validation split instead of the test split")
    parser.add_argument("--data", default=None, metavar="NAME", help="data set (default: the model's)")
    parser.add_argument("--data-dir", default=None, metavar="DIR", help="folder with the IDX files")
    parser.add_argument("-o", "--out", default=None, metavar="LEARNED.h5", help="where to save the learned network")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def run(args) -> int:
    from pathlib import Path

    from neurocredit.commands.common import print_json
    from neurocredit.config import DataConfig, build_network
    from neurocredit.data import hold_out_validation, load_dataset
    from neurocredit.errors import NeurocreditError, require_at_least_one
    from neurocredit.io import load_network, save_network
    from neurocredit.learn.onchip import OnChipOptions
    from neurocredit.learn.session import learn_on_chip, load_onchip_config

    model = Path(args.model)
    settings: dict = {}
    data_config = DataConfig()
    if model.suffix in (".h5", ".hdf5"):
        network = load_network(model)
        options = OnChipOptions()
        name = model.stem
        dataset = load_dataset(args.data or network.provenance.get("data", "digits"), args.data_dir)
    else:
        config, options, settings = load_onchip_config(args.model, args.rule)
        dataset = load_dataset(args.data or config.data.name, args.data_dir or config.data.data_dir)
        network = build_network(config, dataset.n_features, dataset.n_classes,
                                seed=int(settings.get("seed", config.training.seed)))
        network = network.replace(provenance={**network.provenance, "data": dataset.name})
        name = config.name
        data_config = config.data
    if dataset.n_features != network.n_inputs:
        raise NeurocreditError(f"data set {dataset.name!r} has {dataset.n_features} features but the model "
                               f"expects {network.n_inputs}; pass --data")
    x_test, y_test = dataset.x_test, dataset.y_test
    if args.validation:
        dataset = hold_out_validation(dataset, data_config.validation, data_config.validation_seed)
        if not len(dataset.y_validation):
            raise NeurocreditError(f"--validation: {args.model} has data.validation: 0 (no validation split); "
                                   "set data.validation to a fraction or a count")
        x_test, y_test = dataset.x_validation, dataset.y_validation
    if args.test_limit is not None:
        require_at_least_one("--test-limit", args.test_limit)
        x_test, y_test = x_test[: args.test_limit], y_test[: args.test_limit]
    fixed = args.fixed if args.fixed is not None else bool(settings.get("fixed_point", True))
    rule = args.rule or settings.get("rule", "dfa")
    report = learn_on_chip(network, dataset.x_train, dataset.y_train, x_test, y_test, options, rule=rule,
                           backend=args.backend or settings.get("backend", "emulator"), fixed=fixed,
                           epochs=args.epochs if args.epochs is not None else int(settings.get("epochs", 1)),
                           limit=args.limit if args.limit is not None else settings.get("limit"),
                           target=args.target, progress=not args.json)
    if args.validation:
        report.split = "validation"
    out = Path(args.out) if args.out else Path("models/out") / f"{name}-onchip.h5"
    save_network(report.network, out)
    if args.json:
        payload = report.to_dict()
        payload["model"] = str(args.model)
        payload["out"] = str(out)
        print_json(payload)
    else:
        print(report.text())
        print(f"saved {out}")
    return 0
