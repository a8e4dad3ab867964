"""The fixed-point on-chip emulators compiled with numba: many time steps per call.

Learning at batch 1 is sequential in time steps (every step's spikes depend on the weights the
previous step learned), so the numpy emulators (:class:`~neurocredit.learn.onchip.DfaEmulator`,
:class:`~neurocredit.learn.onchip.ChlEmulator` stepping
:class:`~neurocredit.learn.engine.LearningSynapses`) spend their time in Python and numpy
dispatch, not in arithmetic. :func:`run_dfa` and :func:`run_chl` run a whole stream of steps of
those emulators in one compiled call, on the emulators' own state (weights, tags, traces,
neuron states, Dense buffers, the engines' seeded generators), so that the numpy step and the
compiled run can be interleaved and give the same integers.

What is compiled is the same arithmetic, written per element (the numpy modules stay the
definition; ``tests/test_learn_fast.py`` checks the two bit for bit, and the Lava tests check
the emulators against Lava):

* Lava's bit-accurate LIF (``deploy.emulator.lif_fixed_step``), Dense timing (one step late;
  int64 sums, shift, int32 port), the neuron sides of :mod:`neurocredit.learn.neurons`;
* the learning engine for rules with ``t_epoch = 1`` (both on-chip rules): every trace a
  product reads is then the trace after this epoch's decay and impulse; each product is
  Lava's int32 chain ``dependency * clip(factors) * mantissa >> shift << s_exp``, saturated,
  accumulated with saturation onto ``value << 7``, stochastically rounded with the epoch's one
  shared random, clipped to the variable's width. The random numbers are drawn by numpy from
  the engines' generators (``engine._Stream.take``), in Lava's order, and handed to the kernel.

Speed comes from skipping what cannot change and vectorizing the rest: a target is computed
only on the rows where one of its products has non-zero row factors (``y0``, ``y1..y3``, and a
non-zero scalar ``u``; a product reading a y trace that is 0 on every post neuron, with no constant
added, is skipped outright: CHL's free phase never reads its nudged-phase level; a step where
every product is skipped, as in the settle steps, only updates the x traces); elsewhere every
product adds 0, and a synapse to which every product adds 0 keeps its value (Lava's saturation and
rounding leave ``value << 7`` alone) -- except a tag at -257, whose shifted value Lava saturates
to -32769 (the engine keeps a count of such tags and treats them exactly). A computed row runs in
whole-row loops the compiler vectorizes (one or two plain products fused with the values and the
rounding; otherwise one pass per product), in int32 where no term can wrap (twice the vector lanes
of int64), products that add zeros on that row skipped, and the new values go straight into the
weights and tags unless an evaluated product reads a variable that an earlier target of the step
has written (then all targets are computed from the old values first, as Lava does). CHL's Dense
sums read a transposed copy of the weights (one contiguous row per spike), kept equal row by row as its
engine writes them (once a sample), and so do DFA's layers that learn through a tag (the weights
change only at the transfers); DFA's engine
without a tag rewrites weight rows every step, so its sums read the weights as they are, every
column through a select (silent ones add 0), which vectorizes. Where at most two products add
non-zeros on a target's rows (both on-chip rules), the choice of products and the int32 check are
taken once for all rows of the step, not per row. Those two with tags in int32 (then), A/B in
alternating processes (ms per sample): digits DFA 0.073 -> 0.067, CHL 0.124 -> 0.115, Fashion-MNIST
784-256-10 DFA with its tag 2.10 -> 1.51.

Where every row of a step is reached by one product alone and int16 holds every ``column *
factor``, :func:`_update_single_rows` takes the rows (the on-chip DFA rule's tag rows): Lava's
chain is then ``value + delta`` clamped once, ``delta`` a function of the column factor and the
row factor only, so each distinct row factor's deltas are computed once a step (Fashion-MNIST DFA:
about 20 factors for 98 rows) and each row adds them, in int16 (32 vector lanes), reading only the
blocks of 32 columns where a column factor is non-zero (a silent input adds 0). Tags are int16
(they hold [-257, 255]) and the Dense sums read an int16 transposed copy of the weights into int32
sums (exact: |sum| <= n_pre * 256). A/B against the kernel above, alternating processes, three
pairs (ms per sample): Fashion-MNIST 1.54 -> 0.74 (300 samples a call), digits DFA 0.072 -> 0.067,
CHL 0.119 -> 0.112.

Then: those deltas with the shift as a constant and the count of -257 from each block's least
value (both kept the loops in int64 before), DFA's Dense sums without a tag in int32, and the
transfer's transposed rows in tiles; A/B, alternating processes, three pairs (ms per sample):
Fashion-MNIST 0.752 -> 0.663, digits DFA 0.066 -> 0.060, CHL 0.116 -> 0.114 (unchanged: its rows
are reached by two products, which these paths do not take).

``numba`` is the optional extra ``onchip`` (``pip install neurocredit[onchip]``); without it
:func:`available` is False and the emulators run their numpy steps (same results, slower).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from neurocredit.learn.engine import (
    FACTOR_WIDTH,
    CompiledRule,
    LearningSynapses,
)

# Product table columns: target, dependency, mantissa, s_exp, shift, factor count, then
# (variable, constant, is_sgn, width) per factor.
_VARIABLES = ("x0", "y0", "u", "x1", "x2", "y1", "y2", "y3", "w", "d", "t", "C")
_TARGETS = ("weights", "tag_2", "tag_1")
_SIGN_MODES = ("mixed", "excitatory", "inhibitory")
MAX_FACTORS = 4
MAX_PRODUCTS = 62
_COLUMNS = 6 + 4 * MAX_FACTORS
_FACTOR_KEYS = 2 * 512  # _update_single_rows' index: (product 0 or 1) x row factor in (-256, 256)
_DELTA_ROWS = 64  # distinct row factors a step whose deltas _update_single_rows keeps (Fashion-MNIST DFA: ~20)
_INT32_SUM_COLUMNS = 1 << 22  # a Dense sum of fewer weights in [-256, 255] fits int32
_BLOCK = 32  # columns per block that a single-product row update skips when their factors are all 0

# numba is the optional extra ``onchip``; the neuron arithmetic is the emulator's (one definition)
from neurocredit.deploy.lif_compiled import available, numba  # noqa: E402  (re-exported)


def supports(rule: CompiledRule) -> bool:
    """The compiled engine covers rules learning every step (``t_epoch = 1``), with at most
    :data:`MAX_PRODUCTS` products (one bit each in an int64) of at most :data:`MAX_FACTORS` factors."""
    return (rule.spec.t_epoch == 1 and len(rule.products) <= MAX_PRODUCTS
            and all(len(p.factors) <= MAX_FACTORS for p in rule.products))


def product_table(rule: CompiledRule) -> np.ndarray:
    """The rule's products as an int64 table (one row per product, columns above)."""
    rows = []
    for target, products in rule.targets:
        for product in products:
            row = [_TARGETS.index(target), ("x0", "y0").index(product.dependency) if product.dependency != "u" else 2,
                   product.mantissa, product.s_exp, product.fixed_shift, len(product.factors)]
            for factor in product.factors:
                row += [_VARIABLES.index(factor.state_var), factor.const or 0, int(factor.is_sgn),
                        FACTOR_WIDTH[factor.state_var]]
            rows.append(row + [0] * (_COLUMNS - len(row)))
    return np.array(rows, np.int64).reshape(-1, _COLUMNS)


