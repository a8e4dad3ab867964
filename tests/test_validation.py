"""The validation split: held out of the training set, disjoint from train and test, stratified,
seeded; the per-epoch line reports it and the test set is measured once, at the end."""

from __future__ import annotations

import numpy as np
import pytest

from neurocredit.data import hold_out_validation, load_digits, make_synthetic, validation_count, validation_split
from neurocredit.errors import NeurocreditError


def _rows(features):
    return {row.tobytes() for row in features}


@pytest.mark.parametrize("amount", [0.1, 0.25, 97])
def test_split_is_disjoint_from_train_and_test_and_covers_the_training_set(amount):
    digits = load_digits()
    split = hold_out_validation(digits, amount, seed=3)
    expected = int(round(amount * len(digits.y_train))) if amount < 1 else amount
    assert len(split.y_validation) == expected
    assert len(split.y_train) + len(split.y_validation) == len(digits.y_train)
    train, validation, test = _rows(split.x_train), _rows(split.x_validation), _rows(split.x_test)
    assert not train & validation and not validation & test and not train & test
    assert train | validation == _rows(digits.x_train)
    assert np.array_equal(split.x_test, digits.x_test)


def test_split_is_stratified():
    labels = np.repeat(np.arange(4), [500, 300, 150, 50])  # unbalanced classes
    for count in (10, 99, 100, 333):
        train, validation = validation_split(labels, count, seed=0)
        assert len(validation) == count
        share = np.bincount(labels[validation], minlength=4)
        assert np.all(np.abs(share - count * np.bincount(labels) / len(labels)) < 1.0)
        assert np.intersect1d(train, validation).size == 0 and len(train) + count == len(labels)


def test_split_is_seeded():
    labels = make_synthetic(n_train=300).y_train
    same = [validation_split(labels, 30, seed=5)[1] for _ in range(2)]
    other = validation_split(labels, 30, seed=6)[1]
    assert np.array_equal(*same)
    assert not np.array_equal(same[0], other)


def test_zero_means_no_validation_set_and_bad_amounts_are_clear_errors():
    digits = load_digits()
    split = hold_out_validation(digits, 0)
    assert len(split.y_validation) == 0 and np.array_equal(split.x_train, digits.x_train)
    for amount, message in [(-0.1, "fraction in"), (12.5, "whole number"), (len(digits.y_train), "at least one")]:
        with pytest.raises(NeurocreditError, match=message):
            validation_count(amount, len(digits.y_train))


def test_config_key_and_default(tmp_path):
    from neurocredit.config import load_config

    assert load_config("digits-dfa-rate").data.validation == 0.1
    path = tmp_path / "x.yaml"
    path.write_text("name: x\ndata: {name: digits, validation: 1.5}\nnetwork: {hidden: [8]}\nrule: {name: dfa}\ntraining: {epochs: 1}\n")
    with pytest.raises(NeurocreditError, match=r"x.yaml: data.validation must be a fraction"):
        load_config(path)


def test_training_reports_validation_per_epoch_and_test_once():
    from neurocredit.config import load_config
    from neurocredit.train import train

    lines = []
    digits = load_digits()
    result = train(load_config("digits-dfa-rate"), epochs=1, dataset=digits, progress=False, log=lines.append)
    assert "val acc" in lines[0] and "test" not in lines[0]
    assert 0 < result.history[0].validation_accuracy <= 1
    provenance = result.network.provenance
    assert provenance["test_accuracy"] == result.test_accuracy and provenance["test_samples"] == len(digits.y_test)
    assert provenance["validation_samples"] == int(round(0.1 * len(digits.y_train)))
