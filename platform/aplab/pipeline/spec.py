"""Declarative pipelines: a YAML matrix (datasets x noise x losses x seeds, plus overrides) -> run configs.

A pipeline file is validated and every cell's config is resolved (``aplab.config.resolve.resolve``) before anything
runs, so a bad name anywhere fails at once with one ``ConfigError`` line that names the file and field.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..config import (LossConfig, RunConfig, config_hash, field_names, from_flat, load_yaml, parse_override, run_folder,
                      to_flat)
from ..config.resolve import resolve
from ..errors import ConfigError
from ..keys import AXIS_FIELDS, run_label
from ..registry import Registry, did_you_mean
from ..report.paper import TABLE_ORDER

log = logging.getLogger(__name__)

TOP_LEVEL_KEYS = ("name", "description", "experiment", "paper_table", "matrix", "overrides")
MATRIX_AXES = ("dataset", "noise", "loss", "seed")
#: The config field each axis sets; an override naming one of them would silently fight the matrix.
AXIS_OF_FIELD = dict(zip(AXIS_FIELDS, MATRIX_AXES))
#: The keys of a matrix loss: LossConfig's fields (name, the LOSS_PARAMS, fidelity), never listed again here.
LOSS_KEYS = tuple(f.name for f in dataclasses.fields(LossConfig))


@dataclass(frozen=True)
class LossEntry:
    """One loss of the matrix: its name and the parameters it sets (the rest come from the presets)."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    def fields(self) -> dict[str, Any]:
        """``{"loss.name": ..., "loss.alpha": ...}`` for the config."""
        return {"loss.name": self.name, **{f"loss.{k}": v for k, v in self.params}}


@dataclass(frozen=True)
class PipelineSpec:
    """A parsed pipeline file: the matrix, the overrides applied to every cell, and where runs are tracked."""

    name: str
    datasets: tuple[str, ...]
    noise: tuple[str, ...]
    losses: tuple[LossEntry, ...]
    seeds: tuple[int, ...]
    overrides: dict[str, Any] = field(default_factory=dict)
    experiment: str = ""
    description: str = ""
    paper_table: str | None = None
    source: str = "pipeline"

    @property
    def loss_order(self) -> list[str]:
        """Loss names in the file's order (reports list rows in this order)."""
        return list(dict.fromkeys(entry.name for entry in self.losses))


@dataclass(frozen=True)
class Cell:
    """One run of a pipeline: its resolved config and identity."""

    index: int
    config: RunConfig
    digest: str

    @property
    def label(self) -> str:
        """How messages name the cell: ``digits ce none seed 0``."""
        return run_label(self.config, readable=True)

    @property
    def run_dir(self) -> Path:
        """The cell's run folder (checkpoint, state, claim)."""
        return run_folder(self.config, self.digest)


# ----------------------------------------------------------------------------- parsing


def _list(value: Any, where: str) -> list[Any]:
    """An axis value as a non-empty list (a scalar is a list of one)."""
    items = value if isinstance(value, list) else [value]
    if value is None or not items:
        raise ConfigError(where, value, "a non-empty list (a matrix with no cells runs nothing)")
    return items


def _loss_entry(item: Any, where: str) -> LossEntry:
    if isinstance(item, str) and item.strip():
        return LossEntry(item.strip())
    if isinstance(item, dict):
        unknown = [k for k in item if k not in LOSS_KEYS]
        if unknown:
            raise ConfigError(f"{where} parameter", unknown[0], "one of " + ", ".join(LOSS_KEYS)
                              + did_you_mean(unknown[0], list(LOSS_KEYS)))
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}.name", name, "a loss name such as ce or nce+rce")
        return LossEntry(name.strip(), tuple((k, item[k]) for k in LOSS_KEYS[1:] if k in item))
    raise ConfigError(where, item, "a loss name, or a mapping {name: nce+rce, alpha: 1, beta: 1}")


