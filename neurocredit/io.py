"""HDF5 checkpoints of ``Network`` and ``RunRecord`` (the only module that knows h5py).

Network file layout (``SCHEMA_VERSION`` 2; version-1 files, written before conv layers existed,
are read as all-dense networks: their layer groups have no ``kind``)::

    /                attrs: format="neurocredit-network", schema_version, neurocredit_version
    /neuron          attrs: kind, activation, du, dv, vth, refractory (0 when absent: older files)
    /encoder         attrs: kind, steps, max_rate, seed
    /readout         attrs: kind
    /layers/<i>      attrs: kind ("dense" | "conv2d"), name, pool (fused pool size, 1 = none)
                     dense:  datasets weight (n_out, n_in), bias (n_out,)
                     conv2d: datasets weight (C_out, C_in, KH, KW), bias (C_out,);
                             attrs input_shape (C, H, W), stride (2,), padding (2,)
    /extras/<key>    datasets (rule arrays; '/' in a key makes nested groups)
    /provenance      attrs (rule, config, seed, data, version, ... ; strings and numbers)

Files are written atomically: to a temporary file in the same directory, flushed and
fsynced, then renamed over the target, so a crash mid-write never destroys the old file.
Every problem reading a file is one :class:`NeurocreditError` naming the file and the fix.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from neurocredit import __version__
from neurocredit.errors import NeurocreditError
from neurocredit.network import Conv2d, EncoderSpec, Layer, LIFParameters, Network, NeuronSpec, ReadoutSpec
from neurocredit.record import RunRecord

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
NETWORK_FORMAT = "neurocredit-network"
RUN_FORMAT = "neurocredit-run"


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    if target.parent and not target.parent.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    os.close(handle)
    temp = Path(temp_name)
    try:
        yield temp
        with open(temp, "rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(temp, target)
    finally:
        if temp.exists():
            temp.unlink()


def _attr_value(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool, np.integer, np.floating)):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def json_default(value: Any) -> Any:
    """``json.dumps`` ``default``: numpy scalars and arrays as numbers and lists, the rest as text."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


@contextmanager
def _new_file(path: str | os.PathLike, file_format: str) -> Iterator[Any]:
    """An HDF5 file written atomically (:func:`atomic_path`), started with what every file this
    module writes starts with: its format, schema version and writer."""
    import h5py

    with atomic_path(path) as temp, h5py.File(temp, "w") as handle:
        handle.attrs["format"] = file_format
        handle.attrs["schema_version"] = SCHEMA_VERSION
        handle.attrs["neurocredit_version"] = __version__
        yield handle


def _write_attrs(group, values: dict[str, Any]) -> None:
    for key, value in values.items():
        group.attrs[key] = value


def _read_attrs(cls: type, attrs) -> Any:
    """``cls`` (a frozen dataclass of scalars) from HDF5 attributes, each converted to its field's
    type; a field the file lacks (written by an older version) takes its default."""
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: hints[f.name](_from_attr(attrs[f.name])) for f in dataclasses.fields(cls) if f.name in attrs})


def save_network(network: Network, path: str | os.PathLike) -> Path:
    """Write ``network`` to ``path`` (HDF5, atomically). Returns the path."""
    with _new_file(path, NETWORK_FORMAT) as handle:
        _write_attrs(handle.create_group("neuron"), {"kind": network.neuron.kind,
                                                     "activation": network.neuron.activation,
                                                     **dataclasses.asdict(network.neuron.lif)})
        _write_attrs(handle.create_group("encoder"), dataclasses.asdict(network.encoder))
        _write_attrs(handle.create_group("readout"), dataclasses.asdict(network.readout))
        layers = handle.create_group("layers")
        for index, layer in enumerate(network.layers):
            group = layers.create_group(str(index))
            group.create_dataset("weight", data=layer.weight)
            group.create_dataset("bias", data=layer.bias)
            group.attrs["name"] = layer.name
            group.attrs["kind"] = layer.kind
            group.attrs["pool"] = int(layer.pool)
            if layer.kind == "conv2d":
                for key in ("input_shape", "stride", "padding"):
                    group.attrs[key] = np.asarray(getattr(layer, key), dtype=np.int64)
        extras = handle.create_group("extras")
        for key, value in network.extras.items():
            extras.create_dataset(key, data=value)
        provenance = handle.create_group("provenance")
        for key, value in network.provenance.items():
            provenance.attrs[key] = _attr_value(value)
    return Path(path)


def _open_checked(path: str | os.PathLike, expected_format: str):
    import h5py

    file_path = Path(path)
    if not file_path.exists():
        raise NeurocreditError(f"{file_path}: no such file (train one with `neurocredit train CONFIG.yaml`)")
    try:
        handle = h5py.File(file_path, "r")
    except OSError as error:
        raise NeurocreditError(
            f"{file_path}: not a readable HDF5 file ({error.__class__.__name__}: truncated or corrupted?); "
            "restore it from a backup or retrain"
        ) from None
    found_format = handle.attrs.get("format")
    if found_format != expected_format:
        handle.close()
        raise NeurocreditError(f"{file_path}: not a {expected_format} file (format attribute is {found_format!r})")
    version = handle.attrs.get("schema_version")
    if version not in READABLE_VERSIONS:
        handle.close()
        raise NeurocreditError(
            f"{file_path}: schema version {version!r} is not supported (this neurocredit {__version__} reads "
            f"versions {', '.join(map(str, READABLE_VERSIONS))}); retrain the model or use the neurocredit "
            "version that wrote it"
        )
    return handle