if numba is not None:
    from llvmlite import ir as _ir
    from numba.extending import intrinsic as _intrinsic

    from neurocredit.deploy.lif_compiled import lif_neuron, shift as _shift, wrap32 as _wrap32

    _jit = numba.njit(cache=True, nogil=True, _nrt=False)
    _inline = numba.njit(cache=True, nogil=True, inline="always", _nrt=False)  # small helpers: inlined, no call per element

    @_intrinsic
    def _opaque(typingctx, value):
        """``value`` unchanged, hidden from the optimizer (an empty inline assembly statement):
        ``x * _opaque(1 << e)`` in int16 stays a multiply the compiler vectorizes in int16 lanes,
        where it would turn ``x * (1 << e)`` into a variable shift, which it widens to int64."""

        def codegen(context, builder, signature, args):
            kind = args[0].type
            return builder.call(_ir.InlineAsm(_ir.FunctionType(kind, [kind]), "", "=r,0"), [args[0]])

        return value(value), codegen

    @_inline
    def _fill(array, value):
        for i in range(array.size):
            array[i] = value

    @_inline
    def _copy(target, source):
        for i in range(target.size):
            target[i] = source[i]

    @_jit
    def _lif(u, v, activation, bias, du_factor, dv_factor, vth, spikes):
        """``deploy.emulator.lif_fixed_step`` per neuron (no refractory period), in place."""
        for i in range(u.size):
            u[i], v[i], spikes[i] = lif_neuron(u[i], v[i], np.int64(activation[i]), bias[i], du_factor, dv_factor,
                                               vth)

    @_inline
    def _spiking(spikes, active):
        """The indices of the non-zero ``spikes`` into ``active``; returns how many."""
        count = 0
        for j in range(spikes.size):  # no branch: the index is written always and kept when j spiked
            active[count] = j
            count += 1 if spikes[j] else 0
        return count

    @_jit
    def _dense_rows(weights, spikes, exponent, out):
        """``weights[:, spikes].sum(axis=1)`` (int64), shifted, through Lava's int32 port, from the
        weights as the engine holds them (n_post, n_pre): for weights the engine rewrites at every
        step (DFA), where keeping a transposed copy would cost more than it saves. Every column is
        read, the silent ones adding 0: a select the compiler vectorizes, faster than gathering
        the spiking columns one by one (digits DFA: 0.072 against 0.087 ms per sample). The sums
        are int32 (twice the vector lanes of int64; 1364 against 785 cycles a step on digits'
        64 x 100), exact while ``n_pre * 256 < 2**31`` (the engine's weights lie in [-256, 255]),
        else int64."""
        if weights.shape[1] < _INT32_SUM_COLUMNS:
            for i in range(weights.shape[0]):
                total = np.int32(0)
                for j in range(weights.shape[1]):
                    total = np.int32(total + weights[i, j] * np.int32(spikes[j]))
                out[i] = _wrap32(_shift(np.int64(total), exponent))
            return
        for i in range(weights.shape[0]):
            total = np.int64(0)
            for j in range(weights.shape[1]):
                total += np.int64(weights[i, j]) if spikes[j] else np.int64(0)
            out[i] = _wrap32(_shift(total, exponent))

    @_jit
    def _dense(weights_t, spikes, exponent, active, total, out):
        """``_dense_rows`` from the transposed weights ``weights_t`` (n_pre, n_post): one contiguous
        row added per spike (``active``: work space, n_pre; ``total``: n_post, int64, or int32 for
        the weights: their int16 copies sum exactly, |sum| <= n_pre * 256)."""
        n_post = weights_t.shape[1]
        count = _spiking(spikes, active)
        _fill(total, 0)
        for k in range(count):
            row = weights_t[active[k]]
            for i in range(n_post):
                total[i] += row[i]
        for i in range(n_post):
            out[i] = _wrap32(_shift(np.int64(total[i]), exponent))

    @_jit
    def _transpose_rows(weights, weights_t, row_list, count):
        """The rows ``row_list[:count]`` (ascending) of ``weights`` (the ones the engine wrote) into
        the columns of their transposed copy. Runs of ``_BLOCK`` consecutive rows (a tag's transfer
        writes every row) go in tiles of 16 columns x ``_BLOCK`` rows, whose pieces of the copy's
        rows stay in the cache (256 x 784, alone: 1.2 against 1.8 cycles an element row by row)."""
        a = 0
        while a < count:
            i = row_list[a]
            if a + _BLOCK <= count and row_list[a + _BLOCK - 1] == i + _BLOCK - 1:
                n_pre = weights.shape[1]
                for start in range(0, n_pre - 15, 16):  # tiles of 16 columns x _BLOCK rows
                    for k in range(_BLOCK):
                        for j in range(start, start + 16):
                            weights_t[j, i + k] = weights[i + k, j]
                for k in range(_BLOCK):
                    for j in range(n_pre - n_pre % 16, n_pre):
                        weights_t[j, i + k] = weights[i + k, j]
                a += _BLOCK
                continue
            for j in range(weights.shape[1]):
                weights_t[j, i] = weights[i, j]
            a += 1

    @_inline
    def _split_sign(delta, shift, gate):
        """``neurons.split_sign`` (fixed point) of one value: (y2, y3)."""
        if not gate:
            return 0, 0
        positive = _wrap32(_shift(max(delta, 0), -shift))
        negative = _wrap32(_shift(max(_wrap32(-delta), 0), -shift))
        return min(max(positive, 0), 127), min(max(negative, 0), 127)

    @_inline
    def _side_factors(factors, p, table, dependent, spikes, spike_code, traces, first_trace_code):
        """``factors[p]``: product ``p``'s factors of one side of the synapse (rows: the post
        neurons; columns: the pre neurons) -- its spikes when the product depends on them, times
        each factor of that side (``spike_code``: the spike variable, ``first_trace_code`` +
        k: trace k) plus its constant, within its width. One loop per factor, reading scalars only."""
        for i in range(factors.shape[1]):
            factors[p, i] = spikes[i] if dependent else 1
        for f in range(table[p, 5]):
            base = 6 + 4 * f
            code, const, bound = table[p, base], table[p, base + 1], np.int64(1) << table[p, base + 3]
            if code == spike_code:
                for i in range(factors.shape[1]):
                    factors[p, i] *= _clip(np.int64(spikes[i]) + const, bound)
            elif first_trace_code <= code < first_trace_code + traces.shape[0]:
                for i in range(factors.shape[1]):
                    factors[p, i] *= _clip(traces[code - first_trace_code, i] + const, bound)

    @_inline
    def _clip(value, bound):
        """A factor's value within its width (``bound = 2**width``): [-bound, bound - 1]."""
        return min(max(value, -bound), bound - 1)

    @_inline
    def _decayed(value, decay, random):
        """A trace's stochastic decay (``LearningSynapses._decay_fixed``); 0 stays 0."""
        scaled = decay * np.float64(value)
        whole = np.floor(scaled)
        return np.int64(whole) + (1 if random < scaled - whole else 0)

    @_jit
    def _learn(weights, tag_2, tag_1, x, y, pre, post, table, targets, u, x_int, x_frac, x_decay, x_on, y_decay,
               r_x_decay, r_x_impulse, r_y_decay, r_conn, sign_mode, rows, cols, scalar, synaptic, pending, row_list,
               x_new, y_new, sizes, work, column_bound, masks, work_32, deltas, lists):
        """One step of LearningSynapses (t_epoch = 1, fixed point) after the spiking phase has set
        x0 = pre, y0 = post and ``y`` to what the neurons sent: histories, then the products.

        Each target is computed on the rows where one of its products has a non-zero row factor
        (elsewhere every product adds 0: the value stays, module doc), whole rows at a time
        (contiguous loops the compiler vectorizes: the accumulators, one pass per non-zero
        product, the rounding). The new values are written in place, or, when a product that is evaluated reads
        a synaptic variable or a tag sits at -257, into ``pending`` until every target is
        computed from the old values. ``sizes``: rows per target and (``sizes[3]``, kept across
        steps) how many tags sit at -257; ``column_bound[p]``: the largest |column factor| of
        product ``p`` (for :func:`_plain`); ``masks[i]``: bit ``p`` set where product ``p`` has a
        non-zero scalar and row factor on row ``i`` (what the row lists and rows read); ``deltas``,
        ``lists``: :func:`_update_single_rows`' work space."""
        n_post, n_pre = weights.shape
        for k in range(x.shape[0]):
            on, decay = x_on[k], x_decay[k]
            impulse = x_int[k] + (1 if r_x_impulse < x_frac[k] else 0)
            for j in range(n_pre):
                value = _decayed(x[k, j], decay, r_x_decay) if on else np.int64(0)
                if pre[j]:
                    value = min(max(value + impulse, 0), 127)
                x_new[k, j] = value
                x[k, j] = value
        # each product = rows[p, i] * cols[p, j] * scalar[p] (* synaptic factors); a product whose
        # scalar or row factors are all zero adds zeros: its rows / columns are then left as they
        # are (every reader multiplies them by the zero first)
        _fill(masks, 0)
        # new values go straight into the variables unless a tag sits at -257 (below) or a product
        # that will be evaluated reads a variable that an earlier target has written this step (the
        # targets run in the order w, d, t; every product reads the old values: a product reading
        # its own target's variable reads each element before it is written, one row at a time)
        in_place = sizes[3] == 0
        idle = True  # no product adds anything (settle steps)
        silent = np.int64(0)  # bit k: y trace k is 0 everywhere (it stays 0 through the decay)
        for k in range(y.shape[0]):
            zero = True
            for i in range(n_post):
                zero &= y[k, i] == 0
            silent |= (np.int64(1) << k) if zero else 0
        for p in range(table.shape[0]):
            scalar[p] = 0 if table[p, 0] < 0 else (u if table[p, 1] == 2 else 1)
            synaptic[p] = False
            reads_written = False
            for f in range(table[p, 5]):
                base = 6 + 4 * f
                code, const, bound = table[p, base], table[p, base + 1], np.int64(1) << table[p, base + 3]
                if code == 2:
                    scalar[p] *= _clip(np.int64(u) + const, bound)
                elif code == 11:
                    scalar[p] *= _clip(np.int64(const), bound)
                elif 5 <= code <= 7 and const == 0 and (silent >> (code - 5)) & 1:
                    scalar[p] = 0  # a factor 0 on every row: the product adds zeros everywhere
                elif 8 <= code <= 10:
                    synaptic[p] = True
                    reads_written |= code - 8 < table[p, 0]  # w, d, t: codes 8, 9, 10; targets 0, 1, 2
            if reads_written and scalar[p] != 0:
                in_place = False
            idle &= scalar[p] == 0
        if idle and in_place:  # and no tag at -257: every value stays
            _fill(sizes[:3], 0)
            return
        for k in range(y.shape[0]):
            needed = False  # only the products read the decayed y traces (they are not written back)
            for p in range(table.shape[0]):
                for f in range(table[p, 5]):
                    if table[p, 6 + 4 * f] == 5 + k and scalar[p] != 0:
                        needed = True
            if not needed:
                continue
            for i in range(n_post):
                value = _decayed(y[k, i], y_decay, r_y_decay)
                if post[i]:
                    value = min(max(value, 0), 127)
                y_new[k, i] = value
        for p in range(table.shape[0]):
            if scalar[p] == 0:
                continue
            dependency = table[p, 1]
            _side_factors(rows, p, table, dependency == 1, post, 1, y_new, 5)  # post: y0, y1..y3
            bit = np.int64(1) << p
            reached = False
            for i in range(n_post):
                nonzero = rows[p, i] != 0
                reached |= nonzero
                masks[i] |= bit if nonzero else 0
            if not reached:
                continue
            _side_factors(cols, p, table, dependency == 0, pre, 0, x_new, 3)  # pre: x0, x1, x2
            largest = np.int64(0)
            for j in range(n_pre):
                largest = max(largest, abs(cols[p, j]))
            column_bound[p] = largest
        threshold = r_conn * 128.0
        # (r & 127) > threshold  <=>  (r & 127) > floor(threshold), r an integer
        cut = np.int64(np.floor(threshold))
        limit = np.int64(1) << 15
        for target in range(3):
            sizes[target] = 0
            if not targets[target]:
                continue
            products = np.int64(0)  # the target's products that add non-zeros somewhere, one bit each
            for p in range(table.shape[0]):
                if table[p, 0] == target and scalar[p] != 0:
                    products |= np.int64(1) << p
            if products == 0:  # no row reached (a tag at -257 is seen to below)
                continue
            count = 0
            for i in range(n_post):
                if masks[i] & products:
                    row_list[target, count] = i
                    count += 1
            sizes[target] = count
            first = -1  # the target's first product: the one that saturates a tag at -257
            for p in range(table.shape[0]):
                if table[p, 0] == target and first < 0:
                    first = p
            # saturation by sign, stochastic rounding, the variable's range
            low, high = (-257, 255) if target == 2 else (0, 255)
            if target == 0:
                low = -256 if sign_mode == 0 else (0 if sign_mode == 1 else -255)
                high = 0 if sign_mode == 2 else 255
            floor = -limit - 1 if not (target == 1 or (target == 0 and sign_mode == 1)) else np.int64(0)
            ceil = np.int64(0) if target == 0 and sign_mode == 2 else limit - 1
            bounds = (floor, ceil, cut, low, high)
            if target == 0:
                sizes[3] += _update_rows(weights, target, count, row_list, first, work, pending, table, rows, cols,
                                         column_bound, scalar, synaptic, in_place, bounds, weights, tag_2, tag_1,
                                         masks, products, work_32, deltas, lists)
            elif target == 1:
                sizes[3] += _update_rows(tag_2, target, count, row_list, first, work, pending, table, rows, cols,
                                         column_bound, scalar, synaptic, in_place, bounds, weights, tag_2, tag_1,
                                         masks, products, work_32, deltas, lists)
            else:
                sizes[3] += _update_rows(tag_1, target, count, row_list, first, work, pending, table, rows, cols,
                                         column_bound, scalar, synaptic, in_place, bounds, weights, tag_2, tag_1,
                                         masks, products, work_32, deltas, lists)
        if in_place:
            return
        # a tag at -257 on a row no product reached: every product adds 0, Lava saturates -32896 to -32769
        if targets[2] and sizes[3] > 0 and 127 > cut:
            for i in range(n_post):
                for j in range(n_pre):
                    if tag_1[i, j] == -257:
                        tag_1[i, j] = -256
            sizes[3] = 0
        for target in range(3):
            for a in range(sizes[target]):
                i = row_list[target, a]
                for j in range(n_pre):
                    value = pending[target, i, j]
                    if target == 0:
                        weights[i, j] = value
                    elif target == 1:
                        tag_2[i, j] = value
                    else:
                        sizes[3] += (1 if value == -257 else 0) - (1 if tag_1[i, j] == -257 else 0)
                        tag_1[i, j] = value

    @_jit
    def _update_rows(source, target, count, row_list, first, work, pending, table, rows, cols, column_bound, scalar,
                     synaptic, in_place, bounds, weights, tag_2, tag_1, masks, products, work_32, deltas,
                     lists):
        """The rows ``row_list[target, :count]`` of one target (``source``: its values) in
        ``_learn``: into ``pending[target]`` or, ``in_place``, into ``source``; returns how many new
        values are -257 (in place). Whole rows at a time, indexed in two dimensions (a row view per
        row would count references to its array at every row). ``work``: (2, n_pre) int64 work
        space (the accumulators, the synaptic products); ``work_32``: (1, n_pre) int32, the accumulators
        of :func:`_update_row_int32`."""
        if in_place:
            found = _update_plain_rows(source, target, count, row_list, table, rows, cols, column_bound, scalar,
                                       synaptic, bounds, masks, products, deltas, lists)
            if found >= 0:
                return found
        n_pre = source.shape[1]
        limit = np.int64(1) << 15
        found = 0
        for a in range(count):
            i = row_list[target, a]
            # a tag at -257 is saturated by the target's first product, also one adding zeros
            reached = masks[i] & products  # the products with non-zero row factors on this row
            clamp = target == 2 and not (reached >> first) & 1
            low = -limit - 1 if clamp else np.int64(-1) << 62
            # one or two products that add non-zeros and read no synaptic variable (every row of both
            # on-chip rules): values, products and rounding in one pass
            first_p = second_p = -1
            general = False
            for p in range(table.shape[0]):
                if (reached >> p) & 1 and table[p, 2] != 0:
                    if synaptic[p] or second_p >= 0:
                        general = True
                    elif first_p < 0:
                        first_p = p
                    else:
                        second_p = p
            if first_p >= 0 and not general:
                two = second_p >= 0
                p2 = second_p if two else first_p
                factor_1 = rows[first_p, i] * scalar[first_p] * table[first_p, 2]
                factor_2 = rows[p2, i] * scalar[p2] * table[p2, 2]
                shift_1, exponent_1, shift_2, exponent_2 = table[first_p, 4], table[first_p, 3], table[p2, 4], table[p2, 3]
                if in_place and _plain(column_bound[first_p], factor_1, shift_1, exponent_1) and (
                        not two or _plain(column_bound[p2], factor_2, shift_2, exponent_2)):
                    found += _update_plain_row(source, i, cols, first_p, factor_1, shift_1, exponent_1, p2, factor_2,
                                               shift_2, exponent_2, two, bounds)
                    continue
                for j in range(n_pre):
                    value = _accumulated(max(np.int64(source[i, j]) << 7, low), cols[first_p, j] * factor_1, shift_1,
                                         exponent_1)
                    if two:
                        value = _accumulated(value, cols[p2, j] * factor_2, shift_2, exponent_2)
                    work[0, j] = value
                found += _store_row(source, pending, target, i, work, in_place, bounds)
                continue
            if _int32_products(table, target, rows, scalar, column_bound, i):
                found += _update_row_int32(source, target, i, first, reached, table, rows, cols, scalar, synaptic,
                                           weights, tag_2, tag_1, work_32, pending, in_place, bounds)
                continue
            started = False  # work[0] holds the accumulators (value << 7 plus the products so far)
            for p in range(table.shape[0]):
                if table[p, 0] != target:
                    continue
                factor = rows[p, i] * scalar[p] * table[p, 2]
                if factor == 0:  # adds zeros to values inside the accumulator (-257: clamped, low)
                    continue
                shift, exponent = table[p, 4], table[p, 3]
                if synaptic[p]:  # the row and column factors times each synaptic factor, element by element
                    for j in range(n_pre):
                        work[1, j] = cols[p, j] * factor
                    for f in range(table[p, 5]):
                        base = 6 + 4 * f
                        code, const, sgn = table[p, base], table[p, base + 1], table[p, base + 2]
                        bound = np.int64(1) << table[p, base + 3]
                        if code == 8:
                            for j in range(n_pre):
                                work[1, j] *= _synaptic(np.int64(weights[i, j]) + const, sgn, bound)
                        elif code == 9:
                            for j in range(n_pre):
                                work[1, j] *= _synaptic(tag_2[i, j] + const, sgn, bound)
                        elif code == 10:
                            for j in range(n_pre):
                                work[1, j] *= _synaptic(tag_1[i, j] + const, sgn, bound)
                    if started:
                        for j in range(n_pre):
                            work[0, j] = _accumulated(work[0, j], work[1, j], shift, exponent)
                    else:  # the first product also reads the values (one pass less)
                        for j in range(n_pre):
                            work[0, j] = _accumulated(max(np.int64(source[i, j]) << 7, low), work[1, j], shift,
                                                      exponent)
                elif started:
                    for j in range(n_pre):
                        work[0, j] = _accumulated(work[0, j], cols[p, j] * factor, shift, exponent)
                else:
                    for j in range(n_pre):
                        work[0, j] = _accumulated(max(np.int64(source[i, j]) << 7, low), cols[p, j] * factor, shift,
                                                  exponent)
                started = True
            if not started:
                for j in range(n_pre):
                    work[0, j] = max(np.int64(source[i, j]) << 7, low)
            found += _store_row(source, pending, target, i, work, in_place, bounds)
        return found

    @_inline
    def _update_plain_rows(source, target, count, row_list, table, rows, cols, column_bound, scalar, synaptic, bounds,
                           masks, products, deltas, lists):
        """``_update_rows`` in place when the rows need no per-row decisions (every row of both
        on-chip rules): at most two products add non-zeros on the target's rows, neither reads a
        synaptic variable, and :func:`_plain` holds for each at its largest row factor. Each row is
        then :func:`_update_plain_row` with the products whose row factor is non-zero there, in
        table order, as ``_update_rows`` picks them; the decisions are taken once for all rows
        (DFA on digits: about 25 hidden rows a step); where one product alone reaches every row and
        int16 holds, :func:`_update_single_rows` takes them all. Returns how many new values are
        -257, or -1 when the conditions do not hold (nothing written)."""
        reached = np.int64(0)
        for a in range(count):
            reached |= masks[row_list[target, a]]
        reached &= products
        p1 = p2 = -1
        for p in range(table.shape[0]):
            if (reached >> p) & 1 and table[p, 2] != 0:
                if synaptic[p] or p2 >= 0:
                    return -1
                if p1 < 0:
                    p1 = p
                else:
                    p2 = p
        if p1 < 0:
            return -1
        q = p2 if p2 >= 0 else p1
        scale_1, scale_2 = scalar[p1] * table[p1, 2], scalar[q] * table[q, 2]
        largest_1 = largest_2 = np.int64(0)
        for a in range(count):
            i = row_list[target, a]
            largest_1 = max(largest_1, abs(rows[p1, i] * scale_1))
            largest_2 = max(largest_2, abs(rows[q, i] * scale_2))
        shift_1, exponent_1, shift_2, exponent_2 = table[p1, 4], table[p1, 3], table[q, 4], table[q, 3]
        if not (_plain(column_bound[p1], largest_1, shift_1, exponent_1)
                and _plain(column_bound[q], largest_2, shift_2, exponent_2)):
            return -1
        found = 0
        # rows that one product alone reaches: value + delta, one clamp (_update_single_rows)
        floor, ceil, cut, low, high = bounds
        lowest = _rounded(max(floor, -32769), floor, ceil, cut, -32769, 32767)
        highest = _rounded(min(ceil, 32767), floor, ceil, cut, -32769, 32767)
        single = max(lowest, low) <= min(highest, high)
        lowest, highest = max(lowest, low), min(highest, high)
        if single and p2 >= 0:  # every row reached by one product alone?
            for a in range(count):
                i = row_list[target, a]
                single &= rows[p1, i] == 0 or rows[q, i] == 0
        # int16 arithmetic needs every column * factor within +-2^15 (the term, value and sum then are)
        if single and max(column_bound[p1] * largest_1, column_bound[q] * largest_2) < (np.int64(1) << 15):
            slot_2 = 0 if q == p1 else 1
            _column_blocks(cols, p1, deltas, lists, 0)
            if slot_2:
                _column_blocks(cols, q, deltas, lists, 1)
            return _update_single_rows(source, row_list[target], count, rows[p1], rows[q], scale_1, scale_2, shift_1,
                                       exponent_1, shift_2, exponent_2, slot_2, cut, lowest, highest, deltas, lists)
        for a in range(count):
            i = row_list[target, a]
            factor_1, factor_2 = rows[p1, i] * scale_1, rows[q, i] * scale_2
            if p2 < 0 or factor_2 == 0:
                found += _update_plain_row(source, i, cols, p1, factor_1, shift_1, exponent_1, p1, factor_1, shift_1,
                                           exponent_1, False, bounds)
            elif factor_1 == 0:
                found += _update_plain_row(source, i, cols, q, factor_2, shift_2, exponent_2, q, factor_2, shift_2,
                                           exponent_2, False, bounds)
            else:
                found += _update_plain_row(source, i, cols, p1, factor_1, shift_1, exponent_1, q, factor_2, shift_2,
                                           exponent_2, True, bounds)
        return found

    @_inline
    def _column_blocks(cols, p, deltas, lists, slot):
        """Product ``p``'s column factors into ``deltas[slot]`` (int16: the caller knows they fit),
        and into ``lists[1 + slot]`` the first columns of the whole blocks of ``_BLOCK`` columns
        where one is non-zero, ended by -1: with the last ``n_pre % _BLOCK`` columns, the only
        ones :func:`_update_single_rows` reads."""
        n_pre = cols.shape[1]
        for j in range(n_pre):
            deltas[slot, j] = cols[p, j]
        count = 0
        for start in range(0, n_pre - _BLOCK + 1, _BLOCK):
            nonzero = False
            for j in range(start, start + _BLOCK):
                nonzero |= cols[p, j] != 0
            lists[1 + slot, count] = start
            count += 1 if nonzero else 0
        lists[1 + slot, count] = -1

    @_jit
    def _update_single_rows(source, row_list, count, rows_1, rows_2, scale_1, scale_2, shift_1, exponent_1, shift_2,
                            exponent_2, slot_2, cut, lowest, highest, deltas, lists):
        """The rows ``row_list[:count]`` updated in place, each by one product alone (the first,
        row factors ``rows_1 * scale_1``, where it is non-zero; else the second), under the
        conditions of :func:`_update_plain_row`, in int16 arithmetic (the caller checks that every
        ``column * factor`` lies within +-2^15); returns how many new values are -257.

        With ``value << 7`` a multiple of 128, Lava's chain (``_accumulated``, then ``_rounded``)
        is ``value + delta`` clamped once, ``delta = (term >> 7) + ((term & 127) > cut)``: the
        rounding is monotone, so the accumulator's saturation to [L, H] becomes one to
        [rounded(L), rounded(H)], and that followed by the variable's range is one clamp to their
        intersection (``lowest``, ``highest``; the caller checks that it is not empty). ``delta``
        depends on the row only through its factor, and few distinct factors reach many rows
        (Fashion-MNIST DFA: about 20 for 98 rows a step), so each distinct factor's deltas are
        computed once into a row of ``deltas`` (int16, |delta| <= 257; rows 0 and 1 hold the two
        products' column factors, ``slot_2``: the second's, 0 when both are one product; the
        last row serves factors that are not kept: beyond 255, or more than the rows) and each
        row adds them. ``lists[0]``: the ``deltas`` row of each factor, -1 between calls, then
        the factors kept; ``lists[1 + slot]``: the column blocks (:func:`_column_blocks`). A
        column factor of 0 adds a term of 0 and leaves the value (it lies in that range), so only
        the listed blocks and the last columns are read.

        One compiled loop nest (a call per row would cost about as much as a row), blocks of
        ``_BLOCK`` = 32 columns (int16's vector lanes: a shorter trip count does not vectorize),
        unsigned indices (no negative-index check), the shifts of one- and two-trace products
        (0, 3) as constants (a variable one the compiler widens to int64: a row of deltas 6x
        slower), and the count of -257 only where the clamp can reach it, from each block's least
        value (counting every element widened the block loop to int64: 4 times the vectors)."""
        found = 0
        kind = np.int16
        cut_k, lowest_k, highest_k = kind(cut), kind(lowest), kind(highest)
        counting = lowest <= -257
        n_pre = source.shape[1]
        tail = np.uint64(n_pre - n_pre % _BLOCK)
        keys = _FACTOR_KEYS  # lists[0, keys + d]: the factor kept in deltas row d
        spare = deltas.shape[0] - 1
        used = 2
        for a in range(count):
            i = np.uint64(row_list[a])
            first = rows_1[i] != 0
            slot = 0 if first else slot_2
            row_factor = rows_1[i] if first else rows_2[i]
            key = (0 if first else 512) + row_factor + 256 if -256 < row_factor < 256 else -1
            listed = lists[1 + slot]
            d = lists[0, key] if key >= 0 else -1
            if d < 0:
                d = used if key >= 0 and used < spare else spare
                if d < spare:
                    lists[0, key] = d
                    lists[0, keys + d] = key
                    used += 1
                factor = kind(row_factor * (scale_1 if first else scale_2))
                shift = shift_1 if first else shift_2
                power = _opaque(kind(np.int64(1) << (exponent_1 if first else exponent_2)))  # 2**15 wraps: same bits
                # the shifts of products of one and of two traces as constants: the compiler then
                # keeps the arithmetic in int16 (a variable shift it widens to int64: 6x slower)
                if shift == 3:
                    _fill_deltas(deltas, d, slot, listed, tail, np.uint64(n_pre), factor, 3, power, cut_k)
                elif shift == 0:
                    _fill_deltas(deltas, d, slot, listed, tail, np.uint64(n_pre), factor, 0, power, cut_k)
                else:
                    _fill_deltas(deltas, d, slot, listed, tail, np.uint64(n_pre), factor, shift, power, cut_k)
            delta = deltas[d]
            for b in range(listed.size):
                if listed[b] < 0:
                    break
                start = np.uint64(listed[b])
                if counting:
                    smallest = highest_k  # the block's least new value: -257 is rare, counted then
                    for k in range(_BLOCK):
                        smallest = min(smallest, _add(source, i, start + np.uint64(k), delta[start + np.uint64(k)],
                                                      lowest_k, highest_k))
                    if smallest == -257:
                        for k in range(_BLOCK):
                            found += 1 if source[i, start + np.uint64(k)] == -257 else 0
                else:
                    for k in range(_BLOCK):
                        _add(source, i, start + np.uint64(k), delta[start + np.uint64(k)], lowest_k, highest_k)
            for j in range(tail, np.uint64(n_pre)):
                found += 1 if _add(source, i, j, delta[j], lowest_k, highest_k) == -257 else 0
        for d in range(2, used):
            lists[0, lists[0, keys + d]] = -1
        return found if counting else 0

    @_inline
    def _fill_deltas(deltas, d, slot, listed, tail, end, factor, shift, power, cut):
        """``deltas[d]`` on the listed blocks and the last columns: :func:`_delta` of the column
        factors ``deltas[slot]``."""
        column = deltas[slot]
        for b in range(listed.size):
            if listed[b] < 0:
                break
            start = np.uint64(listed[b])
            for k in range(_BLOCK):
                deltas[d, start + np.uint64(k)] = _delta(column[start + np.uint64(k)], factor, shift, power, cut)
        for j in range(tail, end):
            deltas[d, j] = _delta(column[j], factor, shift, power, cut)

    @_inline
    def _delta(column, factor, shift, power, cut):
        """What one product adds to a value in :func:`_update_single_rows`, in int16:
        ``(term >> 7) + ((term & 127) > cut)``, ``term = (column * factor >> shift) << exponent``
        (``power``: ``2**exponent`` wrapped to int16, the same low 16 bits)."""
        kind = np.int16
        term = kind(kind(kind(kind(column) * factor) >> shift) * power)
        return kind(kind(term >> kind(7)) + (kind(1) if kind(term & kind(127)) > cut else kind(0)))

    @_inline
    def _add(target, i, j, delta, lowest, highest):
        """``target[i, j] + delta`` clamped (int16), stored and returned."""
        value = min(max(np.int16(np.int16(target[i, j]) + delta), lowest), highest)
        target[i, j] = value
        return value

    @_inline
    def _synaptic_factor(table, p):
        """Product ``p``'s synaptic factors: how many, and the last one's variable code (8, 9, 10: w,
        d, t; 0 without), constant, sign flag and ``2**width`` (1 without)."""
        count, code, const, sgn, width_bound = 0, np.int64(0), np.int64(0), False, np.int64(1)
        for f in range(table[p, 5]):
            base = 6 + 4 * f
            if 8 <= table[p, base] <= 10:
                count += 1
                code, const, sgn = table[p, base], table[p, base + 1], table[p, base + 2] != 0
                width_bound = np.int64(1) << table[p, base + 3]
        return count, code, const, sgn, width_bound

    @_inline
    def _int32_products(table, target, rows, scalar, column_bound, i):
        """Whether every product of ``target`` adding non-zeros on row ``i`` has at most one synaptic
        factor and terms ``(column * factor * synaptic >> shift) << exponent`` exact in int32 (no
        wrapping; the saturation to +-2^15 is then one int32 clamp)."""
        for p in range(table.shape[0]):
            factor = rows[p, i] * scalar[p] * table[p, 2]
            if table[p, 0] != target or factor == 0:
                continue
            count, _, _, sgn, width_bound = _synaptic_factor(table, p)
            bound = column_bound[p] * (np.int64(1) if sgn else width_bound) * abs(factor)  # of |term| before shifting
            exponent = table[p, 3]
            if count > 1 or exponent > 30 or bound >= (np.int64(1) << 31) or (
                    ((bound >> table[p, 4]) + 1) << exponent) >= (np.int64(1) << 31):
                return False
        return True

    @_inline
    def _update_row_int32(source, target, i, first, reached, table, rows, cols, scalar, synaptic, weights, tag_2,
                          tag_1, work_32, pending, in_place, bounds):
        """Row ``i`` of a target when :func:`_int32_products` holds: the general path of
        ``_update_rows`` in int32 (twice the vector lanes), one pass per product (``work_32``: (1,
        n_pre) int32, the accumulators); into ``source`` (``in_place``) or ``pending``. The values
        ``value << 7`` are limited to +-2^16 first, which changes no saturated sum (each term is
        within +-2^15)."""
        limit = np.int64(1) << 15
        clamp = target == 2 and not (reached >> first) & 1  # a tag at -257, saturated as _update_rows does
        low = -limit - 1 if clamp else -(np.int64(1) << 16)
        accumulators = work_32[0]
        for j in range(source.shape[1]):
            accumulators[j] = np.int32(min(max(np.int64(source[i, j]) << 7, low), np.int64(1) << 16))
        for p in range(table.shape[0]):
            factor = np.int32(rows[p, i] * scalar[p] * table[p, 2])
            if table[p, 0] != target or factor == 0:
                continue
            shift, exponent = np.int32(table[p, 4]), np.int32(table[p, 3])
            _, code, const, sgn, width_bound = _synaptic_factor(table, p)
            const, bound = np.int32(const), np.int32(width_bound)
            if code == 0:
                for j in range(source.shape[1]):
                    accumulators[j] = _saturated_sum(accumulators[j], _term32(cols[p, j], factor, shift, exponent))
                continue
            if code == 8:  # w, d, t (the tags' dtype may differ from the weights')
                _add_synaptic(accumulators, cols[p], factor, shift, exponent, weights[i], const, sgn, bound)
            elif code == 9:
                _add_synaptic(accumulators, cols[p], factor, shift, exponent, tag_2[i], const, sgn, bound)
            else:
                _add_synaptic(accumulators, cols[p], factor, shift, exponent, tag_1[i], const, sgn, bound)
        return _store_row(source, pending, target, i, work_32, in_place, bounds)

    @_inline
    def _add_synaptic(accumulators, cols, factor, shift, exponent, variable, const, sgn, bound):
        """One product with a synaptic factor (``variable``: the row of w, d or t) added to a row's
        int32 accumulators (:func:`_update_row_int32`)."""
        for j in range(accumulators.size):
            value = np.int32(_synaptic(np.int32(variable[j]) + const, sgn, bound))
            accumulators[j] = _saturated_sum(accumulators[j], _term32(cols[j], factor * value, shift, exponent))

    @_inline
    def _saturated_sum(accumulator, term):
        """``_accumulated`` in int32 for a term computed without wrapping: the term, then the sum,
        saturated to [-2^15 - 1, 2^15 - 1]."""
        low, high = np.int32(-32769), np.int32(32767)
        return min(max(np.int32(accumulator + min(max(term, low), high)), low), high)

    @_inline
    def _store_row(source, pending, target, i, work, in_place, bounds):
        """Row ``i``'s accumulators ``work[0]`` through saturation by sign, stochastic rounding and
        the variable's range, into ``source`` (``in_place``) or ``pending[target]``; returns how
        many new values are -257 (in place)."""
        floor, ceil, cut, low_value, high = bounds
        found = 0
        for j in range(source.shape[1]):
            result = _rounded(work[0, j], floor, ceil, cut, low_value, high)
            if in_place:
                found += 1 if result == -257 else 0
                source[i, j] = result
            else:
                pending[target, i, j] = result
        return found

    @_inline
    def _plain(column_bound, factor, shift, exponent):
        """Whether every term ``(column * factor >> shift) << exponent`` of a row is exact in int32
        and within +-2^15 - 1 (``column_bound``: the largest |column factor|): no wrapping and no
        saturation of the term, which :func:`_update_plain_row` leaves out."""
        if exponent > 15:
            return False
        bound = column_bound * abs(factor)
        return bound < (np.int64(1) << 31) and ((bound >> shift) + 1) << exponent < (np.int64(1) << 15)

    @_inline
    def _update_plain_row(source, i, cols, p, factor, shift, exponent, q, factor_q, shift_q, exponent_q, two,
                          bounds):
        """Row ``i`` of a target updated in place by product ``p`` alone, or ``p`` then ``q`` when
        ``two``, when :func:`_plain` holds for each and no tag sits at -257 (returns how many new
        values are -257): ``_accumulated`` and ``_rounded`` in int32 arithmetic (twice the vector
        lanes of int64). Exact: ``value << 7`` limited to +-2^16 first changes no saturated sum
        (each term is within +-2^15), and the last accumulator saturation to +-2^15 and the
        rounding's by sign are one saturation to the intersection of their ranges."""
        floor, ceil, cut, low, high = bounds
        found = 0
        lowest, highest = np.int32(max(floor, -32769)), np.int32(min(ceil, 32767))
        factor32, shift32, exponent32 = np.int32(factor), np.int32(shift), np.int32(exponent)
        factor_q32, shift_q32, exponent_q32 = np.int32(factor_q), np.int32(shift_q), np.int32(exponent_q)
        cut32, low32, high32 = np.int32(cut), np.int32(low), np.int32(high)
        for j in range(source.shape[1]):
            value = np.int32(min(max(np.int64(source[i, j]) << 7, -65536), 65536))
            value = np.int32(value + _term32(cols[p, j], factor32, shift32, exponent32))
            if two:  # loop-invariant: the compiler keeps one loop per case
                value = min(max(value, np.int32(-32769)), np.int32(32767))
                value = np.int32(value + _term32(cols[q, j], factor_q32, shift_q32, exponent_q32))
            value = min(max(value, lowest), highest)
            value = np.int32((value >> 7) + (1 if (value & 127) > cut32 else 0))
            value = min(max(value, low32), high32)
            found += 1 if value == -257 else 0
            source[i, j] = value
        return found

    @_inline
    def _term32(column, factor, shift, exponent):
        """``(column * factor >> shift) << exponent`` in int32 (``factor``, ``shift``, ``exponent``
        int32), for terms known not to wrap."""
        return np.int32(np.int32(np.int32(np.int32(column) * factor) >> shift) << exponent)

    @_inline
    def _accumulated(accumulator, product, shift, exponent):
        """One product term (``dependency * factors * mantissa`` = ``product``) shifted and
        saturated, added with saturation to the accumulator."""
        limit = np.int64(1) << 15
        term = _wrap32((_wrap32(product) >> shift) << exponent)
        term = min(max(term, -limit - 1), limit - 1)
        return min(max(accumulator + term, -limit - 1), limit - 1)

    @_inline
    def _synaptic(value, sgn, bound):
        """A synaptic factor (w, d, t plus its constant), its sign if ``sgn``, within its width."""
        if sgn:
            value = 1 if value > 0 else (-1 if value < 0 else 0)
        return _clip(value, bound)

    @_inline
    def _rounded(accumulator, floor, ceil, cut, low, high):
        """Saturation by sign, stochastic rounding and the variable's range of one accumulator
        (``value << 7`` plus the products)."""
        result = min(max(accumulator, floor), ceil)
        result = (result >> 7) + (1 if (result & 127) > cut else 0)
        return min(max(result, low), high)

    @_jit
    def _engine_step(layer, s, time_step, pre, post, weights, tag_2, tag_1, x, y, tables, targets, settings, x_int,
                     x_frac, x_decay, x_on, y_decay, randoms_f, randoms_i, scratch):
        k = settings[layer, 4]
        u = 0
        if k >= 0:
            u = 1 if time_step % (1 << k) == 0 else 0
        _learn(weights, tag_2, tag_1, x, y, pre, post, tables[layer], targets[layer], u, x_int[layer], x_frac[layer],
               x_decay[layer], x_on[layer], y_decay, randoms_f[layer, 0, s], randoms_i[layer, s],
               randoms_f[layer, 1, s], randoms_f[layer, 2, s], settings[layer, 5], scratch[0], scratch[1], scratch[2],
               scratch[3], scratch[4], scratch[5], scratch[6], scratch[7], scratch[8], scratch[12], scratch[13],
               scratch[14], scratch[15], scratch[16], scratch[17])

    @_jit
    def _dfa_kernel(inputs, targets_in, first_step, period, neuron, weights, tag_2, tag_1, xs, ys, buffers, us, vs,
                    biases, spikes, settings, tables, targets, x_int, x_frac, x_decay, x_on, y_decay, randoms_f,
                    randoms_i, engine_step, feedback_t, feedback_exp, feedback_buffers, trace, error, scratch, pre_input,
                    out, rate_shifts, baps, weights_t, transposed):
        settle, trace_shift, trace_impulse, error_shift, feedback_shift = neuron[:5]
        transfer_samples, transfer_level, epoch_samples = neuron[5:]
        n_layers = len(weights)
        last = n_layers - 1
        for s in range(inputs.shape[0]):
            phase = (first_step + s) % period
            if phase == 0:
                for index in range(n_layers):
                    _fill(us[index], 0)
                    _fill(vs[index], 0)
                _fill(trace, 0)
            for j in range(inputs.shape[1]):
                pre_input[j] = inputs[s, j] != 0
            gate = phase >= settle
            # neurons.dfa_transfer: the tag's transfer bAP and y1 level
            bap, level = False, 0
            if transfer_samples > 0:
                sample = (first_step + s) // period
                if phase == period - 1 and sample % transfer_samples == transfer_samples - 1:
                    epoch = sample // epoch_samples if epoch_samples > 0 else 0
                    bap, level = True, transfer_level >> rate_shifts[min(epoch, rate_shifts.size - 1)]
            for index in range(n_layers):
                pre = pre_input if index == 0 else spikes[index - 1]
                work = scratch[index]
                activation = work[9]
                _copy(activation, buffers[index])
                if transposed[index]:
                    _dense(weights_t[index], pre, settings[index, 3], work[11], work[18], buffers[index])
                else:
                    _dense_rows(weights[index], pre, settings[index, 3], buffers[index])
                _lif(us[index], vs[index], activation, biases[index], settings[index, 0], settings[index, 1],
                     settings[index, 2], spikes[index])
                y = ys[index]
                post = spikes[index]
                for i in range(post.size):
                    if index == last:
                        value = _wrap32(trace[i] - (trace[i] >> trace_shift) + trace_impulse * np.int64(post[i]))
                        trace[i] = value
                        error[i] = _wrap32(value - targets_in[s, i])
                        delta, shift = error[i], error_shift
                    else:
                        active = post[i] or vs[index][i] > 0
                        delta, shift = _wrap32(np.int64(feedback_buffers[index][i]) * active), feedback_shift
                    y2, y3 = _split_sign(delta, shift, gate)
                    y[0, i] = level
                    y[1, i] = y2
                    y[2, i] = y3
                if transfer_samples > 0:  # the engine sees the transfer bAP, not the spikes
                    _fill(baps[index], bap)
                _engine_step(index, s, engine_step + s + 1, pre, baps[index] if transfer_samples > 0 else post,
                             weights[index], tag_2[index], tag_1[index],
                             xs[index], y, tables, targets, settings, x_int, x_frac, x_decay, x_on, y_decay,
                             randoms_f, randoms_i, work)
                if transposed[index]:
                    _transpose_rows(weights[index], weights_t[index], work[5][0], work[8][0])
            for index in range(last):  # B e, from the transposed B: one row per non-zero error
                total = scratch[index][10]
                _fill(total, 0)
                matrix = feedback_t[index]
                for c in range(matrix.shape[0]):
                    if error[c] != 0:
                        for i in range(total.size):
                            total[i] += matrix[c, i] * np.int64(error[c])
                for i in range(total.size):
                    feedback_buffers[index][i] = _wrap32(_shift(total[i], feedback_exp[index]))
            for i in range(out.shape[1]):
                out[s, i] = spikes[last][i]

    @_jit
    def _chl_kernel(inputs, targets_in, first_step, period, rest, neurons, learn, weights, weights_t, tag_2, tag_1, xs, ys,
                    buffers, us, vs, biases, spikes, traces, settings, tables, targets, x_int, x_frac, x_decay, x_on,
                    y_decay, randoms_f, randoms_i, engine_step, feedback_t, feedback_exp, feedback_buffers, scratch, pre_input,
                    out):
        n_layers = len(weights)
        last = n_layers - 1
        half = period // 2
        for s in range(inputs.shape[0]):
            phase = (first_step + s) % period
            if phase == 0 or (rest and phase == half):  # neurons.chl_reset
                for index in range(n_layers):
                    _fill(us[index], 0)
                    _fill(vs[index], 0)
                    _fill(traces[index], 0)
            for j in range(inputs.shape[1]):
                pre_input[j] = inputs[s, j] != 0
            nudged = phase >= half
            for index in range(n_layers):
                settle, trace_shift, trace_impulse, sign_level, nudge_offset = neurons[index]
                pre = pre_input if index == 0 else spikes[index - 1]
                work = scratch[index]
                activation = work[9]
                _copy(activation, buffers[index])
                if index < last:
                    for i in range(activation.size):
                        activation[i] = _wrap32(np.int64(activation[i]) + feedback_buffers[index][i])
                _dense(weights_t[index], pre, settings[index, 3], work[11], work[18], buffers[index])
                if index == last and nudged:
                    for i in range(vs[index].size):
                        vs[index][i] = _wrap32(np.int64(vs[index][i]) + _wrap32(targets_in[s, i] - nudge_offset))
                _lif(us[index], vs[index], activation, biases[index], settings[index, 0], settings[index, 1],
                     settings[index, 2], spikes[index])
                learning = (phase - (half if nudged else 0)) >= settle
                level = sign_level if learning else 0
                y = ys[index]
                trace = traces[index]
                post = spikes[index]
                for i in range(post.size):
                    value = _wrap32(trace[i] - (trace[i] >> trace_shift) + trace_impulse * np.int64(post[i]))
                    trace[i] = min(max(value, 0), 127)
                    y[0, i] = trace[i]
                    y[1, i] = level if nudged else 0
                    y[2, i] = 0 if nudged else level
                if learn:
                    _engine_step(index, s, engine_step + s + 1, pre, post, weights[index], tag_2[index],
                                 tag_1[index], xs[index], y, tables, targets, settings, x_int, x_frac, x_decay, x_on,
                                 y_decay, randoms_f, randoms_i, work)
                    _transpose_rows(weights[index], weights_t[index], work[5][0], work[8][0])
            for index in range(last):
                _dense(feedback_t[index], spikes[last], feedback_exp[index], scratch[last][11], scratch[index][10],
                       feedback_buffers[index])
            for i in range(out.shape[1]):
                out[s, i] = spikes[last][i]