def _overrides(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(where, value, "a mapping of dotted config fields, e.g. {optim.epochs: 50}")
    flat = to_flat(value)
    names = field_names()
    for key in flat:
        if key in AXIS_OF_FIELD:
            raise ConfigError(f"{where}.{key}", flat[key], f"set by the matrix; change matrix.{AXIS_OF_FIELD[key]} instead")
        if key not in names:
            raise ConfigError(f"{where} field", key, "a config field such as optim.epochs" + did_you_mean(key, names))
    return flat


def parse_pipeline(data: Any, source: str = "pipeline") -> PipelineSpec:
    """Validate a pipeline mapping (a YAML file's content) into a PipelineSpec; errors name ``source``."""
    if not isinstance(data, dict):
        raise ConfigError(source, type(data).__name__, "a mapping with keys " + ", ".join(TOP_LEVEL_KEYS))
    unknown = [k for k in data if k not in TOP_LEVEL_KEYS]
    if unknown:
        raise ConfigError(f"{source} key", unknown[0], "one of " + ", ".join(TOP_LEVEL_KEYS)
                          + did_you_mean(unknown[0], list(TOP_LEVEL_KEYS)))
    name = data.get("name") or Path(source).stem
    if not isinstance(name, str):
        raise ConfigError(f"{source}: name", name, "a string")
    matrix = data.get("matrix")
    if not isinstance(matrix, dict):
        raise ConfigError(f"{source}: matrix", matrix, "a mapping with keys " + ", ".join(MATRIX_AXES))
    unknown = [k for k in matrix if k not in MATRIX_AXES]
    if unknown:
        raise ConfigError(f"{source}: matrix axis", unknown[0], "one of " + ", ".join(MATRIX_AXES)
                          + did_you_mean(unknown[0], list(MATRIX_AXES)))
    missing = [axis for axis in MATRIX_AXES if axis not in matrix]
    if missing:
        raise ConfigError(f"{source}: matrix.{missing[0]}", None, "a non-empty list (every axis is required)")
    datasets = [str(d) for d in _list(matrix["dataset"], f"{source}: matrix.dataset")]
    noise = [str(n) for n in _list(matrix["noise"], f"{source}: matrix.noise")]
    losses = [_loss_entry(item, f"{source}: matrix.loss") for item in _list(matrix["loss"], f"{source}: matrix.loss")]
    seeds = _list(matrix["seed"], f"{source}: matrix.seed")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"{source}: matrix.seed", seed, "integers >= 0")
    paper_table = data.get("paper_table")
    if paper_table is not None and paper_table not in TABLE_ORDER:
        raise ConfigError(f"{source}: paper_table", paper_table, "one of " + ", ".join(TABLE_ORDER))
    return PipelineSpec(
        name=name, datasets=tuple(datasets), noise=tuple(noise), losses=tuple(losses), seeds=tuple(seeds),
        overrides=_overrides(data.get("overrides"), f"{source}: overrides"),
        experiment=str(data.get("experiment") or f"aplab-{name}"), description=str(data.get("description") or ""),
        paper_table=paper_table, source=source)


def load_pipeline(path: str | Path) -> PipelineSpec:
    """Read and validate a pipeline YAML file (not yet expanded into cells)."""
    return parse_pipeline(load_yaml(path), source=str(path))


# ----------------------------------------------------------------------------- scales

#: --scale NAME -> a function that shrinks a pipeline (``full`` leaves it as written).
SCALES: Registry[Callable[[PipelineSpec], PipelineSpec]] = Registry("--scale")
SMOKE_EPOCHS = 3


@SCALES.register("full")
def full_scale(spec: PipelineSpec) -> PipelineSpec:
    """The pipeline as written."""
    return spec


@SCALES.register("smoke")
def smoke_scale(spec: PipelineSpec) -> PipelineSpec:
    """A CPU check of the whole matrix in minutes: digits for every dataset, the first seed, 3 epochs.

    Noise specs and loss parameters are kept (MNIST's asymmetric map applies to digits), the file's
    overrides are dropped (they are tuned for the real dataset), and runs go to ``<experiment>-smoke``.
    A pipeline whose noise needs its dataset (CIFAR-N's human labels) keeps it, with the small cnn8.
    """
    from .. import noise

    bound = {noise.required_dataset(s) for s in spec.noise} - {None}
    overrides: dict[str, object] = {"optim.epochs": SMOKE_EPOCHS, **({"model.name": "cnn8"} if bound else {})}
    return dataclasses.replace(spec, datasets=spec.datasets if bound else ("digits",), seeds=spec.seeds[:1],
                               overrides=overrides, experiment=f"{spec.experiment}-smoke")


def scaled(spec: PipelineSpec, scale: str = "full", sets: list[str] | None = None) -> PipelineSpec:
    """Apply ``--scale`` then ``--set KEY=VALUE`` overrides (they win) to a pipeline."""
    spec = SCALES.get(scale, "--scale")(spec)
    extra = dict(parse_override(item) for item in sets or [])
    if extra:
        spec = dataclasses.replace(spec, overrides={**spec.overrides, **_overrides(extra, "--set")})
    return spec


# ----------------------------------------------------------------------------- cells


def expand(spec: PipelineSpec, experiment: str | None = None, tracking_uri: str | None = None,
           workdir: str | None = None) -> list[Cell]:
    """Every cell of the matrix as a resolved config (duplicates by config hash dropped, first kept).

    Raises a ConfigError naming the pipeline and the bad field when any cell does not resolve.
    """
    cells: list[Cell] = []
    seen: set[str] = set()
    repeats: list[str] = []
    for dataset in spec.datasets:
        for noise in spec.noise:
            for loss in spec.losses:
                for seed in spec.seeds:
                    flat = {"data.name": dataset, "noise.spec": noise, **loss.fields(), "runtime.seed": seed,
                            **spec.overrides, "tracking.experiment": spec.experiment if experiment is None else experiment}
                    if tracking_uri is not None:
                        flat["tracking.uri"] = tracking_uri
                    if workdir is not None:
                        flat["tracking.workdir"] = workdir
                    try:
                        cfg = resolve(from_flat(flat))
                    except ConfigError as err:
                        raise ConfigError(f"{spec.source}: {err.field}", err.value, err.allowed) from None
                    digest = config_hash(cfg)
                    if digest not in seen:
                        seen.add(digest)
                        cells.append(Cell(len(cells), cfg, digest))
                    else:
                        repeats.append(run_label(cfg, readable=True))
    if repeats:
        log.info("%s: %d matrix cell%s repeat%s another's config (the same config hash) and %s trained once: %s",
                 spec.source, len(repeats), *(("s", "", "are") if len(repeats) > 1 else ("", "s", "is")),
                 ", ".join(repeats[:3]) + (", ..." if len(repeats) > 3 else ""))
    return cells

