"""Saved agents: one ``.npz`` of numeric arrays and a JSON tree, read without pickle (``Agent.save``, ``load_agent``).

The file is a numpy ``.npz`` (a zip of ``.npy`` arrays). Its entry ``agent.json`` holds UTF-8 JSON bytes (uint8 [N])::

    {"format": "read-env-agent", "version": 1, "agent": {"object": "ReadBandit", "fields": {name: node, ...}}}

and its entries ``0``, ``1``, ... the arrays the nodes refer to. A node is a JSON value::

    null, true, false, int, finite float, str    itself (ints of any size: a generator's 128-bit state is exact)
    [node, ...]                                  a list
    {"tuple": [node, ...]}                       a tuple
    {"dict": {key: node, ...}}                   a dict with str keys
    {"array": "3"}                               a numpy array of bool, int, uint or float dtype: entry 3
    {"scalar": "4"}                              a numpy scalar (np.float64 ...): the 0-d array of entry 4
    {"float": "nan"}                             nan, inf or -inf
    {"generator": node}                          a np.random.Generator, from its bit generator's state (a dict node)
    {"dataclass": "Setting", "fields": {...}}    an allowed dataclass, built by its constructor (which validates it)
    {"object": "ReadBandit", "fields": {...}}    an allowed class: built fresh, then its fields replaced

Reading runs no code the file names: ``np.load(allow_pickle=False)`` refuses pickles and object arrays, and
classes are looked up by name in allow-lists (:data:`AGENT_CLASSES`, the classes behind
:data:`agents.registry.AGENTS`; :data:`OBJECT_CLASSES`; :data:`DATACLASSES`; numpy's bit generators), never
imported from a path. The fields of a saved object must be exactly those of a fresh instance (an agent's
``cls(setting, seed)``; so every agent creates all its fields in ``__init__``), and a dataclass's exactly its
dataclass fields: a field renamed or dropped since the file was written is a ``ValueError`` naming it, never a
half-built agent. An array referenced twice comes back as one array; any other object referenced twice is
refused at saving (it would come back as two).

Why ``.npz`` and JSON: numpy alone (no new dependency), arrays kept bit-exact with their dtype and shape, the
rest readable, and one ``np.load(allow_pickle=False)`` reads it all (the JSON is an entry like the arrays, since
``np.savez`` writes only ``.npy`` members); safetensors would hold the arrays but not the nested state.

A pickle written by read-env before this format is read only with ``load_agent(path, allow_pickle=True)``, which
runs whatever the pickle names: :data:`CONVERT_PICKLE` is the one-line conversion for a file you trust.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agents.base import Agent, Setting
from agents.policies.ado import AdoConfig
from agents.policies.aioli import AioliConfig
from agents.policies.bandit import BanditConfig
from agents.policies.ensemble import BatchedEnsemble
from agents.policies.exp3 import Exp3Config
from agents.policies.grid import GridConfig
from agents.policies.linucb import LinUCBConfig
from agents.policies.skill_it import SkillItConfig
from agents.policies.tscl import TSCLConfig
from agents.registry import AGENTS

FORMAT = "read-env-agent"
VERSION = 1
METADATA = "agent.json"
ZIP_MAGIC = b"PK\x03\x04"  # the first bytes of a zip (.npz) file
ARRAY_KINDS = "biuf"  # bool, int, uint, float
AGENT_CLASSES: dict[str, type[Agent]] = {entry.cls.__name__: entry.cls for entry in AGENTS.values()}
OBJECT_CLASSES: dict[str, type] = {**AGENT_CLASSES, BatchedEnsemble.__name__: BatchedEnsemble}
DATACLASSES: dict[str, type] = {
    cls.__name__: cls
    for cls in (Setting, AdoConfig, AioliConfig, BanditConfig, Exp3Config, GridConfig, LinUCBConfig, SkillItConfig, TSCLConfig)
}
BIT_GENERATORS: dict[str, type[np.random.BitGenerator]] = {
    cls.__name__: cls for cls in (np.random.PCG64, np.random.PCG64DXSM, np.random.MT19937, np.random.Philox, np.random.SFC64)
}
CONVERT_PICKLE = "python -c \"from agents import load_agent; load_agent('OLD.pkl', allow_pickle=True).save('NEW.npz')\""
"""Converts a pickle written by an older read-env's ``Agent.save`` (``{"class": "module:qualname", "state": __dict__}``)."""


