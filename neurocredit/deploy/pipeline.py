"""The deployment pipeline behind ``neurocredit deploy`` (and the demo):

1. check the network against the hardware target and place its layers on cores
   (:func:`neurocredit.deploy.partition.check_and_partition`);
2. quantize it (:func:`neurocredit.deploy.quantize.quantize`) and report the error per layer;
3. run the test samples through Lava (``fixed_pt`` or ``floating_pt``), one compiled graph per
   chunk of samples;
4. with ``verify``: run the same encoded inputs through the float model (Norse; ``dv = 0`` on its
   IAFCell), the fast emulator and Lava in both modes, and report accuracy,
   accuracy drop and per-layer spike agreement (emulator vs Lava fixed point, float vs Lava
   floating point -- the Dense delay is the same convention everywhere, so no shift is needed).
"""

from __future__ import annotations

import functools

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from neurocredit.compare import spike_agreement
from neurocredit.deploy.partition import Partition, check_and_partition
from neurocredit.deploy.quantize import LAVA, QuantizedNetwork, quantize
from neurocredit.errors import NeurocreditError, require_at_least_one
from neurocredit.network import Network
from neurocredit.record import RunRecord

CHUNK = 1000  # samples per compiled Lava graph (and per emulator/float batch)


@dataclass
class DeployResult:
    """What one deployment produced (see :meth:`to_dict` for the JSON layout)."""

    target: str
    mode: str
    partition: Partition
    quantized: QuantizedNetwork
    records: dict[str, RunRecord] = field(default_factory=dict)
    agreement: dict[str, dict] = field(default_factory=dict)

    @property
    def lava_record(self) -> RunRecord:
        return self.records[f"lava_{self.mode}"]

    @property
    def samples(self) -> int:
        return self.records["float"].samples if "float" in self.records else self.lava_record.samples

    def accuracy(self) -> dict[str, Optional[float]]:
        """``lava`` (the chosen mode), and with verification ``float`` and ``emulator`` on all samples,
        both Lava modes, and ``float_on_lava_samples``/``emulator_on_lava_samples`` on the samples
        Lava ran (all of them unless ``lava_limit`` was given)."""
        result = {"lava": self.lava_record.accuracy}
        if "float" in self.records:
            for name in ("float", "emulator", "lava_fixed_pt", "lava_floating_pt"):
                result[name] = self.records[name].accuracy
            for name in ("float", "emulator"):
                result[f"{name}_on_lava_samples"] = self.records[name].head(self.lava_record.samples).accuracy
        return result

    def to_dict(self) -> dict[str, Any]:
        accuracy = self.accuracy()
        payload = {
            "target": self.target,
            "mode": self.mode,
            "samples": self.samples,
            "lava_samples": self.lava_record.samples,
            "steps": self.lava_record.steps,
            "cores": self.partition.cores,
            "chips": self.partition.chips,
            "partition": self.partition.to_dict(),
            "quantization": self.quantized.report(),
            "accuracy": accuracy,
            "seconds": {name: round(record.seconds, 3) for name, record in self.records.items()},
            "mean_spikes_per_sample": self.lava_record.mean_spikes_per_sample(),
        }
        if "float" in self.records and accuracy["float"] is not None:
            payload["accuracy_drop"] = {
                "emulator": accuracy["float"] - accuracy["emulator"],
                "lava": accuracy["float_on_lava_samples"] - accuracy["lava"],
            }
        if self.agreement:
            payload["spike_agreement"] = {name: value["overall"] for name, value in self.agreement.items()}
            payload["spike_agreement_layers"] = {name: value["layers"] for name, value in self.agreement.items()}
        return payload

    def text(self, model: str) -> str:
        """The human-readable summary ``neurocredit deploy`` prints."""
        payload = self.to_dict()
        lava_samples = payload["lava_samples"]
        through = "" if lava_samples == payload["samples"] else f" (Lava: the first {lava_samples})"
        lines = [f"{model} -> {self.target} ({self.mode}), {payload['samples']} samples{through} "
                 f"x {payload['steps']} steps",
                 f"  cores: {self.partition.cores} on {self.partition.chips} chip(s): "
                 + ", ".join(f"{p.layer} {p.n_in}->{p.n_out} on {p.cores} core(s) from #{p.first_core}"
                             for p in self.partition.layers)]
        report = payload["quantization"]
        lines.append(f"  quantization: {report['weight_bits']}-bit weights, du={report['du']} dv={report['dv']} "
                     f"(12 bit; effective {report['effective_du']:.5f}/{report['effective_dv']:.5f})")
        for layer in report["layers"]:
            lines.append(f"    {layer['layer']}: weight_exp {layer['weight_exp']:+d}, vth {layer['vth']}, "
                         f"weight rms error {layer['weight_rms_relative_error']:.2%} "
                         f"(max {layer['weight_max_error']:.3g}), bias max error {layer['bias_max_error']:.3g}, "
                         f"current headroom {layer['current_headroom']:.2f}")
        accuracy = payload["accuracy"]
        if "float" in accuracy and accuracy["float"] is not None:
            lines.append(f"  accuracy: float {accuracy['float']:.2%}, emulator {accuracy['emulator']:.2%}")
            lines.append(f"  accuracy on the {lava_samples} Lava samples: float "
                         f"{accuracy['float_on_lava_samples']:.2%}, "
                         f"emulator {accuracy['emulator_on_lava_samples']:.2%}, "
                         f"lava fixed_pt {accuracy['lava_fixed_pt']:.2%}, "
                         f"lava floating_pt {accuracy['lava_floating_pt']:.2%}")
            drop = payload["accuracy_drop"]
            lines.append(f"  accuracy drop from float: emulator {drop['emulator'] * 100:+.2f} points, "
                         f"lava ({self.mode}) {drop['lava'] * 100:+.2f} points")
            for name, layers in payload["spike_agreement_layers"].items():
                per_layer = ", ".join(
                    f"layer {item['layer']}: {item['agreement']:.2%}"
                    + ("" if item["first_diverging_step"] is None
                       else f" (first diverging step {item['first_diverging_step']})")
                    for item in layers)
                lines.append(f"  spike agreement {name.replace('_', ' ')}: {payload['spike_agreement'][name]:.2%} "
                             f"({per_layer})")
        elif accuracy["lava"] is not None:
            lines.append(f"  accuracy (lava {self.mode}): {accuracy['lava']:.2%}")
        lines.append("  seconds: " + ", ".join(f"{name} {value:.2f}" for name, value in payload["seconds"].items()))
        return "\n".join(lines)


