"""Hardware targets: limits and per-operation energies, every number with its source.

One YAML file per target in ``hardware_targets/`` (override the folder with
``$NEUROCREDIT_TARGETS``)::

    name: loihi2
    description: Intel Loihi 2 ...
    spiking: true
    limits:                 # absent key = no published limit / not checked
      cores_per_chip:    {value: 128, source: "Intel Loihi 2 brief (2021), p. 2"}
      neurons_per_core:  {value: 8192, source: "..."}
      fan_in_per_core:   {value: ..., source: "..."}
      fan_out_per_core:  {value: ..., source: "..."}
      synapses_per_core: {value: ..., source: "..."}
      weight_bits:       {value: 8, source: "..."}
      neuron_models:     {value: [lif], source: "..."}
    energy:                 # joules per operation; watts for static power
      synop_j:           {value: 23.6e-12, source: "...", note: "proxy: ..."}
      neuron_update_j:   {value: ..., source: "..."}
      synaptic_update_j: {value: ..., source: "..."}
      static_power_w:    {value: ..., source: "..."}
      mac_j:             {value: ..., source: "..."}   # dense (von Neumann) targets
      memory_access_j:   {value: ..., source: "..."}

Every entry needs ``value`` and a non-empty ``source``; ``note`` is optional (e.g. which proxy
is used where no public figure exists). A malformed file is one clear error naming the file
and the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from neurocredit.errors import NeurocreditError

LIMIT_KEYS = (
    "cores_per_chip",
    "chips",
    "neurons_per_core",
    "fan_in_per_core",
    "fan_out_per_core",
    "synapses_per_core",
    "weight_bits",
    "neuron_models",
)
ENERGY_KEYS = (
    "synop_j",
    "neuron_update_j",
    "synaptic_update_j",
    "static_power_w",
    "mac_j",
    "memory_access_j",
    "time_per_step_s",
)
TOP_KEYS = ("name", "description", "spiking", "limits", "energy")


@dataclass(frozen=True)
class Sourced:
    """A number (or list) together with where it comes from."""

    value: Any
    source: str
    note: str = ""


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    spiking: bool
    limits: dict[str, Sourced] = field(default_factory=dict)
    energy: dict[str, Sourced] = field(default_factory=dict)
    path: Optional[Path] = None

    def limit(self, key: str) -> Optional[Any]:
        """The value of a limit, or None where the target publishes none."""
        entry = self.limits.get(key)
        return None if entry is None else entry.value

    def energy_value(self, key: str) -> float:
        """An energy figure; 0.0 where the target gives none (e.g. no static power published)."""
        entry = self.energy.get(key)
        return 0.0 if entry is None else float(entry.value)


def targets_dir() -> Path:
    env = os.environ.get("NEUROCREDIT_TARGETS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "hardware_targets"


def _sourced(path: Path, section: str, key: str, entry: Any, numeric: bool) -> Sourced:
    where = f"{path}: {section}.{key}"
    if not isinstance(entry, dict) or "value" not in entry or "source" not in entry:
        raise NeurocreditError(f"{where} must be a mapping with 'value' and 'source' (and optional 'note')")
    extra = set(entry) - {"value", "source", "note"}
    if extra:
        raise NeurocreditError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
    if not isinstance(entry["source"], str) or not entry["source"].strip():
        raise NeurocreditError(f"{where}.source must be a non-empty string citing where the number comes from")
    value = entry["value"]
    if numeric and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
        raise NeurocreditError(f"{where}.value must be a number >= 0, got {value!r}")
    return Sourced(value, entry["source"].strip(), str(entry.get("note", "")).strip())


def load_target(name_or_path: str | os.PathLike) -> Target:
    """Load a target by name (``loihi2``) or by path to a YAML file."""
    from neurocredit.options import read_yaml

    candidate = Path(name_or_path)
    path = candidate if candidate.suffix in (".yaml", ".yml") else targets_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(t for t in available_targets()) or "none"
        raise NeurocreditError(f"hardware target {str(name_or_path)!r} not found at {path} (known: {known})")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise NeurocreditError(f"{path}: expected a mapping with keys {', '.join(TOP_KEYS)}")
    unknown = set(raw) - set(TOP_KEYS)
    if unknown:
        raise NeurocreditError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(TOP_KEYS)}")
    for key in ("name", "spiking", "energy"):
        if key not in raw:
            raise NeurocreditError(f"{path}: missing key '{key}'")
    if not isinstance(raw["spiking"], bool):
        raise NeurocreditError(f"{path}: 'spiking' must be true or false")
    sections = {}
    for section, allowed in (("limits", LIMIT_KEYS), ("energy", ENERGY_KEYS)):
        entries = raw.get(section) or {}
        if not isinstance(entries, dict):
            raise NeurocreditError(f"{path}: '{section}' must be a mapping")
        unknown = set(entries) - set(allowed)
        if unknown:
            raise NeurocreditError(
                f"{path}: unknown {section} key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(allowed)}"
            )
        sections[section] = {
            key: _sourced(path, section, key, entry, numeric=key != "neuron_models") for key, entry in entries.items()
        }
    return Target(
        name=str(raw["name"]),
        description=str(raw.get("description", "")),
        spiking=raw["spiking"],
        limits=sections["limits"],
        energy=sections["energy"],
        path=path,
    )


def available_targets() -> list[str]:
    folder = targets_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def list_targets() -> list[Target]:
    return [load_target(name) for name in available_targets()]
