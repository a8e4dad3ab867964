"""On-chip spiking DFA: a LIF ``Network`` learning in Lava's learning engine, or in its emulation.

The plan (:func:`make_dfa_plan`) turns a float LIF ``Network`` into what Lava is given:

* fixed point: :func:`neurocredit.deploy.quantize.quantize` gives each layer's 8-bit weights
  (mixed sign mode: even integers in [-256, 254], as Lava truncates them), ``weight_exp``,
  12-bit ``du``/``dv``, threshold and bias; the learned weights stay in that layer's units;
* floating point: the same layer in float "fixed units / 64" (``W = w * 2**weight_exp``,
  ``vth`` = threshold mantissa, bias / 64, ``du = (du + 1)/4096``, ``dv = dv/4096``), so float
  and fixed runs are the same network and their learned weights can be compared
  (:attr:`DfaPlan.integer_weights` maps float weights back to integer units).

Every layer gets a ``LearningDense`` with the 3F rule (``t_epoch = 1``: an update every step)::

    dw = -2^k*u0*x1*y2 + 2^k*u0*x1*y3        x1: pre trace (impulse, tau)

and the post neuron sends the DFA third factor in y2/y3 (:mod:`neurocredit.learn.neurons`);
each hidden layer l receives ``B_l e`` through a fixed ``Dense(B_l)`` with graded messages:
``B_l`` random integers in [-feedback_scale, feedback_scale] (even, as Lava's mixed mode
keeps them), ``weight_exp = feedback_exp``. The fixed engine drops 3 bits from a two-trace
product (see :mod:`neurocredit.learn.engine`), so a weight changes by about
``2**(k-3) x1 y`` per step; the float engine's x1 impulse is scaled by 2**-3 (and by
``2**weight_exp``, its weight unit) to change weights the same way on average.

With ``onchip.tag_samples`` N > 0 the same products go to the tag instead, at a finer
``2**tag_exponent``, and every N samples the neurons send a transfer bAP that moves the tag to
the weight scaled by their ``y1`` (:func:`dfa_rule_strings`,
:func:`~neurocredit.learn.neurons.dfa_transfer`): updates far below one 8-bit weight step add up
before they are rounded, and the neurons set the learning rate of each epoch
(``onchip.rate_shifts``) without a new rule.

:class:`DfaEmulator` runs the whole network step by step in numpy -- Lava's LIF
(``deploy.emulator.lif_fixed_step``, bit-exact with ``PyLifModelBitAcc``), Lava's Dense
timing (one step late), our neurons and :class:`~neurocredit.learn.engine.LearningSynapses` --
so its integer weights equal Lava fixed point's after the same inputs
(``tests/test_learn_onchip.py``); its :meth:`~DfaEmulator.run` (and :class:`ChlEmulator`'s)
runs the same steps compiled (:mod:`neurocredit.learn.fast`) when it can.

The second half of the module is on-chip STDP-style CHL (:func:`make_chl_plan`,
:class:`ChlEmulator`): a free and a nudged phase per sample, both from rest by default.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

from neurocredit.errors import NeurocreditError, require_at_least_one
from neurocredit.learn.engine import CompiledRule, EngineCounts, LearningSynapses, RuleSpec, compile_rule
from neurocredit.learn.neurons import DfaNeuronParameters, dfa_transfer, hidden_third_factor, output_third_factor
from neurocredit.network import Network

# Lava's fixed-point LIF constants (deploy.quantize.LAVA): decay unity and activation shift.
_DECAY_UNITY = 4096
_ACTIVATION_SCALE = 64


@dataclass(frozen=True)
class OnChipOptions:
    """Options of on-chip DFA (all integers: exponents are powers of two, as Lava takes them).

    hidden_exponent, output_exponent: k of ``2^k`` in the hidden / output layers' rule (-7..8);
    x1_impulse, x1_tau: the pre trace; settle: steps per sample without learning;
    trace_shift, trace_impulse, target_level, error_shift: the output error
    (:class:`~neurocredit.learn.neurons.DfaNeuronParameters`); feedback_scale, feedback_exp:
    the random feedback B (Dense weights and weight_exp); feedback_shift: the hidden neurons'
    magnitude shift of B e; message_bits: graded-spike width of the feedback Dense; seed: B and
    the sample order; rng_seed: the learning engine's trace generators.

    tag_samples: 0, the weight learns every step (the rule above); N > 0, the products go to the
    tag at ``2**tag_exponent`` and the tag moves to the weight every N samples
    (:func:`dfa_rule_strings`), so that updates far below one weight step add up in the finer tag
    before they are rounded; tag_exponent: a of ``2**a``; rate_shifts: with a tag, 0 (full rate)
    or 1 (half rate) per epoch, the last value holding after the list ends.
    """

    hidden_exponent: int = -7
    output_exponent: int = -7
    x1_impulse: int = 8
    x1_tau: int = 4
    settle: int = 4
    trace_shift: int = 2
    trace_impulse: int = 32
    target_level: int = 96
    error_shift: int = 2
    feedback_scale: int = 32
    feedback_exp: int = 0
    feedback_shift: int = 10
    message_bits: int = 16
    seed: int = 0
    rng_seed: int = 1
    tag_samples: int = 0
    tag_exponent: int = -4
    rate_shifts: list[int] = dataclasses.field(default_factory=list)


class LayerPlan(NamedTuple):
    name: str
    weights: np.ndarray  # (n_out, n_in): int32 (fixed) or float64 (float image)
    weight_exp: int
    du: float
    dv: float
    vth: float
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    rule: CompiledRule

    @property
    def n_out(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_in(self) -> int:
        return int(self.weights.shape[1])


class FeedbackPlan(NamedTuple):
    weights: np.ndarray  # (n_hidden, n_classes) int32 (fixed) or float64 (float: times 2**weight_exp)
    weight_exp: int


class DfaPlan(NamedTuple):
    network: Network
    quantized: object  # deploy.quantize.QuantizedNetwork
    layers: tuple[LayerPlan, ...]
    feedback: tuple[FeedbackPlan, ...]
    neuron: DfaNeuronParameters
    fixed: bool
    message_bits: int

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.layers[0].n_in,) + tuple(layer.n_out for layer in self.layers)

    def integer_weights(self, weights: list[np.ndarray]) -> list[np.ndarray]:
        """Learned weights in each layer's integer units (float runs: divided by 2**weight_exp)."""
        if self.fixed:
            return [np.asarray(w, np.int64) for w in weights]
        # float plans keep weights as w * 2**weight_exp (their LayerPlan.weight_exp is 0: Lava's
        # float Dense has no exponent), so divide by the quantized layer's exponent
        return [np.asarray(w, np.float64) / 2.0 ** layer.weight_exp for w, layer in zip(weights, self.quantized.layers)]

    def learned_network(self, weights: list[np.ndarray]) -> Network:
        """The float ``Network`` with the learned weights (``w * 2**(weight_exp + 6) / scale``)."""
        new = []
        for w, fixed_layer in zip(self.integer_weights(weights), self.quantized.layers):
            new.append((np.asarray(w, np.float64) * 2.0 ** (fixed_layer.weight_exp + 6) / fixed_layer.scale)
                       .astype(np.float32))
        return self.network.with_parameters(new, self.network.biases)

    def learned_quantized(self, weights: list[np.ndarray]):
        """The fixed-point network with the learned integer weights (fixed plans only)."""
        layers = tuple(dataclasses.replace(layer, weights=np.asarray(w, np.int32), sign_mode="mixed")
                       for layer, w in zip(self.quantized.layers, weights))
        return dataclasses.replace(self.quantized, layers=layers)


