"""Search spaces: YAML files that name run-config fields and their distributions, or a grid of points.

A space is data (``search_spaces/*.yaml``). ``space_file.load_space`` checks its shape (kinds, bounds,
keys); ``check_against_config`` checks every value against the run config (the field exists, its type
fits, the resolved config is valid), so a bad space fails before any trial starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import RunConfig, apply, from_flat
from ..config.resolve import resolve
from ..errors import ConfigError
from ..registry import Registry

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
        return build_option(factory, options)

    def make_pruner(self):
        """The space's pruner (``none`` when the space names none)."""
        options = dict(self.pruner)
        return build_option(PRUNERS.get(options.pop("name", "none"), field=f"{self.source}: pruner.name"), options)

    def digest(self) -> str:
        """The identity of what is searched (parameters and grid, not the budget or sampler settings)."""
        text = json.dumps([dataclasses.asdict(p) for p in self.params] + [self.is_grid], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- samplers and pruners


def build_option(factory: Callable[..., Any], options: dict[str, Any]) -> Any:
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


__all__ = ["PRUNERS", "SAMPLERS", "ParamSpec", "SearchSpace", "apply_params", "check_against_config",
           "trial_seed"]