def _static(emulator) -> dict:
    """What stays the same from call to call of one emulator, built once and kept on it: the
    per-layer rule tables (int64, padded with rows of no target), targets, x impulses and decays,
    y decay, layer settings, feedback matrices (transposed), biases and the
    kernels' work arrays."""
    cached = getattr(emulator, "_fast_static", None)
    if cached is not None:
        return cached
    plan, engines = emulator.plan, emulator.engines
    n_layers = len(engines)
    rule_tables = [product_table(e.rule) for e in engines]
    tables = np.zeros((n_layers, max(len(t) for t in rule_tables), _COLUMNS), np.int64)
    tables[:, :, 0] = -1  # padding rows belong to no target
    targets = np.zeros((n_layers, 3), np.bool_)
    x_int = np.zeros((n_layers, 2), np.int64)
    x_frac = np.zeros((n_layers, 2), np.int64)
    x_decay = np.zeros((n_layers, 2), np.float64)
    x_on = np.zeros((n_layers, 2), np.bool_)
    for index, (engine, table) in enumerate(zip(engines, rule_tables)):
        tables[index, : len(table)] = table
        for name, _ in engine.rule.targets:
            targets[index, _TARGETS.index(name)] = True
        x_int[index] = engine.x_impulse_int
        x_frac[index] = engine.x_impulse_frac
        on = engine.x_tau != 0
        x_on[index] = on
        x_decay[index, on] = np.exp(-1 / engine.x_tau[on][:, None])[:, 0]  # numpy's exp, as the engine uses
    y_decay = float(np.exp(-1 / engines[0].y_tau[:1][:, None])[0, 0])
    feedback = _transposed(emulator.feedback_weights)
    cached = {"rule": (tables, targets, x_int, x_frac, x_decay, x_on, y_decay), "settings": _settings(plan, engines),
              "feedback": feedback,
              "feedback_exp": np.array([fb.weight_exp for fb in plan.feedback] or [0], np.int64),
              "biases": tuple(np.ascontiguousarray(b, np.int32) for b in emulator.biases),
              "scratch": _scratch(engines, [max(len(t), 1) for t in rule_tables])}
    emulator._fast_static = cached
    return cached


