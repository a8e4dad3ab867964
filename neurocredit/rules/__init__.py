"""Learning rules as plug-ins.

A rule is a torch-free spec module defining ``SPEC`` (:class:`neurocredit.rules.spec.RuleSpec`:
options, labels, plausibility criteria, training cost, saved arrays) and one implementation
module per neuron kind. Adding a rule touches its own files, one line here, and its configs.

=========  ====================================================================
name       what
=========  ====================================================================
dfa        direct feedback alignment (Nøkland 2016); spiking: online, eRBP-style
sigprop    signal propagation (Kohan et al. 2023); spiking without surrogates
chl        contrastive Hebbian learning / equilibrium propagation
pc         predictive coding (Whittington & Bogacz 2017); spiking: value + error populations
ff         forward-forward (Hinton 2022); spiking: goodness of the window-mean voltage
bp         backpropagation (rate) / BPTT with surrogate gradients (lif): baselines
=========  ====================================================================
"""

from __future__ import annotations

import importlib

import numpy as np

from neurocredit.errors import NeurocreditError
from neurocredit.rules.spec import RuleSpec

RULE_SPECS = {
    "dfa": "neurocredit.rules.dfa",
    "sigprop": "neurocredit.rules.sigprop",
    "chl": "neurocredit.rules.chl",
    "pc": "neurocredit.rules.pc",
    "ff": "neurocredit.rules.ff",
    "bp": "neurocredit.rules.bp",
}


def rule_spec(name: str) -> RuleSpec:
    """The spec of rule ``name`` (no torch import)."""
    if name not in RULE_SPECS:
        raise NeurocreditError(f"unknown rule {name!r}; choose one of {', '.join(RULE_SPECS)}")
    return importlib.import_module(RULE_SPECS[name]).SPEC


def rule_specs() -> list[RuleSpec]:
    """Every registered rule's spec, in registry order."""
    return [rule_spec(name) for name in RULE_SPECS]


def conv_fix(neuron_kind: str) -> str:
    """The end of the one-line refusal of a conv network by a dense-only rule: the rules that
    train conv and pooled layers of ``neuron_kind`` networks."""
    names = [spec.name for spec in rule_specs()
             if neuron_kind in spec.variants and spec.variants[neuron_kind].trains_conv]
    return f"train conv or pooled layers with rule {', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else (
        f"train conv or pooled layers with rule {names[0]}")


def rule_class(name: str, neuron_kind: str):
    """The rule class for ``name`` on ``neuron_kind`` networks (``rate`` or ``lif``)."""
    variant = rule_spec(name).variant(neuron_kind)
    try:
        return variant.load()
    except ModuleNotFoundError as error:
        raise NeurocreditError(f"rule {name!r} is not available ({error})") from None


def check_extras(network) -> None:
    """Every rule array saved with ``network`` (``extras['<rule>/...']``) has the shape its rule
    expects for this network; a damaged or hand-edited file is one clear error."""
    for spec in rule_specs():
        expected = spec.extras(network)
        for key, value in network.extras.items():
            if not key.startswith(f"{spec.name}/"):
                continue
            shape = expected.get(key)
            if shape is None:
                raise NeurocreditError(f"extras[{key!r}] is not an array rule {spec.name!r} saves for this "
                                       f"{'-'.join(map(str, network.sizes))} network; the file is damaged: retrain")
            if tuple(np.shape(value)) != tuple(shape):
                raise NeurocreditError(f"extras[{key!r}] has shape {tuple(np.shape(value))} but this "
                                       f"{'-'.join(map(str, network.sizes))} network needs {tuple(shape)}; "
                                       "the file is damaged or was edited: retrain")
