"""Learning rules as plug-ins.

A rule module defines ``RULES = {neuron_kind: RuleClass}`` (``rate`` and/or ``lif``); this
registry maps rule names to modules and imports them lazily (torch is heavy).

=========  ====================================================================
name       module
=========  ====================================================================
bp         backpropagation (rate) / BPTT with surrogate gradients (lif): baselines
dfa        direct feedback alignment (Nøkland 2016); spiking: online, eRBP-style
sigprop    signal propagation (Kohan et al. 2023); spiking without surrogates
chl        contrastive Hebbian learning / equilibrium propagation
=========  ====================================================================
"""

from __future__ import annotations

import importlib

from neurocredit.errors import NeurocreditError

RULE_MODULES = {
    "bp": "neurocredit.rules.bp",
    "dfa": "neurocredit.rules.dfa",
    "sigprop": "neurocredit.rules.sigprop",
    "chl": "neurocredit.rules.chl",
}


def rule_class(name: str, neuron_kind: str):
    """The rule class for ``name`` on ``neuron_kind`` networks (``rate`` or ``lif``)."""
    if name not in RULE_MODULES:
        raise NeurocreditError(f"unknown rule {name!r}; choose one of {', '.join(RULE_MODULES)}")
    try:
        module = importlib.import_module(RULE_MODULES[name])
    except ModuleNotFoundError as error:
        raise NeurocreditError(f"rule {name!r} is not available ({error})") from None
    classes = getattr(module, "RULES", {})
    if neuron_kind not in classes:
        supported = ", ".join(classes) or "none"
        raise NeurocreditError(f"rule {name!r} does not train {neuron_kind} networks (supported: {supported})")
    return classes[neuron_kind]