def _randoms(engines: list[LearningSynapses], steps: int, learn: bool):
    """The random numbers the engines draw in ``steps`` learning steps (advancing their
    generators as Lava would): (layers, 3, steps) float (x decay, y decay, rounding), (layers,
    steps) int (x impulse)."""
    randoms_f = np.zeros((len(engines), 3, steps), np.float64)
    randoms_i = np.zeros((len(engines), steps), np.int64)
    if learn:
        for index, engine in enumerate(engines):
            randoms_f[index, 0] = engine._x_random._decay.take(steps, 2)
            randoms_i[index] = engine._x_random._impulse.take(steps, 2)
            randoms_f[index, 1] = engine._y_random._decay.take(steps, 2)
            engine._y_random._impulse.take(steps, 2)
            randoms_f[index, 2] = engine._conn_random.take(steps, 1)
    return randoms_f, randoms_i


def _settings(plan, engines) -> np.ndarray:
    """(layers, 6) int64: du factor, dv factor, effective vth, weight_exp, decimate k, sign mode."""
    rows = []
    for layer, engine in zip(plan.layers, engines):
        k = engine.rule.decimate_exponent
        rows.append([4096 - (int(layer.du) + 1), 4096 - int(layer.dv), int(layer.vth) << 6, int(layer.weight_exp),
                     -1 if k is None else int(k), _SIGN_MODES.index(engine.sign_mode)])
    return np.array(rows, np.int64)