def write_agent(agent: Agent, path: str | Path) -> None:
    """Write ``agent`` to ``path`` (the name kept as given; an old file is replaced atomically).

    ``TypeError`` naming the field for a value of a type the format does not hold (see the module docstring).
    """
    if type(agent) not in AGENT_CLASSES.values():
        raise TypeError(
            f"cannot save a {type(agent).__qualname__}: saved agents are the registered classes "
            f"{sorted(AGENT_CLASSES)} (SB3 and ppo_jax agents save their own formats)"
        )
    encoder = _Encoder()
    tree = {"format": FORMAT, "version": VERSION, "agent": encoder.node(agent, "agent")}
    metadata = np.frombuffer(json.dumps(tree, allow_nan=False).encode(), dtype=np.uint8)
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "wb") as handle:
            np.savez(handle, **{METADATA: metadata}, **encoder.arrays)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def read_agent(path: str | Path, *, allow_pickle: bool = False) -> Agent:
    """The agent written by :func:`write_agent` to ``path``; ``ValueError`` saying why for any other file.

    ``allow_pickle=True`` also reads a pickle written by an older read-env, which runs any code the pickle
    names: only for a file you trust, to convert it (:data:`CONVERT_PICKLE`).
    """
    path = Path(path)
    with open(path, "rb") as handle:
        head = handle.read(4)
    if allow_pickle and _is_pickle(head):
        return _read_pickle(path)
    if head != ZIP_MAGIC:
        raise ValueError(_not_an_agent(path, head, "it is not an .npz archive"))
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(_not_an_agent(path, head, f"it is not a readable .npz archive ({error})")) from None
    with data:
        metadata = _entry(data, METADATA, path)
        try:
            tree = json.loads(metadata.tobytes())
        except ValueError as error:
            raise ValueError(_not_an_agent(path, head, f"its {METADATA} is not JSON ({error})")) from None
        if not isinstance(tree, dict) or tree.get("format") != FORMAT:
            raise ValueError(_not_an_agent(path, head, f"its {METADATA} does not say format {FORMAT!r}"))
        if tree.get("version") != VERSION:
            raise ValueError(f"{path} is a saved agent of format version {tree.get('version')!r}; this read-env reads {VERSION}")
        if set(tree) != {"format", "version", "agent"}:
            raise ValueError(f"{path}: {METADATA} has the keys {sorted(tree)}, not format, version and agent")
        agent = _Decoder(lambda key: _entry(data, key, path), path).node(tree["agent"], "agent")
    if not isinstance(agent, Agent):
        raise ValueError(f"{path} holds a {type(agent).__name__}, not an agent")
    return agent


