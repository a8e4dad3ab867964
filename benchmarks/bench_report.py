"""Report generation time vs simulation time on the Fashion-MNIST test set (issue 9 target:
the report takes < 2x the time of simulating the same samples).

In one run, on the same seeded LIF network and the same samples:

1. ``simulate`` with the norse backend (the simulation alone);
2. the whole report: :func:`neurocredit.report.report_model` (simulation + counting + energy per
   target + the short raster re-run) and rendering it as markdown, JSON and HTML (with plots).

``ratio = report seconds / simulation seconds``. Appends a dated section to benchmarks/history.md
and updates its row of benchmarks/RESULTS.md.

The network is a seeded random 784-H-10 LIF network (no trained Fashion-MNIST spiking model is
needed: the cost of counting and rendering does not depend on the weights' quality, only on the
sizes and spike counts). Run it niced on a shared machine::

    nice -n 10 .venv/bin/python benchmarks/bench_report.py --samples 10000 --hidden 100 --steps 32
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import append_results  # noqa: E402


def build_network(hidden: int, steps: int, seed: int):
    from neurocredit.network import EncoderSpec, Layer, LIFParameters, Network, NeuronSpec, init_layers

    rng = np.random.default_rng(seed)
    layers = tuple(Layer(layer.weight.astype(np.float64) * 2.0, rng.normal(0.0, 0.02, layer.n_out), layer.name)
                   for layer in init_layers((784, hidden, 10), rng, gain=3.0))
    return Network(layers, NeuronSpec("lif", lif=LIFParameters(0.3, 0.2, 0.8)),
                   EncoderSpec("bernoulli", steps, 0.5, seed), provenance={"rule": "dfa", "data": "fashion-mnist"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=2, help="alternating repetitions; the fastest of each counts")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--no-append", action="store_true", help="print only, do not record the run")
    args = parser.parse_args()

    import norse  # noqa: F401  (imported before the timed runs)
    import torch  # noqa: F401

    from neurocredit.data import load_dataset
    from neurocredit.report import (
        build_report,
        raster_populations,
        render_html,
        render_json,
        render_markdown,
        report_model,
        select_targets,
    )
    from neurocredit.sim import simulate

    dataset = load_dataset("fashion-mnist", args.data_dir)
    x, y = dataset.x_test[: args.samples], dataset.y_test[: args.samples]
    network = build_network(args.hidden, args.steps, args.seed)

    # alternate the two measurements and keep the fastest of each: the machine is shared
    simulations, modelled_runs, render_runs, overheads = [], [], [], []
    for _ in range(args.repeat):
        began = time.perf_counter()
        record = simulate(network, x, y, backend="norse")
        simulations.append(time.perf_counter() - began)

        began = time.perf_counter()
        report, rasters, report_record = report_model(network, x, y, backend="norse", model="bench",
                                                      data=dataset.name)
        modelled_runs.append(time.perf_counter() - began)
        rendered = time.perf_counter()
        sizes = [len(render_markdown(report)), len(render_json(report)), len(render_html(report, rasters))]
        render_runs.append(time.perf_counter() - rendered)
        assert np.array_equal(record.spike_counts[0], report_record.spike_counts[0])

        # the report's own work on an existing record (no simulation of the 10,000 samples): less
        # sensitive to other jobs on the machine than the difference of two long runs
        began = time.perf_counter()
        rebuilt = build_report(network, record, select_targets("all"), model="bench", data=dataset.name)
        few = raster_populations(simulate(network, x[:3], backend="norse", record={"spikes"}))
        render_markdown(rebuilt), render_json(rebuilt), render_html(rebuilt, few)
        overheads.append(time.perf_counter() - began)
    simulation, modelled, render = min(simulations), min(modelled_runs), min(render_runs)
    total = min(m + r for m, r in zip(modelled_runs, render_runs))
    overhead = min(overheads)

    ratio = total / simulation
    sizes_text = "-".join(map(str, network.sizes))
    print(f"{len(x)} Fashion-MNIST test samples, {sizes_text} LIF, {args.steps} steps, norse backend")
    print(f"  fastest of {args.repeat} alternating runs; load average {os.getloadavg()[0]:.1f}")
    print(f"  simulation alone          {simulation:8.2f} s")
    print(f"  report (simulate + count) {modelled:8.2f} s")
    print(f"  rendering md+json+html    {render:8.2f} s   ({sizes[0]} / {sizes[1]} / {sizes[2]} bytes)")
    print(f"  report total / simulation {ratio:8.2f}x  (target < 2x): {'met' if ratio < 2 else 'NOT met'}")
    print(f"  report work without the simulation (count, energy, raster re-run, md+json+html): {overhead:.2f} s "
          f"-> (simulation + that) / simulation = {(simulation + overhead) / simulation:.2f}x")
    loihi = report["targets"]["loihi"]["energy_per_sample_j"]
    print(f"  accuracy {record.accuracy:.2%} (random network), spikes/sample "
          f"{report['totals']['spikes_per_sample']:.1f}, loihi {loihi:.3e} J per inference")

    if args.no_append:
        return 0
    figures = (f"- network: seeded random {sizes_text} LIF, {args.steps} steps, bernoulli encoder, "
               f"{len(x)} Fashion-MNIST test samples, norse backend (CPU, float64)\n"
               f"- fastest of {args.repeat} alternating runs: simulation alone {simulation:.2f} s; report "
               f"(simulate + count + energy + raster re-run) {modelled:.2f} s; rendering md + json + html "
               f"{render:.2f} s; load average {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores shared with other "
               "jobs)\n"
               f"- report work on an existing record (count, energy, raster re-run, md + json + html): "
               f"{overhead:.2f} s, i.e. (simulation + that) / simulation = "
               f"{(simulation + overhead) / simulation:.2f}x\n"
               f"- **report / simulation = {ratio:.2f}x** (target < 2x: {'met' if ratio < 2 else 'not met'})")
    append_results("Report generation vs simulation (bench_report.py)", figures,
                   summary=f"report / simulation {ratio:.2f}x ({len(x)} samples, {sizes_text} LIF, {args.steps} "
                           f"steps; simulation alone {simulation:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
