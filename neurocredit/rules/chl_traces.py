"""STDP-style CHL eligibility traces (pure functions, batched, numpy or torch): the plasticity of
spiking CHL (:mod:`neurocredit.rules.chl_lif`), written again as Brian2 synapses in
:mod:`neurocredit.rules.chl_brian2` and checked against these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from neurocredit.errors import NeurocreditError


@dataclass(frozen=True)
class TraceParameters:
    """Per-step decay of the presynaptic and postsynaptic traces, dimensionless in [0, 1)
    (``x <- λ x + s``; time constant ``-1 / ln λ`` steps)."""

    pre_decay: float = 0.8
    post_decay: float = 0.8

    def __post_init__(self) -> None:
        for name in ("pre_decay", "post_decay"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise NeurocreditError(f"trace {name}={value!r} must be in [0, 1)")

    @property
    def pair_window(self) -> float:
        """Expected increment of ``e`` per step for two independent trains of rate 1 (scaled by
        ``r_pre r_post`` for other rates): ``λ_post/(1-λ_post) + 1/(1-λ_pre)``."""
        return self.post_decay / (1.0 - self.post_decay) + 1.0 / (1.0 - self.pre_decay)


class TraceState(NamedTuple):
    """``pre_trace`` (batch, n_pre), ``post_trace`` (batch, n_post), ``eligibility``
    (n_post, n_pre) and ``post_eligibility`` (n_post,): summed over the batch."""

    pre_trace: Any
    post_trace: Any
    eligibility: Any
    post_eligibility: Any


def dense_product(post: Any, pre: Any) -> Any:
    """``Σ_batch post ⊗ pre`` of an all-to-all layer, (n_post, n_pre): the default ``product``
    of :func:`chl_trace_step` (a conv layer's is :func:`neurocredit.conv.torch_weight_product`)."""
    return post.T @ pre


def trace_initial_state(batch: int, n_pre: int, n_post: int, like: Any, copies: int = 1,
                        eligibility_shape: Any = None) -> TraceState:
    """Zero traces and eligibilities in the dtype/device (torch) or dtype (numpy) of ``like``;
    the post trace has ``copies * batch`` rows (:func:`chl_trace_step`); the eligibility is
    (n_post, n_pre) or ``eligibility_shape`` (a conv layer's kernel shape)."""
    if isinstance(like, torch.Tensor):
        def zeros(*shape):
            return torch.zeros(*shape, dtype=like.dtype, device=like.device)
    else:
        def zeros(*shape):
            return np.zeros(shape, dtype=np.asarray(like).dtype)
    shape = (n_post, n_pre) if eligibility_shape is None else tuple(eligibility_shape)
    return TraceState(zeros(batch, n_pre), zeros(copies * batch, n_post), zeros(*shape), zeros(n_post))


def chl_trace_step(params: TraceParameters, state: TraceState, pre_spikes: Any, post_spikes: Any,
                   phase_weight: Any, copies: int = 1, product: Any = dense_product) -> TraceState:
    """One step of the STDP-style CHL eligibility (module doc), batched, numpy or torch.

    ``pre_spikes`` (batch, n_pre) and ``post_spikes`` (batch, n_post) are this step's spikes
    (0/1; the ``current`` encoder's graded input enters with its value); ``phase_weight`` is a
    scalar or one weight per sample, shape (batch,): ``+1/window``
    in a counted nudged step, ``-1/window`` in a counted free step, 0 otherwise. Within a step
    the pre spikes are paired first (with the post trace of earlier steps), then the post
    spikes (with the pre trace including this step), so a coincident pair counts once: the
    order of Brian2's ``on_pre`` and ``on_post`` pathways.

    ``copies`` > 1: ``post_spikes`` (and the post trace) stack ``copies`` copies of a batch that
    share their presynaptic spikes (``pre_spikes`` and the pre trace have the batch's rows
    only, as the input of the free and nudged copies does). The copies' weighted post terms
    are summed before the product: the same eligibility as repeating ``pre_spikes``, with a
    product ``copies`` times smaller (equal up to float rounding).

    ``product(post, pre)``: ``Σ_batch post ⊗ pre`` through the layer's synapses,
    :func:`dense_product` by default; for a conv layer the per-tap sum over positions
    (:func:`neurocredit.conv.torch_weight_product`), so a shared kernel's eligibility is the sum
    of its synapses' (torch only).
    """
    weight = phase_weight
    if np.ndim(weight) == 1:
        weight = weight[:, None]
    pre_trace = state.pre_trace * params.pre_decay + pre_spikes
    post_decayed = state.post_trace * params.post_decay
    paired_decayed, paired_spikes = weight * post_decayed, weight * post_spikes
    if copies > 1:
        paired_decayed = paired_decayed.reshape(copies, -1, paired_decayed.shape[-1]).sum(0)
        paired_spikes = paired_spikes.reshape(copies, -1, paired_spikes.shape[-1]).sum(0)
    if product is dense_product:
        eligibility = state.eligibility + paired_decayed.T @ pre_spikes + paired_spikes.T @ pre_trace
    else:  # one product call for both pairings
        eligibility = state.eligibility + product(torch.cat([paired_decayed, paired_spikes]),
                                                  torch.cat([pre_spikes, pre_trace]))
    post_eligibility = state.post_eligibility + (weight * post_spikes).sum(0)
    return TraceState(pre_trace, post_decayed + post_spikes, eligibility, post_eligibility)


def trace_decay_step(params: TraceParameters, state: TraceState, pre_spikes: Any, post_spikes: Any) -> TraceState:
    """:func:`chl_trace_step` with phase weight 0 (settling): the traces move, the eligibilities
    do not; skips the two outer products."""
    return TraceState(state.pre_trace * params.pre_decay + pre_spikes,
                      state.post_trace * params.post_decay + post_spikes,
                      state.eligibility, state.post_eligibility)


def layer_product(layer: Any) -> Any:
    """The ``product`` of :func:`chl_trace_step` for a layer spec (None or Dense: all-to-all)."""
    if getattr(layer, "kind", "dense") != "conv2d":
        return dense_product
    from neurocredit.conv import torch_weight_product

    return lambda post, pre: torch_weight_product(layer, post, pre)


def eligibility_shape(layer: Any, n_pre: int, n_post: int) -> tuple[int, ...]:
    """(n_post, n_pre), or a Conv2d's kernel shape (its eligibility is per tap)."""
    return tuple(layer.weight.shape) if getattr(layer, "kind", "dense") == "conv2d" else (n_post, n_pre)


def replay_eligibility(pre_spikes: np.ndarray, post_spikes: np.ndarray, phase_weight: np.ndarray,
                       params: TraceParameters, layer: Any = None) -> np.ndarray:
    """:func:`chl_trace_step` over fixed spike trains, in float64 torch: ``pre_spikes`` (steps,
    batch, n_pre), ``post_spikes`` (steps, batch, n_post), ``phase_weight`` (steps, batch).
    Returns the summed eligibility (n_post, n_pre), or per kernel tap for a Conv2d ``layer``:
    the reference for ``chl_brian2.eligibility`` / ``chl_brian2.conv_eligibility``."""
    steps, batch, n_pre = pre_spikes.shape
    n_post = post_spikes.shape[2]
    state = trace_initial_state(batch, n_pre, n_post, torch.zeros(1, dtype=torch.float64),
                                eligibility_shape=eligibility_shape(layer, n_pre, n_post))
    product = layer_product(layer)
    for t in range(steps):
        state = chl_trace_step(params, state, torch.as_tensor(pre_spikes[t], dtype=torch.float64),
                               torch.as_tensor(post_spikes[t], dtype=torch.float64),
                               torch.as_tensor(phase_weight[t], dtype=torch.float64), product=product)
    return state.eligibility.numpy()
