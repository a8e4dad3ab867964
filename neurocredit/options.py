"""Building and validating option dataclasses from parsed YAML (configs and rule options).

:func:`build_dataclass` checks a mapping against a frozen dataclass: unknown keys, missing keys
and wrong types are one :class:`NeurocreditError` naming the file and the key
(``models/x.yaml: training.epochs must be an integer, got 'ten'``). The dataclasses' own
``__post_init__`` checks are put behind the file and key too (a rule's checks name their field
as ``rule.<field>``: ``models/x.yaml: rule.nudge ...``). No torch import: a rule's options live in its torch-free spec module
(:mod:`neurocredit.rules`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

from neurocredit.errors import NeurocreditError

# Field metadata of dataclass fields that are not YAML keys (set by the loader).
INTERNAL = {"yaml": False}

# What a value of each plain annotation must be, as error messages say it (YAML booleans are not integers).
_EXPECTED = {int: "an integer", bool: "true or false", str: "a string"}


def read_yaml(path: str | Path) -> Any:
    """The parsed contents of the YAML file ``path`` (which the caller has checked exists);
    malformed YAML is one line naming the file, the line and column, and the problem."""
    import yaml

    file_path = Path(path)
    try:
        return yaml.safe_load(file_path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        position = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise NeurocreditError(f"{file_path}: malformed YAML{position}: {problem}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise NeurocreditError(f"{file_path}: cannot read it ({error.__class__.__name__})") from None

def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", str(kind).replace("typing.", ""))


def _coerce(value: Any, kind: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``kind``; ints are accepted for floats."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        inner = [option for option in options if option is not type(None)][0]
        return _coerce(value, inner, where)
    if origin is list:
        (item,) = typing.get_args(kind)
        if not isinstance(value, list):
            raise NeurocreditError(f"{where} must be a list of {_type_name(item)}, got {value!r}")
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise NeurocreditError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(kind):
        return build_dataclass(kind, value, where)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise NeurocreditError(f"{where} must be a number, got {value!r}")
        return float(value)
    if kind in _EXPECTED and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        raise NeurocreditError(f"{where} must be {_EXPECTED[kind]}, got {value!r}")
    return value


def _child(where: str, name: str) -> str:
    """``file.yaml: training`` + ``epochs`` -> ``file.yaml: training.epochs``; a bare file name
    gets ``file.yaml: epochs``."""
    return f"{where}.{name}" if ": " in where else f"{where}: {name}"


def build_dataclass(cls: type, mapping: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types.

    ``where`` prefixes messages, e.g. ``"models/x.yaml: training"``.
    """
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        raise NeurocreditError(f"{where} must be a mapping, got {mapping!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.metadata.get("yaml", True)}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise NeurocreditError(
            f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(sorted(fields))})"
        )
    values = {}
    for name, spec in fields.items():
        if name in mapping:
            values[name] = _coerce(mapping[name], hints[name], _child(where, name))
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise NeurocreditError(f"{where}: missing key '{name}'")
    try:
        return cls(**values)
    except NeurocreditError as error:  # the dataclass's own check: put the file and key in front
        message, parent, _, last = str(error), *where.rpartition(" ")
        if message.startswith(f"{last}."):  # it names its field already, e.g. "rule.nudge: ..."
            raise NeurocreditError(f"{parent} {message}" if parent else message) from None
        raise NeurocreditError(f"{where}: {message}") from None


def rule_options(rule: str, neuron_kind: str, raw: Any, source: str = "<config>") -> Any:
    """The validated options of rule ``rule`` for ``neuron_kind`` networks from the mapping ``raw``
    (the config's ``rule:`` entry without ``name``); ``source`` names the config file in errors."""
    from neurocredit.rules import rule_spec

    return build_dataclass(rule_spec(rule).variant(neuron_kind).options, raw, f"{source}: rule")
