"""Backpropagation baselines (the yardstick, not the product's rules): the spec (options,
criteria, cost; no torch).

* ``rate`` (:mod:`neurocredit.rules.bp_rate`): plain backpropagation through the rate network,
  softmax cross-entropy.
* ``lif`` (:mod:`neurocredit.rules.bp_lif`): backpropagation through time with a surrogate
  gradient through the spike threshold, through the canonical LIF network written with Norse's
  own step function, with the canonical one-step Dense delay per layer. Autograd keeps every
  step: memory grows with T.

Both train Conv2d layers (``conv2d``) and pooled layers: the trainable tensor of a pooled layer
is its pooled form, fused again at every forward pass, so the trained network keeps its pool.
"""

from __future__ import annotations

from dataclasses import dataclass

from neurocredit.errors import NeurocreditError
from neurocredit.rules.spec import Criteria, RuleSpec, Variant

NORSE_SURROGATES = ("super", "tanh", "triangle", "circ", "heavi_erfc")


@dataclass(frozen=True)
class BackpropOptions:
    """Backpropagation has no options of its own (training: sets the optimizer)."""


@dataclass(frozen=True)
class BPTTOptions:
    """surrogate: Norse's threshold method whose derivative replaces the step's (``super``:
    SuperSpike ``1/(|v - vth| + 1)^2``, whose backward in Norse 1.1 ignores alpha; ``tanh``,
    ``triangle``, ``circ``, ``heavi_erfc`` with sharpness ``surrogate_alpha``). loss_scale: the
    logits of the cross-entropy are ``loss_scale * output spike rate`` (spikes per step), the
    quantity the readout takes the argmax of."""

    surrogate: str = "super"
    surrogate_alpha: float = 2.0
    loss_scale: float = 10.0

    def __post_init__(self) -> None:
        if self.surrogate not in NORSE_SURROGATES:
            raise NeurocreditError(
                f"rule.surrogate must be one of {', '.join(NORSE_SURROGATES)} (Norse threshold methods), "
                f"got {self.surrogate!r}"
            )
        if not self.surrogate_alpha > 0:
            raise NeurocreditError(f"rule.surrogate_alpha must be > 0, got {self.surrogate_alpha}")
        if not self.loss_scale > 0:
            raise NeurocreditError(f"rule.loss_scale must be > 0, got {self.loss_scale}")


def _cost(sums):
    # the error crosses every weight above layer 1 and every neuron's derivative at every step
    return 1, sums["T"] * sums["S"], sums["T"] * (sums["S_up"] + sums["M"])


_FORMULA = "P=1, A=T*S, E=T*(S_up+M)"

SPEC = RuleSpec(
    name="bp",
    summary="backpropagation (rate) / BPTT with surrogate gradients (lif): baselines",
    variants={
        "rate": Variant("backprop", BackpropOptions, "neurocredit.rules.bp_rate:Backprop",
                        Criteria(weight_transport=True, forward_locking=True, backward_locking=True,
                                 memory_in_steps="none", surrogate_free=True, on_chip=False),
                        _cost, _FORMULA, trains_conv=True),
        "lif": Variant("BPTT (surrogate gradient)", BPTTOptions, "neurocredit.rules.bp_lif:SurrogateBPTT",
                       Criteria(weight_transport=True, forward_locking=True, backward_locking=True,
                                memory_in_steps="linear", surrogate_free=False, on_chip=False),
                       _cost, _FORMULA, trains_conv=True),
    },
)
