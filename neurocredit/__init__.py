"""neurocredit: local credit assignment (DFA, sigprop, CHL) for rate and spiking networks,
simulated in Norse and Brian2, deployed to Lava, with spike/operation/energy reports.

The small public API (heavy dependencies are imported lazily)::

    from neurocredit import load_config, train, evaluate, save_network, load_network
"""

__version__ = "0.1.0"

from neurocredit.errors import NeurocreditError  # noqa: E402
from neurocredit.network import Network  # noqa: E402
from neurocredit.record import RunRecord  # noqa: E402


def __getattr__(name):
    # Lazy re-exports keep `import neurocredit` (and `neurocredit --help`) fast.
    if name in ("save_network", "load_network"):
        from neurocredit import io

        return getattr(io, name)
    if name in ("load_config",):
        from neurocredit import config

        return getattr(config, name)
    if name in ("train",):
        from neurocredit import train as train_module

        return train_module.train
    if name in ("evaluate", "simulate"):
        from neurocredit import sim

        return sim.simulate
    if name in ("load_dataset",):
        from neurocredit import data

        return data.load_dataset
    raise AttributeError(name)