def _scratch(engines, products: list[int]):
    """Per layer, the kernel's work arrays: product row / column factors, scalars, synaptic flags,
    pending rows, row lists, the decayed traces, sizes (rows per target; item 3, kept across
    steps: how many tags sit at -257, set at each call by :func:`_work`), the activation, a sum,
    an index list, a row's accumulators and synaptic products, each product's largest |column
    factor|, per post neuron the products with non-zero row factors (one bit each), a row's
    int32 accumulators, :func:`_update_single_rows`' column factors and deltas (int16) and its
    lists (:func:`_lists`), and the weights' int32 Dense sums."""
    out = []
    for engine, count in zip(engines, products):
        n_post, n_pre = engine.weights.shape
        out.append((np.zeros((count, n_post), np.int64), np.zeros((count, n_pre), np.int64),
                    np.zeros(count, np.int64), np.zeros(count, np.bool_), np.zeros((3, n_post, n_pre), np.int64),
                    np.zeros((3, n_post), np.int64), np.zeros((2, n_pre), np.int64), np.zeros((3, n_post), np.int64),
                    np.zeros(4, np.int64), np.zeros(n_post, np.int32), np.zeros(n_post, np.int64),
                    np.zeros(max(n_pre, n_post), np.int64), np.zeros((2, n_pre), np.int64), np.zeros(count, np.int64),
                    np.zeros(n_post, np.int64), np.zeros((1, n_pre), np.int32),
                    np.zeros((2 + _DELTA_ROWS, n_pre), np.int16), _lists(n_pre), np.zeros(n_post, np.int32)))
    return tuple(out)


