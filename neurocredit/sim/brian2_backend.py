"""Brian2 backend: the canonical LIF network (:mod:`neurocredit.neurons`) as Brian2 objects.

The model, exactly as Brian2 computes it (one canonical step = one Brian2 step of
:data:`STEP_MS` ms; the value of ``dt`` is irrelevant, only steps count)::

    NeuronGroup (per layer)   u : 1   v : 1   a_in : 1   bias : 1 (constant)
    update (run_regularly, slot 'groups'):
        u = u * decay_u + a_in          # decay_u = 1 - du
        a_in = 0
        v = v * decay_v + u             # decay_v = 1 - dv
        v = v + bias
    threshold: v > vth                  (strictly greater)
    reset:     v = 0                    (u is not reset)
    refractory period (refractory = N > 0): see REFRACTORY_UPDATE (v held at 0 for N steps)
    Synapses (per layer, w : 1 (constant), no synaptic delay):  on_pre: a_in_post += w

The update is written as explicit assignments, not as differential equations: Brian2 would
integrate ``du/dt = -du*u`` exactly (decay ``exp(-du)``, 0.9048 instead of 0.9 for 0.1) and
sympy may reorder sums. One binary operation per term, in the order of
:func:`neurocredit.neurons.lif_step`, gives the same float64 numbers as the reference; the
Cython target is compiled without ``-ffast-math`` and with ``-ffp-contract=off`` so the C
compiler does not fuse or reassociate them either. The only remaining difference is the order
in which the incoming ``w`` are summed into ``a_in`` (synapse order here, a BLAS product in
the reference and Norse): about 1e-16 relative, which changes a spike only when ``v`` lands
within that distance of ``vth``.

Order of operations within step ``t`` (Brian2's schedule: start, groups, thresholds, synapses,
resets, end):

* ``start``: at the first step of each sample window, ``u = v = a_in = 0`` (a fresh sample);
  graded (non-0/1) inputs are written into the input group.
* ``groups``: the LIF update above, consuming ``a_in`` = what the synapses delivered at ``t-1``.
* ``thresholds``: every layer spikes where ``v > vth``; the ``SpikeGeneratorGroup`` emits the
  input spikes of step ``t``.
* ``synapses``: spikes of step ``t`` add ``w`` to ``a_in`` of the next layer, which the next
  layer consumes at ``t + 1``: Lava's one-step ``Dense`` delay, so layer ``i`` receives
  ``W_i s_{i-1}[t-1]`` (``s_0`` = the encoded input), as in the reference and Norse backends.
* ``resets``: ``v = 0`` where spiked.
* ``end``: ``StateMonitor`` records ``v`` (after reset) and ``u``, as the other backends do.

Many samples: the batch is laid out as ``copies`` parallel copies of the network (neuron index
``copy * n + j``, block-diagonal synapses; only nonzero weights become synapses; a Conv2d layer
has no weight sharing in Brian2: one synapse per kernel tap and output position, connected from
the im2col indices of :mod:`neurocredit.conv`, each with its own copy of the kernel weight) and,
when the batch is larger than the copies, as consecutive sample windows of ``steps`` steps in the same
run (sample ``window * copies + copy``; the ``start`` reset above separates the windows). The
Brian2 network is built once per call and run once; ``copies`` is chosen so that at most
:data:`MAX_SYNAPSES_PER_RUN` synapses exist.

Inputs: 0/1 spike inputs go through a ``SpikeGeneratorGroup`` (sample spikes at Brian2 time
``(window * steps + t) * dt``). Graded inputs (the ``current`` encoder) cannot be carried by
spike events; they drive a ``NeuronGroup`` whose ``x`` is set every step from the encoded
array, with threshold ``x != 0`` and ``on_pre: a_in_post += w * x_pre`` (the reference
multiplies the same values by ``W``).

Code generation (Cython or numpy, the compiled-code cache, our numpy spike-generator template):
:mod:`neurocredit.sim.brian2_codegen`.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from neurocredit.encoders import is_binary
from neurocredit.errors import NeurocreditError
from neurocredit.network import Network
from neurocredit.record import RunRecord
from neurocredit.sim.brian2_codegen import (
    brian2_preferences,
    code_signature,
    code_target,
    ready_marker,
    spike_generator_numpy_code_object,
)

STEP_MS = 1.0
"""Brian2 time of one canonical step, in ms (any value works; only step counts matter)."""

MAX_SYNAPSES_PER_RUN = 4_000_000
"""Upper bound on synapses in one built Brian2 network (parallel copies x synapses per copy):
about 0.2 GB of Brian2 arrays (with the stored copy); larger batches run as consecutive sample
windows instead. More copies gain little: 25, 50 and 100 copies of a 784-100-10 net ran within
20 % of each other per sample."""

LIF_MODEL = """
u : 1
v : 1
a_in : 1
bias : 1 (constant)
"""
LIF_UPDATE = """
u = u * decay_u + a_in
a_in = 0
v = v * decay_v + u
v = v + bias
"""
LIF_THRESHOLD = "v > vth"
LIF_RESET = "v = 0"
SAMPLE_START = """
u = 0
v = 0
a_in = 0
"""
# With a refractory period of N steps (``refractory_steps``): ``left`` counts the steps still
# refractory; while it is > 0 the voltage line is void (v stays 0, so no spike) and u integrates.
REFRACTORY_MODEL = LIF_MODEL + "left : 1\n"
REFRACTORY_UPDATE = LIF_UPDATE + """v = v * int(left <= 0)
left = clip(left - 1, 0, refractory_steps)
"""
REFRACTORY_RESET = LIF_RESET + "\nleft = refractory_steps"
REFRACTORY_SAMPLE_START = SAMPLE_START + "left = 0\n"
DENSE_SYNAPSE = "w : 1 (constant)"
DENSE_ON_PRE = "a_in_post += w"
GRADED_INPUT_MODEL = "x : 1"
GRADED_INPUT_THRESHOLD = "x != 0"
GRADED_ON_PRE = "a_in_post += w * x_pre"

class ParallelCopies:
    """A Brian2 network holding ``copies`` parallel copies of ``network`` (see module doc).

    Build once, then :meth:`run` any number of times; each call restores the freshly built
    state (``Network.restore``) and simulates ``inputs`` of shape (steps, batch, n_inputs), any
    batch, as ``ceil(batch / copies)`` consecutive sample windows in one Brian2 run.
    """

    def __init__(
        self,
        network: Network,
        copies: int,
        steps: int,
        graded_input: bool = False,
        record: frozenset = frozenset(),
        target: Optional[str] = None,
    ) -> None:
        if not network.neuron.spiking:
            raise NeurocreditError("the brian2 backend runs lif networks only; use the rate backend")
        self.network = network
        self.copies = int(copies)
        self.steps = int(steps)
        self.graded_input = bool(graded_input)
        self.record = frozenset(record)
        self.target = target or code_target(0.0, self.signature)
        with brian2_preferences(self.target):
            self._build()

    def _build(self) -> None:
        import brian2 as b2

        network, copies = self.network, self.copies
        params = network.neuron.lif
        self._dt = STEP_MS * b2.ms
        clock = b2.Clock(dt=self._dt, name="nc_clock")
        namespace = {"decay_u": 1.0 - params.du, "decay_v": 1.0 - params.dv, "vth": float(params.vth),
                     "refractory_steps": float(params.refractory)}
        model, update, reset, start = ((REFRACTORY_MODEL, REFRACTORY_UPDATE, REFRACTORY_RESET, REFRACTORY_SAMPLE_START)
                                       if params.refractory else (LIF_MODEL, LIF_UPDATE, LIF_RESET, SAMPLE_START))
        n_inputs = network.n_inputs
        if self.graded_input:
            source = b2.NeuronGroup(copies * n_inputs, GRADED_INPUT_MODEL, threshold=GRADED_INPUT_THRESHOLD,
                                    clock=clock, name="nc_input")
            feed = b2.NetworkOperation(self._feed_graded, clock=clock, when="start", name="nc_feed")
            extra = [feed]
        else:
            source = b2.SpikeGeneratorGroup(copies * n_inputs, np.zeros(0, dtype=np.int64), np.zeros(0) * b2.ms,
                                            clock=clock, name="nc_input")
            if self.target == "numpy":
                source.codeobj_class = spike_generator_numpy_code_object()
            extra = []
        self._source = source
        groups, synapses, spike_monitors, state_monitors = [], [], [], []
        state_names = [name for name, key in (("v", "voltages"), ("u", "currents")) if key in self.record]
        previous, previous_n = source, n_inputs
        for index, layer in enumerate(network.layers):
            n_out = layer.n_out
            group = b2.NeuronGroup(
                copies * n_out, model, threshold=LIF_THRESHOLD, reset=reset,
                clock=clock, namespace=namespace, name=f"nc_layer{index}",
            )
            group.bias = np.tile(np.asarray(layer.neuron_bias, dtype=np.float64), copies)
            group.run_regularly(update, when="groups", name=f"nc_layer{index}_update")
            group.run_regularly(start, dt=self.steps * self._dt, when="start",
                                name=f"nc_layer{index}_sample_start")
            # Presynaptic-major order: each source's synapses are contiguous in memory, so a
            # spike reads its weights and targets sequentially (much faster than row order).
            # A conv has no weight sharing here: one synapse per kernel tap and position, from
            # the same im2col indices as the reference (neurocredit.conv.synapse_lists).
            cols, rows, values = nonzero_synapses(layer)  # pre, post, weight
            if cols.size:  # an all-zero weight matrix leaves the layer without synapses
                synapse = b2.Synapses(
                    previous, group, DENSE_SYNAPSE,
                    on_pre=GRADED_ON_PRE if (index == 0 and self.graded_input) else DENSE_ON_PRE,
                    clock=clock, name=f"nc_dense{index}",
                )
                copy_index = np.arange(copies, dtype=np.int64)[:, None]
                synapse.connect(i=(copy_index * previous_n + cols[None, :]).ravel(),
                                j=(copy_index * n_out + rows[None, :]).ravel())
                synapse.w = np.tile(values, copies)
                synapses.append(synapse)
            groups.append(group)
            spike_monitors.append(b2.SpikeMonitor(group, name=f"nc_spikes{index}"))
            if state_names:
                state_monitors.append(
                    b2.StateMonitor(group, state_names, record=True, when="end", name=f"nc_states{index}")
                )
            previous, previous_n = group, n_out
        self._spike_monitors = spike_monitors
        self._state_monitors = state_monitors
        self._state_names = state_names
        self._graded_values: Optional[np.ndarray] = None
        self._net = b2.Network(source, *groups, *synapses, *spike_monitors, *state_monitors, *extra)
        self._net.store("built")
        self._runs = 0

    @property
    def signature(self) -> str:
        return code_signature(self.network, self.graded_input, self.record)

    def _feed_graded(self, t) -> None:
        """NetworkOperation: write the graded input of the current step into the input group."""
        step = int(round(float(t / self._dt)))
        window, within = divmod(step, self.steps)
        block = self._graded_values[within, window * self.copies : (window + 1) * self.copies].reshape(-1)
        values = self._source.variables["x"].get_value()
        values[: block.size] = block
        values[block.size :] = 0.0  # unused copies of the last window stay silent

    def run(self, inputs: np.ndarray) -> RunRecord:
        """Simulate ``inputs`` (steps, batch, n_inputs); returns the backend's ``RunRecord``."""
        import brian2 as b2

        inputs = np.asarray(inputs)
        steps, batch, n_inputs = inputs.shape
        if steps != self.steps or n_inputs != self.network.n_inputs:
            raise NeurocreditError(
                f"input has shape {inputs.shape}; this Brian2 network was built for "
                f"({self.steps}, batch, {self.network.n_inputs})"
            )
        windows = max(1, math.ceil(batch / self.copies))
        with brian2_preferences(self.target):
            if self._runs:
                self._net.restore("built")
            if self.graded_input:
                self._graded_values = inputs
            else:
                neurons, times = [], []
                for window in range(windows):
                    block = inputs[:, window * self.copies : (window + 1) * self.copies]
                    t, copy, j = np.nonzero(block)  # C order: sorted by step, then neuron index
                    neurons.append(copy * n_inputs + j)
                    times.append((window * steps + t).astype(np.float64) * STEP_MS)
                self._source.set_spikes(np.concatenate(neurons), np.concatenate(times) * b2.ms, sorted=True)
            self._net.run(windows * steps * self._dt, namespace={})
            self._runs += 1
        if self.target == "cython":
            ready_marker(self.signature).touch()
        return self._collect(inputs, windows)

    def _collect(self, inputs: np.ndarray, windows: int) -> RunRecord:
        steps, batch, _ = inputs.shape
        rasters = []
        for layer, monitor in zip(self.network.layers, self._spike_monitors):
            n = layer.n_out
            neuron = np.asarray(monitor.i[:], dtype=np.int64)
            global_step = np.rint(np.asarray(monitor.t_[:]) / float(self._dt)).astype(np.int64)
            window, t = np.divmod(global_step, steps)
            copy, j = np.divmod(neuron, n)
            sample = window * self.copies + copy
            keep = sample < batch  # padding copies may fire from their bias alone
            raster = np.zeros((steps, batch, n), dtype=bool)
            raster[t[keep], sample[keep], j[keep]] = True
            rasters.append(raster)
        states = {name: [] for name in self._state_names}
        for layer, monitor in zip(self.network.layers, self._state_monitors):
            n = layer.n_out
            for name in self._state_names:
                values = np.asarray(monitor.variables[name].get_value(), dtype=np.float64)
                values = values.reshape(windows, steps, self.copies, n).transpose(1, 0, 2, 3)
                states[name].append(np.ascontiguousarray(values.reshape(steps, windows * self.copies, n)[:, :batch]))
        return RunRecord.from_rasters("brian2", self.network, inputs, rasters, states.get("v"), states.get("u"),
                                      self.record)


