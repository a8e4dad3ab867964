"""Write ``snntorch_synaptic.nir`` (snnTorch 1.0.0's own exporter) and ``snntorch_synaptic_spikes.npz``
(inputs and the spikes snnTorch computes for them, per layer), the stored snnTorch case of
``tests/test_nir_snntorch.py`` for machines without snnTorch. Run from the repository root:

    python tests/data/nir/make_snntorch_graph.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # tests/, for the helpers of test_nir_snntorch


def main() -> None:
    import nir

    from test_nir_snntorch import export, snntorch_model, snntorch_spikes

    model = snntorch_model(0, 0.5, 0.8)
    graph = export(model)
    nir.write(HERE / "snntorch_synaptic.nir", graph)
    inputs = np.random.default_rng(0).uniform(size=(40, 6, 10)) < 0.3
    first, second = snntorch_spikes(model, inputs.astype(np.float64))
    np.savez_compressed(HERE / "snntorch_synaptic_spikes.npz", inputs=inputs, layer1=first, layer2=second)
    print(f"wrote {HERE / 'snntorch_synaptic.nir'}: {int(first.sum())} + {int(second.sum())} snnTorch spikes")


if __name__ == "__main__":
    main()
