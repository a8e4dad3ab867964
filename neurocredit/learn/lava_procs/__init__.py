"""Lava processes of on-chip learning (their models are in ``models.py``).

* :class:`~neurocredit.learn.lava_procs.process.DfaHiddenLIF` and
  :class:`~neurocredit.learn.lava_procs.process.DfaOutputLIF` -- Lava's ``LearningLIF`` whose
  models (float and fixed point) run Lava's own LIF update and then send the DFA third factor
  as y2/y3 (:mod:`neurocredit.learn.neurons`); the output neuron also sends its error on
  ``s_out_error``;
* :class:`~neurocredit.learn.lava_procs.process.TraceReplay` -- sends recorded post spikes and
  y traces to a ``LearningDense`` (to test Lava's learning engine against ours).

They live in their own package because Lava's compiler imports every module in the folder of
a Process to find its ProcessModels (``lava/magma/compiler/compiler_graphs.py``).
"""