def nonzero_synapses(layer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pre, post, weight)`` of the nonzero synapses of a Dense or Conv2d layer, sorted by
    ``pre`` then ``post`` (for a dense layer: the nonzero entries of the matrix, column-major)."""
    from neurocredit.conv import synapse_lists

    pre, post, weight = synapse_lists(layer)
    keep = weight != 0
    pre, post, weight = pre[keep], post[keep], weight[keep]
    order = np.lexsort((post, pre))
    return pre[order], post[order], weight[order]


def copies_for(network: Network, batch: int) -> int:
    """Parallel copies for ``batch`` samples: all of them if the synapses fit in
    :data:`MAX_SYNAPSES_PER_RUN`, else as few equal windows as needed."""
    per_copy = max(1, int(sum(nonzero_synapses(layer)[0].size for layer in network.layers)))
    most = max(1, MAX_SYNAPSES_PER_RUN // per_copy)
    windows = math.ceil(batch / most)
    return max(1, math.ceil(batch / windows))


def run(network: Network, inputs: np.ndarray, record=frozenset(), copies: Optional[int] = None) -> RunRecord:
    """Simulate ``inputs`` (steps, batch, n_inputs) through ``network`` in Brian2, float64.

    ``copies`` overrides the number of parallel copies (default :func:`copies_for`).
    """
    if not network.neuron.spiking:
        raise NeurocreditError("the brian2 backend runs lif networks only; use the rate backend")
    inputs = np.asarray(inputs)
    if inputs.ndim != 3 or inputs.shape[2] != network.n_inputs:
        raise NeurocreditError(
            f"brian2 backend input has shape {inputs.shape}; expected (steps, batch, {network.n_inputs})"
        )
    if not np.all(np.isfinite(inputs)):
        raise NeurocreditError("brian2 backend input contains NaN/inf values; check the encoder and the data")
    steps, batch, _ = inputs.shape
    if batch == 0:
        raise NeurocreditError("no samples to simulate")
    graded = not is_binary(inputs)
    fan_out = np.bincount(nonzero_synapses(network.layers[0])[0], minlength=network.n_inputs)
    input_events = float((np.count_nonzero(inputs, axis=(0, 1)) * fan_out).sum())
    simulation = ParallelCopies(
        network,
        copies=copies or copies_for(network, batch),
        steps=steps,
        graded_input=graded,
        record=frozenset(record),
        target=code_target(input_events, code_signature(network, graded, record)),
    )
    return simulation.run(inputs)
