"""``training.steps``: a spiking network trained on one time window and saved with another (its
encoder's), which every backend then runs."""

from __future__ import annotations

import numpy as np
import pytest

from neurocredit.config import parse_config
from neurocredit.errors import NeurocreditError
from neurocredit.train import train


def _config(encoder_steps: int, training_steps: int = 0, kind: str = "lif"):
    raw = {
        "name": "steps", "data": {"name": "digits"},
        "network": {"hidden": [16], "neuron": {"kind": kind, "du": 0.5, "dv": 0.2, "vth": 1.0},
                    **({"encoder": {"kind": "bernoulli", "steps": encoder_steps, "max_rate": 1.0, "seed": 0}}
                       if kind == "lif" else {})},
        "rule": {"name": "dfa"},
        "training": {"epochs": 1, "batch_size": 64, "seed": 0, **({"steps": training_steps} if training_steps else {})},
    }
    return parse_config(raw, "steps.yaml")


def test_training_steps_trains_on_its_window_and_saves_the_encoders():
    short = train(_config(6), progress=False, log=lambda line: None, max_batches=3)
    split = train(_config(12, training_steps=6), progress=False, log=lambda line: None, max_batches=3)
    for trained, same_window in zip(split.network.layers, short.network.layers):
        assert np.array_equal(trained.weight, same_window.weight)  # the same training, step for step
    assert split.network.encoder.steps == 12 and short.network.encoder.steps == 6
    assert split.network.provenance["training_steps"] == 6 and "training_steps" not in short.network.provenance
    assert split.record.steps == 12 and short.record.steps == 6  # the test set runs on the saved window
    assert split.history[0].validation_accuracy == short.history[0].validation_accuracy  # the rule's, on 6 steps


@pytest.mark.parametrize("steps, kind, message", [
    (-1, "lif", r"steps.yaml: training.steps must be >= 0 \(0: network.encoder.steps\), got -1"),
    (8, "rate", r"steps.yaml: training.steps is the time window of a spiking \(lif\) network; a rate network "
                r"has none: remove it"),
])
def test_bad_training_steps_are_one_clear_line(steps, kind, message):
    with pytest.raises(NeurocreditError, match=message):
        _config(10, training_steps=steps, kind=kind)