def _read_extras(group) -> dict[str, np.ndarray]:
    import h5py

    extras: dict[str, np.ndarray] = {}

    def visit(name, item):
        if isinstance(item, h5py.Dataset):
            extras[name] = item[()]

    group.visititems(visit)
    return extras


def load_network(path: str | os.PathLike) -> Network:
    """Read a network written by :func:`save_network`; validates it like a new one."""
    file_path = Path(path)
    handle = _open_checked(file_path, NETWORK_FORMAT)
    try:
        with handle:
            neuron_attrs = handle["neuron"].attrs
            neuron = NeuronSpec(kind=str(neuron_attrs["kind"]), activation=str(neuron_attrs["activation"]),
                                lif=_read_attrs(LIFParameters, neuron_attrs))
            encoder = _read_attrs(EncoderSpec, handle["encoder"].attrs)
            readout = _read_attrs(ReadoutSpec, handle["readout"].attrs)
            layers = [_read_layer(handle["layers"][str(index)]) for index in range(len(handle["layers"]))]
            extras = _read_extras(handle["extras"])
            provenance = {key: _from_attr(value) for key, value in handle["provenance"].attrs.items()}
    except NeurocreditError as error:
        raise NeurocreditError(f"{file_path}: {error}") from None
    except (KeyError, OSError, ValueError, TypeError) as error:
        raise NeurocreditError(
            f"{file_path}: damaged network file ({error.__class__.__name__}: {error}); restore it or retrain"
        ) from None
    from neurocredit.rules import check_extras

    try:
        network = Network(tuple(layers), neuron, encoder, readout, extras, provenance)
        check_extras(network)
    except NeurocreditError as error:
        raise NeurocreditError(f"{file_path}: {error}") from None
    return network


def _read_layer(group):
    """One layer group (version 1: always dense, no kind/pool attributes)."""
    kind = _from_attr(group.attrs.get("kind", "dense"))
    name = str(_from_attr(group.attrs["name"]))
    pool = int(group.attrs.get("pool", 1))
    weight, bias = group["weight"][()], group["bias"][()]
    if kind == "dense":
        return Layer(weight, bias, name, pool)
    if kind == "conv2d":
        def ints(key):
            return tuple(int(v) for v in group.attrs[key])

        return Conv2d(weight, bias, ints("input_shape"), ints("stride"), ints("padding"), name, pool)
    raise NeurocreditError(f"layer {group.name}: unknown layer kind {kind!r} (dense, conv2d)")


def _from_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def save_run(record: RunRecord, path: str | os.PathLike) -> Path:
    """Write a ``RunRecord`` to HDF5 (atomically): counts always, rasters/voltages when present."""
    with _new_file(path, RUN_FORMAT) as handle:
        handle.attrs["backend"] = record.backend
        handle.attrs["steps"] = int(record.steps)
        handle.attrs["seconds"] = float(record.seconds)
        handle.create_dataset("outputs", data=record.outputs)
        handle.create_dataset("predictions", data=record.predictions)
        if record.labels is not None:
            handle.create_dataset("labels", data=record.labels)
        if record.input_spike_counts is not None:
            handle.create_dataset("input_spike_counts", data=record.input_spike_counts)
        if record.input_spikes is not None:
            handle.create_dataset("input_spikes", data=record.input_spikes, compression="gzip")
        for field_name in ("spike_counts", "spikes", "voltages", "currents"):
            layers = getattr(record, field_name)
            if layers is None:
                continue
            group = handle.create_group(field_name)
            for index, array in enumerate(layers):
                group.create_dataset(str(index), data=array, compression="gzip" if array.ndim == 3 else None)
    return Path(path)


def load_run(path: str | os.PathLike) -> RunRecord:
    """Read a ``RunRecord`` written by :func:`save_run`."""
    file_path = Path(path)
    handle = _open_checked(file_path, RUN_FORMAT)
    try:
        with handle:

            def optional(name):
                return handle[name][()] if name in handle else None

            def layers(name):
                if name not in handle:
                    return None
                return [handle[name][str(i)][()] for i in range(len(handle[name]))]

            return RunRecord(
                backend=str(handle.attrs["backend"]),
                steps=int(handle.attrs["steps"]),
                outputs=handle["outputs"][()],
                predictions=handle["predictions"][()],
                spike_counts=layers("spike_counts") or [],
                input_spike_counts=optional("input_spike_counts"),
                labels=optional("labels"),
                spikes=layers("spikes"),
                voltages=layers("voltages"),
                currents=layers("currents"),
                input_spikes=optional("input_spikes"),
                seconds=float(handle.attrs["seconds"]),
            )
    except (KeyError, OSError, ValueError) as error:
        raise NeurocreditError(f"{file_path}: damaged run file ({error.__class__.__name__}: {error})") from None
