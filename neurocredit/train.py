"""The training loop: config -> data -> initial Network -> rule -> trained Network.

Same config and seed give the same weights (torch and numpy are seeded; batches are shuffled
by a seeded generator). A validation split (``data.validation``, :func:`neurocredit.data.hold_out_validation`)
is held out of the training set. Each epoch prints one line: loss, train accuracy (on the first
2000 training samples), validation accuracy (both by the rule's own fast prediction), seconds of
training. The test set is measured once, at the end, on the saved ``Network`` through a
simulation backend (``rate`` or ``norse``), so it is exactly what ``neurocredit eval`` reports;
it is saved in the provenance (``test_accuracy``, ``test_samples``). ``training.augment_shift``
and ``augment_flip`` translate / mirror the training images of each batch at random
(:mod:`neurocredit.augment`), from a generator seeded by the training seed and the epoch.

With ``checkpoint_dir`` a checkpoint is written atomically after every epoch
(:mod:`neurocredit.checkpoint`); ``resume`` continues from one, bit for bit.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from neurocredit.augment import AugmentParameters, augment_images, image_dims
from neurocredit.config import Config, build_network
from neurocredit.data import Dataset, hold_out_validation, load_dataset
from neurocredit.errors import NeurocreditError
from neurocredit.network import Network
from neurocredit.record import RunRecord

AUGMENT_STREAM = 0x617567  # the augmentation generator's third seed word ("aug")


class TrainingDiverged(NeurocreditError):
    """A batch loss was not finite (the message names the epoch and the learning rate)."""


@dataclass
class EpochStats:
    """One epoch: mean batch loss, train and validation accuracy by the rule's own prediction
    (validation: NaN when ``data.validation`` is 0; train: NaN when the pass was skipped), seconds
    of training (not evaluation)."""

    epoch: int
    loss: float
    train_accuracy: float
    validation_accuracy: float
    seconds: float


@dataclass
class TrainResult:
    network: Network
    history: list[EpochStats] = field(default_factory=list)
    test_accuracy: float = float("nan")
    test_samples: int = 0
    seconds: float = 0.0
    record: Optional[RunRecord] = None  # the final test-set simulation

    @property
    def validation_accuracy(self) -> float:
        """The last epoch's validation accuracy (the rule's own prediction, over ``training.steps``
        where that is set)."""
        return self.history[-1].validation_accuracy if self.history else float("nan")


def rule_accuracy(rule, network: Network, features: np.ndarray, labels: np.ndarray, batch_size: int) -> float:
    """Accuracy of the rule's fast predictor on ``features`` (predicted ``batch_size`` at a time)."""
    import torch

    from neurocredit.readout import predict

    outputs = []
    for start in range(0, len(features), batch_size):
        chunk = torch.as_tensor(features[start : start + batch_size], device=rule.device)
        outputs.append(rule.predict(chunk).detach().cpu().numpy())
    return float(np.mean(predict(network, np.concatenate(outputs, axis=0)) == labels))


