#!/usr/bin/env python
"""Deploy a saved neurocredit spiking model onto Lava processes and run it on Loihi2SimCfg.

Only Lava's own processes are used, so this is what you would write by hand in Lava::

    RingBuffer (input spikes) -> Dense(W1) -> LIF1 -> Dense(W2) -> LIF2 -> ... -> RingBuffer (output spikes)

* ``--fixed-point`` (default): the model is quantized to Loihi fixed point first
  (``neurocredit.deploy.quantize``: 8-bit weights with a per-layer ``weight_exp``, 12-bit
  du/dv, threshold and bias mantissa/exponent) and run with ``select_tag='fixed_pt'``
  (``PyLifModelBitAcc``, ``PyDenseModelBitAcc``).
* ``--floating-point``: the float parameters run with ``select_tag='floating_pt'``.

Many samples, one compiled network: the samples are concatenated in one long input buffer,
``steps`` time steps each. ``LIFReset`` zeroes every neuron's current and voltage at the first
step of each sample, and one ``lava.proc.io.reset.Reset`` per ``Dense`` zeroes its one-step
output buffer after the last step of each sample, so every sample starts from the same state as
a fresh network. Lava's ``Dense`` delivers its input one step late, so layer i sees the input
``i`` steps after it arrives -- the same timing neurocredit's simulators use.

The script prints the accuracy and checks Lava's output spike counts against neurocredit's
emulator (fixed point, bit-exact) or float reference (floating point).

Example::

    python scripts/lava_deploy.py models/out/digits-dfa-snn.h5 --samples 50
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

# Lava's runtime must be imported before anything fixes the multiprocessing start method.
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.dense.process import Dense
from lava.proc.io.reset import Reset
from lava.proc.io.sink import RingBuffer as SpikeSink
from lava.proc.io.source import RingBuffer as SpikeSource
from lava.proc.lif.process import LIF, LIFReset
from lava.utils.weightutils import SignMode


def lava_layer_arguments(network, quantized=None):
    """Per layer the keyword arguments of Lava's ``Dense`` and ``LIF``: integers from ``quantized``
    (fixed point) or the float parameters of ``network`` (floating point)."""
    layers = []
    if quantized is not None:
        for layer in quantized.layers:
            layers.append({
                "dense": {"weights": layer.weights, "weight_exp": layer.weight_exp,
                          "num_weight_bits": layer.num_weight_bits, "sign_mode": SignMode[layer.sign_mode.upper()]},
                "lif": {"du": quantized.du, "dv": quantized.dv, "vth": layer.vth,
                        "bias_mant": layer.bias_mant, "bias_exp": layer.bias_exp},
            })
        return layers
    params = network.neuron.lif
    for layer in network.layers:
        layers.append({
            "dense": {"weights": layer.weight.astype(np.float64)},
            "lif": {"du": params.du, "dv": params.dv, "vth": params.vth, "bias_mant": layer.bias.astype(np.float64)},
        })
    return layers


def run_on_lava(layers, input_spikes, mode):
    """Run ``input_spikes`` (steps, samples, n_inputs) through the layers; returns the output
    layer's spike counts (samples, n_outputs). One compiled network for all samples."""
    steps, samples, n_inputs = input_spikes.shape
    total = steps * samples
    # (n_inputs, samples * steps): sample s occupies time steps s*steps .. s*steps + steps - 1.
    buffer = input_spikes.transpose(2, 1, 0).reshape(n_inputs, total)
    source = SpikeSource(data=buffer.astype(np.int32 if mode == "fixed_pt" else np.float64))
    graded = bool(np.any((input_spikes != 0) & (input_spikes != 1)))  # the 'current' encoder (floating point)
    previous, neurons = source.s_out, []
    for index, layer in enumerate(layers):
        # Graded input is sent as a value (num_message_bits > 0) instead of a binary spike.
        dense = Dense(**layer["dense"], num_message_bits=24 if graded and index == 0 else 0)
        shape = (layer["dense"]["weights"].shape[0],)
        if samples > 1:
            # Lava counts time steps from 1: reset u and v at steps 1, steps+1, 2*steps+1, ...
            lif = LIFReset(shape=shape, reset_interval=steps, reset_offset=1 % steps, **layer["lif"])
            # ... and clear Dense's one-step buffer after steps, 2*steps, ... (post-management phase).
            reset = Reset(reset_value=0, interval=steps, offset=steps - 1)
            reset.connect_var(dense.a_buff)
        else:
            lif = LIF(shape=shape, **layer["lif"])
        previous.connect(dense.s_in)
        dense.a_out.connect(lif.a_in)
        previous = lif.s_out
        neurons.append(lif)
    sink = SpikeSink(shape=neurons[-1].s_out.shape, buffer=total)
    neurons[-1].s_out.connect(sink.a_in)
    try:
        sink.run(condition=RunSteps(num_steps=total), run_cfg=Loihi2SimCfg(select_tag=mode))
        spikes = sink.data.get()  # (n_outputs, samples * steps)
    finally:
        sink.stop()  # always: Lava's worker processes must not outlive the run
    return spikes.reshape(-1, samples, steps).sum(axis=2).T.astype(np.int64)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("model", help="spiking network file (.h5) written by `neurocredit train`")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fixed-point", dest="mode", action="store_const", const="fixed_pt",
                           help="Loihi fixed point (default)")
    precision.add_argument("--floating-point", dest="mode", action="store_const", const="floating_pt",
                           help="Lava floating point")
    parser.set_defaults(mode="fixed_pt")
    parser.add_argument("--samples", type=int, default=20, help="test samples to run (default 20)")
    parser.add_argument("--weight-bits", type=int, default=8, help="weight bits in fixed point (default 8)")
    parser.add_argument("--data", default=None, help="data set (default: the one the model was trained on)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)

    from neurocredit.data import load_dataset
    from neurocredit.deploy.quantize import quantize
    from neurocredit.errors import NeurocreditError
    from neurocredit.io import load_network
    from neurocredit.readout import predict
    from neurocredit.sim import encode_inputs, get_backend

    try:
        network = load_network(args.model)
        network.require_dense("scripts/lava_deploy.py", "deploy conv networks with `neurocredit deploy`")
        if not network.neuron.spiking:
            raise NeurocreditError(f"{args.model} is a rate network; Lava runs spiking (lif) networks")
        dataset = load_dataset(args.data or str(network.provenance.get("data", "digits")))
        x, y = dataset.x_test[: args.samples], dataset.y_test[: args.samples]
        inputs = encode_inputs(network, x)
        if args.mode == "fixed_pt" and np.any((inputs != 0) & (inputs != 1)):
            raise NeurocreditError("Loihi fixed point takes binary spikes; this model's encoder gives graded "
                                   "input: use --floating-point")
        quantized = quantize(network, weight_bits=args.weight_bits) if args.mode == "fixed_pt" else None
    except NeurocreditError as error:
        print(f"lava_deploy: error: {error}", file=sys.stderr)
        return 2
    counts = run_on_lava(lava_layer_arguments(network, quantized), inputs, args.mode)
    predictions = predict(network, counts.astype(np.float64))
    # The same inputs through neurocredit: the bit-exact emulator, or the float reference.
    if args.mode == "fixed_pt":
        expected = get_backend("emulator").run(network, inputs, quantized=quantized)
    else:
        expected = get_backend("reference").run(network, inputs)
    result = {
        "model": args.model,
        "mode": args.mode,
        "samples": int(len(y)),
        "steps": int(inputs.shape[0]),
        "accuracy": float(np.mean(predictions == y)),
        "output_spikes_per_sample": float(counts.sum(axis=1).mean()),
        "matches_neurocredit": bool(np.array_equal(counts, expected.spike_counts[-1])),
        "compared_with": "emulator" if args.mode == "fixed_pt" else "reference",
    }
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(f"{args.model} on Lava ({args.mode}): accuracy {result['accuracy']:.2%} on {result['samples']} samples, "
              f"{result['output_spikes_per_sample']:.1f} output spikes per sample")
        print(f"output spike counts identical to neurocredit's {result['compared_with']}: {result['matches_neurocredit']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
