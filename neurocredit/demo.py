"""`make demo`: the whole path on the bundled digits data, one step after another.

Each step is a small function appended to :data:`STEPS`; it prints what it did and returns
nothing. Models go to ``models/out/``. Run it with ``python -m neurocredit.demo``.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

from neurocredit.learn.demo import step_onchip_dfa

OUT = Path("models/out")
MODELS = Path(__file__).resolve().parent.parent / "models"


def _train_and_eval(config_name: str) -> Path:
    from neurocredit.config import load_config
    from neurocredit.io import save_network
    from neurocredit.train import train

    config = load_config(MODELS / f"{config_name}.yaml")
    result = train(config, progress=True)
    path = save_network(result.network, OUT / f"{config_name}.h5")
    print(f"  saved {path}: {result.network.summary()}")
    print(f"  test accuracy {result.test_accuracy:.2%} on {result.test_samples} samples "
          f"({result.seconds:.1f} s of training)")
    return path


def step_rate_dfa() -> None:
    """Train a rate network with DFA on digits, evaluate it, save it."""
    _train_and_eval("digits-dfa-rate")


def _train_spiking_and_simulate(config_name: str) -> tuple:
    """Train ``config_name`` (a spiking config), load the saved file and run the digits test set
    through the Norse backend; prints accuracy and spikes per sample per layer."""
    from neurocredit.data import load_dataset
    from neurocredit.io import load_network
    from neurocredit.sim import simulate

    path = _train_and_eval(config_name)
    network = load_network(path)
    dataset = load_dataset("digits")
    record = simulate(network, dataset.x_test, dataset.y_test, backend="norse")
    counts = record.mean_spikes_per_sample()
    spikes = ", ".join(f"{layer.name} {count:.1f}" for layer, count in zip(network.layers, counts))
    print(f"  norse backend: accuracy {record.accuracy:.2%}, {record.steps} steps, mean spikes per sample: {spikes}")
    return network, record


def step_spiking_dfa() -> None:
    """Train a spiking (canonical LIF) network on digits with online spiking DFA, save it as
    models/out/digits-dfa-snn.h5 (the later steps report and deploy that file) and evaluate it
    through the Norse backend: accuracy and spikes per sample per layer."""
    _train_spiking_and_simulate("digits-dfa-snn")


def step_report() -> None:
    """The digits report: markdown to the terminal, a self-contained HTML page with plots to a file.

    Reports the spiking DFA model when an earlier step made it, else the rate DFA model."""
    from neurocredit.data import load_dataset
    from neurocredit.io import load_network
    from neurocredit.report import render_html, render_markdown, report_model, write_text

    model = OUT / "digits-dfa-snn.h5"
    if not model.exists():
        print(f"  {model} not found: reporting the rate model instead")
        model = OUT / "digits-dfa-rate.h5"
    network = load_network(model)
    dataset = load_dataset(str(network.provenance.get("data", "digits")))
    report, rasters, _ = report_model(network, dataset.x_test, dataset.y_test, model=str(model), data=dataset.name)
    print(render_markdown(report))
    page = OUT / "digits-report.html"
    write_text(page, render_html(report, rasters))
    print(f"  wrote {page} (open it in a browser; no network access needed)")


def step_deploy_lava() -> None:
    """Deploy the spiking digits model to Lava (Loihi 2 limits, fixed point) and verify it against
    the float model and the bit-exact emulator on the whole digits test set.

    Uses models/out/digits-dfa-snn.h5 (the spiking DFA step); without it, says so and deploys a
    LIF network converted from a ReLU network instead (models/digits-bp-relu-rate.yaml, trained,
    then converted: neurocredit.convert.converted_relu_network)."""
    from neurocredit.data import load_dataset
    from neurocredit.deploy.pipeline import deploy
    from neurocredit.io import load_network, save_network

    model = OUT / "digits-dfa-snn.h5"
    dataset = load_dataset("digits")
    if model.exists():
        network = load_network(model)
    else:
        from neurocredit.convert import converted_relu_network

        print(f"  {model} not found (the spiking DFA step did not run): deploying a LIF network converted "
              "from a ReLU network trained here instead")
        network = converted_relu_network(steps=20)
        model = save_network(network, OUT / "digits-converted-snn.h5")
    result = deploy(network, dataset.x_test, dataset.y_test, target_name="loihi2", mode="fixed_pt",
                    verify=True, progress=True)
    print(result.text(str(model)))


CONV_DEMO_EPOCHS = 2  # of the config's 8: enough for a working model in a couple of minutes
CONV_LAVA_SAMPLES = 40  # a conv network runs one sample at a time in Lava (no lanes)


def step_conv_deploy() -> None:
    """Train the small convolutional SNN (models/digits-bptt-conv-snn.yaml, BPTT, for
    CONV_DEMO_EPOCHS epochs), then deploy it to Lava (Loihi 2 limits, fixed point: Lava's Conv
    process) and verify it against the float model and the emulator (Lava on the first
    CONV_LAVA_SAMPLES test samples)."""
    from neurocredit.config import load_config
    from neurocredit.data import load_dataset
    from neurocredit.deploy.pipeline import deploy
    from neurocredit.io import save_network
    from neurocredit.train import train

    config = load_config(MODELS / "digits-bptt-conv-snn.yaml")
    result = train(config, epochs=CONV_DEMO_EPOCHS, progress=True)
    path = save_network(result.network, OUT / "digits-bptt-conv-snn.h5")
    print(f"  saved {path}: {result.network.summary()}")
    print(f"  test accuracy {result.test_accuracy:.2%} after {CONV_DEMO_EPOCHS} epochs ({result.seconds:.1f} s)")
    dataset = load_dataset("digits")
    deployed = deploy(result.network, dataset.x_test, dataset.y_test, target_name="loihi2", mode="fixed_pt",
                      verify=True, lava_limit=CONV_LAVA_SAMPLES, progress=True)
    print(deployed.text(str(path)))


@contextlib.contextmanager
def _one_torch_thread():
    """Digits-sized CHL batches (32 samples): one torch thread is faster than several, and on a
    busy machine multi-threaded torch waits for cores (minutes instead of ~30 s)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def step_rate_chl() -> None:
    """Train a rate network with equilibrium propagation (contrastive Hebbian learning with
    symmetric feedback) on digits, save it, and report both accuracies: the settled network with
    feedback (the rule's own prediction) and the saved feed-forward network (rate backend)."""
    import json

    from neurocredit.io import load_network

    with _one_torch_thread():
        path = _train_and_eval("digits-chl-rate")
    history = load_network(path).provenance.get("history") or []
    if isinstance(history, str):  # provenance lists are stored as JSON text
        history = json.loads(history)
    if history:
        print(f"  settled free phase (with feedback) validation accuracy {history[-1]['validation_accuracy']:.2%}; "
              "the saved feed-forward network's is the line above")