def _is_pickle(head: bytes) -> bool:
    """Whether a file's first bytes are a pickle protocol marker (protocols 2 to 5, every Python 3 default)."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _not_an_agent(path: Path, head: bytes, reason: str) -> str:
    message = f"{path} is not an agent saved by Agent.save (an .npz with {METADATA}): {reason}"
    if _is_pickle(head):
        message += (
            ". It looks like a pickle from an older read-env: loading a pickle runs any code it names, so it is not read "
            f"by default; to convert a file you trust: {CONVERT_PICKLE}"
        )
    return message


def _entry(data: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    if key not in data.files:
        raise ValueError(f"{path} has no entry {key!r} (a saved agent has {METADATA} and the arrays its fields name)")
    try:
        return data[key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: entry {key!r} cannot be read without pickle ({error})") from None


def _read_pickle(path: Path) -> Agent:
    """An agent pickled by an older ``Agent.save``, checked by the rules of a saved file (it is encoded and decoded)."""
    with open(path, "rb") as handle:
        payload = pickle.load(handle)  # runs what the pickle names: only with allow_pickle=True
    layout = isinstance(payload, dict) and set(payload) == {"class", "state"}
    if not (layout and isinstance(payload["class"], str) and isinstance(payload["state"], dict)):
        raise ValueError(f"{path} is a pickle but not what an older Agent.save wrote ({{'class': 'module:qualname', 'state': {{...}}}})")
    qualname = payload["class"].rpartition(":")[2]
    if qualname not in AGENT_CLASSES:
        raise ValueError(f"{path} holds a {payload['class']}, not one of the registered agent classes {sorted(AGENT_CLASSES)}")
    agent = object.__new__(AGENT_CLASSES[qualname])
    vars(agent).update(payload["state"])
    encoder = _Encoder()
    return _Decoder(encoder.arrays.__getitem__, path).node(encoder.node(agent, "agent"), "agent")


class _Encoder:
    """Builds the JSON tree of a value; ``arrays`` collects the arrays it refers to by key."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.array_keys: dict[int, str] = {}  # id of an array -> its key (one array, one entry)
        self.seen: dict[int, str] = {}  # id of any other mutable object -> where it was met

    def node(self, value: Any, where: str) -> Any:
        kind = type(value)
        if value is None or kind in (bool, int, str):
            return value
        if kind is float:
            return value if np.isfinite(value) else {"float": str(value)}
        if kind is np.ndarray or isinstance(value, np.generic):
            return self.array(value, where)
        if kind is tuple:
            return {"tuple": [self.node(item, f"{where}[{i}]") for i, item in enumerate(value)]}
        if kind is list:
            self.once(value, where)
            return [self.node(item, f"{where}[{i}]") for i, item in enumerate(value)]
        if kind is dict:
            self.once(value, where)
            if not all(type(key) is str for key in value):
                raise TypeError(f"cannot save {where}: its keys {list(value)} are not all str")
            return {"dict": {key: self.node(item, f"{where}[{key!r}]") for key, item in value.items()}}
        if kind is np.random.Generator and type(value.bit_generator) in BIT_GENERATORS.values():
            self.once(value, where)
            return {"generator": self.node(value.bit_generator.state, f"{where}.bit_generator.state")}
        if kind in DATACLASSES.values():
            self.once(value, where)
            fields = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
            return {"dataclass": kind.__name__, "fields": {name: self.node(item, f"{where}.{name}") for name, item in fields.items()}}
        if kind in OBJECT_CLASSES.values():
            self.once(value, where)
            return {"object": kind.__name__, "fields": {name: self.node(item, f"{where}.{name}") for name, item in vars(value).items()}}
        raise TypeError(f"cannot save {where}: a {kind.__module__}.{kind.__qualname__}; saved agents hold None, bool, int, float, str, "
                        f"tuple, list, dict, numpy arrays and scalars, np.random.Generator of {sorted(BIT_GENERATORS)}, the dataclasses "
                        f"{sorted(DATACLASSES)} and the classes {sorted(OBJECT_CLASSES)}")  # fmt: skip

    def once(self, value: Any, where: str) -> None:
        """Refuse a second reference to a mutable object (it would come back as two objects)."""
        if id(value) in self.seen:
            raise ValueError(f"cannot save {where}: it is the same object as {self.seen[id(value)]}, and would come back as two")
        self.seen[id(value)] = where

    def array(self, value: np.ndarray | np.generic, where: str) -> dict[str, str]:
        if value.dtype.kind not in ARRAY_KINDS:
            raise TypeError(f"cannot save {where}: numpy dtype {value.dtype}; saved arrays are bool, int, uint or float")
        if isinstance(value, np.generic):
            key = str(len(self.arrays))
            self.arrays[key] = np.asarray(value)
            return {"scalar": key}
        if id(value) not in self.array_keys:
            self.array_keys[id(value)] = str(len(self.arrays))
            self.arrays[self.array_keys[id(value)]] = value
        return {"array": self.array_keys[id(value)]}


