"""`neurocredit import GRAPH.nir -o MODEL.h5`: a NIR graph as a saved network
(:mod:`neurocredit.nir_io`), optionally checked against an independent executor."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    from neurocredit.network import ENCODER_KINDS, READOUT_KINDS

    parser = subparsers.add_parser(
        "import", help="read a NIR graph (.nir) into a network file",
        description="Import a feed-forward NIR graph (Input -> [Delay] -> Affine|Linear -> CubaLIF|LIF|IF -> ... -> "
        "Output) as a neurocredit network, discretized by forward Euler at --dt. Every connection gets the "
        "one-step synaptic delay of neurocredit (Lava) unless the graph already has it.")
    parser.add_argument("graph", help="NIR graph file (.nir)")
    parser.add_argument("-o", "--out", required=True, metavar="MODEL.h5", help="where to write the network")
    parser.add_argument("--dt", type=float, default=None, metavar="SECONDS",
                        help="seconds per step (default: the graph's, if neurocredit wrote it, else 1e-4)")
    parser.add_argument("--refractory", type=int, default=None, metavar="N",
                        help="steps v is held at 0 after a spike (default 0 = Lava's LIF; 1 = snnTorch's "
                        "reset_mechanism='zero')")
    parser.add_argument("--readout", choices=READOUT_KINDS, default=None,
                        help="how outputs become a class (default: the graph's, if neurocredit wrote it, else argmax)")
    parser.add_argument("--encoder", choices=[kind for kind in ENCODER_KINDS if kind != "none"], default=None,
                        help="input encoder for a graph from another tool (default bernoulli)")
    parser.add_argument("--steps", type=int, default=None, metavar="T",
                        help="time steps per sample for a graph from another tool (default 25)")
    parser.add_argument("--check", action="store_true",
                        help="run the imported network in the reference backend and compare each layer's spikes "
                        "with norse.torch.from_nir running the graph (layer i shifted by i steps)")
    parser.add_argument("--samples", type=int, default=16, metavar="N", help="random samples for --check (default 16)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def run(args) -> int:
    import dataclasses

    from neurocredit.commands.common import print_json
    from neurocredit.errors import NeurocreditError, require_at_least_one
    from neurocredit.io import save_network
    from neurocredit.nir_io import DEFAULT_IMPORT_ENCODER, check_import, import_graph, read_graph

    if args.refractory is not None and args.refractory < 0:
        raise NeurocreditError(f"--refractory must be >= 0, got {args.refractory}")
    require_at_least_one("--steps", args.steps)
    require_at_least_one("--samples", args.samples)
    encoder = None
    if args.encoder is not None or args.steps is not None:
        encoder = dataclasses.replace(DEFAULT_IMPORT_ENCODER, **{
            key: value for key, value in (("kind", args.encoder), ("steps", args.steps)) if value is not None})
    # a path: the provenance's nir_source names the file
    imported = import_graph(args.graph, dt=args.dt, refractory=args.refractory, readout=args.readout,
                            encoder=encoder)
    network = imported.network
    save_network(network, args.out)
    payload = {
        "model": str(args.out),
        "graph": str(args.graph),
        "summary": network.summary(),
        "dt": imported.dt,
        "exact": imported.exact,
        "delays": imported.delays,
        "layer_types": list(imported.layer_types),
        "refractory": network.neuron.lif.refractory,
    }
    if args.check:
        payload["check"] = check_import(imported, read_graph(args.graph), samples=args.samples)
    if args.json:
        print_json(payload)
        return 0
    how = "bit for bit from its neurocredit metadata" if imported.exact else f"by forward Euler at dt = {imported.dt:g} s"
    print(f"wrote {args.out}: {network.summary()}")
    print(f"  read {how}; layers {', '.join(imported.layer_types)}; synaptic delay: {imported.delays}")
    if args.check:
        check = payload["check"]
        print(f"  reference backend, {check['samples']} random samples x {check['steps']} steps: spikes per layer "
              f"{check['reference_spikes']}")
        if check["executor"] is None:
            print(f"  no independent executor: {check['executor_skipped']}")
        for layer in check["layers"]:
            print(f"  {layer['layer']:>8}: {check['executor']} {layer['executor_spikes']} spikes, reference "
                  f"{layer['reference_spikes']} (shifted by the layer's delay, {layer['compared_steps']} steps), "
                  f"{layer['differing']} differ")
    return 0
