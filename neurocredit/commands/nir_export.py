"""`neurocredit export MODEL.h5 -o MODEL.nir`: a saved network as a NIR graph (:mod:`neurocredit.nir_io`)."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export", help="write a network as a NIR graph (.nir)",
        description="Export a spiking network as a NIR graph: Input -> Affine(W, 0) -> CubaLIF -> ... -> Output, "
        "the discrete LIF as forward Euler at --dt (tau_syn = dt/du, tau_mem = dt/dv, r = 1/dv, w_in = 1/du, "
        "v_leak = bias/dv). The one-step synaptic delay goes into the graph metadata or, with --delays nodes, "
        "into explicit Delay nodes.")
    parser.add_argument("model", help="network file (.h5)")
    parser.add_argument("-o", "--out", required=True, metavar="GRAPH.nir", help="where to write the graph")
    parser.add_argument("--dt", type=float, default=None, metavar="SECONDS",
                        help="seconds per step (default 1e-4, as snnTorch and the NIR paper)")
    parser.add_argument("--delays", choices=("metadata", "nodes"), default="metadata",
                        help="the one-step synaptic delay as graph metadata (default) or as nir.Delay nodes")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def run(args) -> int:
    from neurocredit.commands.common import print_json
    from neurocredit.io import load_network
    from neurocredit.nir_io import DEFAULT_DT, write_nir

    network = load_network(args.model)
    dt = DEFAULT_DT if args.dt is None else args.dt
    path = write_nir(network, args.out, dt=dt, delays=args.delays)
    payload = {"graph": str(path), "model": str(args.model), "dt": dt, "delays": args.delays,
               "layers": len(network.layers), "sizes": list(network.sizes)}
    refractory = network.neuron.lif.refractory if network.neuron.spiking else 0
    if refractory:
        payload["note"] = (f"NIR has no refractory period: the {refractory}-step one is kept in the neurocredit "
                           "metadata only; other tools run the graph without it")
    if args.json:
        print_json(payload)
    else:
        print(f"wrote {path}: {network.summary()}; dt = {dt:g} s, synaptic delay as {args.delays}")
        if refractory:
            print(f"  note: {payload['note']}")
    return 0
