"""Settings declared once, as dataclass fields with a default and a help text; command-line
flags, environment variables and TOML keys are made from those fields.

A field made with `nested(Cls)` holds a settings object of its own; its fields are named with
the field's name in front: `vad.hangover_ms` is the flag `--vad-hangover-ms`, the environment
variable `STREAMRE_VAD_HANGOVER_MS` and the key `hangover_ms` of the TOML table `[vad]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping

ENV_PREFIX = "STREAMRE_"


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it."""


def setting(default: Any, help: str, **flag: Any) -> Any:
    """A field with its help; `flag` goes to argparse (required, nargs, choices, metavar)."""
    return field(default=default, metadata={"help": help, "flag": flag})


def nested(cls: type, help: str) -> Any:
    """A field holding a settings object of its own, built from its fields' sources."""
    return field(default_factory=cls, metadata={"help": help, "nested": cls})


@dataclass(frozen=True)
class Leaf:
    """One setting that takes a value, wherever it sits among nested settings."""
    path: tuple[str, ...]  # ("vad", "hangover_ms")
    field: dataclasses.Field
    kind: Any  # its resolved type

    @property
    def name(self) -> str:
        return "_".join(self.path)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return env_name(self.name)

    @property
    def toml(self) -> str:
        return ".".join(self.path)

    @property
    def default(self) -> Any:
        return self.field.default


def leaves(cls: type, prefix: tuple[str, ...] = ()) -> list[Leaf]:
    kinds = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        if "nested" in f.metadata:
            found += leaves(f.metadata["nested"], prefix + (f.name,))
        elif f.init:
            found.append(Leaf(prefix + (f.name,), f, kinds[f.name]))
    return found


def add_flags(parser: argparse.ArgumentParser, cls: type, sources: bool = True) -> None:
    """One flag per setting. Unset flags stay None, so weaker sources show through; with
    `sources`, the help names each setting's environment variable and TOML key too."""
    for leaf in leaves(cls):
        extra = dict(leaf.field.metadata.get("flag", {}))
        help_text = leaf.field.metadata.get("help", "")
        if leaf.kind is bool:
            action = "store_false" if leaf.default else "store_true"
            flag = "--no-" + leaf.flag[2:] if leaf.default else leaf.flag
            parser.add_argument(flag, dest=leaf.name, action=action, default=None, help=help_text)
            continue
        if sources:
            shown = ",".join(leaf.default) if isinstance(leaf.default, tuple) else leaf.default
            help_text += f" (default: {shown!r}; env {leaf.env}; TOML key {leaf.toml})"
        elif not extra.get("required") and leaf.default not in ("", None, ()):
            help_text += f" (default: {leaf.default})"
        extra.setdefault("metavar", leaf.name.upper())
        parser.add_argument(leaf.flag, dest=leaf.name, default=None, help=help_text, **extra)


def build(cls: type, args: argparse.Namespace | None = None,
          environ: Mapping[str, str] | None = None, table: Mapping[str, Any] | None = None):
    """`cls` from its sources; strongest first: flag, environment, TOML table, default."""
    values: dict[tuple[str, ...], Any] = {}
    for leaf in leaves(cls):
        value, source, text = _lookup(table or {}, leaf.path), leaf.toml, False
        if environ is not None and leaf.env in environ:
            value, source, text = environ[leaf.env], leaf.env, True
        flag = getattr(args, leaf.name, None) if args is not None else None
        if flag is not None:
            value, source, text = flag, leaf.flag, True
        if value is not _MISSING:
            values[leaf.path] = coerce(leaf, value, source, text)
    return _construct(cls, values, ())


def unknown_keys(cls: type, table: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[str]:
    """TOML keys that name no setting (tables of nested settings are looked into)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = []
    for key, value in table.items():
        f = fields.get(key)
        if f is None:
            unknown.append(".".join(prefix + (key,)))
        elif "nested" in f.metadata and isinstance(value, Mapping):
            unknown += unknown_keys(f.metadata["nested"], value, prefix + (key,))
    return unknown


def coerce(leaf: Leaf, value: Any, source: str, from_text: bool = True) -> Any:
    """`value` as the setting's type; text (flags, environment) is parsed, TOML must match."""
    kind = leaf.kind
    union = typing.get_origin(kind) in (typing.Union, types.UnionType)
    options = [a for a in typing.get_args(kind) if a is not type(None)] if union else [kind]
    if value is None and union and type(None) in typing.get_args(kind):
        return None
    for option in options:
        try:
            return _as(option, value, from_text)
        except (ValueError, TypeError):
            continue
    raise ConfigError(f"{source}: {leaf.name} expects {_type_name(kind)}, got {value!r}")


_MISSING = object()


def _as(kind: Any, value: Any, from_text: bool) -> Any:
    if typing.get_origin(kind) is tuple:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ValueError
    if kind is bool:
        if isinstance(value, bool):
            return value
        if from_text and isinstance(value, str) and value.lower() in ("1", "true", "0", "false"):
            return value.lower() in ("1", "true")
        raise ValueError
    if isinstance(value, bool):
        raise ValueError
    if kind is float and isinstance(value, int):
        return float(value)
    if isinstance(value, str) and kind is not str and from_text:
        return kind(value)
    if not isinstance(value, kind):
        raise ValueError
    return value


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", None) or str(kind).replace("typing.", "")


def _lookup(table: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(table, Mapping) or key not in table:
            return _MISSING
        table = table[key]
    return table


def _construct(cls: type, values: dict[tuple[str, ...], Any], prefix: tuple[str, ...]):
    kwargs = {}
    for f in dataclasses.fields(cls):
        path = prefix + (f.name,)
        if "nested" in f.metadata:
            kwargs[f.name] = _construct(f.metadata["nested"], values, path)
        elif path in values:
            kwargs[f.name] = values[path]
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        where = ".".join(prefix)
        raise ConfigError(f"{where}: {e}" if where else str(e)) from None
