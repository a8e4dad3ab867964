"""Trials: one config (with overrides) x one seed, trained, evaluated and measured; run in
process one after another (``local``) or as Ray Tune trials (``ray``).

A :class:`Trial` is plain data (picklable, JSON-able): the config file, dotted overrides applied
to its YAML before validation (``{"training.learning_rate": 0.002}``), the seed and run
lengths. :func:`run_trial` trains it (:func:`neurocredit.train.train`, checkpointing when asked)
and returns a :class:`TrialResult` dict::

    label, config, rule, kind, seed, overrides, epochs, stopped_early,
    history            [{epoch, loss, train_accuracy, validation_accuracy, seconds}, ...]; train_accuracy
                       is None: trials skip that per-epoch pass over the training set (the table
                       reads validation accuracy; the weights are the same either way)
    validation_accuracy  last epoch's, the rule's own prediction on the validation split
    test_accuracy        the saved network through the simulation backend, measured once
    seconds_per_epoch    mean training seconds per epoch (evaluation excluded)
    weights_sha256       SHA-256 of the trained weights and biases (float32 bytes, layer order)
    peak_rss_mib         peak resident memory above the value before the rule was built, sampled
                         every 5 ms during training and its per-epoch evaluation (not the final test)
    spikes_per_inference / spikes_per_training_sample   (None for rate networks)
    energy_per_inference_j / energy_per_training_sample_j   {target: J or None} (estimates,
                         neurocredit.energy; training: the rule's cost model x this network's counts)
    memory_in_steps      lif: {steps: [T, 2T], batch_peak_mib: [...]}: one training batch's peak
                         resident memory at T and 2T encoder steps (batch_memory_in_steps); None for rate
    wall_seconds         the whole trial in this process: set-up, training, evaluation, measurements

Ray (``pip install 'neurocredit[sweep]'``) is imported only by :func:`run_ray`. Each Ray trial
reports after every epoch (``epoch``, ``loss``, ``validation_accuracy``) with its checkpoint
folder (:mod:`neurocredit.checkpoint`); a trial whose worker dies is restarted by Ray
(``FailureConfig(max_failures)``) and resumes from that checkpoint, bit for bit. Ray results
add ``ray_workers``: ``[{pid, node, resumed_at_epoch}]``, one entry per (re)start.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from neurocredit.errors import NeurocreditError

RAY_INSTALL = "Ray is not installed; install it with: pip install 'neurocredit[sweep]'"
RSS_INTERVAL_S = 0.005  # sampling period of the peak-memory monitor


@dataclass(frozen=True)
class Trial:
    """One training run: ``config`` (path or ready name) with dotted ``overrides``, ``seed``."""

    label: str
    config: str
    seed: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)
    epochs: Optional[int] = None
    data: Optional[str] = None
    max_batches: Optional[int] = None
    targets: tuple[str, ...] = ("loihi2", "cpu")
    memory_in_steps: bool = True  # lif: measure one batch's memory at T and 2T steps

    @property
    def name(self) -> str:
        return f"{self.label} seed {self.seed}"


# --------------------------------------------------------------------------- configs


def set_dotted(raw: dict, key: str, value: Any, where: str) -> None:
    """``raw['training']['learning_rate'] = value`` for ``key = 'training.learning_rate'``."""
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise NeurocreditError(f"{where}: cannot set {key!r}: {part!r} is not a mapping")
        node = child
    node[parts[-1]] = value


def load_raw(config: str) -> tuple[dict, str]:
    """The YAML mapping of ``config`` (a path or a ready config's name) and its path."""
    from neurocredit.config import load_config
    from neurocredit.options import read_yaml

    path = load_config(config).path  # resolves ready names and reports missing/malformed files
    return read_yaml(path), str(path)


def trial_config(trial: Trial):
    """The validated :class:`~neurocredit.config.Config` of ``trial`` (overrides applied)."""
    from neurocredit.config import parse_config

    raw, path = load_raw(trial.config)
    for key, value in trial.overrides.items():
        set_dotted(raw, key, value, path)
    if trial.data is not None:
        set_dotted(raw, "data.name", trial.data, path)
    overridden = ", ".join(f"{key}={value!r}" for key, value in trial.overrides.items())
    config = parse_config(raw, path if not overridden else f"{path} (with {overridden})")
    config = dataclasses.replace(config, path=Path(path))
    changes = {"seed": trial.seed}
    if trial.epochs is not None:
        changes["epochs"] = trial.epochs
    return config.replace_training(**changes)


# --------------------------------------------------------------------------- measuring


def _rss_bytes() -> int:
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


_GC_FROZEN: list[bool] = []


def release_free_memory() -> None:
    """Hand memory freed by earlier work back to the OS (glibc ``malloc_trim``), so that the
    resident size counts what the next piece of work allocates even where it reuses freed memory.

    The first call in a process also moves every object alive after its collection (imported
    modules, mostly) out of the cyclic collector's reach (``gc.freeze``): a full collection of a
    heap holding torch, Norse and matplotlib took ~0.8 s here, three times per spiking trial;
    after the freeze it takes milliseconds. Those objects are still freed by reference counting;
    only cycles among them would stay."""
    import ctypes
    import gc

    gc.collect()
    if not _GC_FROZEN:
        gc.freeze()
        _GC_FROZEN.append(True)
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the measurement may undercount reused memory
        pass


class PeakMemory:
    """Peak resident set size above the value at ``start`` (after :func:`release_free_memory`),
    sampled every ``RSS_INTERVAL_S`` by a thread (Linux ``/proc/self/statm``; None elsewhere)."""

    def __init__(self) -> None:
        self.available = os.path.exists("/proc/self/statm")
        self.base = self.peak = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "PeakMemory":
        if self.available:
            release_free_memory()
            self.base = self.peak = _rss_bytes()
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(RSS_INTERVAL_S):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.peak = max(self.peak, _rss_bytes())

    @property
    def mib(self) -> Optional[float]:
        return (self.peak - self.base) / 2**20 if self.available else None


def measurements(network, record, targets: Sequence[str]) -> dict[str, Any]:
    """Spikes and energy per inference and per training sample from a test-set ``record``."""
    from neurocredit.report import build_report, select_targets

    report = build_report(network, record, select_targets(list(targets)))
    rule = network.provenance.get("rule")
    training = report["training"]["rules"].get(rule, {})
    spikes = report["totals"]["spikes_per_sample"]
    passes = training.get("forward_passes")
    inference_energy = {name: entry["energy_per_sample_j"] for name, entry in report["targets"].items()}
    return {
        "spikes_per_inference": spikes,
        "spikes_per_training_sample": None if spikes is None or passes is None else spikes * passes,
        "energy_per_inference_j": {name: inference_energy.get(name) for name in targets},
        "energy_per_training_sample_j": {name: training.get("energy_per_sample_j", {}).get(name)
                                         for name in targets},
        "training_cost_formula": training.get("formula"),
    }


# --------------------------------------------------------------------------- one trial


_WARMED: set[tuple[str, str]] = set()


def _warm_up(config, dataset) -> None:
    """Pay one-time costs before memory is measured: a throwaway rule of the same kind trains one
    batch, once per rule and neuron kind and process (torch's first optimizer alone imports and
    initialises about 150 MiB, its first kernels a further ~15 MiB, measured with torch 2.14);
    otherwise the first trial of a process would be charged for them."""
    import torch

    from neurocredit.train import TrainingSession

    key = (config.rule.name, config.network.neuron.kind)
    if key in _WARMED:
        return
    state = torch.get_rng_state()
    session = TrainingSession(config, dataset=dataset)
    batch = config.training.batch_size
    session.rule.train_batch(torch.as_tensor(session.dataset.x_train[:batch]),
                             torch.as_tensor(session.dataset.y_train[:batch]))
    session.rule.predict(torch.as_tensor(session.dataset.x_train[:batch]))
    torch.set_rng_state(state)
    _WARMED.add(key)


def batch_memory_in_steps(config, dataset, factors: Sequence[int] = (1, 2)) -> Optional[dict[str, Any]]:
    """Peak resident memory (MiB) of one training batch with the encoder's T x each of ``factors``
    steps (a throwaway rule, one warm-up batch first): how a rule's training memory grows with T.
    None for rate networks."""
    import torch

    from neurocredit.train import TrainingSession

    if config.network.neuron.kind == "rate":
        return None
    steps = config.network.encoder.steps
    batch = config.training.batch_size
    peaks = []
    state = torch.get_rng_state()
    for factor in factors:
        encoder = dataclasses.replace(config.network.encoder, steps=steps * factor)
        changed = dataclasses.replace(config, network=dataclasses.replace(config.network, encoder=encoder))
        session = TrainingSession(changed, dataset=dataset)
        features = torch.as_tensor(session.dataset.x_train[:batch])
        labels = torch.as_tensor(session.dataset.y_train[:batch])
        session.rule.train_batch(features, labels)
        with PeakMemory() as memory:
            session.rule.train_batch(features, labels)
        peaks.append(memory.mib)
        del session
    torch.set_rng_state(state)
    return {"steps": [steps * factor for factor in factors], "batch_peak_mib": peaks}


def run_trial(trial: Trial, *, checkpoint_dir: Optional[str] = None, resume: Optional[str] = None,
              on_epoch: Optional[Callable[[Any, Any], None]] = None, dataset=None) -> dict[str, Any]:
    """Train, evaluate and measure ``trial`` (module doc); ``on_epoch(session, stats)`` after
    every epoch and its checkpoint; raising :class:`StopTrial` there ends training early (the
    trial is still evaluated)."""
    import h5py  # noqa: F401 - imported before memory is measured
    import neurocredit.checkpoint  # noqa: F401
    import neurocredit.io  # noqa: F401
    import neurocredit.readout  # noqa: F401
    import numpy as np

    from neurocredit.data import load_dataset
    from neurocredit.rules import rule_class
    from neurocredit.train import train

    began = time.perf_counter()
    config = trial_config(trial)
    if dataset is None:  # loaded (and the rule's modules imported) before the memory monitor starts
        dataset = load_dataset(config.data.name, config.data.data_dir, seed=config.training.seed)
    rule_class(config.rule.name, config.network.neuron.kind)
    _warm_up(config, dataset)
    stopped = {"early": False}
    peak = {"mib": None}

    def hook(session, stats):
        peak["mib"] = memory.mib  # training and its per-epoch evaluation, not the final test run
        if on_epoch is not None:
            try:
                on_epoch(session, stats)
            except StopTrial:
                stopped["early"] = session.config.training.epochs > stats.epoch
                return False
        return True

    with PeakMemory() as memory:
        result = train(config, dataset=dataset, progress=False, log=lambda line: None, checkpoint_dir=checkpoint_dir,
                       resume=resume, on_epoch=hook, max_batches=trial.max_batches, train_accuracy=False)
    network = result.network
    measured = measurements(network, result.record, trial.targets)
    memory_in_t = batch_memory_in_steps(config, dataset) if trial.memory_in_steps else None
    digest = hashlib.sha256()
    for array in (*network.weights, *network.biases):
        digest.update(np.ascontiguousarray(array).tobytes())
    history = [{key: None if isinstance(value, float) and value != value else value  # NaN -> None (JSON)
                for key, value in dataclasses.asdict(stats).items()} for stats in result.history]
    seconds = [entry["seconds"] for entry in history]
    return {
        "label": trial.label,
        "config": str(config.path),
        "rule": config.rule.name,
        "kind": config.network.neuron.kind,
        "seed": trial.seed,
        "overrides": dict(trial.overrides),
        "epochs": len(history),
        "stopped_early": stopped["early"],
        "history": history,
        "validation_accuracy": result.validation_accuracy,
        "test_accuracy": result.test_accuracy,
        "test_samples": result.test_samples,
        "seconds_per_epoch": sum(seconds) / len(seconds) if seconds else None,
        "peak_rss_mib": peak["mib"],
        "weights_sha256": digest.hexdigest(),
        "memory_in_steps": memory_in_t,
        **measured,
        "wall_seconds": time.perf_counter() - began,
    }


class StopTrial(Exception):
    """Raised by an ``on_epoch`` hook to end a trial early (a scheduler's decision)."""


# --------------------------------------------------------------------------- runners


def run_local(trials: Sequence[Trial], *, log: Callable[[str], None] = print,
              on_epoch: Optional[Callable[[Trial, Any, Any], None]] = None) -> list[dict[str, Any]]:
    """Every trial in this process, one after another (no Ray). ``on_epoch(trial, session, stats)``."""
    results = []
    for index, trial in enumerate(trials):
        began = time.perf_counter()
        hook = None if on_epoch is None else (lambda session, stats, trial=trial: on_epoch(trial, session, stats))
        result = run_trial(trial, on_epoch=hook)
        results.append(result)
        log(f"[{index + 1}/{len(trials)}] {trial.name}: validation {result['validation_accuracy']:.2%}, "
            f"test {result['test_accuracy']:.2%}, {time.perf_counter() - began:.1f} s")
    return results


def import_ray():
    """``ray`` and ``ray.tune``, or the one-line install hint as a NeurocreditError."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise NeurocreditError(RAY_INSTALL) from None
    return ray, tune


def ray_trainable(params: dict, trials: Sequence[Trial]) -> None:
    """The Ray Tune function trainable: trains ``trials[params['index']]``, reporting each epoch
    with its checkpoint; resumes from Ray's checkpoint after a restart."""
    import shutil
    import tempfile

    from ray import tune

    import ray
    import torch

    torch.set_num_threads(1)
    trial = trials[params["index"]]
    if params.get("overrides"):
        trial = dataclasses.replace(trial, overrides={**trial.overrides, **params["overrides"]})
    workdir = tempfile.mkdtemp(prefix="neurocredit-trial-")
    resume = None
    restored = tune.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as folder:
            shutil.copytree(folder, workdir, dirs_exist_ok=True)
        resume = workdir

    # the workers this trial ran on, kept in its checkpoint folder so that restarts add to it
    workers_file = Path(workdir) / "ray_workers.json"
    workers = json.loads(workers_file.read_text()) if workers_file.is_file() else []
    workers.append({"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(),
                    "resumed_at_epoch": None})
    workers_file.write_text(json.dumps(workers))
    where = {"pid": os.getpid(), "node": workers[-1]["node"]}

    def report(session, stats):
        checkpoint = tune.Checkpoint.from_directory(workdir)
        tune.report({"epoch": stats.epoch, "loss": stats.loss, "validation_accuracy": stats.validation_accuracy,
                     "resumed": resume is not None, **where}, checkpoint=checkpoint)

    try:
        if resume is not None:
            from neurocredit.checkpoint import load_checkpoint

            workers[-1]["resumed_at_epoch"] = load_checkpoint(resume)["epoch"]
            workers_file.write_text(json.dumps(workers))
        result = run_trial(trial, checkpoint_dir=workdir, resume=resume, on_epoch=report)
        result["ray_workers"] = workers
        tune.report({"epoch": result["epochs"], "validation_accuracy": result["validation_accuracy"],
                     "result_json": json.dumps(result, default=_json_default), "resumed": resume is not None,
                     **where})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def ray_init(address: Optional[str], num_cpus: Optional[int] = None) -> str:
    """Connect to the cluster at ``address`` (or ``RAY_ADDRESS``), or start an embedded local
    instance; returns a description. Workers get this process's ``PYTHONPATH``."""
    ray, _ = import_ray()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no progress tables on our stdout
    address = address or os.environ.get("RAY_ADDRESS") or None
    env = {"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}} if os.environ.get("PYTHONPATH") else None
    if ray.is_initialized():
        return "Ray (already initialised)"
    kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False, runtime_env=env)
    if address:
        ray.init(address=address, **kwargs)
        return f"Ray cluster at {address}"
    # "local": a new instance even when another Ray runs on this machine (ray.init() would join it)
    ray.init(address="local", num_cpus=num_cpus, **kwargs)
    return f"embedded Ray on this machine ({int(ray.cluster_resources().get('CPU', 0))} CPUs)"


def run_ray(trials: Sequence[Trial], *, address: Optional[str] = None, storage: Optional[str] = None,
            name: str = "neurocredit", max_failures: int = 2, num_cpus: Optional[int] = None,
            param_space: Optional[dict] = None, scheduler=None, metric: Optional[str] = None,
            num_samples: int = 1, log: Callable[[str], None] = print, shutdown: bool = True) -> list[dict[str, Any]]:
    """Every trial as a Ray Tune trial (one CPU each); returns the results in trial order.

    ``storage``: where Tune keeps results and checkpoints (on a cluster: a path every node
    shares). ``param_space``/``scheduler``/``metric``/``num_samples`` are for sweeps
    (:mod:`neurocredit.sweep`); by default one Tune trial per entry of ``trials``.
    """
    ray, tune = import_ray()
    where = ray_init(address, num_cpus)
    log(f"running {len(trials)} trial(s) on {where}")
    storage = str(Path(storage or Path.cwd() / "ray_results").resolve())
    space = param_space if param_space is not None else {"index": tune.grid_search(list(range(len(trials))))}
    tune_config = tune.TuneConfig(num_samples=num_samples, scheduler=scheduler, reuse_actors=True,
                                  metric=metric if scheduler is not None else None,
                                  mode="max" if scheduler is not None else None)
    run_config = tune.RunConfig(name=name, storage_path=storage, verbose=0,
                                failure_config=tune.FailureConfig(max_failures=max_failures),
                                checkpoint_config=tune.CheckpointConfig(num_to_keep=2))
    trainable = tune.with_resources(tune.with_parameters(ray_trainable, trials=list(trials)), {"cpu": 1})
    try:
        grid = tune.Tuner(trainable, param_space=space, tune_config=tune_config, run_config=run_config).fit()
        results = []
        for index in range(len(grid)):
            entry = grid[index]
            if entry.error is not None:
                lines = [line.strip() for line in str(entry.error).splitlines() if line.strip()]
                raise NeurocreditError(f"Ray trial {entry.config} failed: {lines[-1][:300] if lines else entry.error}")
            metrics = entry.metrics or {}
            if "result_json" in metrics:
                result = json.loads(metrics["result_json"])
            else:  # stopped by the scheduler before its last epoch: only its reported metrics
                result = {"label": trials[entry.config["index"]].label, "stopped_early": True,
                          "validation_accuracy": metrics.get("validation_accuracy"), "epochs": metrics.get("epoch")}
            result["ray_config"] = {key: value for key, value in entry.config.items()}
            results.append(result)
    finally:
        if shutdown and not address:
            ray.shutdown()
    if param_space is None:
        results.sort(key=lambda result: result["ray_config"]["index"])
    return results
