"""Reading a search space file: its shape checked (kinds, bounds, keys, sampler and pruner options).

Every mistake is a ConfigError naming the file and the key; the values are checked against the run config
afterwards (``space.check_against_config``).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from collections.abc import Callable
from typing import Any

from ..config import RunConfig, field_names, load_yaml
from ..errors import ConfigError
from ..registry import Registry, did_you_mean
from .space import PRUNERS, SAMPLERS, SPACE_KEYS, ParamSpec, Scalar, SearchSpace, build_option

def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number_hint(values: tuple[Scalar, ...]) -> str:
    """YAML 1.1 reads ``1e6`` as text; say so when a text value is a number."""
    for value in values:
        try:
            float(str(value))
        except ValueError:
            continue
        if isinstance(value, str):
            return f" (YAML reads {value} as text: write it as 1.0e+6 style, with a dot and a signed exponent)"
    return ""


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _field_types() -> dict[str, str]:
    """Dotted config field -> its annotation (``"float | None"``)."""
    return {f"{section.name}.{member.name}": str(member.type)
            for section in dataclasses.fields(RunConfig) for member in dataclasses.fields(section.default_factory())}


def _check_field(name: object, where: str) -> str:
    names = field_names()
    if not isinstance(name, str) or name not in names:
        raise ConfigError(where, name, "a run config field such as loss.alpha, loss.beta, optim.lr"
                          + did_you_mean(name, names))
    return name


def _check_keys(body: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in body:
        if key not in allowed:
            raise ConfigError(f"{where}.{key}", body[key], "not a key here; the keys are " + ", ".join(allowed)
                              + did_you_mean(key, list(allowed)))


def _bounds(name: str, body: dict[str, Any], where: str, integer: bool) -> ParamSpec:
    kind = "int" if integer else "float"
    _check_keys(body, ("type", "low", "high", "step", "log"), where)
    number = "an integer" if integer else "a number"
    for key in ("low", "high"):
        value = body.get(key)
        if not _is_number(value) or (integer and not float(value).is_integer()):
            raise ConfigError(f"{where}.{key}", value, number)
    low, high = body["low"], body["high"]
    if low > high:
        raise ConfigError(f"{where}.low", low, f"{number} <= high ({high})")
    log = body.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log", log, "true or false")
    if log and (low < 1 if integer else low <= 0):
        raise ConfigError(f"{where}.low", low, "an integer >= 1 for a log distribution" if integer
                          else "a number > 0 for a log distribution (log of a non-positive bound is undefined)")
    step = body.get("step")
    if step is not None:
        if not _is_number(step) or step <= 0 or (integer and not float(step).is_integer()):
            raise ConfigError(f"{where}.step", step, f"{number} > 0")
        if log and step != 1:
            raise ConfigError(f"{where}.step", step, "unset: a log distribution takes no step")
    if integer:
        return ParamSpec(name, kind, int(low), int(high), int(step) if step is not None else None, log)
    return ParamSpec(name, kind, float(low), float(high), float(step) if step is not None else None, log)


def _categorical(name: str, body: dict[str, Any], where: str) -> ParamSpec:
    _check_keys(body, ("type", "choices"), where)
    return ParamSpec(name, "categorical", choices=_values(body.get("choices"), f"{where}.choices"))


def _values(values: object, where: str) -> tuple[Scalar, ...]:
    if not isinstance(values, list) or not values:
        raise ConfigError(where, values, "a non-empty list of values")
    for value in values:
        if not _is_scalar(value):
            raise ConfigError(where, value, "numbers, strings, booleans or null")
    if len(set(map(repr, values))) != len(values):
        raise ConfigError(where, values, "a list without repeated values")
    return tuple(values)


#: Distribution kinds by ``type``: (field name, body, where) -> ParamSpec.
KINDS: Registry[Callable[[str, dict[str, Any], str], ParamSpec]] = Registry("distribution type")
KINDS.register("categorical", _categorical)
KINDS.register("int", lambda name, body, where: _bounds(name, body, where, integer=True))
KINDS.register("float", lambda name, body, where: _bounds(name, body, where, integer=False))


def parse_param(name: str, body: object, where: str) -> ParamSpec:
    """One ``params`` entry: ``{type: float, low: 0.01, high: 100, log: true}`` and the like."""
    if not isinstance(body, dict):
        raise ConfigError(where, body, "a mapping such as {type: float, low: 0.01, high: 100, log: true}")
    parser = KINDS.get(body.get("type"), field=f"{where}.type")
    spec = parser(name, body, where)
    annotation = _field_types()[name]
    if spec.kind != "categorical" and not annotation.startswith(("int", "float")):
        raise ConfigError(f"{where}.type", spec.kind, f"categorical: {name} is not a number ({annotation})")
    if spec.kind == "float" and annotation.startswith("int"):
        raise ConfigError(f"{where}.type", spec.kind, f"int or categorical: {name} is an integer field")
    return spec


def _options(value: object, registry: Registry, where: str) -> dict[str, Any]:
    """A ``sampler:``/``pruner:`` entry: a name or ``{name: tpe, seed: 0, ...}``; checked by building it."""
    options = {"name": value} if isinstance(value, str) else value
    if not isinstance(options, dict) or "name" not in options:
        raise ConfigError(where, value, f"a name ({', '.join(registry.names())}) or a mapping with a name")
    kwargs = {k: v for k, v in options.items() if k != "name"}
    factory = registry.get(options["name"], field=f"{where}.name")
    try:
        build_option(factory, kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(where, kwargs, f"keyword arguments that {options['name']} accepts ({err})") from None
    return dict(options)


def parse_space(data: object, source: str = "search space") -> SearchSpace:
    """Validate the content of a space file (a mapping) and build the SearchSpace."""
    if not isinstance(data, dict):
        raise ConfigError(source, type(data).__name__, "a mapping with grid: or params:")
    _check_keys(data, SPACE_KEYS, source)
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: name", name, "a non-empty string")
    has_grid, has_params = "grid" in data, "params" in data
    if has_grid == has_params:
        raise ConfigError(source, sorted(k for k in ("grid", "params") if k in data),
                          "exactly one of grid: (points to run) or params: (distributions to sample)")
    if has_grid:
        grid = data["grid"]
        if not isinstance(grid, dict) or not grid:
            raise ConfigError(f"{source}: grid", grid,
                              "a non-empty grid: a mapping of config fields to lists of values")
        params = tuple(ParamSpec(_check_field(key, f"{source}: grid"), "categorical",
                                 choices=_values(values, f"{source}: grid.{key}")) for key, values in grid.items())
        for spec in params:
            if _field_types()[spec.name].startswith(("int", "float")) and not all(map(_is_number, spec.choices)):
                raise ConfigError(f"{source}: grid.{spec.name}", list(spec.choices), "a list of numbers"
                                  + _number_hint(spec.choices))
        if "sampler" in data:
            raise ConfigError(f"{source}: sampler", data["sampler"], "unset: a grid runs each of its points once")
        if "n_trials" in data:
            raise ConfigError(f"{source}: n_trials", data["n_trials"], "unset: a grid runs each of its points once")
        sampler: dict[str, Any] = {"name": "random", "seed": 0}  # never consulted: every grid trial is enqueued
    else:
        body = data["params"]
        if not isinstance(body, dict) or not body:
            raise ConfigError(f"{source}: params", body, "a non-empty mapping of config fields to distributions")
        params = tuple(parse_param(_check_field(key, f"{source}: params"), value, f"{source}: params.{key}")
                       for key, value in body.items())
        sampler = _options(data.get("sampler", "tpe"), SAMPLERS, f"{source}: sampler")
    pruner = _options(data.get("pruner", "none"), PRUNERS, f"{source}: pruner")
    n_trials = data.get("n_trials")
    if n_trials is not None and (isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1):
        raise ConfigError(f"{source}: n_trials", n_trials, "an integer >= 1")
    description = data.get("description", "")
    return SearchSpace(name, source, params, has_grid, sampler, pruner, n_trials, str(description or ""))


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a space file; every mistake is a ConfigError naming the file and the key."""
    return parse_space(load_yaml(path), source=Path(path).name)


__all__ = ["KINDS", "load_space", "parse_param", "parse_space"]
