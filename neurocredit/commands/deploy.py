"""`neurocredit deploy MODEL.h5 --target loihi2`: check limits, quantize, run through Lava, verify."""

from __future__ import annotations

import argparse

from neurocredit.commands.common import add_data_arguments


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "deploy", help="deploy a spiking network to Lava (Loihi fixed or floating point)",
        description="Check a saved spiking network against a hardware target's limits and place it on cores, "
        "quantize it to Loihi fixed point (reporting the error per layer), run the test samples through Lava "
        "processes on Loihi2SimCfg, and with --verify compare the float model, the bit-exact emulator and "
        "Lava in both modes (accuracy, accuracy drop, per-layer spike agreement).")
    parser.add_argument("model", help="spiking network file (.h5) written by `neurocredit train`")
    parser.add_argument("--target", default="loihi2",
                        help="hardware target name (hardware_targets/NAME.yaml) or path to a target YAML "
                        "(default: loihi2)")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fixed-point", dest="mode", action="store_const", const="fixed_pt",
                           help="run Lava's bit-accurate fixed-point models (default)")
    precision.add_argument("--floating-point", dest="mode", action="store_const", const="floating_pt",
                           help="run Lava's floating-point models")
    parser.set_defaults(mode="fixed_pt")
    parser.add_argument("--verify", action="store_true",
                        help="also run the float model (Norse), the emulator and Lava in both modes on the same inputs")
    add_data_arguments(parser)
    parser.add_argument("--weight-bits", type=int, default=None, metavar="B",
                        help="weight bits (1-8; default: the target's weight_bits)")
    parser.add_argument("--clip-quantile", type=float, default=None, metavar="Q",
                        help="set each layer's weight step from this quantile of |w| (e.g. 0.999) instead of the "
                        "largest |w|: the few larger weights saturate, the rest get a finer step (default: no clipping)")
    parser.add_argument("--steps", type=int, default=None, help="time steps per sample (default: the encoder's)")
    parser.add_argument("--lava-limit", type=int, default=None, metavar="N",
                        help="run only the first N samples through Lava (with --verify the float model and the "
                        "emulator still run all of them: full test set through the emulator, a subset through Lava)")
    parser.add_argument("--lanes", type=int, default=None, metavar="L",
                        help="samples Lava runs side by side (default: chosen from the layer sizes)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def run(args) -> int:
    from neurocredit.commands.common import load_test_split, print_json
    from neurocredit.deploy.pipeline import deploy
    from neurocredit.deploy.quantize import check_clip_quantile
    from neurocredit.errors import NeurocreditError, require_at_least_one
    from neurocredit.io import load_network

    network = load_network(args.model)
    if not network.neuron.spiking:
        raise NeurocreditError(f"{args.model} is a rate network; only spiking (lif) networks deploy to Loihi "
                               "(train one, e.g. `neurocredit train models/digits-dfa-snn.yaml`)")
    require_at_least_one("--lanes", args.lanes)
    check_clip_quantile(args.clip_quantile, "--clip-quantile")
    _, x, y = load_test_split(network, args)
    result = deploy(network, x, y, target_name=args.target, mode=args.mode, verify=args.verify,
                    weight_bits=args.weight_bits, steps=args.steps, lanes=args.lanes, lava_limit=args.lava_limit,
                    progress=not args.json, clip_quantile=args.clip_quantile)
    if args.json:
        payload = result.to_dict()
        payload["model"] = args.model
        print_json(payload)
    else:
        print(result.text(args.model))
    return 0