class TrainingSession:
    """One network being trained: set up from a config, advanced one epoch at a time.

    :func:`train` runs a whole session; benchmarks interleave the epochs of several sessions in
    one process so that their timings see the same machine load.
    """

    def __init__(self, config: Config, *, epochs: Optional[int] = None, seed: Optional[int] = None,
                 data: Optional[str] = None, data_dir: Optional[str] = None,
                 dataset: Optional[Dataset] = None, device: str = "cpu") -> None:
        import torch

        from neurocredit.allocator import keep_freed_memory
        from neurocredit.rules import rule_class

        keep_freed_memory()  # large per-batch tensors reuse freed memory (neurocredit.allocator)
        if epochs is not None:
            config = config.replace_training(epochs=epochs)
        if seed is not None:
            config = config.replace_training(seed=seed)
        self.config = config
        training = config.training
        torch.manual_seed(training.seed)
        if dataset is None:
            dataset = load_dataset(data or config.data.name, data_dir or config.data.data_dir, seed=training.seed)
        if dataset.x_validation is None:
            dataset = hold_out_validation(dataset, config.data.validation, config.data.validation_seed,
                                          f"{config.path or config.name}: data.validation")
        self.dataset = dataset
        cls = rule_class(config.rule.name, config.network.neuron.kind)
        options = config.rule_options()
        n_outputs = cls.output_size(options, dataset.n_classes)
        initial = build_network(config, dataset.n_features, n_outputs, training.seed, dataset.image_shape)
        initial = initial.replace(
            provenance={
                "rule": config.rule.name,
                "config": config.name,
                "seed": training.seed,
                "data": dataset.name,
                "epochs": training.epochs,
                "validation_samples": len(dataset.y_validation),
                "validation_seed": config.data.validation_seed,
                "rule_options": options.__dict__ if hasattr(options, "__dict__") else {},
            }
        )
        if training.steps:  # the rule trains on this window; network() restores the encoder's
            initial = initial.replace(encoder=dataclasses.replace(initial.encoder, steps=training.steps),
                                      provenance={**initial.provenance, "training_steps": training.steps})
        self.rule = cls(initial, options, training, dataset.n_classes, device=device)
        self.rng = np.random.default_rng(training.seed)
        self.augment = AugmentParameters(training.augment_shift, training.augment_flip)
        self.image_dims = None
        if self.augment.active:
            self.image_dims = image_dims(dataset.image_shape, dataset.n_features,
                                         f"{config.path or config.name}: training.augment_*")
        self.history: list[EpochStats] = []
        self.seconds = 0.0

    def run_epoch(self, progress: bool = True, max_batches: Optional[int] = None,
                  train_accuracy: bool = True) -> EpochStats:
        """Train one epoch (optionally only ``max_batches`` batches) and evaluate; with
        ``train_accuracy=False`` the pass over the training samples is skipped (NaN in the stats;
        the predictors draw from their own fixed generators, so training is unchanged)."""
        import torch

        training, dataset, rule = self.config.training, self.dataset, self.rule
        epoch = len(self.history)
        rule.set_epoch(epoch)
        epoch_began = time.perf_counter()
        order = self.rng.permutation(len(dataset.x_train))
        batches = range(0, len(order), training.batch_size)
        if max_batches is not None:
            batches = batches[:max_batches]
        if progress:
            from tqdm import tqdm

            batches = tqdm(batches, desc=f"epoch {epoch + 1}/{training.epochs}", unit="batch", leave=False)
        losses = []
        # its own generator per epoch, so the batch order is that of the same config unaugmented
        # and a resumed checkpoint draws the same translations
        augment_rng = np.random.default_rng([training.seed, epoch, AUGMENT_STREAM])
        for start in batches:
            index = order[start : start + training.batch_size]
            batch = augment_images(dataset.x_train[index], self.image_dims, self.augment, augment_rng)
            features = torch.as_tensor(batch, device=rule.device)
            labels = torch.as_tensor(dataset.y_train[index], device=rule.device)
            loss = rule.train_batch(features, labels)
            if not np.isfinite(loss):
                raise TrainingDiverged(
                    f"training diverged in epoch {epoch + 1} (loss {loss}); lower training.learning_rate "
                    f"(now {training.learning_rate:g}) in {self.config.path or self.config.name}"
                )
            losses.append(loss)
        seconds = time.perf_counter() - epoch_began
        self.seconds += seconds
        snapshot = rule.to_network()
        train_accuracy = float("nan") if not train_accuracy else rule_accuracy(
            rule, snapshot, dataset.x_train[:2000], dataset.y_train[:2000], training.eval_batch_size)
        validation_accuracy = float("nan")
        if len(dataset.y_validation):
            validation_accuracy = rule_accuracy(rule, snapshot, dataset.x_validation, dataset.y_validation,
                                                training.eval_batch_size)
        stats = EpochStats(epoch + 1, float(np.mean(losses)), train_accuracy, validation_accuracy, seconds)
        self.history.append(stats)
        return stats

    def network(self) -> Network:
        """The trained network with its training history in the provenance, run for
        ``network.encoder.steps`` (also when ``training.steps`` differs)."""
        network = self.rule.to_network()
        if self.config.training.steps:
            network = network.replace(encoder=dataclasses.replace(network.encoder,
                                                                  steps=self.config.network.encoder.steps))
        provenance = dict(network.provenance)
        provenance["history"] = [stats.__dict__ for stats in self.history]
        provenance["train_seconds"] = round(self.seconds, 3)
        return network.replace(provenance=provenance)