def default_weight_bits(target) -> int:
    """The target's weight width, at most what Lava's Dense holds (8)."""
    limit = target.limit("weight_bits")
    return int(min(LAVA.dense_weight_bits, limit)) if limit is not None else LAVA.dense_weight_bits


def _run_chunked(run_chunk, network: Network, features: np.ndarray, labels: Optional[np.ndarray],
                 steps: Optional[int], progress: bool, label: str) -> RunRecord:
    """:func:`neurocredit.sim.run_chunked` in chunks of :data:`CHUNK` samples."""
    from neurocredit.sim import run_chunked

    return run_chunked(run_chunk, network, features, labels, steps=steps, batch_size=CHUNK,
                       progress=progress, label=label)


def _rasters_of_head(run_chunk, count: int):
    """``run_chunk`` that keeps the rasters of the first ``count`` samples only (the agreement with
    Lava reads only those; keeping every sample's grew past 24 GiB on 10,000 Fashion-MNIST images
    at 40 steps): (wrapped run_chunk, a function returning the record of those samples with their
    rasters). The chunks stay the ones :func:`_run_chunked` makes, so every number is unchanged."""
    kept: list[RunRecord] = []
    seen = 0

    def wrapped(inputs) -> RunRecord:
        nonlocal seen
        part = run_chunk(inputs)
        if seen < count:
            kept.append(part.head(count - seen))
        seen += part.samples
        return part.replace(spikes=None, input_spikes=None)

    return wrapped, lambda: functools.reduce(RunRecord.concatenate, kept)


def deploy(network: Network, features: np.ndarray, labels: Optional[np.ndarray], target_name: str = "loihi2",
           mode: str = "fixed_pt", verify: bool = False, weight_bits: Optional[int] = None,
           steps: Optional[int] = None, lanes: Optional[int] = None, lava_limit: Optional[int] = None,
           progress: bool = False, clip_quantile: Optional[float] = None) -> DeployResult:
    """Check, quantize, run through Lava (and verify); see the module doc. ``lava_limit`` runs only
    the first samples through Lava (the float model and the emulator still run all of them);
    ``clip_quantile``: :func:`neurocredit.deploy.quantize.quantize`'s, for Lava and the emulator alike."""
    from neurocredit.deploy import emulator, lava_backend
    from neurocredit.sim import get_backend
    from neurocredit.targets import load_target

    if not network.neuron.spiking:
        raise NeurocreditError("only spiking (lif) networks deploy to Loihi; this is a rate network "
                               "(train a spiking model, e.g. models/digits-dfa-snn.yaml)")
    if mode not in lava_backend.MODES:
        raise NeurocreditError(f"Lava mode {mode!r} must be one of {', '.join(lava_backend.MODES)}")
    lava_backend.check_refractory_mode(network, "fixed_pt" if verify else mode)
    target = load_target(target_name)
    weight_bits = default_weight_bits(target) if weight_bits is None else int(weight_bits)
    partition = check_and_partition(network, target, weight_bits=weight_bits)
    quantized = quantize(network, weight_bits=weight_bits, steps=steps, clip_quantile=clip_quantile)
    result = DeployResult(target.name, mode, partition, quantized)
    record = {"spikes"} if verify else set()
    modes = lava_backend.MODES if verify else (mode,)
    require_at_least_one("the number of Lava samples", lava_limit)
    lava_count = len(features) if lava_limit is None else min(int(lava_limit), len(features))
    lava_labels = None if labels is None else labels[:lava_count]
    for lava_mode in modes:
        result.records[f"lava_{lava_mode}"] = _run_chunked(
            lambda inputs, m=lava_mode: lava_backend.run_lava(network, inputs, m, record, quantized=quantized,
                                                              lanes=lanes, progress=progress),
            network, features[:lava_count], lava_labels, steps, progress, f"lava {lava_mode}")
    if verify:
        emulator_run, emulator_head = _rasters_of_head(
            lambda inputs: emulator.run(network, inputs, record, quantized=quantized), lava_count)
        result.records["emulator"] = _run_chunked(emulator_run, network, features, labels, steps, progress,
                                                  "emulator")
        backend = get_backend("norse")
        float_run, float_head = _rasters_of_head(lambda inputs: backend.run(network, inputs, record), lava_count)
        result.records["float"] = _run_chunked(float_run, network, features, labels, steps, progress, "norse")
        result.agreement["emulator_vs_lava"] = spike_agreement(emulator_head(), result.records["lava_fixed_pt"])
        result.agreement["float_vs_lava_floating"] = spike_agreement(float_head(),
                                                                     result.records["lava_floating_pt"])
    return result
