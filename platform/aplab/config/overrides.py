"""Reading a run config: YAML files, nested dicts, dotted ``--set`` overrides (type-checked), and YAML out."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..registry import did_you_mean
from .schema import RunConfig, field_names


def _coerce(path: str, value: Any, annotation: str) -> Any:
    """Convert a parsed override to the field's type, or raise a ConfigError naming the field."""
    if value is None:
        if "None" in annotation:
            return None
        raise ConfigError(path, value, f"a value of type {annotation}")
    if annotation.startswith("bool"):
        if isinstance(value, bool):
            return value
        raise ConfigError(path, value, "true or false")
    if annotation.startswith("int"):
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(path, value, "an integer")
        return int(value)
    if annotation.startswith("float"):
        value = yaml_number(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, value, "a number")
        return float(value)
    if annotation.startswith("str"):
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(path, value, "a string")
        return str(value)
    return value


def yaml_number(value: Any) -> Any:
    """A number YAML 1.1 read as text (``1e-4``) as a float; anything else unchanged."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def apply(config: RunConfig, path: str, value: Any) -> None:
    """Set one dotted field (``optim.lr``) with type checking; unknown names list the choices."""
    section_name, _, key = path.partition(".")
    sections = {f.name: f for f in fields(RunConfig)}
    if section_name not in sections:
        raise ConfigError("config key", path, "a field among " + ", ".join(field_names())
                          + did_you_mean(path, field_names()))
    section = getattr(config, section_name)
    members = {f.name: f for f in fields(section)}
    if key not in members:
        names = [f"{section_name}.{k}" for k in members]
        raise ConfigError("config key", path, "one of " + ", ".join(names) + did_you_mean(path, field_names()))
    setattr(section, key, _coerce(path, value, str(members[key].type)))


def from_dict(data: dict[str, Any], source: str = "config") -> RunConfig:
    """Build a config from a nested dict (a YAML file's content) over the defaults."""
    config = RunConfig()
    if not isinstance(data, dict):
        raise ConfigError(source, type(data).__name__, "a mapping of sections (data, noise, model, loss, optim, runtime, tracking)")
    for path, value in to_flat(data).items():
        apply(config, path, value)
    return config


def to_flat(nested: dict[str, Any]) -> dict[str, Any]:
    """``{"optim": {"lr": 0.1}}`` -> ``{"optim.lr": 0.1}``; a top-level value that is no section keeps its key."""
    flat: dict[str, Any] = {}
    for section, values in nested.items():
        if isinstance(values, dict):
            for key, value in values.items():
                flat[f"{section}.{key}"] = value
        else:
            flat[str(section)] = values
    return flat


def from_flat(flat: dict[str, Any]) -> RunConfig:
    """A config from dotted fields over the defaults."""
    config = RunConfig()
    for path, value in flat.items():
        apply(config, path, value)
    return config


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML file; a missing file or malformed YAML is a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file", str(path), "an existing YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        raise ConfigError("config file", str(path), f"UTF-8 text (byte {err.start} is not)") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError("config file", f"{path}{where}", f"valid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(data, dict):
        raise ConfigError("config file", str(path), "a YAML mapping of sections")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """``"optim.lr=0.05"`` -> ("optim.lr", 0.05); the value is parsed as YAML (numbers, booleans, null)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError("--set", text, "KEY=VALUE such as optim.lr=0.05")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def to_yaml(cfg: RunConfig) -> str:
    """The config as YAML, sections in order (what ``load_yaml`` and ``from_dict`` read back)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
