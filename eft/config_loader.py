"""One typed loader for every YAML configuration (``eft fit`` jobs, ``eft train`` runs).

A configuration is a tree of frozen dataclasses.  :func:`build` makes one from a plain
mapping (as YAML reads it), checking each value against the field's annotation, and
:func:`read_yaml` / :func:`parse_override` / :func:`apply_override` read files and
``--set KEY=VALUE`` overrides.  Every problem is a :class:`ConfigKeyError` naming the
dotted key (list items as ``datasets[0]``); callers turn it into their own one-line
error ``"<file>: <key>: <message>"`` with :func:`key_error_message`.  Numbers go through
one parser, :func:`parse_number` (YAML 1.1 reads ``1e-4`` as a string).

Messages, for reference::

    optim.stepz: unknown key (did you mean 'steps'?); known keys here: ...
    optim.steps: expected an integer, got 'many'
    optim.lr: expected a finite number, got inf
    datasets: required key is missing
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from eft.errors import EftError, did_you_mean

__all__ = ["ConfigKeyError", "INT_LIMIT", "build", "coerce", "parse_number", "join_key",
           "describe", "key_error_message", "read_yaml", "parse_override", "apply_override",
           "plain", "changed_keys", "UNSET"]

#: Integers (ids, seeds, counts) must fit a signed 64-bit integer: torch seeds, NumPy
#: arrays, HDF5 attributes and checkpoints store them as int64.
INT_LIMIT = 2 ** 63
#: What :func:`changed_keys` reports for a key one side lacks.
UNSET = "<unset>"


class ConfigKeyError(Exception):
    """A bad value at ``key`` (a dotted path); ``message`` says what is wrong."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def key_error_message(source: str, exc: ConfigKeyError) -> str:
    """The one-line message ``"<source>: <key>: <message>"``."""
    return f"{source}: {exc.key}: {exc.message}"


def join_key(prefix: str, key: str | int) -> str:
    """``("eft", "lr")`` -> ``eft.lr``; ``("datasets", 0)`` -> ``datasets[0]``."""
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key


def describe(value: Any) -> str:
    """A value as a message shows it (containers by their type name)."""
    return repr(value) if not isinstance(value, (dict, list)) else type(value).__name__


