"""Model + rule configs (YAML) and their validation.

A config file (see ``models/*.yaml``)::

    name: digits-dfa-rate
    description: ...
    data: {name: digits}                      # digits | fashion-mnist | mnist | synthetic; data_dir optional
                                              # validation: 0.1 (fraction < 1, or a count; 0: none)
    network:
      hidden: [256]                           # hidden layer widths; input and output come from the data
      # or, instead of hidden, typed layers (the dense output layer is added from the data):
      # layers: [{conv: {channels: 8, kernel: 3, stride: 1, padding: 1}}, {pool: 2}, {dense: 100}]
      #   conv on the data's image shape (1, H, W); a pool is fused into the next layer
      neuron: {kind: rate, activation: tanh}  # or {kind: lif, du: 0.2, dv: 0.1, vth: 1.0}
      encoder: {kind: bernoulli, steps: 25, max_rate: 1.0, seed: 0}   # lif only
      readout: argmax                         # or nearest_prototype (set by rules that need it)
      init_gain: 1.0                          # weights ~ U(+-gain/sqrt(n_in))
    rule: {name: dfa, ...rule options...}     # options: the rule's options dataclass (neurocredit.options)
    training: {epochs: 20, batch_size: 32, optimizer: adam, learning_rate: 0.001, seed: 0, ...}

Unknown keys and wrong types are one :class:`NeurocreditError` naming the file and the key.
Loading a config imports neither torch nor a rule implementation (only the rules' torch-free
spec modules, :mod:`neurocredit.rules`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from neurocredit.errors import NeurocreditError
from neurocredit.network import (
    EncoderSpec,
    LIFParameters,
    Network,
    NeuronSpec,
    ReadoutSpec,
    init_layers,
    init_typed_layers,
)
from neurocredit.options import INTERNAL, build_dataclass, read_yaml, rule_options


@dataclass(frozen=True)
class DataConfig:
    """name; data_dir; validation: held out of the training set, stratified (a fraction in
    [0, 1) or a whole count >= 1; 0: no validation set); validation_seed: seeds that split
    (the same for every training seed, so contenders and seeds share one validation set)."""

    name: str = "digits"
    data_dir: Optional[str] = None
    validation: float = 0.1
    validation_seed: int = 0


@dataclass(frozen=True)
class NeuronConfig:
    kind: str = "rate"
    activation: str = "tanh"
    du: float = 0.2
    dv: float = 0.1
    vth: float = 1.0


@dataclass(frozen=True)
class NetworkConfig:
    hidden: list[int] = field(default_factory=lambda: [100])
    layers: list[dict] = field(default_factory=list)
    neuron: NeuronConfig = field(default_factory=NeuronConfig)
    encoder: EncoderSpec = field(default_factory=EncoderSpec)
    readout: str = "argmax"
    init_gain: float = 1.0


@dataclass(frozen=True)
class TrainingConfig:
    """epochs; batch_size; optimizer adam|sgd; learning_rate; momentum (sgd); weight_decay;
    lr_schedule constant|cosine|step (step: x0.1 at 50 % and 75 % of the epochs); seed;
    eval_batch_size (for the per-epoch test accuracy); augment_shift (pixels), augment_flip:
    random translations / left-right flips of the training images (:mod:`neurocredit.augment`);
    steps: time steps per sample while training a spiking network (0: ``network.encoder.steps``);
    the saved network keeps ``network.encoder.steps``, the window every backend runs it for, so a
    network can be trained on short windows and run on longer ones (rate codes keep their
    per-step spike probability; a latency code's window is ``steps``)."""

    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    seed: int = 0
    eval_batch_size: int = 1000
    augment_shift: int = 0
    augment_flip: bool = False
    steps: int = 0


@dataclass(frozen=True)
class RuleConfig:
    """``name`` and the raw ``options`` of the YAML; :meth:`Config.rule_options` validates them."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    name: str
    data: DataConfig
    network: NetworkConfig
    rule: RuleConfig
    training: TrainingConfig
    description: str = ""
    path: Optional[Path] = field(default=None, metadata=INTERNAL)

    def rule_options(self) -> Any:
        """The rule's validated options dataclass (errors name the config file and key)."""
        source = str(self.path) if self.path is not None else self.name
        return rule_options(self.rule.name, self.network.neuron.kind, self.rule.options, source)

    def replace_training(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, training=dataclasses.replace(self.training, **changes))


ONCHIP_SECTIONS = ("onchip", "onchip_chl", "learn")


def parse_config(raw: Any, source: str = "<config>") -> Config:
    """A validated :class:`Config` from already-parsed YAML."""
    if not isinstance(raw, dict):
        raise NeurocreditError(f"{source}: a config must be a mapping with name, data, network, rule, training")
    raw = dict(raw)
    # On-chip learning sections (neurocredit.learn: `neurocredit learn CONFIG`), checked there.
    onchip = {key: raw.pop(key) for key in ONCHIP_SECTIONS if key in raw}
    if onchip:
        from neurocredit.learn.session import onchip_sections

        onchip_sections(onchip, source)
    rule_raw = raw.get("rule")
    if not isinstance(rule_raw, dict) or not isinstance(rule_raw.get("name"), str):
        raise NeurocreditError(f"{source}: rule must be a mapping with a 'name' (bp, dfa, sigprop, chl)")
    raw["rule"] = {"name": rule_raw["name"], "options": {k: v for k, v in rule_raw.items() if k != "name"}}
    network_raw = raw.get("network")
    if isinstance(network_raw, dict) and "layers" in network_raw and "hidden" in network_raw:
        raise NeurocreditError(f"{source}: network: give either hidden (dense widths) or layers (typed), not both")
    config = build_dataclass(Config, raw, source)
    config = dataclasses.replace(config, path=Path(source) if source != "<config>" else None)
    _check_choices(config, source)
    config.rule_options()
    from neurocredit.rules import conv_fix, rule_spec

    typed = [next(iter(item)) for item in config.network.layers if isinstance(item, dict) and len(item) == 1]
    variant = rule_spec(config.rule.name).variant(config.network.neuron.kind)
    if not variant.trains_conv and ({"conv", "pool", "avgpool"} & set(typed)):
        raise NeurocreditError(f"{source}: network.layers: rule {config.rule.name!r} handles dense layers only; "
                               f"{conv_fix(config.network.neuron.kind)}")
    return config


def _check_choices(config: Config, source: str) -> None:
    training = config.training
    if training.optimizer not in ("adam", "sgd"):
        raise NeurocreditError(f"{source}: training.optimizer must be adam or sgd, got {training.optimizer!r}")
    if training.lr_schedule not in ("constant", "cosine", "step"):
        raise NeurocreditError(
            f"{source}: training.lr_schedule must be constant, cosine or step, got {training.lr_schedule!r}"
        )
    for name in ("epochs", "batch_size", "eval_batch_size"):
        if getattr(training, name) < 1:
            raise NeurocreditError(f"{source}: training.{name} must be >= 1")
    if training.seed < 0:
        raise NeurocreditError(f"{source}: training.seed must be >= 0 (numpy and torch seeds are unsigned), "
                               f"got {training.seed}")
    if not training.learning_rate > 0:
        raise NeurocreditError(f"{source}: training.learning_rate must be > 0")
    if training.augment_shift < 0:
        raise NeurocreditError(f"{source}: training.augment_shift must be >= 0 (pixels; 0: no translation), "
                               f"got {training.augment_shift}")
    if training.steps < 0:
        raise NeurocreditError(f"{source}: training.steps must be >= 0 (0: network.encoder.steps), got {training.steps}")
    if training.steps and config.network.neuron.kind != "lif":
        raise NeurocreditError(f"{source}: training.steps is the time window of a spiking (lif) network; a "
                               f"{config.network.neuron.kind} network has none: remove it")
    validation = config.data.validation
    if validation < 0 or (validation >= 1 and not validation.is_integer()):
        raise NeurocreditError(f"{source}: data.validation must be a fraction in [0, 1) or a whole count >= 1, "
                               f"got {validation:g}")
    if any(width < 1 for width in config.network.hidden):
        raise NeurocreditError(f"{source}: network.hidden widths must be >= 1")
    try:
        network_specs(config)
    except NeurocreditError as error:
        raise NeurocreditError(f"{source}: network: {error}") from None


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config; a bare name (``digits-dfa-rate``) means ``models/<name>.yaml``."""
    file_path = Path(path)
    if not file_path.exists() and file_path.suffix == "" and (models_dir() / f"{path}.yaml").exists():
        file_path = models_dir() / f"{path}.yaml"
    if not file_path.is_file():
        raise NeurocreditError(f"{file_path}: config file not found (ready configs: `neurocredit models`)")
    return parse_config(read_yaml(file_path), str(file_path))


def models_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "models"


def network_specs(config: Config) -> tuple[NeuronSpec, EncoderSpec, ReadoutSpec]:
    neuron_cfg = config.network.neuron
    neuron = NeuronSpec(
        kind=neuron_cfg.kind,
        activation=neuron_cfg.activation,
        lif=LIFParameters(du=neuron_cfg.du, dv=neuron_cfg.dv, vth=neuron_cfg.vth),
    )
    encoder = config.network.encoder
    if neuron.spiking and encoder.kind == "none":
        raise NeurocreditError("a lif network needs network.encoder.kind (bernoulli, poisson, latency, current)")
    return neuron, encoder, ReadoutSpec(config.network.readout)


def input_shape_of(n_inputs: int, image_shape: tuple[int, ...] = ()) -> tuple[int, ...]:
    """The network input shape for data of ``n_inputs`` features: (C, H, W) from an image shape
    (H, W) -> (1, H, W), or (n_inputs,) when the data has none."""
    shape = tuple(int(n) for n in image_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) == 3 and int(np.prod(shape)) == int(n_inputs):
        return shape
    return (int(n_inputs),)


def build_network(config: Config, n_inputs: int, n_outputs: int, seed: int,
                  image_shape: tuple[int, ...] = ()) -> Network:
    """The untrained network a config describes (seeded initial weights). ``image_shape`` (the
    data set's, e.g. (8, 8)) is the input shape of conv layers."""
    neuron, encoder, readout = network_specs(config)
    rng = np.random.default_rng(seed)
    if config.network.layers:
        shape = input_shape_of(n_inputs, image_shape)
        kinds = {next(iter(item)) for item in config.network.layers if isinstance(item, dict) and item}
        if ({"conv", "pool", "avgpool"} & kinds) and len(shape) != 3:
            raise NeurocreditError(
                f"{config.path or config.name}: network.layers has conv/pool layers but the data set has no image "
                f"shape (its {n_inputs} features are not an image); use an image data set (digits, mnist, "
                "fashion-mnist) or dense layers"
            )
        try:
            layers = init_typed_layers(shape, list(config.network.layers), n_outputs, rng,
                                       gain=config.network.init_gain)
        except NeurocreditError as error:
            raise NeurocreditError(f"{config.path or config.name}: network.{error}") from None
    else:
        sizes = (n_inputs, *config.network.hidden, n_outputs)
        layers = init_layers(sizes, rng, gain=config.network.init_gain)
    extras = {}
    if readout.kind == "nearest_prototype":
        # placeholder prototypes (one-hot); rules that read out by prototypes replace them
        extras["readout/prototypes"] = np.eye(n_outputs, dtype=np.float32)
    return Network(layers, neuron, encoder, readout, extras)
