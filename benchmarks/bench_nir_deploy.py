"""Float -> Loihi fixed point of an imported NIR graph over encoder seeds, step counts and splits
(issue 18).

``neurocredit deploy MODEL --verify`` measures one Bernoulli encoding of the test split. On a small
test split (the 359 digits images behind ``digits-2x34x34``) one run's drop is mostly noise: a few
dozen predictions differ between the float model and fixed point, in both directions. This script
imports the graph as ``neurocredit import`` does, then runs the same pipeline as ``deploy --verify``
(:func:`neurocredit.deploy.pipeline.deploy`: the float model in Norse and the bit-exact emulator on
every sample, Lava in both modes on the first ``--lava-limit``) once per step count and encoder
seed, on the test split or (``--split train``) on the data set's training images, which a graph
trained elsewhere has not seen either. It reports each run's accuracies, drop (float - emulator, in
points), how many predictions differ and the spike agreement with Lava, and the mean drop per step
count. Not run in CI::

    python benchmarks/bench_nir_deploy.py tests/data/nir/cnn_sinabs.nir --data digits-2x34x34 \\
        --steps 25 50 --encoder-seeds 0 1 2 3 --lava-limit 2
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import publish  # noqa: E402

TARGET_DROP_POINTS = 1.0


def run(network, features, labels, steps, seed: int, args) -> dict:
    """One ``deploy --verify`` of ``network`` with its encoder seeded ``seed``, ``steps`` steps."""
    from neurocredit.deploy.pipeline import deploy

    seeded = dataclasses.replace(network, encoder=dataclasses.replace(network.encoder, seed=seed))
    began = time.perf_counter()
    result = deploy(seeded, features, labels, target_name=args.target, verify=True, steps=steps,
                    lava_limit=args.lava_limit, clip_quantile=args.clip_quantile)
    accuracy = result.accuracy()
    differ = int(np.count_nonzero(result.records["float"].predictions != result.records["emulator"].predictions))
    agreement = {name: value["overall"] for name, value in result.agreement.items()}
    return {"steps": result.lava_record.steps, "seed": seed, "samples": result.samples, "float": accuracy["float"],
            "emulator": accuracy["emulator"], "drop": 100 * (accuracy["float"] - accuracy["emulator"]),
            "differ": differ, "agreement": agreement, "seconds": time.perf_counter() - began}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graph", help="a .nir graph (imported as `neurocredit import GRAPH` does)")
    parser.add_argument("--data", default="digits-2x34x34", help="data set (default: digits-2x34x34)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--split", choices=("test", "train"), default="test",
                        help="the images deployed (train: the data set's training images)")
    parser.add_argument("--steps", type=int, nargs="+", default=[None], help="time steps (default: the graph's)")
    parser.add_argument("--encoder-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--lava-limit", type=int, default=2, help="samples run through Lava (both modes)")
    parser.add_argument("--clip-quantile", type=float, default=None, help="as `neurocredit deploy --clip-quantile`")
    parser.add_argument("--target", default="loihi2")
    parser.add_argument("--no-append", action="store_true", help="print only, do not record the run")
    args = parser.parse_args()

    from neurocredit.data import load_dataset
    from neurocredit.nir_io import import_nir

    network = import_nir(args.graph)
    dataset = load_dataset(args.data, args.data_dir)
    features, labels = (dataset.x_test, dataset.y_test) if args.split == "test" else (dataset.x_train,
                                                                                      dataset.y_train)
    runs = []
    for steps in args.steps:
        for seed in args.encoder_seeds:
            runs.append(run(network, features, labels, steps, seed, args))
            print(runs[-1], file=sys.stderr, flush=True)
    lines = [
        f"`{args.graph}` imported, deployed on the {args.split} split of `{args.data}` ({len(labels)} images) to "
        f"`{args.target}`{'' if args.clip_quantile is None else f' with clip quantile {args.clip_quantile:g}'}; "
        f"drop = float (Norse) accuracy - emulator (Loihi fixed point) accuracy, in points (target <= "
        f"{TARGET_DROP_POINTS:g}); Lava (both modes) on the first {args.lava_limit} images.",
        "",
        "| T | encoder seed | float | emulator | drop | predictions that differ | spikes emulator = Lava fixed | "
        "spikes Norse = Lava float | s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(f"| {r['steps']} | {r['seed']} | {r['float']:.2%} | {r['emulator']:.2%} | {r['drop']:+.2f} | "
                     f"{r['differ']} | {r['agreement']['emulator_vs_lava']:.2%} | "
                     f"{r['agreement']['float_vs_lava_floating']:.2%} | {r['seconds']:.0f} |")
    means = []
    for steps in dict.fromkeys(r["steps"] for r in runs):
        drops = [r["drop"] for r in runs if r["steps"] == steps]
        means.append(f"T={steps}: mean drop **{np.mean(drops):+.2f}** points over {len(drops)} encoder seed(s) "
                     f"(each: {', '.join(f'{d:+.2f}' for d in drops)})")
    lines += ["", *[f"- {m}" for m in means]]
    publish(f"Float -> fixed point of an imported NIR graph over encoder seeds ({Path(args.graph).name}, "
            f"{args.split} split)", "\n".join(lines), args.no_append,
            summary=f"`{Path(args.graph).name}` on the {args.split} split of {args.data}: " + "; ".join(means))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
