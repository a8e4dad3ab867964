"""Demo step for `make demo` (wired into :data:`neurocredit.demo.STEPS` by the lead)."""

from __future__ import annotations

from pathlib import Path

OUT = Path("models/out")
CONFIG = Path(__file__).resolve().parent.parent.parent / "models" / "digits-dfa-onchip.yaml"


def step_onchip_dfa() -> None:
    """On-chip spiking DFA on digits: a 64-100-10 LIF network with random weights learns one
    epoch in the emulator of Lava's fixed-point learning engine (saved as
    models/out/digits-dfa-onchip.h5); then the emulator and Lava itself learn the same two
    samples from the same start and their integer weights are compared."""
    from neurocredit.config import build_network
    from neurocredit.data import load_dataset
    from neurocredit.io import save_network
    from neurocredit.learn.session import learn_on_chip, load_onchip_config

    config, options, _ = load_onchip_config(CONFIG)
    dataset = load_dataset("digits")
    network = build_network(config, dataset.n_features, dataset.n_classes, seed=config.training.seed)
    network = network.replace(provenance={**network.provenance, "data": dataset.name})
    report = learn_on_chip(network, dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test, options,
                           rule="dfa", backend="emulator", fixed=True, epochs=1, progress=True)
    path = save_network(report.network, OUT / "digits-dfa-onchip.h5")
    print("  " + report.text().replace("\n", "\n  "))
    print(f"  saved {path}")
    check = learn_on_chip(network, dataset.x_train, dataset.y_train, dataset.x_test[:50], dataset.y_test[:50],
                          options, rule="dfa", backend="both", fixed=True, epochs=1, limit=2)
    print(f"  emulator vs Lava fixed point after 2 samples: {check.agreement['equal_weights']} weights equal "
          f"(emulator {check.seconds['emulator']:.2f} s, Lava {check.seconds['lava']:.2f} s)")