def dfa_rule_strings(exponent: int, tag_exponent: Optional[int] = None) -> tuple[str, Optional[str]]:
    """``(dw, dt)`` of one layer. Without a tag: ``dw = -2^k*u0*x1*y2 + 2^k*u0*x1*y3``, no dt.
    With one (``tag_exponent`` a)::

        dt = -2^a*u0*x1*y2 + 2^a*u0*x1*y3 - y0*t       dw = 2^(k-a-1)*y0*t*y1

    the same products accumulate in the tag, and on the neuron's transfer bAP (``y0``) the tag
    moves to the weight, scaled by ``y1`` (:func:`~neurocredit.learn.neurons.dfa_transfer`:
    fixed point 64 at full rate, 32 at half; ``t*y1`` loses 5 bits, so the weight gets exactly
    ``2^(k-a) t`` or half that), and is cleared.
    Both read the tag before the step (Lava computes every target from the old values), so the
    step's own products stay in the new tag."""
    k = int(exponent)
    if tag_exponent is None:
        return f"-2^{k}*u0*x1*y2 + 2^{k}*u0*x1*y3", None
    a = int(tag_exponent)
    return f"2^{k - a - 1}*y0*t*y1", f"-2^{a}*u0*x1*y2 + 2^{a}*u0*x1*y3 - y0*t"


def check_engine_capacity(network: Network, target_name: str = "loihi2"):
    """Place ``network`` on the target's cores (:func:`neurocredit.deploy.partition.check_and_partition`,
    8-bit weights): a layer larger than one core is split by post neurons, each core's learning
    engine updating its own synapses -- the same rule, since every factor is a synapse's own
    pre trace and its post neuron's y traces. (The emulator and the Lava graphs keep a layer in
    one ``LearningDense``, so their trace-rounding random numbers come from one generator per
    layer, where split cores would each draw their own.) A network that does not fit (one
    neuron's synapses larger than a core, too many cores) is one NeurocreditError naming the layer
    and the limit. Returns the partition."""
    from neurocredit.deploy.partition import check_and_partition
    from neurocredit.targets import load_target

    return check_and_partition(network, load_target(target_name), weight_bits=8)


