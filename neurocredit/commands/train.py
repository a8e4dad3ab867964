"""`neurocredit train CONFIG.yaml`: train a network and save it as HDF5."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("train", help="train a network from a YAML config and save it (HDF5)",
                                   description="Train the network a config describes; prints one line per epoch.")
    parser.add_argument("config", help="config file (models/*.yaml) or the name of a ready config")
    parser.add_argument("--epochs", type=int, default=None, help="override training.epochs")
    parser.add_argument("--seed", type=int, default=None, help="override training.seed")
    parser.add_argument("--data", default=None, metavar="NAME", help="override data.name")
    parser.add_argument("--data-dir", default=None, metavar="DIR", help="folder with the IDX files")
    parser.add_argument("--out", default=None, metavar="PATH.h5", help="where to save (default models/out/NAME.h5)")
    parser.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                        help="write a checkpoint there after every epoch (atomic; resumable with --resume)")
    parser.add_argument("--resume", default=None, metavar="DIR",
                        help="continue from the checkpoint in DIR (same config; --epochs may grow) and keep "
                        "checkpointing there")
    parser.add_argument("--max-batches", type=int, default=None, metavar="N",
                        help="train only N random batches per epoch (a shorter run on a subset; recorded in the "
                        "model's provenance)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    return parser


def run(args) -> int:
    from pathlib import Path

    from neurocredit.commands.common import print_json
    from neurocredit.config import load_config
    from neurocredit.errors import require_at_least_one
    from neurocredit.io import save_network
    from neurocredit.train import train

    config = load_config(args.config)
    require_at_least_one("--epochs", args.epochs)
    require_at_least_one("--max-batches", args.max_batches)
    out = Path(args.out) if args.out else Path("models/out") / f"{config.name}.h5"
    log = (lambda line: None) if args.json else print
    result = train(config, epochs=args.epochs, seed=args.seed, data=args.data, data_dir=args.data_dir,
                   progress=not args.no_progress and not args.json, log=log,
                   checkpoint_dir=args.checkpoint_dir, resume=args.resume, max_batches=args.max_batches)
    save_network(result.network, out)
    summary = {
        "model": str(out),
        "network": result.network.summary(),
        "accuracy": result.test_accuracy,
        "validation_accuracy": result.validation_accuracy,
        "samples": result.test_samples,
        "seconds": round(result.seconds, 3),
        "epochs": len(result.history),
    }
    if args.json:
        print_json(summary)
    else:
        print(f"saved {out}: {summary['network']}")
        print(f"test accuracy {result.test_accuracy:.2%} on {result.test_samples} samples, "
              f"{result.seconds:.1f} s of training")
    return 0
