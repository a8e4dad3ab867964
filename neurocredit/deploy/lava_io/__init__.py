"""Three small Lava processes that move data between Lava and files instead of Lava Vars.

Lava's own ``RingBuffer`` source and sink keep their data in Vars, and ``Var.get``/``Var.set``
move one value per message through the runtime service (about 50 us per value on the
development machine: minutes for one test set's spike rasters). These processes read their
input from, and write their output to, memory-mapped files that the caller creates, so the
data never passes through the runtime. They do nothing else: the neurons and synapses of a
deployed network are Lava's own ``LIF``/``LIFReset`` and ``Dense``.

* :class:`~neurocredit.deploy.lava_io.process.SpikeFileSource` -- sends row ``t`` of a
  ``(steps, n)`` file at time step ``t + 1`` (like ``lava.proc.io.source.RingBuffer``);
* :class:`~neurocredit.deploy.lava_io.process.SpikeFileSink` -- writes what arrives at time
  step ``t + 1`` to row ``t`` (like ``lava.proc.io.sink.RingBuffer``);
* :class:`~neurocredit.deploy.lava_io.process.VarFileProbe` -- reads a Var through a RefPort
  after every step (post-management phase, like ``lava.proc.io.sink.Read``) into row ``t``.

They live in their own package because Lava's compiler imports every module in the folder of
a Process to find its ProcessModels (``lava/magma/compiler/compiler_graphs.py``).
"""