def _layer_plan(quantized, fixed_layer, rule: CompiledRule, fixed: bool) -> LayerPlan:
    """One plastic layer as Lava is given it (module doc): fixed point, the quantized layer's
    even integer weights (Lava's mixed-mode truncation), weight_exp, 12-bit du/dv, threshold
    and bias; floating point, the same layer in float "fixed units / 64"."""
    weights = (np.asarray(fixed_layer.weights, np.int64) >> 1) << 1
    if fixed:
        return LayerPlan(fixed_layer.name, weights.astype(np.int32), fixed_layer.weight_exp, quantized.du,
                         quantized.dv, fixed_layer.vth, fixed_layer.bias_mant.astype(np.int32),
                         fixed_layer.bias_exp.astype(np.int32), rule)
    return LayerPlan(fixed_layer.name, weights.astype(np.float64) * 2.0 ** fixed_layer.weight_exp, 0,
                     (quantized.du + 1) / _DECAY_UNITY, quantized.dv / _DECAY_UNITY, float(fixed_layer.vth),
                     fixed_layer.effective_bias.astype(np.float64) / _ACTIVATION_SCALE,
                     np.zeros(fixed_layer.n_out, np.int32), rule)


def _random_feedback(seed: int, layers, n_outputs: int, scale: int, exponents, fixed: bool) -> tuple:
    """Fixed random feedback into each hidden layer: (n_hidden, n_outputs) even integers in
    [-scale, scale] (as Lava's mixed mode keeps them) with a weight exponent; float plans hold
    them times 2**exponent."""
    rng = np.random.default_rng(seed)
    feedback = []
    for layer, exponent in zip(layers[:-1], exponents):
        matrix = rng.integers(-scale // 2, scale // 2 + 1, size=(layer.n_out, n_outputs)) * 2
        if fixed:
            feedback.append(FeedbackPlan(matrix.astype(np.int32), int(exponent)))
        else:
            feedback.append(FeedbackPlan(matrix.astype(np.float64) * 2.0 ** exponent, 0))
    return tuple(feedback)


def make_dfa_plan(network: Network, options: OnChipOptions, fixed: bool = True,
                  target_name: str = "loihi2") -> DfaPlan:
    """The Lava parameters of ``network`` learning with on-chip DFA (see the module doc)."""
    from neurocredit.deploy.quantize import quantize

    if not network.neuron.spiking:
        raise NeurocreditError("on-chip learning needs a spiking (lif) network; this one is a rate network")
    check_engine_capacity(network, target_name)
    steps = int(network.encoder.steps)
    if not 0 <= options.settle < steps:
        raise NeurocreditError(f"onchip.settle={options.settle} must be in 0..{steps - 1} (steps per sample)")
    if options.tag_samples < 0:
        raise NeurocreditError(f"onchip.tag_samples={options.tag_samples} must be 0 (no tag) or a number of samples")
    if options.rate_shifts and not options.tag_samples:
        raise NeurocreditError("onchip.rate_shifts needs onchip.tag_samples > 0 (the transfer carries the rate)")
    if any(shift not in (0, 1) for shift in options.rate_shifts):
        raise NeurocreditError(f"onchip.rate_shifts={list(options.rate_shifts)}: each must be 0 or 1 (y1 = 64 >> "
                               "shift; the engine moves t*y1/32 to the weight, exact for y1 = 64 and 32 only: a "
                               "smaller y1 floors every odd tag, a drift toward negative weights)")
    quantized = quantize(network)
    neuron = DfaNeuronParameters(period=steps, settle=options.settle, trace_shift=options.trace_shift,
                                 trace_impulse=options.trace_impulse, target_level=options.target_level,
                                 error_shift=options.error_shift, feedback_shift=options.feedback_shift,
                                 transfer_samples=options.tag_samples, transfer_level=64 if fixed else 2.0,
                                 rate_shifts=tuple(int(v) for v in options.rate_shifts))
    tag_exponent = options.tag_exponent if options.tag_samples else None
    layers = []
    n_layers = len(quantized.layers)
    for index, fixed_layer in enumerate(quantized.layers):
        exponent = options.output_exponent if index == n_layers - 1 else options.hidden_exponent
        impulse = float(options.x1_impulse)
        if not fixed:
            impulse = impulse * 2.0**-3 * 2.0 ** fixed_layer.weight_exp
        dw, dt = dfa_rule_strings(exponent, tag_exponent)
        spec = RuleSpec(dw=dw, dt=dt, x1_impulse=impulse, x1_tau=options.x1_tau, t_epoch=1,
                        rng_seed=options.rng_seed + index * 4)
        where = f"onchip.*_exponent={exponent}" + (f", onchip.tag_exponent={tag_exponent}" if dt else "")
        rule = compile_rule(spec, where=f"layer {fixed_layer.name} DFA rule ({where})")
        layers.append(_layer_plan(quantized, fixed_layer, rule, fixed))
    feedback = _random_feedback(options.seed, layers, network.n_outputs, options.feedback_scale,
                                [options.feedback_exp] * (len(layers) - 1), fixed)
    return DfaPlan(network, quantized, tuple(layers), feedback, neuron, bool(fixed), options.message_bits)


def _shift(values: np.ndarray, exponent: int) -> np.ndarray:
    return np.left_shift(values, exponent) if exponent > 0 else np.right_shift(values, -exponent)


class DfaEmulator:
    """The DFA learning network of a :class:`DfaPlan`, one time step at a time, in Lava's order
    (see the module doc). :meth:`run` takes a stream of steps (samples back to back)."""

    def __init__(self, plan: DfaPlan) -> None:
        self._init_network(plan)
        self.trace = np.zeros_like(self.buffers[-1])

    def _init_network(self, plan) -> None:
        """What both emulators hold: the plan, one engine, Dense buffer and LIF state per layer,
        the feedback Dense buffers and weights, the step count."""
        from neurocredit.deploy.emulator import FixedLIFParameters, FixedLIFState

        self.plan = plan
        fixed = plan.fixed
        self.engines = [LearningSynapses(layer.rule, layer.weights.copy(), fixed=fixed) for layer in plan.layers]
        kind = np.int32 if fixed else np.float64
        self.buffers = [np.zeros(layer.n_out, kind) for layer in plan.layers]
        self.feedback_buffers = [np.zeros(fb.weights.shape[0], kind) for fb in plan.feedback]
        self.time_step = 0
        self.compiled: Optional[bool] = None  # run() compiled (learn.fast) when it can; False: numpy steps
        if fixed:
            from neurocredit.deploy.emulator import lava_dense_weights

            self.states = [FixedLIFState(np.zeros(layer.n_out, np.int32), np.zeros(layer.n_out, np.int32))
                           for layer in plan.layers]
            self.params = [FixedLIFParameters(int(layer.du), int(layer.dv), int(layer.vth) << 6)
                           for layer in plan.layers]
            self.biases = [(layer.bias_mant.astype(np.int64) << layer.bias_exp.astype(np.int64)).astype(np.int32)
                           for layer in plan.layers]
            self.feedback_weights = [lava_dense_weights(fb.weights, "mixed", 8) for fb in plan.feedback]
        else:
            from neurocredit.network import LIFParameters
            from neurocredit.neurons import LIFState

            self.states = [LIFState(np.zeros(layer.n_out), np.zeros(layer.n_out)) for layer in plan.layers]
            self.params = [LIFParameters(du=float(layer.du), dv=float(layer.dv), vth=float(layer.vth))
                           for layer in plan.layers]
            self.biases = [np.asarray(layer.bias_mant, np.float64) for layer in plan.layers]
            self.feedback_weights = [fb.weights for fb in plan.feedback]

    @property
    def weights(self) -> list[np.ndarray]:
        return [engine.weights.copy() for engine in self.engines]

    @property
    def counts(self) -> EngineCounts:
        total = EngineCounts()
        for engine in self.engines:
            total = total.add(engine.counts)
        return total

    def _lif(self, index: int, activation: np.ndarray):
        if self.plan.fixed:
            from neurocredit.deploy.emulator import lif_fixed_step

            state, spikes = lif_fixed_step(self.params[index], self.states[index], activation, self.biases[index])
        else:
            from neurocredit.neurons import lif_step

            state, spikes = lif_step(self.params[index], self.states[index], activation, self.biases[index])
            spikes = spikes.astype(bool)
        self.states[index] = state
        return spikes, state.membrane_voltage if not self.plan.fixed else state.voltage

    def step(self, input_spikes: np.ndarray, target: np.ndarray) -> np.ndarray:
        """One time step; returns the output spikes (bool)."""
        plan = self.plan
        fixed = plan.fixed
        self.time_step += 1
        phase = (self.time_step - 1) % plan.neuron.period
        if phase == 0:
            self.states = [type(s)(np.zeros_like(s[0]), np.zeros_like(s[1])) for s in self.states]
            self.trace = np.zeros_like(self.trace)
        pre = np.asarray(input_spikes).astype(bool)
        n_layers = len(plan.layers)
        error = None
        tagged = plan.neuron.transfer_samples > 0
        bap, level = dfa_transfer(plan.neuron, self.time_step - 1, fixed)
        for index, layer in enumerate(plan.layers):
            engine = self.engines[index]
            activation = self.buffers[index]
            summed = engine.weights[:, pre].sum(axis=1)
            self.buffers[index] = _shift(summed, layer.weight_exp).astype(np.int32) if fixed else summed
            spikes, voltage = self._lif(index, activation)
            if index == n_layers - 1:
                self.trace, error, y2, y3 = output_third_factor(plan.neuron, phase, self.trace, spikes, target, fixed)
            else:
                y2, y3 = hidden_third_factor(plan.neuron, phase, self.feedback_buffers[index], spikes, voltage, fixed)
            y1 = np.full_like(y2, level)  # dfa_transfer: 0 without a bAP
            engine.step(pre, np.full(spikes.shape, bap) if tagged else spikes, np.stack([y1, y2, y3]))
            pre = spikes
        for index, fb in enumerate(plan.feedback):
            weights = self.feedback_weights[index]
            if fixed:
                self.feedback_buffers[index] = _shift(weights.astype(np.int64) @ error.astype(np.int64),
                                                      fb.weight_exp).astype(np.int32)
            else:
                self.feedback_buffers[index] = weights.dot(error)
        return pre

    def run(self, input_spikes: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """``input_spikes`` (steps, n_in), ``targets`` (steps, n_out): output spike counts per
        sample (steps // period, n_out)."""
        from neurocredit.learn import fast

        period = self.plan.neuron.period
        if fast.compiled(self, self.compiled):
            out = fast.run_dfa(self, input_spikes, targets)
        else:
            out = np.zeros((input_spikes.shape[0], self.plan.sizes[-1]), bool)
            for t in range(input_spikes.shape[0]):
                out[t] = self.step(input_spikes[t], targets[t])
        return out.reshape(-1, period, out.shape[1]).sum(axis=1)


def encode_stream(network: Network, features: np.ndarray, labels: np.ndarray, indices: np.ndarray,
                  target_level: int, seed_offset: int = 0, fixed: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Samples ``indices`` back to back: input spikes (n * steps, n_in) uint8 (the network's
    encoder, sample index = position in the split, encoder seed + ``seed_offset``) and target
    rows (n * steps, n_classes): ``target_level`` on the label's neuron."""
    from neurocredit.encoders import encode

    spec = dataclasses.replace(network.encoder, seed=network.encoder.seed + int(seed_offset))
    steps = int(spec.steps)
    chunks = []
    for index in indices:
        chunks.append(encode(spec, features[index:index + 1], offset=int(index))[:, 0].astype(np.uint8))
    spikes = np.concatenate(chunks, axis=0) if chunks else np.zeros((0, network.n_inputs), np.uint8)
    targets = np.zeros((len(indices), network.n_outputs), np.int32 if fixed else np.float64)
    targets[np.arange(len(indices)), np.asarray(labels)[indices]] = target_level
    return spikes, np.repeat(targets, steps, axis=0)


def evaluate_fixed(plan: DfaPlan, weights: list[np.ndarray], features: np.ndarray, labels: np.ndarray) -> float:
    """Test accuracy of the learned weights deployed frozen in Lava fixed point (the bit-exact
    inference emulator, ``deploy.emulator``): argmax of output spike counts."""
    from neurocredit.deploy.emulator import emulate
    from neurocredit.encoders import encode

    quantized = plan.learned_quantized(np.round(plan.integer_weights(weights)).astype(np.int64)
                                       if not plan.fixed else weights)
    inputs = encode(plan.network.encoder, features)
    trace = emulate(quantized, inputs)
    counts = trace.spikes[-1].sum(axis=0)
    return float(np.mean(np.argmax(counts, axis=1) == labels))


class LearnResult(NamedTuple):
    weights: list[np.ndarray]
    counts: EngineCounts
    seconds: float
    samples: int
    train_accuracy: float


# Samples encoded and run per emulator call: an epoch's input stream is never held whole, so
# memory stays bounded in the epoch size (54,000 samples x 60 steps x 784 inputs would be 2.5 GB).
CHUNK_SAMPLES = 2048


def _learn_passes(emulator, plan, features: np.ndarray, labels: np.ndarray, count: int, epochs: int, rng,
                  progress: bool = False, on_epoch=None, chunk: int = CHUNK_SAMPLES) -> LearnResult:
    """``epochs`` passes over the first ``count`` samples in ``rng``'s order, ``chunk`` samples
    per ``emulator.run`` call (the emulator carries its state from one call to the next, so the
    weights do not depend on ``chunk``); :func:`encode_plan_stream` of ``plan`` (``seed_offset``
    = epoch) gives their stream."""
    require_at_least_one("chunk", chunk)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=int(epochs) * count, desc="learning (emulator)", unit="sample", leave=False)
    began = time.perf_counter()
    correct = seen = 0
    for epoch in range(int(epochs)):
        order = rng.permutation(count)
        for start in range(0, count, int(chunk)):
            part = order[start:start + int(chunk)]
            out = emulator.run(*encode_plan_stream(plan, features, labels, part, seed_offset=epoch))
            correct += int(np.count_nonzero(np.argmax(out, axis=1) == labels[part]))
            seen += len(part)
            if bar is not None:
                bar.update(len(part))
        if on_epoch is not None:
            paused = time.perf_counter()
            on_epoch(epoch + 1, emulator)
            began += time.perf_counter() - paused  # learning time only
    if bar is not None:
        bar.close()
    return LearnResult(emulator.weights, emulator.counts, time.perf_counter() - began, seen, correct / max(seen, 1))


def with_epoch_samples(plan, count: int):
    """``plan`` with its neurons told the epoch length (``count`` samples), which a rate schedule
    (``onchip.rate_shifts``) counts epochs by; other plans unchanged."""
    if isinstance(plan, DfaPlan) and plan.neuron.rate_shifts:
        return plan._replace(neuron=plan.neuron._replace(epoch_samples=int(count)))
    return plan


def learn_emulator(plan: DfaPlan, features: np.ndarray, labels: np.ndarray, epochs: int = 1,
                   limit: Optional[int] = None, progress: bool = False,
                   emulator: Optional[DfaEmulator] = None, on_epoch=None, chunk: int = CHUNK_SAMPLES) -> LearnResult:
    """Learn ``epochs`` passes over ``features``/``labels`` (first ``limit`` samples) in the
    emulator, one sample at a time in a seeded order (``chunk`` samples encoded per call);
    ``on_epoch(epoch, emulator)`` is called after each pass (e.g. to measure a validation split)."""
    count = len(features) if limit is None else min(int(limit), len(features))
    if emulator is None:
        plan = with_epoch_samples(plan, count)
        emulator = DfaEmulator(plan)
    rng = np.random.default_rng(plan.neuron.period + 7919 * (int(plan.layers[0].rule.spec.rng_seed)))
    return _learn_passes(emulator, plan, features, labels, count, epochs, rng, progress, on_epoch, chunk)


# --------------------------------------------------------------------------------------------
# STDP-style CHL on the chip
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChlOptions:
    """Options of on-chip STDP-style CHL (integers; exponents are powers of two).

    tag_exponent, hidden_tag_exponent: a of ``2^a`` on the tag's trace products in the output
    layer and in the hidden layers (-7..8); weight_exponent: w of ``dw = 2^w*uK*t`` (the tag
    moved to the weight, -7..0); nudged_start: ``rest`` (the nudged phase starts from rest, like
    the free phase) or ``free_state`` (it continues from the free phase's end); x1_impulse,
    x1_tau: the pre
    trace; trace_shift, trace_impulse: the post neuron's y1 spike trace; settle: steps without
    learning at the start of each phase; nudge: what the label's output neuron adds to v every
    nudged step, in units of its threshold / 64 (others get -nudge_other); feedback_scale:
    random fixed feedback G (output spikes -> hidden a_in), integers in +-feedback_scale (even);
    seed: G and the sample order; rng_seed: the engine's trace generators.
    """

    tag_exponent: int = -6
    hidden_tag_exponent: int = -7
    weight_exponent: int = 0
    nudged_start: str = "rest"
    x1_impulse: int = 16
    x1_tau: int = 4
    trace_shift: int = 2
    trace_impulse: int = 16
    settle: int = 8
    nudge: int = 128
    nudge_other: int = 64
    feedback_scale: int = 64
    seed: int = 0
    rng_seed: int = 1


class ChlPlan(NamedTuple):
    network: Network
    quantized: object
    layers: tuple[LayerPlan, ...]
    feedback: tuple[FeedbackPlan, ...]  # G_l: (n_hidden_l, n_out), binary spikes into a_in
    neurons: tuple[object, ...]  # ChlNeuronParameters per layer
    fixed: bool
    target_level: float  # added to the label neuron's v per nudged step (+ nudge_offset)

    @property
    def period(self) -> int:
        return int(self.neurons[0].period)

    sizes = DfaPlan.sizes
    integer_weights = DfaPlan.integer_weights
    learned_network = DfaPlan.learned_network
    learned_quantized = DfaPlan.learned_quantized


def chl_rule_strings(tag_exponent: int, decimate: int, weight_exponent: int = 0) -> tuple[str, str]:
    """``(dw, dt)`` of on-chip CHL: the tag accumulates the phase-signed pre/post trace products
    and ``2**weight_exponent`` times it is moved to the weight (the tag cleared) every
    ``2**decimate`` epochs -- a tag finer than the weight keeps small trace products from being
    rounded away step by step."""
    a = f"2^{int(tag_exponent)}*"
    dt = (f"{a}x0*y1*y2 - {a}x0*y1*y3 + {a}y0*x1*y2 - {a}y0*x1*y3 - u{decimate}*t")
    scale = f"2^{int(weight_exponent)}*" if weight_exponent else ""
    return f"{scale}u{decimate}*t", dt


def make_chl_plan(network: Network, options: ChlOptions, fixed: bool = True, target_name: str = "loihi2") -> ChlPlan:
    """The Lava parameters of ``network`` learning with on-chip CHL: each sample runs a free
    and a nudged phase of ``encoder.steps`` steps each; ``2 * steps`` must be a power of two
    (the tag moves to the weight on Lava's ``uK`` schedule, every 2**K steps)."""
    from neurocredit.deploy.quantize import quantize
    from neurocredit.learn.neurons import ChlNeuronParameters

    if not network.neuron.spiking:
        raise NeurocreditError("on-chip learning needs a spiking (lif) network; this one is a rate network")
    check_engine_capacity(network, target_name)
    steps = int(network.encoder.steps)
    period = 2 * steps
    decimate = period.bit_length() - 1
    if 1 << decimate != period or decimate > 9:
        raise NeurocreditError(
            f"on-chip CHL needs 2 x encoder.steps to be a power of two up to 512 (Lava's uK dependency fires every "
            f"2**K epochs, K one digit); encoder.steps={steps} gives {period}: use 8, 16, 32, ..."
        )
    if not 0 <= options.settle < steps:
        raise NeurocreditError(f"chl settle={options.settle} must be in 0..{steps - 1}")
    if options.nudged_start not in ("rest", "free_state"):
        raise NeurocreditError(f"onchip_chl.nudged_start={options.nudged_start!r} must be rest or free_state")
    quantized = quantize(network)
    layers, neurons = [], []
    for index, fixed_layer in enumerate(quantized.layers):
        last = index == len(quantized.layers) - 1
        exponent = options.tag_exponent if last else options.hidden_tag_exponent
        dw, dt = chl_rule_strings(exponent, decimate, options.weight_exponent)
        spec = RuleSpec(dw=dw, dt=dt, x1_impulse=float(options.x1_impulse), x1_tau=options.x1_tau, t_epoch=1,
                        rng_seed=options.rng_seed + index * 4)
        rule = compile_rule(spec, where=f"layer {fixed_layer.name} CHL rule (tag exponent {exponent})")
        # fixed: y1 * sign_level loses 3 bits, so 8 gives y1; float: no loss, and weights are in units of
        # 2**weight_exp
        sign = 8.0 if fixed else 2.0 ** fixed_layer.weight_exp
        neurons.append(ChlNeuronParameters(period=period, settle=options.settle, trace_shift=options.trace_shift,
                                           trace_impulse=options.trace_impulse, sign_level=sign,
                                           nudge_offset=0, rest=int(options.nudged_start == "rest")))
        layers.append(_layer_plan(quantized, fixed_layer, rule, fixed))
    # The output nudge, in v units: nudge * vth / 64 per step (fixed: effective_vth = vth << 6).
    out_vth = int(quantized.layers[-1].vth)
    unit = out_vth if fixed else out_vth / _ACTIVATION_SCALE
    label, other = options.nudge * unit, options.nudge_other * unit
    if fixed:
        label, other = int(label), int(other)
    neurons[-1] = neurons[-1]._replace(nudge_offset=other)
    feedback = _random_feedback(options.seed, layers, network.n_outputs, options.feedback_scale,
                                [int(layer.weight_exp) for layer in quantized.layers[:-1]], fixed)
    return ChlPlan(network, quantized, tuple(layers), feedback, tuple(neurons), bool(fixed), label + other)


class ChlEmulator:
    """The CHL learning network of a :class:`ChlPlan`, step by step in Lava's order: every
    layer's LearningDense, the fixed feedback Dense(G) from the output spikes into each hidden
    layer's input (one step late, summed with the forward input), our CHL neurons."""

    def __init__(self, plan: ChlPlan) -> None:
        DfaEmulator._init_network(self, plan)
        self.traces = [np.zeros_like(buffer) for buffer in self.buffers]

    weights = DfaEmulator.weights
    counts = DfaEmulator.counts
    _lif = DfaEmulator._lif

    def step(self, input_spikes: np.ndarray, target: np.ndarray, learn: bool = True) -> np.ndarray:
        from neurocredit.learn.neurons import chl_nudge, chl_reset, chl_traces

        plan = self.plan
        fixed = plan.fixed
        self.time_step += 1
        phase = (self.time_step - 1) % plan.period
        if chl_reset(plan.neurons[0], phase):
            self.states = [type(s)(np.zeros_like(s[0]), np.zeros_like(s[1])) for s in self.states]
            self.traces = [np.zeros_like(trace) for trace in self.traces]
        pre = np.asarray(input_spikes).astype(bool)
        last = len(plan.layers) - 1
        for index, layer in enumerate(plan.layers):
            engine = self.engines[index]
            activation = self.buffers[index]
            if index < last:
                activation = activation + self.feedback_buffers[index]
            summed = engine.weights[:, pre].sum(axis=1)
            self.buffers[index] = _shift(summed, layer.weight_exp).astype(np.int32) if fixed else summed
            if index == last:
                nudge = chl_nudge(plan.neurons[index], phase, target, fixed)
                state = self.states[index]
                self.states[index] = state._replace(**{state._fields[1]: state[1] + nudge})
            spikes, _ = self._lif(index, activation)
            self.traces[index], y2, y3 = chl_traces(plan.neurons[index], phase, self.traces[index], spikes, fixed)
            y1 = self.traces[index]
            if learn:
                engine.step(pre, spikes, np.stack([y1, y2, y3]))
            pre = spikes
        for index, fb in enumerate(plan.feedback):
            summed = self.feedback_weights[index][:, pre].sum(axis=1)
            self.feedback_buffers[index] = _shift(summed, fb.weight_exp).astype(np.int32) if fixed else summed
        return pre

    def run(self, input_spikes: np.ndarray, targets: np.ndarray, learn: bool = True) -> np.ndarray:
        """Samples back to back; output spike counts per sample in the free phase (the first
        half: the network's own answer), (samples, n_out)."""
        from neurocredit.learn import fast

        period = self.plan.period
        if fast.compiled(self, self.compiled):
            out = fast.run_chl(self, input_spikes, targets, learn)
        else:
            out = np.zeros((input_spikes.shape[0], self.plan.sizes[-1]), bool)
            for t in range(input_spikes.shape[0]):
                out[t] = self.step(input_spikes[t], targets[t], learn)
        return out.reshape(-1, period, out.shape[1])[:, : period // 2].sum(axis=1)


def encode_chl_stream(plan: ChlPlan, features: np.ndarray, labels: np.ndarray, indices: np.ndarray,
                      seed_offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Samples ``indices`` back to back, each ``period = 2 * steps`` steps: its encoded input
    (``steps`` steps) shown twice, in the free and in the nudged phase -- the same spike train,
    so the two phases differ only by the nudge -- and the output neurons' target rows
    (``target_level`` on the label, constant over the sample; only the nudged phase reads it)."""
    network = plan.network
    steps = plan.period // 2
    spikes, targets = encode_stream(network, features, labels, indices, plan.target_level,
                                    seed_offset=seed_offset, fixed=plan.fixed)
    count = len(indices)
    spikes = np.concatenate([spikes.reshape(count, steps, -1)] * 2, axis=1).reshape(count * plan.period, -1)
    targets = np.repeat(targets.reshape(count, steps, -1)[:, :1], plan.period, axis=1).reshape(count * plan.period, -1)
    return spikes, targets


def encode_plan_stream(plan, features: np.ndarray, labels: np.ndarray, indices: np.ndarray,
                       seed_offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The input and target stream of samples ``indices`` for either plan: :func:`encode_chl_stream`
    for a :class:`ChlPlan`, :func:`encode_stream` for a :class:`DfaPlan`."""
    if isinstance(plan, ChlPlan):
        return encode_chl_stream(plan, features, labels, indices, seed_offset=seed_offset)
    return encode_stream(plan.network, features, labels, indices, plan.neuron.target_level,
                         seed_offset=seed_offset, fixed=plan.fixed)


def evaluate_chl(plan: ChlPlan, weights: list[np.ndarray], features: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of frozen CHL weights: the free phase of the learning network (feedback included),
    argmax of output spike counts."""
    frozen = plan._replace(layers=tuple(layer._replace(weights=np.asarray(w).astype(layer.weights.dtype))
                                        for layer, w in zip(plan.layers, weights)))
    emulator = ChlEmulator(frozen)
    spikes, targets = encode_chl_stream(frozen, features, labels, np.arange(len(features)), seed_offset=10_000)
    counts = emulator.run(spikes, np.zeros_like(targets), learn=False)
    return float(np.mean(np.argmax(counts, axis=1) == labels))


def learn_chl_emulator(plan: ChlPlan, features: np.ndarray, labels: np.ndarray, epochs: int = 1,
                       limit: Optional[int] = None, emulator: Optional[ChlEmulator] = None,
                       chunk: int = CHUNK_SAMPLES, progress: bool = False) -> LearnResult:
    """On-chip CHL in the emulator, one sample (free + nudged phase) at a time (``chunk``
    samples encoded per call)."""
    count = len(features) if limit is None else min(int(limit), len(features))
    emulator = emulator if emulator is not None else ChlEmulator(plan)
    rng = np.random.default_rng(plan.period + 7919 * int(plan.layers[0].rule.spec.rng_seed))
    return _learn_passes(emulator, plan, features, labels, count, epochs, rng, progress=progress, chunk=chunk)
