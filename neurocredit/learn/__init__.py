"""On-chip learning: our rules as Lava learning rules, and the emulator of Lava's learning engine.

* :mod:`~neurocredit.learn.engine` -- Lava 0.10's learning engine (``LearningDense`` with a
  ``Loihi3FLearningRule``: traces, epochs, product series, stochastic rounding, 8-bit weights)
  re-implemented in numpy; fixed point equals Lava's ``bit_approximate_loihi`` model bit for
  bit, floating point equals Lava's float model. Rules are parsed by Lava's own parser.
* :mod:`~neurocredit.learn.neurons` -- what our learning-LIF neurons send as y traces (the DFA
  third factor), shared by the Lava models and the emulator.
* :mod:`~neurocredit.learn.lava_procs` -- the Lava processes/models (``DfaHiddenLIF``,
  ``DfaOutputLIF``, ``TraceReplay``), in a package of their own (Lava's compiler imports
  every module of a Process's folder).
* :mod:`~neurocredit.learn.onchip` -- on-chip spiking DFA: the plan (what Lava is given), the
  emulator network, encoding and evaluation; :mod:`~neurocredit.learn.lava_run` -- the same in
  Lava; :mod:`~neurocredit.learn.session` -- ``neurocredit learn``.

Rules as Lava expresses them (3F: the post neuron supplies y1..y3; ``t_epoch`` = 1):

* spiking DFA, every layer: ``dw = -2^k*u0*x1*y2 + 2^k*u0*x1*y3`` with y2/y3 the positive and
  negative parts of the neuron's delta (output: its spike-trace error; hidden: ``(B e) f'(v)``,
  B e arriving as graded spikes through a fixed ``Dense(B)``).
* STDP-style CHL: ``dt = 2^a*(x0*y1*y2 - x0*y1*y3 + y0*x1*y2 - y0*x1*y3) - uK*t``,
  ``dw = uK*t`` -- the tag accumulates pre/post trace products with the phase sign carried by
  the post neuron (y2 in the nudged phase, y3 in the free phase) and is moved to the weight
  at the end of each sample (every 2**K steps); output spikes reach hidden layers through a
  fixed random ``Dense(G)``. It runs (emulator = Lava bit for bit) but does not yet learn
  digits well: its settings (nudge, tag exponents, feedback) are still open.

Not expressible on the engine: Adam, batches > 1, f'(v) inside the synapse (the neuron computes
it), decimal learning rates (powers of two, exponent -7..8), changing a rule while running.
"""