def epoch_line(stats: EpochStats, total: int) -> str:
    def percent(value: float) -> str:
        return "   n/a" if np.isnan(value) else f"{value:6.2%}"

    return (f"epoch {stats.epoch:3d}/{total}  loss {stats.loss:.4f}  train acc {percent(stats.train_accuracy)}  "
            f"val acc {percent(stats.validation_accuracy)}  {stats.seconds:6.1f} s")


def train(
    config: Config,
    *,
    epochs: Optional[int] = None,
    seed: Optional[int] = None,
    data: Optional[str] = None,
    data_dir: Optional[str] = None,
    dataset: Optional[Dataset] = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    final_backend: Optional[str] = None,
    device: str = "cpu",
    checkpoint_dir: Optional[str | os.PathLike] = None,
    resume: Optional[str | os.PathLike] = None,
    on_epoch: Optional[Callable[["TrainingSession", EpochStats], Optional[bool]]] = None,
    max_batches: Optional[int] = None,
    train_accuracy: bool = True,
) -> TrainResult:
    """Train the network ``config`` describes; returns the trained Network and its history.

    ``epochs``/``seed``/``data``/``data_dir`` override the config. ``dataset`` skips loading.
    ``checkpoint_dir``: write a checkpoint there after every epoch. ``resume``: continue from the
    checkpoint in that folder (and keep writing checkpoints there unless ``checkpoint_dir``
    names another). A diverging loss raises :class:`NeurocreditError`; the last good
    checkpoint stays. ``on_epoch(session, stats)`` is called after each epoch (and its
    checkpoint); returning ``False`` ends training there (early stopping). ``max_batches`` limits every epoch to its first batches (tests).
    ``train_accuracy=False`` skips the per-epoch pass over the training samples (comparisons that
    read only validation accuracy; the weights are the same either way)."""
    from neurocredit.checkpoint import load_checkpoint, restore_session, save_checkpoint
    from neurocredit.sim import simulate

    session = TrainingSession(config, epochs=epochs, seed=seed, data=data, data_dir=data_dir,
                              dataset=dataset, device=device)
    if resume is not None:
        restore_session(session, load_checkpoint(resume))
        checkpoint_dir = checkpoint_dir if checkpoint_dir is not None else resume
    total = session.config.training.epochs
    for _ in range(len(session.history), total):
        try:
            stats = session.run_epoch(progress=progress, max_batches=max_batches, train_accuracy=train_accuracy)
        except TrainingDiverged as error:
            if checkpoint_dir is None:
                raise
            kept = (f"the last good checkpoint (epoch {len(session.history)}) is kept in {checkpoint_dir}; "
                    f"resume with --resume {checkpoint_dir}") if session.history else "no epoch finished"
            raise NeurocreditError(f"{error}; {kept}") from None
        if checkpoint_dir is not None:
            save_checkpoint(session, checkpoint_dir)
        log(epoch_line(stats, total))
        if on_epoch is not None and on_epoch(session, stats) is False:
            break
    network = session.network()
    if max_batches is not None:
        network = network.replace(provenance={**network.provenance, "max_batches": int(max_batches)})
    record = simulate(network, session.dataset.x_test, session.dataset.y_test, backend=final_backend)
    provenance = dict(network.provenance)
    provenance.update(test_accuracy=float(record.accuracy), test_samples=int(record.samples),
                      test_backend=record.backend)
    return TrainResult(network=network.replace(provenance=provenance), history=session.history,
                       test_accuracy=float(record.accuracy), test_samples=record.samples, seconds=session.seconds,
                       record=record)
