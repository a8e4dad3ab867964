"""`neurocredit info MODEL.h5`: what a saved network is and where it came from."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("info", help="describe a saved network",
                                   description="Layers, neuron model, encoder, readout and provenance of a network.")
    parser.add_argument("model", help="network file (.h5)")
    parser.add_argument("--json", action="store_true", help="print as JSON")
    return parser


def describe(network) -> dict:
    from dataclasses import asdict

    return {
        "sizes": list(network.sizes),
        "layers": [
            {"name": layer.name, "kind": layer.kind, "inputs": layer.n_in, "outputs": layer.n_out,
             "input_shape": list(network.shapes[index]), "output_shape": list(layer.output_shape),
             "pool": layer.pool, "weight_shape": list(layer.weight.shape), "dtype": str(layer.weight.dtype),
             **({"stride": list(layer.stride), "padding": list(layer.padding)} if layer.kind == "conv2d" else {})}
            for index, layer in enumerate(network.layers)
        ],
        "neuron": asdict(network.neuron),
        "encoder": asdict(network.encoder),
        "readout": network.readout.kind,
        "extras": {key: list(value.shape) for key, value in network.extras.items()},
        "provenance": dict(network.provenance),
        "summary": network.summary(),
    }


def run(args) -> int:
    from neurocredit.commands.common import print_json
    from neurocredit.io import load_network

    info = describe(load_network(args.model))
    if args.json:
        print_json(info)
        return 0
    print(info["summary"])
    for layer in info["layers"]:
        if layer["kind"] == "dense" and layer["pool"] == 1:
            print(f"  {layer['name']:>6}: {layer['inputs']} -> {layer['outputs']} ({layer['dtype']})")
        else:
            def shape(values):
                return "x".join(map(str, values))

            pool = f"pool {layer['pool']}x{layer['pool']} (fused) + " if layer["pool"] > 1 else ""
            geometry = (f", kernel {shape(layer['weight_shape'])}, stride {shape(layer['stride'])}, padding "
                        f"{shape(layer['padding'])}" if layer["kind"] == "conv2d" else "")
            print(f"  {layer['name']:>6}: {shape(layer['input_shape'])} -> {pool}{layer['kind']} -> "
                  f"{shape(layer['output_shape'])}{geometry} ({layer['dtype']})")
    if info["extras"]:
        print("  rule arrays: " + ", ".join(f"{k} {tuple(v)}" for k, v in info["extras"].items()))
    for key, value in info["provenance"].items():
        if key != "history":
            print(f"  {key}: {value}")
    return 0
