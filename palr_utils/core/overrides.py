"""One setting of a preset changed for one run, without editing code: the ``OVERRIDES`` parameter.

``OVERRIDES = "sasrec_training.max_minutes=20 finetune.lora_r=16 llm.name=huggyllama/llama-7b"``: space-separated
``dotted.key=value`` pairs (nanoGPT's ``--key=value``, RecBole's "command line over file"). Values are JSON
(``20``, ``0.5``, ``true``, ``null``, ``["q_proj","v_proj"]``) or plain text: a text setting takes it as it is,
a list setting as comma-separated items (``finetune.target_modules=q_proj,v_proj``); no value holds a space. Parsing is
strict: an unknown key or a value of the wrong type is refused by name, with the keys or the type it takes.
Each pair is applied with :func:`dataclasses.replace`, so the changed settings reach every artifact identity
that records them, and a cache made with other settings is refused as usual.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Sequence


class OverrideError(ValueError):
    """An OVERRIDES pair that names no setting, or gives it a value of the wrong type."""


def parse_overrides(text: str) -> tuple[tuple[str, object], ...]:
    """``"a.b=1 c=x"`` -> ``(("a.b", 1), ("c", "x"))``: JSON values where they parse, else the text itself."""
    pairs = []
    for token in (text or "").split():
        key, sep, value = token.partition("=")
        if not sep or not key:
            raise OverrideError(f"OVERRIDES: {token!r} is not key=value (e.g. sasrec_training.max_minutes=20)")
        pairs.append((key.strip(), _json_or_text(value)))
    return tuple(pairs)


def _json_or_text(value: str) -> object:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value  # plain text: a model name, a schedule


@functools.cache
def _hints(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def _coerce(key: str, value: object, hint: object) -> object:
    """``value`` as the type ``hint`` names, or an :class:`OverrideError` saying what it takes."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(key, value, option)
            except OverrideError as error:
                errors.append(str(error))
        raise OverrideError(errors[0] if errors else f"OVERRIDES: {key} cannot be {value!r}")
    if origin is tuple and isinstance(value, (list, str)):
        if isinstance(value, str):  # "0,0.5,1" or "q_proj,v_proj": each item JSON where it parses
            value = [_json_or_text(v) for v in value.split(",") if v]
        item = args[0] if args else object
        return tuple(_coerce(f"{key}[]", v, item) for v in value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return json.dumps(value)  # a text setting given digits: keep them as written
    if isinstance(hint, type) and isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    expected = getattr(hint, "__name__", str(hint))
    raise OverrideError(f"OVERRIDES: {key} takes {expected}, not {value!r} ({type(value).__name__})")


def _replace(obj: object, path: Sequence[str], value: object, done: str = "") -> object:
    name, rest = path[0], path[1:]
    key = f"{done}.{name}" if done else name
    fields = {f.name: f for f in dataclasses.fields(obj) if f.init}
    if name not in fields:
        raise OverrideError(f"OVERRIDES: {type(obj).__name__} has no setting {key!r}; it has {sorted(fields)}")
    current, hint = getattr(obj, name), _hints(type(obj))[name]
    if rest and isinstance(current, dict):  # settings by name, e.g. baseline_training_by_model.ncf.max_minutes
        return dataclasses.replace(obj, **{name: _replace_entry(obj, fields[name], current, rest, value, key)})
    if rest:
        if not dataclasses.is_dataclass(current):
            raise OverrideError(f"OVERRIDES: {key} is a single setting ({type(current).__name__}), not a group")
        return dataclasses.replace(obj, **{name: _replace(current, rest, value, key)})
    if isinstance(current, dict):
        raise OverrideError(f"OVERRIDES: {key} holds settings by name ({sorted(current)}); name one and its "
                            f"setting, e.g. {key}.NAME.X=...")  # fmt: skip
    if dataclasses.is_dataclass(current) and value is None and type(None) in typing.get_args(hint):
        return dataclasses.replace(obj, **{name: None})  # an optional group switched off, e.g. sasrec_from_twin=null
    if dataclasses.is_dataclass(current):
        inner = sorted(f.name for f in dataclasses.fields(current))
        raise OverrideError(f"OVERRIDES: {key} is a group of settings; name one of them ({inner}), e.g. {key}.X=...")
    return dataclasses.replace(obj, **{name: _coerce(key, value, hint)})


def apply_overrides(settings: object, pairs: Sequence[tuple[str, object]]) -> object:
    """A copy of the frozen dataclass ``settings`` with each ``(dotted key, value)`` pair applied in order."""
    for key, value in pairs:
        settings = _replace(settings, key.split("."), value)
    return settings


def format_overrides(pairs: Sequence[tuple[str, object]]) -> str:
    """The pairs as one OVERRIDES string (what a record shows, and what reproduces the run)."""
    return " ".join(f"{key}={value if isinstance(value, str) else json.dumps(value, separators=(',', ':'))}"
                    for key, value in pairs)  # fmt: skip


def _replace_entry(obj: object, field: dataclasses.Field, entries: dict, path: Sequence[str], value: object,
                   key: str) -> dict:  # fmt: skip
    """``entries`` with the setting ``path[1:]`` of the entry ``path[0]`` changed. An entry it does not hold
    yet starts from what the field's ``metadata["new_entry"](obj, name)`` gives (what that name uses today)."""
    name, rest = path[0], path[1:]
    entry = entries.get(name)
    if entry is None and "new_entry" in field.metadata:
        entry = field.metadata["new_entry"](obj, name)
    if entry is None:
        raise OverrideError(f"OVERRIDES: {key} has no entry {name!r}; it has {sorted(entries)}")
    if not rest or not dataclasses.is_dataclass(entry):
        raise OverrideError(f"OVERRIDES: name a setting of {key}.{name}, e.g. {key}.{name}.X=...")
    return {**entries, name: _replace(entry, rest, value, f"{key}.{name}")}