def step_spiking_chl() -> None:
    """Train a spiking (canonical LIF) network on digits with STDP-style CHL (pre/post spike
    traces, subtracted in the free phase and added in the nudged one), evaluate the saved file
    through Norse, then compute the weight change of one two-phase run of the trained network
    twice from the same spikes: with the torch rule and with the rule written as Brian2
    ``Synapses`` (``on_pre``/``on_post``), and print how far apart they are."""
    import torch

    from neurocredit.config import load_config
    from neurocredit.data import load_dataset
    from neurocredit.rules import rule_class
    from neurocredit.rules.chl_brian2 import agreement_on_rule

    with _one_torch_thread():
        network, _ = _train_spiking_and_simulate("digits-chl-snn")
    config = load_config(MODELS / "digits-chl-snn.yaml")
    rule = rule_class("chl", "lif")(network, config.rule_options(), config.training, network.sizes[-1])
    dataset = load_dataset("digits")
    samples = 4
    differences = agreement_on_rule(rule, torch.tensor(dataset.x_test[:samples]),
                                    torch.tensor(dataset.y_test[:samples]))
    worst = ", ".join(f"{layer.name} {difference:.1e}" for layer, difference in zip(network.layers, differences))
    print(f"  Brian2 CHL synapses vs torch, weight change from the spikes of {samples} test samples "
          f"(free and nudged phase, float64): max relative difference per layer {worst}")


def step_spiking_sigprop() -> None:
    """Train a spiking (canonical LIF) network on digits with signal propagation without surrogate
    gradients (each layer learns from its own membrane voltage; no spike is ever differentiated),
    save it as models/out/digits-sigprop-snn.h5 and evaluate the saved file through Norse."""
    network, _ = _train_spiking_and_simulate("digits-sigprop-snn")
    projection = network.extras["sigprop/signal_projection"]
    print(f"  learning-signal projection {projection.shape[0]}x{projection.shape[1]} saved with the network")


STEPS = [
    ("rate network, direct feedback alignment (digits)", step_rate_dfa),
    ("spiking LIF network, online spiking DFA (digits), evaluated in Norse", step_spiking_dfa),
    ("deploy the spiking digits model to Lava (Loihi 2, fixed point) and verify it", step_deploy_lava),
    ("convolutional spiking network (digits), BPTT, deployed to Lava (Conv + LIF) and verified", step_conv_deploy),
    ("rate network, equilibrium propagation / contrastive Hebbian learning (digits)", step_rate_chl),
    ("spiking LIF network, STDP-style CHL (digits), evaluated in Norse; the same plasticity in Brian2",
     step_spiking_chl),
    ("spiking LIF network, signal propagation without surrogate gradients (digits), evaluated in Norse",
     step_spiking_sigprop),
    ("on-chip learning: spiking DFA in the emulator of Lava's fixed-point learning engine (digits), checked "
     "against Lava", step_onchip_dfa),
    ("energy and spike-count report (digits): markdown here, HTML to models/out/digits-report.html", step_report),
]


def main() -> int:
    from neurocredit.errors import NeurocreditError

    OUT.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    for index, (title, step) in enumerate(STEPS, 1):
        print(f"\n== [{index}/{len(STEPS)}] {title}")
        try:
            step()
        except NeurocreditError as error:
            print(f"demo step failed: {error}", file=sys.stderr)
            return 2
    print(f"\ndemo finished in {time.perf_counter() - began:.0f} s; models in {OUT}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
