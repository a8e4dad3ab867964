#!/usr/bin/env python
"""Export a neurocredit spiking model as the exact integers Lava's fixed-point processes take.

The output is a plain ``.npz`` (numpy) file, readable without neurocredit. Per layer ``i``:

    layer{i}_weights         int32 (n_out, n_in)   Dense(weights=...)
    layer{i}_weight_exp      int                   Dense(weight_exp=...)
    layer{i}_num_weight_bits int                   Dense(num_weight_bits=...)
    layer{i}_sign_mode       str                   Dense(sign_mode=SignMode[...upper()])
    layer{i}_vth             int                   LIF(vth=...)      spike when v > vth << 6
    layer{i}_bias_mant       int32 (n_out,)        LIF(bias_mant=...)
    layer{i}_bias_exp        int32 (n_out,)        LIF(bias_exp=...) bias = bias_mant << bias_exp
    layer{i}_scale           float                 fixed-point voltage units per float unit
    layer{i}_name            str

and shared: ``du``, ``dv`` (12-bit, ``LIF(du=..., dv=...)``), ``n_layers``, ``weight_bits``,
``encoder_kind``, ``encoder_steps``, ``encoder_max_rate``, ``encoder_seed``, ``format``
("neurocredit-lava-fixed") and ``version``.

Why not lava-dl's netx HDF5: netx re-derives each layer's weight exponent from the stored weights
(``optimize_weight_bits``) and fixes ``bias_exp = 6``, so it cannot carry these integers exactly.

``--verify N`` reads the written file back, builds the Lava network from it alone (Lava's own
RingBuffer, Dense, LIF, Reset; see ``lava_deploy.py``), runs N test samples on
``Loihi2SimCfg(select_tag='fixed_pt')`` and checks the output spikes against neurocredit's
bit-exact emulator.

Example::

    python scripts/lava_export.py models/out/digits-dfa-snn.h5 -o digits-loihi.npz --verify 20
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

# The plain-Lava runner next to this script (importing it first also imports Lava's runtime,
# which must happen before anything fixes the multiprocessing start method).
from lava_deploy import run_on_lava

FORMAT = "neurocredit-lava-fixed"
VERSION = 1


def export_npz(quantized, path) -> Path:
    """Write ``quantized`` (a ``QuantizedNetwork``) to ``path`` in the layout of the module doc."""
    network = quantized.network
    arrays = {
        "format": np.array(FORMAT), "version": np.array(VERSION), "n_layers": np.array(len(quantized.layers)),
        "du": np.array(quantized.du), "dv": np.array(quantized.dv), "weight_bits": np.array(quantized.weight_bits),
        "encoder_kind": np.array(network.encoder.kind), "encoder_steps": np.array(network.encoder.steps),
        "encoder_max_rate": np.array(network.encoder.max_rate), "encoder_seed": np.array(network.encoder.seed),
    }
    for index, layer in enumerate(quantized.layers):
        prefix = f"layer{index}_"
        arrays.update({
            prefix + "weights": layer.weights.astype(np.int32), prefix + "weight_exp": np.array(layer.weight_exp),
            prefix + "num_weight_bits": np.array(layer.num_weight_bits), prefix + "sign_mode": np.array(layer.sign_mode),
            prefix + "vth": np.array(layer.vth), prefix + "bias_mant": layer.bias_mant.astype(np.int32),
            prefix + "bias_exp": layer.bias_exp.astype(np.int32), prefix + "scale": np.array(layer.scale),
            prefix + "name": np.array(layer.name),
        })
    path = Path(path)
    with open(path, "wb") as stream:
        np.savez(stream, **arrays)
    return path


def load_lava_arguments(path):
    """The per-layer ``Dense``/``LIF`` keyword arguments stored in an export (see ``lava_deploy.py``)."""
    from lava.utils.weightutils import SignMode

    with np.load(path) as data:
        if str(data["format"]) != FORMAT:
            raise ValueError(f"{path} is not a {FORMAT} file")
        layers = []
        for index in range(int(data["n_layers"])):
            prefix = f"layer{index}_"
            layers.append({
                "dense": {"weights": data[prefix + "weights"], "weight_exp": int(data[prefix + "weight_exp"]),
                          "num_weight_bits": int(data[prefix + "num_weight_bits"]),
                          "sign_mode": SignMode[str(data[prefix + "sign_mode"]).upper()]},
                "lif": {"du": int(data["du"]), "dv": int(data["dv"]), "vth": int(data[prefix + "vth"]),
                        "bias_mant": data[prefix + "bias_mant"], "bias_exp": data[prefix + "bias_exp"]},
            })
    return layers


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("model", help="spiking network file (.h5) written by `neurocredit train`")
    parser.add_argument("-o", "--output", required=True, help="the .npz file to write")
    parser.add_argument("--weight-bits", type=int, default=8, help="weight bits (1-8, default 8)")
    parser.add_argument("--verify", type=int, default=0, metavar="N",
                        help="run N test samples through Lava built from the written file and compare with the emulator")
    parser.add_argument("--json", action="store_true", help="print the quantization report (and check) as JSON")
    args = parser.parse_args(argv)

    from neurocredit.deploy.quantize import quantize
    from neurocredit.errors import NeurocreditError
    from neurocredit.io import load_network

    try:
        network = load_network(args.model)
        network.require_dense("scripts/lava_export.py", "deploy conv networks with `neurocredit deploy`")
        quantized = quantize(network, weight_bits=args.weight_bits)
    except NeurocreditError as error:
        print(f"lava_export: error: {error}", file=sys.stderr)
        return 2
    path = export_npz(quantized, args.output)
    result = {"output": str(path), "quantization": quantized.report()}
    if args.verify > 0:
        from neurocredit.data import load_dataset
        from neurocredit.deploy import emulator
        from neurocredit.sim import encode_inputs

        dataset = load_dataset(str(network.provenance.get("data", "digits")))
        inputs = encode_inputs(network, dataset.x_test[: args.verify])
        counts = run_on_lava(load_lava_arguments(path), inputs, "fixed_pt")
        expected = emulator.run(network, inputs, quantized=quantized).spike_counts[-1]
        result["verify"] = {"samples": int(inputs.shape[1]), "identical_to_emulator": bool(np.array_equal(counts, expected))}
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(f"wrote {path}: {len(quantized.layers)} layers, {quantized.weight_bits}-bit weights, "
              f"du={quantized.du} dv={quantized.dv}")
        for layer in result["quantization"]["layers"]:
            print(f"  {layer['layer']}: {layer['shape'][1]}->{layer['shape'][0]}, weight_exp {layer['weight_exp']:+d}, "
                  f"vth {layer['vth']}, weight rms error {layer['weight_rms_relative_error']:.2%}")
        if "verify" in result:
            check = result["verify"]
            print(f"Lava network rebuilt from {path}: {check['samples']} samples, output spikes identical to the "
                  f"emulator: {check['identical_to_emulator']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