class _Decoder:
    """Rebuilds the value of a JSON tree; ``entry(key)`` gives the array of an entry."""

    def __init__(self, entry: Callable[[str], np.ndarray], path: Path) -> None:
        self.entry, self.path = entry, path
        self.arrays: dict[str, np.ndarray] = {}  # key -> the array already built (one entry, one array)
        self.readers: dict[str, Callable[[Any, str], Any]] = {
            "tuple": self.read_tuple, "dict": self.read_dict, "array": self.read_array, "scalar": self.read_scalar,
            "float": self.read_float, "generator": self.read_generator,
        }  # fmt: skip

    def node(self, node: Any, where: str) -> Any:
        kind = type(node)
        if node is None or kind in (bool, int, float, str):
            return node
        if kind is list:
            return [self.node(item, f"{where}[{i}]") for i, item in enumerate(node)]
        if kind is dict and len(node) == 1 and next(iter(node)) in self.readers:
            tag, value = next(iter(node.items()))
            return self.readers[tag](value, where)
        if kind is dict and set(node) == {"dataclass", "fields"} and type(node["fields"]) is dict:
            return self.read_dataclass(node["dataclass"], node["fields"], where)
        if kind is dict and set(node) == {"object", "fields"} and type(node["fields"]) is dict:
            return self.read_object(node["object"], node["fields"], where)
        raise self.error(where, f"{json.dumps(node)[:200]} is not a node of a saved agent")

    def error(self, where: str, reason: str) -> ValueError:
        return ValueError(f"{self.path}: {where}: {reason}")

    def read_tuple(self, items: Any, where: str) -> tuple[Any, ...]:
        if type(items) is not list:
            raise self.error(where, "a tuple node holds a list")
        return tuple(self.node(item, f"{where}[{i}]") for i, item in enumerate(items))

    def read_dict(self, items: Any, where: str) -> dict[str, Any]:
        if type(items) is not dict:
            raise self.error(where, "a dict node holds an object")
        return {key: self.node(item, f"{where}[{key!r}]") for key, item in items.items()}

    def read_array(self, key: Any, where: str) -> np.ndarray:
        if type(key) is not str:
            raise self.error(where, "an array node names an entry")
        if key not in self.arrays:
            value = self.entry(key)
            if value.dtype.kind not in ARRAY_KINDS:
                raise self.error(where, f"entry {key!r} has dtype {value.dtype}, not bool, int, uint or float")
            self.arrays[key] = value
        return self.arrays[key]

    def read_scalar(self, key: Any, where: str) -> np.generic:
        value = self.read_array(key, where)
        if value.ndim:
            raise self.error(where, f"a scalar's entry {key!r} has shape {value.shape}")
        return value[()]

    def read_float(self, text: Any, where: str) -> float:
        if text not in ("nan", "inf", "-inf"):
            raise self.error(where, f"a float node holds 'nan', 'inf' or '-inf', not {text!r}")
        return float(text)

    def read_generator(self, node: Any, where: str) -> np.random.Generator:
        state = self.node(node, f"{where}.bit_generator.state")
        name = state.get("bit_generator") if isinstance(state, dict) else None
        if name not in BIT_GENERATORS:
            raise self.error(where, f"bit generator {name!r} is not one of {sorted(BIT_GENERATORS)}")
        bit_generator = BIT_GENERATORS[name]()
        try:
            bit_generator.state = state
        except (TypeError, ValueError, KeyError) as error:
            raise self.error(where, f"not a {name} state ({error!r})") from None
        return np.random.Generator(bit_generator)

    def read_dataclass(self, name: Any, nodes: dict[str, Any], where: str) -> Any:
        cls = DATACLASSES.get(name) if type(name) is str else None
        if cls is None:
            raise self.error(where, f"unknown dataclass {name!r}; known: {sorted(DATACLASSES)}")
        self.check_fields(cls, set(nodes), {field.name for field in dataclasses.fields(cls)}, where)
        return cls(**{name: self.node(node, f"{where}.{name}") for name, node in nodes.items()})

    def read_object(self, name: Any, nodes: dict[str, Any], where: str) -> Any:
        cls = OBJECT_CLASSES.get(name) if type(name) is str else None
        if cls is None:
            raise self.error(where, f"unknown class {name!r}; known: {sorted(OBJECT_CLASSES)}")
        fields = {name: self.node(node, f"{where}.{name}") for name, node in nodes.items()}
        if cls is BatchedEnsemble:
            fresh = BatchedEnsemble(1)  # its fields do not depend on its arguments
        else:
            self.check_fields(cls, {"setting", "seed"} & set(fields), {"setting", "seed"}, where)
            setting, seed = fields["setting"], fields["seed"]
            if not isinstance(setting, Setting) or not (seed is None or type(seed) is int):
                raise self.error(where, f"setting must be a Setting and seed an int or None, not a {type(setting).__name__} and {seed!r}")
            fresh = cls(setting, seed)
        self.check_fields(cls, set(fields), set(vars(fresh)), where)
        vars(fresh).update(fields)
        return fresh

    def check_fields(self, cls: type, saved: set[str], expected: set[str], where: str) -> None:
        """``ValueError`` naming the fields a saved object lacks and those this read-env's class does not have."""
        missing, unknown = sorted(expected - saved), sorted(saved - expected)
        if missing or unknown:
            problems = [f"lacks the fields {missing}"] * bool(missing) + [f"has the fields {unknown}, unknown here"] * bool(unknown)
            raise self.error(where, f"the saved {cls.__name__} {' and '.join(problems)} (written by another version?)")