def _lists(n_pre: int) -> np.ndarray:
    """``lists`` of :func:`_update_single_rows`: its index of row factors (-1: none) and kept
    factors, and two lists of column blocks."""
    return np.full((3, max(_FACTOR_KEYS + 2 + _DELTA_ROWS, n_pre // _BLOCK + 1)), -1, np.int64)


def _work(static: dict, engines) -> tuple:
    """The cached work arrays, with the count of tags at -257 taken from the engines now (a
    caller may have set tags between calls)."""
    for work, engine in zip(static["scratch"], engines):
        work[8][3] = np.count_nonzero(engine.tag_1 == -257)
    return static["scratch"]


def _count(engines, steps: int) -> None:
    for engine in engines:
        n_post, n_pre = engine.weights.shape
        engine.time_step += steps
        engine.counts.epochs += steps
        engine.counts.synapse_updates += steps * engine.weights.size * len(engine.rule.targets)
        engine.counts.product_terms += steps * engine.weights.size * len(engine.rule.products)
        engine.counts.trace_updates += steps * (2 * n_pre + 3 * n_post)


def _transposed(matrices) -> tuple:
    """The fixed feedback matrices (n_hidden, n_out: DFA's B, CHL's G) as int64 (n_out, n_hidden),
    the kernels' layout (a dummy without feedback)."""
    return tuple(np.ascontiguousarray(np.asarray(w, np.int64).T) for w in matrices) or (np.zeros((1, 1), np.int64),)


def _transposed_weights(engines, which=None) -> tuple:
    """Each engine's weights transposed (n_pre, n_post), what the kernels' ``_dense`` reads (only
    where ``which`` is true, if given; the weights themselves elsewhere, unread); the kernels keep
    them equal to the weights as the engines write rows. int16 (the weights hold [-256, 255]):
    half the bytes a Dense sum reads."""
    return tuple(np.ascontiguousarray(e.weights.T, np.int16) if which is None or which[index] else e.weights
                 for index, e in enumerate(engines))


def _check(emulator) -> None:
    if not compiled(emulator):
        raise ValueError("the compiled emulator needs numba, a fixed-point plan and t_epoch = 1 rules")
    if len({e.time_step for e in emulator.engines}) != 1:
        raise ValueError("the learning engines are out of step")
    for engine in emulator.engines:
        if engine.tx.any() or engine.ty.any():
            raise ValueError("an engine is inside an epoch")


def _start(emulator, input_spikes: np.ndarray, learn: bool):
    """What both compiled runs read first: the plan, engines, step count, per-emulator constants,
    the run's random draws and the neuron state."""
    _check(emulator)
    steps = int(input_spikes.shape[0])
    static = _static(emulator)
    randoms = _randoms(emulator.engines, steps, learn=learn)
    us = tuple(np.ascontiguousarray(s[0], np.int32) for s in emulator.states)
    vs = tuple(np.ascontiguousarray(s[1], np.int32) for s in emulator.states)
    return emulator.plan, emulator.engines, steps, static, randoms, us, vs


def run_dfa(emulator, input_spikes: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``DfaEmulator.run``'s steps in one compiled call; returns the output spikes (steps, n_out)
    bool and leaves ``emulator`` exactly as its numpy steps would."""
    plan, engines, steps, static, randoms, us, vs = _start(emulator, input_spikes, True)
    neuron = plan.neuron
    # a layer learning through a tag rewrites its weights only at the transfers: its Dense sums
    # read a transposed copy (one row per spike) kept equal row by row as the engine writes them;
    # a layer whose rule writes the weights every step reads them as they are (_dense_rows)
    transposed = np.array([bool(row[2]) for row in static["rule"][1]], np.bool_)
    spikes = tuple(np.zeros(layer.n_out, np.bool_) for layer in plan.layers)
    ys = tuple(np.array(e.y, np.int64) for e in engines)
    error = np.zeros(plan.layers[-1].n_out, np.int64)
    feedback_buffers = tuple(emulator.feedback_buffers) or (np.zeros(1, np.int32),)
    out = np.zeros((steps, plan.layers[-1].n_out), np.bool_)
    trace = np.ascontiguousarray(emulator.trace, np.int32)
    _dfa_kernel(np.ascontiguousarray(input_spikes, np.uint8), np.ascontiguousarray(targets, np.int32),
                emulator.time_step, neuron.period,
                (neuron.settle, neuron.trace_shift, neuron.trace_impulse, neuron.error_shift, neuron.feedback_shift,
                 neuron.transfer_samples, int(neuron.transfer_level), neuron.epoch_samples),
                tuple(e.weights for e in engines), tuple(e.tag_2 for e in engines), tuple(e.tag_1 for e in engines),
                tuple(e.x for e in engines), ys, tuple(emulator.buffers), us, vs, static["biases"], spikes,
                static["settings"], *static["rule"], *randoms, engines[0].time_step, static["feedback"],
                static["feedback_exp"], feedback_buffers, trace, error, _work(static, engines),
                np.zeros(input_spikes.shape[1], np.bool_), out,
                np.array(tuple(neuron.rate_shifts) or (0,), np.int64), tuple(np.zeros_like(s) for s in spikes),
                _transposed_weights(engines, transposed), transposed)
    _finish(emulator, us, vs, ys, steps, learn=True)
    emulator.trace = trace
    return out


def run_chl(emulator, input_spikes: np.ndarray, targets: np.ndarray, learn: bool = True) -> np.ndarray:
    """``ChlEmulator.run``'s steps in one compiled call (output spikes per step)."""
    plan, engines, steps, static, randoms, us, vs = _start(emulator, input_spikes, learn)
    neurons = tuple((p.settle, p.trace_shift, p.trace_impulse, int(p.sign_level), int(p.nudge_offset))
                    for p in plan.neurons)
    spikes = tuple(np.zeros(layer.n_out, np.bool_) for layer in plan.layers)
    ys = tuple(np.array(e.y, np.int64) for e in engines)
    feedback_buffers = tuple(emulator.feedback_buffers) or (np.zeros(1, np.int32),)
    traces = tuple(np.ascontiguousarray(t, np.int32) for t in emulator.traces)
    out = np.zeros((steps, plan.layers[-1].n_out), np.bool_)
    _chl_kernel(np.ascontiguousarray(input_spikes, np.uint8), np.ascontiguousarray(targets, np.int32),
                emulator.time_step, plan.period, bool(plan.neurons[0].rest), neurons, bool(learn),
                tuple(e.weights for e in engines), _transposed_weights(engines), tuple(e.tag_2 for e in engines),
                tuple(e.tag_1 for e in engines),
                tuple(e.x for e in engines), ys, tuple(emulator.buffers), us, vs, static["biases"], spikes, traces,
                static["settings"], *static["rule"], *randoms, engines[0].time_step, static["feedback"],
                static["feedback_exp"], feedback_buffers, _work(static, engines),
                np.zeros(input_spikes.shape[1], np.bool_), out)
    _finish(emulator, us, vs, ys, steps, learn=learn)
    emulator.traces = list(traces)
    return out


def _finish(emulator, us, vs, ys, steps: int, learn: bool) -> None:
    emulator.states = [type(state)(u, v) for state, u, v in zip(emulator.states, us, vs)]
    emulator.time_step += steps
    if learn:
        for engine, y in zip(emulator.engines, ys):
            engine.y = y
        _count(emulator.engines, steps)


def compiled(emulator, force: Optional[bool] = None) -> bool:
    """Whether ``emulator.run`` takes the compiled path: ``force`` if given, else when it can."""
    if force is not None:
        return force
    return bool(emulator.plan.fixed and available() and all(supports(e.rule) for e in emulator.engines))
