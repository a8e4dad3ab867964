"""Commands print results, not library noise: Norse's import-time torch.jit.script FutureWarning is
silenced where Norse is imported (and nothing broader)."""

from __future__ import annotations

import json
import warnings

import numpy as np

from neurocredit.io import save_network
from neurocredit.network import EncoderSpec, LIFParameters, Network, NeuronSpec, init_layers


def test_simulate_through_norse_prints_no_warning(run_cli, tmp_path):
    layers = init_layers((64, 12, 10), np.random.default_rng(1), gain=3.0)
    network = Network(layers, NeuronSpec("lif", lif=LIFParameters(0.2, 0.1, 1.0)), EncoderSpec("bernoulli", 8, 1.0, 0),
                      provenance={"rule": "test", "data": "digits"})
    path = save_network(network, tmp_path / "snn.h5")
    result = run_cli("simulate", path, "--backend", "norse", "--limit", "3", "--json",
                     env={"PYTHONWARNINGS": "default"}, check_rc=0)
    assert json.loads(result.stdout)["backend"] == "norse"
    assert "Warning" not in result.stderr, result.stderr


def test_only_the_jit_warning_is_silenced():
    from neurocredit.sim.norse_backend import import_norse

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import_norse()
        warnings.warn("an unrelated future change", FutureWarning)
    assert [str(w.message) for w in caught] == ["an unrelated future change"]