def parse_number(value: Any, key: str) -> float:
    """A finite float from an int, a float or a numeric string (``"1e-4"``)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigKeyError(key, f"expected a number, got {describe(value)}")
    if not math.isfinite(value):
        raise ConfigKeyError(key, f"expected a finite number, got {value}")
    return float(value)


def _parse_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigKeyError(key, f"expected an integer, got {describe(value)}")
    if not -INT_LIMIT <= value < INT_LIMIT:
        raise ConfigKeyError(key, f"expected an integer in [-2^63, 2^63), got {value}")
    return value


def _coerce_union(value: Any, args: tuple, key: str) -> Any:
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return coerce(value, arg, key)
        except ConfigKeyError as exc:
            errors.append(exc.message)
    raise ConfigKeyError(key, errors[0] if len(errors) == 1 else " or ".join(errors))


def _coerce_tuple(value: Any, args: tuple, key: str) -> tuple:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigKeyError(key, f"expected a list, got {describe(value)}")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(coerce(v, args[0], join_key(key, i)) for i, v in enumerate(value))
    if len(value) != len(args):
        raise ConfigKeyError(key, f"expected a list of {len(args)}, got {len(value)} items")
    pairs = enumerate(zip(value, args, strict=True))
    return tuple(coerce(v, a, join_key(key, i)) for i, (v, a) in pairs)


def coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked against the annotation ``tp`` (a :class:`ConfigKeyError` naming
    ``key`` when it does not fit).  A :class:`TypeError` for an annotation this loader
    does not cover."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, args, key)
    if origin is Literal:
        if value not in args:
            raise ConfigKeyError(key, f"expected one of {list(args)}, got {describe(value)}")
        return value
    if origin is tuple:
        return _coerce_tuple(value, args, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigKeyError(key, f"expected true or false, got {describe(value)}")
        return value
    if tp is int:
        return _parse_int(value, key)
    if tp is float:
        return parse_number(value, key)
    if tp is str:
        if not isinstance(value, (str, os.PathLike)):
            raise ConfigKeyError(key, f"expected a string, got {describe(value)}")
        return os.fspath(value)
    if tp is dict or origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigKeyError(key, f"expected a mapping, got {describe(value)}")
        return dict(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    raise TypeError(f"unsupported annotation {tp!r} for {key}")


_FIELD_HEAD = re.compile(r"([A-Za-z_][\w.]*)(: | )")


def _constructor_error(exc: Exception, fields: Sequence[str], prefix: str) -> ConfigKeyError:
    """A dataclass's own ``__post_init__`` complaint, put at the key it names: messages
    starting ``"limit: ..."`` (the rest is the message), ``"lr must be ..."`` or
    ``"optim.seed must ..."`` (the whole text is)."""
    msg = str(exc)
    m = _FIELD_HEAD.match(msg)
    if m and m.group(1).split(".")[0] in fields:
        rest = msg[m.end():] if m.group(2) == ": " else msg
        return ConfigKeyError(join_key(prefix, m.group(1)), rest)
    return ConfigKeyError(prefix or "(top level)", msg)


def build(cls: type, data: Any, prefix: str = "",
          special: Mapping[str, Callable[[Any, str], Any]] | None = None) -> Any:
    """An instance of dataclass ``cls`` from the mapping ``data`` (None: all defaults).

    ``special`` maps field names to their own builders ``f(value, key)``.  Unknown keys
    (with a "did you mean"), missing required keys, wrong types and the dataclass's own
    ``ValueError`` s are :class:`ConfigKeyError` s naming the key under ``prefix``."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigKeyError(prefix or "(top level)",
                             f"expected a mapping, got {describe(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        # keys the tool writes for itself (metadata "internal") are read, never offered
        offered = sorted(n for n, f in fields.items() if not f.metadata.get("internal"))
        raise ConfigKeyError(join_key(prefix, str(unknown[0])),
                             f"unknown key{did_you_mean(unknown[0], offered)}; known keys "
                             f"here: {', '.join(offered)}")
    kwargs = {}
    for name, value in data.items():
        key = join_key(prefix, name)
        if special and name in special:
            kwargs[name] = special[name](value, key)
        else:
            kwargs[name] = coerce(value, hints[name], key)
    missing = [n for n, f in fields.items() if n not in kwargs
               and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigKeyError(join_key(prefix, missing[0]), "required key is missing")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise _constructor_error(exc, list(fields), prefix) from None


# ---------------------------------------------------------------------------
# Files and overrides
# ---------------------------------------------------------------------------

class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, refusing a key given twice in one mapping (plain
    YAML keeps the last one silently, so a repeated ``path:`` would lose the first)."""


def _mapping_without_repeats(loader: _UniqueKeyLoader, node: yaml.MappingNode,
                             deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: construct_mapping's
            continue
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        try:
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice (lines {seen[key]} and {line})",
                    key_node.start_mark)
            seen[key] = line
        except TypeError:  # an unhashable key: SafeLoader's own error follows
            continue
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                 _mapping_without_repeats)


def read_yaml(path: str | os.PathLike, error: type[Exception] = EftError) -> dict:
    """The YAML mapping in ``path``; an ``error`` naming the file when it is missing,
    not text, not YAML or not a mapping."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise error(f"{p}: no such config file")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{p}: not a YAML text file (byte {exc.start} is not UTF-8 text; "
                    "binary file?)") from None
    if "\x00" in text:
        raise error(f"{p}: not a YAML text file (it holds NUL bytes; binary file?)")
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise error(f"{p}: not valid YAML{where}: "
                    f"{getattr(exc, 'problem', None) or exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(f"{p}: expected a mapping of settings at the top level")
    return data


def parse_override(text: str, error: type[Exception] = EftError,
                   example: str = "optim.steps=100") -> tuple[list[str | int], Any]:
    """``"eft.max_iters=10"`` -> ``(["eft", "max_iters"], 10)``: the value read as YAML
    (``null``, ``true``, ``[a, b]``, numbers; nothing = null); list items by index
    (``datasets.0.path=...``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise error(f"--set {text!r}: expected KEY=VALUE, e.g. {example}")
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in key.strip().split(".")]
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise error(f"--set {text!r}: value is not valid YAML ({exc})") from None
    return parts, value


def apply_override(data: dict, path: Sequence[str | int], value: Any,
                   error: type[Exception] = EftError) -> dict:
    """Set ``data[path[0]][path[1]]... = value`` in place (missing mappings are made);
    returns ``data``."""
    node: Any = data
    shown = ""
    dotted = ".".join(map(str, path))
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(part, int):
            if not isinstance(node, list) or not -len(node) <= part < len(node):
                raise error(f"--set {dotted}: no list item {part} at "
                            f"{shown or '(top level)'}")
        elif not isinstance(node, dict):
            raise error(f"--set {dotted}: {shown} is not a mapping")
        if last:
            node[part] = value
        else:
            if isinstance(part, str) and node.get(part) is None:
                node[part] = {}
            node = node[part]
        shown = join_key(shown, part)
    return data


# ---------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------

def plain(value: Any) -> Any:
    """A plain (JSON/YAML-able) copy of a config tree: dataclasses become dicts (field
    order; fields derived in ``__post_init__``, ``init=False``, left out), tuples lists,
    mapping keys strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.init}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``(dotted key, old value, new value)`` for every leaf that differs between two
    nested mappings (a key one side lacks shows as :data:`UNSET`), in key order."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            out += changed_keys(old.get(k, UNSET), new.get(k, UNSET),
                                f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if old == new else [(prefix, old, new)]
