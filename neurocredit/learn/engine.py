"""Lava's learning engine (lava-nc 0.10.0) re-implemented in numpy, float and fixed point.

This is what ``LearningDense`` does with a three-factor rule (``Loihi3FLearningRule``), read
from ``lava/magma/core/model/py/connection.py`` (``PyLearningConnection``,
``LearningConnectionModelBitApproximate``, ``LearningConnectionModelFloat``),
``lava/magma/core/learning/learning_rule_applier.py``, ``random.py``, ``utils.py`` and
``constants.py``. :class:`LearningSynapses` follows it operation for operation, vectorized over
synapses, so that the fixed-point engine gives Lava's integer weights, tags and traces bit for
bit (checked by ``tests/test_learn_engine.py``) and the float engine Lava's float weights.

Rules are written in Lava's grammar and parsed by Lava's own parser
(``lava.magma.core.learning``, pure Python) into products
``dependency * mantissa * 2**exp * prod(factor + C)``; a string Lava rejects is one
:class:`~neurocredit.errors.NeurocreditError`.

Per time step ``t`` (Lava's ``time_step``, from 1), spiking phase (``recv_traces``)::

    pre spikes s:  multi = (tx > 0) & s          # a second spike in the same epoch
                   x1[multi] = add_impulse(x1[multi], random=0)   (x2 likewise)
                   tx[s] = within-epoch step (1..t_epoch)
    advance trace generators (x and y: one float + one int draw each)
    post spikes b: ty[b] = within-epoch step (y impulses are 0 with a 3F rule)
    y1, y2, y3 = the values the post neuron sent this step
    advance trace generators again

learning phase, when ``t % t_epoch == 0``::

    advance the synaptic-variable generator (one float draw)
    x0 = tx > 0 ; y0 = ty > 0
    history[0] = traces now; for s in 1..t_epoch: history[s] = decay(history[s-1]) (+ impulse
        for neurons whose recorded spike step is s)
    x traces = history[t_epoch] (y traces are not written back with a 3F rule)
    for each target Z in (w, d, t): Z += sum of products, with x1/x2/y1..y3 read from the
        history at the pre-spike step (x0 terms), the post-spike step (y0 terms) or the end
        of the epoch (uk terms); u = 1 when (t // t_epoch) % 2**k == 0
    x0 = y0 = tx = ty = 0

Fixed point ("bit_approximate_loihi": Lava says it is not Loihi bit for bit):

* traces are integers clipped to [0, 127] (7 bits) when an impulse is added; an impulse
  ``I`` is split into ``floor(I)`` and an 8-bit fraction ``round(frac * 256)``, and
  ``add_impulse`` adds 1 more when ``random < fraction`` -- Lava compares the integer random
  (0..127) or 0 with the 0..255 fraction, so the in-epoch (``multi``) impulse always rounds up
  when it has a fraction;
* decay: ``v * exp(-1/tau)`` in float64, then ``floor`` + 1 when ``random < fractional part``
  (one random per epoch for all neurons and all in-epoch steps);
* a product multiplies int32 factors, each clipped to its signed width (traces 7, w/t/d 9,
  C 8 bits), by the mantissa, shifts right by ``max(0, sum of factor widths + 4 - 15)``,
  left by ``exp + 7``, saturates to 16 bits; the accumulator starts at ``w << 7`` (``t << 7``,
  ``d << 7``) and saturates after every product; so one product ``x1 * y2`` (14 bits + 4)
  loses 3 bits: its weight change is ``2**exp * x1 * y2 / 8``, a product of one trace keeps
  ``2**exp * trace``;
* the sum is divided by 128, ``floor`` + 1 when ``random < fractional part`` (one random per
  epoch shared by every synapse, from ``np.random.default_rng(2)`` whatever the rule's seed:
  ``ConnVarRandom()``), then weights are clipped to 8 bits + sign (mixed: [-256, 255]),
  tag_1 to [-257, 255], tag_2 to [0, 255].

The trace generators are ``np.random.default_rng(seed)`` (x decay), ``seed + 1`` (x impulse),
``seed + 2`` (y decay), ``seed + 3`` (y impulse), each drawn once at start and once per
advance (twice per time step). Float point has no randomness and no clipping (weights keep the
sign mode only).

Two consequences of Lava's 3F implementation worth knowing: the y traces the neuron sends are
decayed inside the learning phase with ``tau = 2**16 - 1`` (``Loihi3FLearningRule``), so a ``uk``
product reads ``y * exp(-t_epoch/65535)`` (fixed point: usually ``y``, sometimes ``y - 1``); and
in floating point an x trace with ``tau = 0`` becomes NaN (Lava leaves the history rows of
non-decaying traces at NaN). Because every random number comes from a seeded numpy generator
that this module draws in the same order, fixed point is reproduced exactly, not only in
distribution (``tests/test_learn_engine.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from neurocredit.errors import NeurocreditError

# Widths of Lava's fixed-point learning engine (lava/magma/core/learning/constants.py).
W_TRACE = 7
W_TRACE_FRACTION = 8
W_SYN_VAR_U = {"weights": 8, "tag_2": 8, "tag_1": 8}
W_ACCUMULATOR_U = 15
W_ACCUMULATOR_S = 16
W_S_MANT = 4
FACTOR_WIDTH = {"x0": 1, "x1": 7, "x2": 7, "y0": 1, "y1": 7, "y2": 7, "y3": 7, "w": 9, "d": 9, "t": 9, "C": 8}
SYNAPTIC_VARIABLE = {"w": "weights", "d": "tag_2", "t": "tag_1"}
THREE_FACTOR_Y_TAU = np.iinfo(np.uint16).max  # Loihi3FLearningRule's y taus
# ConnVarRandom() in LearningConnectionModelBitApproximate._init_randoms takes no seed: Lava's default.
CONN_VAR_SEED = 2
TRACE_MAX = (1 << W_TRACE) - 1
# np.clip without its Python-level dispatch (the same ufunc np.clip ends in): the engine clips
# small arrays many times per step.
_clip = np.core.umath.clip


@dataclass(frozen=True)
class Factor:
    """``state_var + const`` (``sgn(...)`` when ``is_sgn``); ``state_var`` is a Lava symbol."""

    state_var: str
    const: Optional[int] = None
    is_sgn: bool = False


@dataclass(frozen=True)
class Product:
    """``dependency * mantissa * 2**(s_exp - 7) * prod(factors)``; ``s_exp`` as Lava stores it."""

    dependency: str
    mantissa: int
    s_exp: int
    factors: tuple[Factor, ...]

    @property
    def fixed_shift(self) -> int:
        """Bits the fixed-point engine drops from this product: max(0, widths + 4 - 15)."""
        width = sum(FACTOR_WIDTH[f.state_var] for f in self.factors) + W_S_MANT
        return max(0, width - W_ACCUMULATOR_U)


@dataclass(frozen=True)
class RuleSpec:
    """A three-factor learning rule as Lava's ``Loihi3FLearningRule`` takes it.

    dw, dd, dt: rule strings (Lava grammar); x1/x2 impulse (trace units per pre spike) and tau
    (steps; 0 = no decay, the trace is rebuilt from impulses every epoch); t_epoch (steps);
    rng_seed (seeds the fixed-point trace generators). The post traces y1..y3 are sent by the
    post neuron.
    """

    dw: Optional[str] = None
    dd: Optional[str] = None
    dt: Optional[str] = None
    x1_impulse: float = 0.0
    x1_tau: float = 0.0
    x2_impulse: float = 0.0
    x2_tau: float = 0.0
    t_epoch: int = 1
    rng_seed: int = 1

    def lava_rule(self):
        """The ``Loihi3FLearningRule`` (Lava import inside)."""
        from lava.magma.core.learning.learning_rule import Loihi3FLearningRule

        return Loihi3FLearningRule(dw=self.dw, dd=self.dd, dt=self.dt, x1_impulse=self.x1_impulse,
                                   x1_tau=self.x1_tau, x2_impulse=self.x2_impulse, x2_tau=self.x2_tau,
                                   t_epoch=self.t_epoch, rng_seed=self.rng_seed)


@dataclass(frozen=True)
class CompiledRule:
    """A parsed :class:`RuleSpec`: per synaptic variable (``weights``, ``tag_2``, ``tag_1``, in
    Lava's order) its products; ``decimate_exponent`` k of the ``uk`` dependency (or None)."""

    spec: RuleSpec
    targets: tuple[tuple[str, tuple[Product, ...]], ...]
    decimate_exponent: Optional[int]

    @property
    def products(self) -> tuple[Product, ...]:
        return tuple(p for _, products in self.targets for p in products)


def compile_rule(spec: RuleSpec, where: str = "learning rule") -> CompiledRule:
    """Parse ``spec`` with Lava's parser; a rule Lava rejects is one NeurocreditError."""
    if spec.t_epoch < 1 or spec.t_epoch >= 1 << 6:
        raise NeurocreditError(f"{where}: t_epoch={spec.t_epoch} must be in 1..63 (Lava's tx/ty are 6 bits)")
    for name in ("x1", "x2"):
        if getattr(spec, f"{name}_impulse") < 0 or getattr(spec, f"{name}_tau") < 0:
            raise NeurocreditError(f"{where}: {name}_impulse and {name}_tau must be >= 0")
    try:
        rule = spec.lava_rule()
    except Exception as error:  # Lava's parser raises ValueError, AttributeError, IndexError...
        text = " ".join(f"{k}={v!r}" for k, v in (("dw", spec.dw), ("dd", spec.dd), ("dt", spec.dt)) if v)
        reason = str(error) or type(error).__name__
        if isinstance(error, AttributeError):
            reason = "a term Lava's grammar cannot parse (decimal literal or unknown symbol?)"
        raise NeurocreditError(
            f"{where}: Lava rejects {text}: {reason}. Write terms as "
            "[-]2^E*DEP*F1*F2 with E in -7..8, DEP one of x0, y0, uK and factors x0..y3, w, d, t, C"
        ) from None
    targets = []
    for key in ("dw", "dd", "dt"):
        series = getattr(rule, key)
        if series is None:
            continue
        products = tuple(
            Product(p.dependency, int(p.s_mantissa), int(p.s_exp),
                    tuple(Factor(f.state_var, f.const, bool(f.is_sgn)) for f in p.factors))
            for p in series.products
        )
        targets.append((SYNAPTIC_VARIABLE[key[1:]], products))
    return CompiledRule(spec, tuple(targets), rule.decimate_exponent)


def stochastic_round(values: np.ndarray, random, probabilities: np.ndarray) -> np.ndarray:
    """Lava's ``stochastic_round``: ``values + (random < probabilities)``, as int."""
    return (values + (random < probabilities).astype(int)).astype(int)


class _Stream:
    """One seeded numpy generator read one value at a time, as Lava does (``random(1)[0]`` or
    ``integers(0, 128, size=1)[0]`` per advance), but drawn in blocks: numpy gives the same
    sequence either way (PCG64 doubles one per draw; bounded integers of a 7-bit range one
    32-bit Lemire draw each), checked in ``tests/test_learn_engine.py``."""

    BLOCK = 4096

    def __init__(self, seed: int, integers: bool) -> None:
        self._rng = np.random.default_rng(seed=seed)
        self._integers = integers
        self._block = self._draw()
        self._index = 0

    def _draw(self) -> np.ndarray:
        if self._integers:
            return self._rng.integers(0, 2**W_TRACE, size=self.BLOCK, dtype=int)
        return self._rng.random(self.BLOCK)

    @property
    def value(self):
        return self._block[self._index]

    def advance(self, count: int = 1) -> None:
        self._index += count
        while self._index >= self.BLOCK:
            self._index -= self.BLOCK
            self._block = self._draw()

    def take(self, count: int, stride: int = 1) -> np.ndarray:
        """The values read after each of ``count`` advances by ``stride`` (the generator ends
        advanced by ``count * stride``), drawn in the same blocks."""
        need = int(count) * int(stride)
        sequence = self._block[self._index:]
        drawn = False
        while len(sequence) <= need:
            self._block = self._draw()
            sequence = np.concatenate([sequence, self._block])
            drawn = True
        values = sequence[stride: need + 1: stride]
        self._index = need - (len(sequence) - self.BLOCK) if drawn else self._index + need
        return values


class _TraceRandom:
    """Lava's ``TraceRandom``: a float for decay rounding and an int in [0, 128) for impulses."""

    def __init__(self, seed_decay: int, seed_impulse: int) -> None:
        self._decay = _Stream(seed_decay, integers=False)
        self._impulse = _Stream(seed_impulse, integers=True)

    @property
    def trace_decay(self) -> float:
        return self._decay.value

    @property
    def impulse_addition(self) -> int:
        return self._impulse.value

    def advance(self, count: int = 1) -> None:
        self._decay.advance(count)
        self._impulse.advance(count)


@dataclass
class EngineCounts:
    """Learning-engine operations so far: ``epochs`` (learning phases run), ``synapse_updates``
    (synaptic-variable words rewritten: synapses x targets per epoch), ``product_terms``
    (product evaluations: synapses x products per epoch), ``trace_updates`` (pre + post trace
    values written per step)."""

    epochs: int = 0
    synapse_updates: int = 0
    product_terms: int = 0
    trace_updates: int = 0

    def add(self, other: "EngineCounts") -> "EngineCounts":
        return EngineCounts(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclass
class LearningSynapses:
    """The learning state of one ``LearningDense`` (see the module doc for the order of steps).

    weights (post, pre): int (fixed) or float; ``fixed`` selects the arithmetic;
    ``sign_mode`` one of mixed, excitatory, inhibitory. Call :meth:`step` once per time step
    with the pre spikes, the post spikes and the y traces the post neuron sent.
    """

    rule: CompiledRule
    weights: np.ndarray
    fixed: bool = True
    sign_mode: str = "mixed"
    tag_1: Optional[np.ndarray] = None
    tag_2: Optional[np.ndarray] = None
    time_step: int = 0
    counts: EngineCounts = field(default_factory=EngineCounts)

    def __post_init__(self) -> None:
        n_post, n_pre = self.weights.shape
        kind = np.int64 if self.fixed else np.float64
        # tags hold [-257, 255]: int16, a quarter of int64's memory traffic in the compiled kernels' row updates
        tag_kind = np.int16 if self.fixed else np.float64
        self.weights = np.array(self.weights, dtype=np.int32 if self.fixed else np.float64)
        if self.fixed:
            low, high = {"mixed": (-256, 255), "excitatory": (0, 255), "inhibitory": (-255, 0)}[self.sign_mode]
            if self.weights.size and (self.weights.min() < low or self.weights.max() > high):
                raise NeurocreditError(
                    f"learning weights must be integers in [{low}, {high}] for sign mode {self.sign_mode} "
                    f"(Lava's 8-bit + sign learning range); got [{self.weights.min()}, {self.weights.max()}]"
                )
        self.tag_1 = np.zeros((n_post, n_pre), tag_kind) if self.tag_1 is None else np.array(self.tag_1, tag_kind)
        self.tag_2 = np.zeros((n_post, n_pre), tag_kind) if self.tag_2 is None else np.array(self.tag_2, tag_kind)
        self.x = np.zeros((2, n_pre), kind)
        self.y = np.zeros((3, n_post), kind)
        self.tx = np.zeros(n_pre, np.int64)
        self.ty = np.zeros(n_post, np.int64)
        spec = self.rule.spec
        self.x_impulse = np.array([spec.x1_impulse, spec.x2_impulse], np.float64)
        self.x_tau = np.array([spec.x1_tau, spec.x2_tau])
        self.y_tau = np.full(3, THREE_FACTOR_Y_TAU)
        self._needed = sorted({f"{f.state_var}_{p.dependency}" for p in self.rule.products for f in p.factors
                               if f.state_var in ("x1", "x2", "y1", "y2", "y3")})
        if self.fixed:
            whole = np.floor(self.x_impulse)
            self.x_impulse_int = whole.astype(int)
            self.x_impulse_frac = np.round((self.x_impulse - whole) * 2**W_TRACE_FRACTION).astype(int)
            seed = int(spec.rng_seed)
            self._x_random = _TraceRandom(seed, seed + 1)
            self._y_random = _TraceRandom(seed + 2, seed + 3)
            self._conn_random = _Stream(CONN_VAR_SEED, integers=False)

    # -- spiking phase -------------------------------------------------------------------
    def _within_epoch(self) -> int:
        step = self.time_step % self.rule.spec.t_epoch
        return step if step != 0 else self.rule.spec.t_epoch

    def _add_impulse(self, values, random, impulse_int, impulse_frac):
        new = values + impulse_int
        new = stochastic_round(new, random, impulse_frac)
        return _clip(new, 0, TRACE_MAX)

    def step(self, pre_spikes: np.ndarray, post_spikes: np.ndarray, y_traces: np.ndarray) -> None:
        """One Lava time step: spiking phase, then the learning phase at the end of an epoch.

        pre_spikes (n_pre,) and post_spikes (n_post,) 0/1; y_traces (3, n_post) as the post
        neuron sent them (int in fixed point)."""
        self.time_step += 1
        spiked = np.asarray(pre_spikes).astype(bool)
        multi = (self.tx > 0) & spiked
        if self.fixed:
            for row in (0, 1):
                self.x[row, multi] = self._add_impulse(self.x[row, multi], 0, self.x_impulse_int[row],
                                                       self.x_impulse_frac[row])
        else:
            self.x[:, multi] += self.x_impulse[:, None]
        within = self._within_epoch()
        self.tx[spiked] = within
        bap = np.asarray(post_spikes).astype(bool)
        # y impulses are 0 with a 3F rule: Lava's multi-spike impulse leaves y unchanged (fixed
        # point clips it to [0, 127], but the neuron's values overwrite y right after).
        self.ty[bap] = within
        self.y = np.array(y_traces, dtype=self.y.dtype).reshape(self.y.shape)
        if self.fixed:
            # Lava advances both trace generators after the pre spikes and again after the post
            # spikes; between the two only the y impulse random is read, by a multi-spike y impulse
            # of 0 (3F), which it cannot change: two advances at once give the same values.
            self._x_random.advance(2)
            self._y_random.advance(2)
        self.counts.trace_updates += self.x.shape[1] * 2 + self.y.shape[1] * 3
        if self.time_step % self.rule.spec.t_epoch == 0:
            self._learn()

    # -- learning phase ------------------------------------------------------------------
    def _histories(self) -> tuple[np.ndarray, np.ndarray]:
        t_epoch = self.rule.spec.t_epoch
        fill, dtype = (0, int) if self.fixed else (np.nan, np.float64)
        x_hist = np.full((t_epoch + 1,) + self.x.shape, fill, dtype)
        y_hist = np.full((t_epoch + 1,) + self.y.shape, fill, dtype)
        x_hist[0] = self.x
        y_hist[0] = self.y
        x_on = self.x_tau != 0
        y_on = self.y_tau != 0
        for t in range(1, t_epoch + 1):
            ids = np.where(self.tx == t)[0]
            if self.fixed:
                x_hist[t][x_on] = self._decay_fixed(x_hist[t - 1][x_on], self.x_tau[x_on][:, None],
                                                    self._x_random.trace_decay)
                y_hist[t][y_on] = self._decay_fixed(y_hist[t - 1][y_on], self.y_tau[y_on][:, None],
                                                    self._y_random.trace_decay)
                x_hist[t][:, ids] = self._add_impulse(x_hist[t][:, ids], self._x_random.impulse_addition,
                                                      self.x_impulse_int[:, None], self.x_impulse_frac[:, None])
                ids = np.where(self.ty == t)[0]
                y_hist[t][:, ids] = self._add_impulse(y_hist[t][:, ids], self._y_random.impulse_addition, 0, 0)
            else:
                x_hist[t][x_on] = np.exp(-1 / self.x_tau[x_on][:, None]) * x_hist[t - 1][x_on]
                y_hist[t][y_on] = np.exp(-1 / self.y_tau[y_on][:, None]) * y_hist[t - 1][y_on]
                x_hist[t][:, ids] += self.x_impulse[:, None]
        return x_hist, y_hist

    @staticmethod
    def _decay_fixed(values, taus, random):
        scaled = np.exp(-1 / taus) * values
        fraction = scaled % 1
        return stochastic_round(np.floor(scaled), random, fraction)

    def _evaluated(self, x_hist, y_hist) -> dict[str, np.ndarray]:
        """The trace values each product reads (only those the rule uses), shaped as Lava's
        ``_extract_applier_evaluated_traces``."""
        tx, ty = self.tx, self.ty
        out = {}
        for key in self._needed:
            name, dependency = key.split("_")
            row = int(name[1]) - 1
            if name[0] == "x":
                if dependency == "x0":
                    out[key] = x_hist[tx, row, np.arange(len(tx))][None, :]
                elif dependency == "y0":
                    out[key] = x_hist[ty, row]  # (post, pre): x at each post neuron's spike step
                else:
                    out[key] = x_hist[-1, row][None, :]
            else:
                if dependency == "x0":
                    out[key] = y_hist[tx, row].T  # (post, pre): y at each pre neuron's spike step
                elif dependency == "y0":
                    out[key] = y_hist[ty, row, np.arange(len(ty))][:, None]
                else:
                    out[key] = y_hist[-1, row][:, None]
        return out

    def _u(self) -> int:
        k = self.rule.decimate_exponent
        if k is None:
            return 0
        return 1 if int(self.time_step / self.rule.spec.t_epoch) % 2**k == 0 else 0

    def _factor(self, dependency: str, factor: Factor, args: dict):
        const = factor.const if factor.const is not None else 0
        var = factor.state_var
        if var in ("x0", "y0", "u"):
            return args[var] + const
        if var in ("x1", "x2", "y1", "y2", "y3"):
            return args[f"{var}_{dependency}"] + const
        if var in SYNAPTIC_VARIABLE:
            value = args[SYNAPTIC_VARIABLE[var]] + const
            return np.sign(value) if factor.is_sgn else value
        return const  # C

    def _learn(self) -> None:
        if self.fixed:
            self._conn_random.advance()
        x0 = self.tx > 0
        y0 = self.ty > 0
        x_hist, y_hist = self._histories()
        self.x = x_hist[-1].copy()
        args = {"x0": x0[None, :], "y0": y0[:, None], "u": self._u(),
                "weights": self.weights, "tag_2": self.tag_2, "tag_1": self.tag_1}
        args.update(self._evaluated(x_hist, y_hist))
        shape = self.weights.shape
        new_values = {}
        for name, products in self.rule.targets:
            if self.fixed:
                new_values[name] = self._apply_fixed(name, products, args, shape)
            else:
                new_values[name] = self._apply_float(name, products, args)
            self.counts.synapse_updates += self.weights.size
            self.counts.product_terms += self.weights.size * len(products)
        for name, value in new_values.items():
            setattr(self, name, value)
        self.counts.epochs += 1
        self.tx = np.zeros_like(self.tx)
        self.ty = np.zeros_like(self.ty)

    def _apply_float(self, name: str, products, args) -> np.ndarray:
        total = 0.0
        for product in products:
            term = product.mantissa * 2.0 ** (product.s_exp - 7) * args[product.dependency]
            for factor in product.factors:
                term = term * self._factor(product.dependency, factor, args)
            total = total + term
        value = getattr(self, name) + total
        if name == "tag_2" or (name == "weights" and self.sign_mode == "excitatory"):
            return np.maximum(0, value)
        if name == "weights" and self.sign_mode == "inhibitory":
            return np.minimum(0, value)
        return np.broadcast_to(value, self.weights.shape).astype(np.float64)

    def _apply_fixed(self, name: str, products, args, shape) -> np.ndarray:
        """Lava's ``LearningRuleApplierBitApprox.apply`` + rounding and saturation. Each product
        is computed in its own broadcast shape ((1, pre), (post, 1) or (post, pre)) with the same
        int32 operations, and skipped when a factor is all zero (it would add zeros: only Lava's
        saturation of the accumulator after it is kept); the
        stochastic rounding ``floor(r / 128) + (random < frac)`` is done in integers:
        ``(r >> 7) + ((r & 127) > 128 * random)`` -- the same comparison, exact in float64."""
        limit = 2**W_ACCUMULATOR_U
        shift = W_ACCUMULATOR_S - (W_SYN_VAR_U[name] + 1)
        base = getattr(self, name)
        result = base.astype(np.int64) << shift
        # Lava saturates the accumulator after every product, also one that adds zeros; that
        # changes only a shifted value outside the accumulator (a tag at -257): clip those once.
        out_of_range = bool(result.size) and (result.min() < -limit - 1 or result.max() > limit - 1)
        touched = False  # whether result may differ from base << shift
        for product in products:
            dependency = args[product.dependency]
            current = None
            if np.ndim(dependency) == 0:
                if dependency != 0:
                    current = np.ones((1, 1), dtype=np.int32) * np.int32(dependency)
            elif np.any(dependency):
                current = dependency.astype(np.int32)
            for factor in product.factors:
                if current is None:
                    break
                factor_width = FACTOR_WIDTH[factor.state_var]
                value = self._factor(product.dependency, factor, args)
                value = _clip(value, -(2**factor_width), 2**factor_width - 1)
                value = np.asarray(value).astype(np.int32)
                current = current * value if np.any(value) else None
            if current is None:  # it adds zeros
                if out_of_range:
                    result = _clip(result, -limit - 1, limit - 1)
                    out_of_range, touched = False, True
                continue
            current = current * np.int32(product.mantissa)
            current = np.right_shift(current, product.fixed_shift)
            current = np.left_shift(current, product.s_exp)
            current = _clip(current, -limit - 1, limit - 1)
            result = _clip(result + current, -limit - 1, limit - 1)
            out_of_range, touched = False, True
        if not touched:  # nothing added, nothing saturated: rounding and clipping keep the values
            return base
        if name == "tag_2" or (name == "weights" and self.sign_mode == "excitatory"):
            result = np.maximum(0, result)
        elif name == "weights" and self.sign_mode == "inhibitory":
            result = np.minimum(0, result)
        unit_bits = W_ACCUMULATOR_U - W_SYN_VAR_U[name]
        assert unit_bits == shift
        threshold = self._conn_random.value * 2**unit_bits
        result = (result >> unit_bits) + ((result & (2**unit_bits - 1)) > threshold)
        bits = W_SYN_VAR_U[name]
        if name == "weights":
            if self.sign_mode == "mixed":
                return _clip(result, -(2**bits), 2**bits - 1).astype(np.int32)
            if self.sign_mode == "excitatory":
                return _clip(result, 0, 2**bits - 1).astype(np.int32)
            return -_clip(-result, 0, 2**bits - 1).astype(np.int32)
        if name == "tag_2":
            return _clip(result, 0, 2**bits - 1).astype(base.dtype)
        return _clip(result, -(2**bits) - 1, 2**bits - 1).astype(base.dtype)

