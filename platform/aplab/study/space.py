"""Search spaces: YAML files that name run-config fields and their distributions, or a grid of points.

A space is data (``search_spaces/*.yaml``). ``load_space`` checks its shape (kinds, bounds, keys);
``check_against_config`` checks every value against the run config (the field exists, its type
fits, the resolved config is valid), so a bad space fails before any trial starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import RunConfig, apply, field_names, from_flat, load_yaml
from ..config.resolve import resolve
from ..errors import ConfigError
from ..registry import Registry, did_you_mean

Scalar = bool | int | float | str | None
SPACE_KEYS = ("name", "description", "grid", "params", "sampler", "pruner", "n_trials")


@dataclass(frozen=True)
class ParamSpec:
    """One searched config field (``loss.alpha``) and its distribution (categorical, int or float)."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Scalar, ...] = ()

    def distribution(self):
        """The Optuna distribution of this parameter."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "categorical":
            return CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)

    def suggest(self, trial) -> Any:
        """Ask ``trial`` for this parameter's value (an enqueued trial returns its fixed value)."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)

    def probe_values(self) -> list[Scalar]:
        """The values that bound what a trial can get: every choice, or both bounds."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space: its parameters, and for a grid the points to enqueue."""

    name: str
    source: str
    params: tuple[ParamSpec, ...]
    is_grid: bool
    sampler: dict[str, Any] = field(default_factory=dict)
    pruner: dict[str, Any] = field(default_factory=dict)
    n_trials: int | None = None
    description: str = ""

    @property
    def param_names(self) -> list[str]:
        return [p.name for p in self.params]

    def points(self) -> list[dict[str, Scalar]]:
        """Every grid point (the Cartesian product of the grid's lists), in file order."""
        if not self.is_grid:
            return []
        names = self.param_names
        return [dict(zip(names, values)) for values in itertools.product(*(p.choices for p in self.params))]

    def make_sampler(self, trial_number: int = 0):
        """The space's sampler, seeded from (seed, trial number) when the space sets a seed.

        A seed per trial number keeps several workers (and a resumed study) from drawing the
        same random start-up points, while staying reproducible.
        """
        options = dict(self.sampler)
        factory = SAMPLERS.get(options.pop("name", "tpe"), field=f"{self.source}: sampler.name")
        if options.get("seed") is not None:
            options["seed"] = trial_seed(int(options["seed"]), trial_number)
        return _build(factory, options)

    def make_pruner(self):
        """The space's pruner (``none`` when the space names none)."""
        options = dict(self.pruner)
        return _build(PRUNERS.get(options.pop("name", "none"), field=f"{self.source}: pruner.name"), options)

    def digest(self) -> str:
        """The identity of what is searched (parameters and grid, not the budget or sampler settings)."""
        text = json.dumps([dataclasses.asdict(p) for p in self.params] + [self.is_grid], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- samplers and pruners


def _build(factory: Callable[..., Any], options: dict[str, Any]) -> Any:
    """``factory(**options)``, quiet about Optuna's "experimental" options (the space chose them knowingly)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*experimental feature.*")
        return factory(**options)


def trial_seed(seed: int, trial_number: int) -> int:
    """A well-mixed 32-bit seed for one trial (``seed + n`` would give neighbouring, alike streams)."""
    return int(np.random.SeedSequence((seed, trial_number)).generate_state(1)[0])



def _tpe(**options):
    from optuna.samplers import TPESampler

    return TPESampler(**options)


def _random(**options):
    from optuna.samplers import RandomSampler

    return RandomSampler(**options)


def _median(**options):
    from optuna.pruners import MedianPruner

    return MedianPruner(**options)


def _percentile(**options):
    from optuna.pruners import PercentilePruner

    return PercentilePruner(**options)


def _no_pruner(**options):
    from optuna.pruners import NopPruner

    return NopPruner(**options)


#: Samplers by name; the space's other sampler keys are passed as keyword arguments.
SAMPLERS: Registry[Callable[..., Any]] = Registry("sampler")
SAMPLERS.register("tpe", _tpe)
SAMPLERS.register("random", _random)

#: Pruners by name; the space's other pruner keys are passed as keyword arguments.
PRUNERS: Registry[Callable[..., Any]] = Registry("pruner")
PRUNERS.register("median", _median)
PRUNERS.register("percentile", _percentile)
PRUNERS.register("none", _no_pruner)


# ----------------------------------------------------------------------------- parsing


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
        _build(factory, kwargs)
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


# ----------------------------------------------------------------------------- against the run config


def apply_params(base: RunConfig, params: dict[str, Any]) -> RunConfig:
    """A copy of ``base`` with the trial's parameters set (typed, like ``--set``)."""
    cfg = from_flat(base.flat())
    for name, value in params.items():
        apply(cfg, name, value)
    return cfg


def check_against_config(space: SearchSpace, base: RunConfig) -> None:
    """Resolve the config at every grid point, or at each bound and choice of every parameter.

    Catches a value the field's type refuses or the loss cannot take (``loss.q`` for nce+rce),
    naming the space file and the field, before any trial exists.
    """
    probes = space.points() if space.is_grid else [
        {spec.name: value} for spec in space.params for value in spec.probe_values()]
    for point in probes:
        try:
            resolve(apply_params(base, point))
        except ConfigError as err:
            raise ConfigError(f"{space.source}: {err.field}", err.value, err.allowed) from None


__all__ = ["KINDS", "PRUNERS", "SAMPLERS", "ParamSpec", "SearchSpace", "apply_params", "check_against_config",
           "load_space", "parse_param", "parse_space", "trial_seed"]
