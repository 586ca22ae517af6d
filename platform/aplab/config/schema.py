"""Typed run configuration: dataclasses, YAML files, dotted overrides, the frozen resolved type, the hash.

The bottom layer: it knows no other aplab package. ``aplab.config.resolve.resolve`` (above every package)
fills unset fields from the dataset's preset, has each package check its fields, and returns a
``ResolvedConfig``; ``config_hash`` of it is the run's identity (with the code version).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .. import __version__
from ..errors import ConfigError, one_of
from ..keys import affects_results
from ..registry import did_you_mean

DECODERS = ("cpu", "gpu")
PRECISIONS = ("auto", "fp32", "bf16")
#: loss.* fields passed to losses.build (a loss takes a subset; unset ones stay None and out of the hash)
LOSS_PARAMS = ("alpha", "beta", "gamma", "q", "ln_neg", "a", "p", "delta", "lamb", "min_prob", "scale")


class _Freezable:
    """Base of the config dataclasses: once frozen (a resolved config), assigning a field raises."""

    _frozen = False

    def __setattr__(self, name: str, value: Any) -> None:
        if self._frozen:
            raise dataclasses.FrozenInstanceError(
                f"cannot assign {name!r}: a resolved config is frozen (derive one with from_flat(cfg.flat()))")
        super().__setattr__(name, value)

    def _freeze(self) -> None:
        object.__setattr__(self, "_frozen", True)


@dataclass
class DataConfig(_Freezable):
    name: str = "digits"
    data_dir: str | None = None
    val_fraction: float = 0.2
    clean_val: bool = False
    augment: str | None = None
    download: bool = True


@dataclass
class NoiseConfig(_Freezable):
    spec: str = "none"
    file: str | None = None  # a human label file (CIFAR-N) instead of <data-dir>/cifar-n/...
    sampler: str | None = None  # None: aplab's exact counts; "official": the reference code's sampler


@dataclass
class ModelConfig(_Freezable):
    name: str | None = None


@dataclass
class LossConfig(_Freezable):
    name: str = "ce"
    alpha: float | None = None
    beta: float | None = None
    gamma: float | None = None
    q: float | None = None
    ln_neg: int | None = None
    a: float | None = None  # asymmetric losses (Zhou et al. 2021)
    p: float | None = None
    delta: float | None = None  # ANL's L1 weight (Ye et al. 2023)
    lamb: float | None = None
    min_prob: float | None = None
    scale: float | None = None  # a single loss multiplied by this
    fidelity: str = "code"


@dataclass
class OptimConfig(_Freezable):
    epochs: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    momentum: float = 0.9
    nesterov: bool | None = None
    batch_size: int | None = None
    grad_clip: float = 5.0
    schedule: str | None = None
    lr_decay: float = 0.97  # the factor of the exponential and step schedules
    step_size: int | None = None  # epochs between decays of the step schedule (CIFAR-N: 0.1 at epoch 60)


@dataclass
class RuntimeConfig(_Freezable):
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    channels_last: bool | None = None
    eval_batch_size: int = 1024
    nproc_per_node: int = 1  # processes (GPUs) training this one run with DistributedDataParallel
    sync_bn: bool = True  # with nproc_per_node > 1: BatchNorm statistics of the global batch
    decode: str = "cpu"  # where WebVision's JPEGs are decoded: cpu (DataLoader workers) or gpu (nvJPEG)


@dataclass
class TrackingConfig(_Freezable):
    uri: str | None = None
    experiment: str = "aplab"
    run_name: str | None = None
    offline: bool = False
    workdir: str = "aplab_runs"
    system_metrics: bool = True
    log_model: bool = True


@dataclass
class RunConfig(_Freezable):
    data: DataConfig = field(default_factory=DataConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """``{"data.name": "digits", ...}`` for MLflow params and tables."""
        return {f"{section}.{key}": value for section, values in self.to_dict().items()
                for key, value in values.items()}


class ResolvedConfig(RunConfig):
    """A run config with every preset filled and every field checked; assigning any field raises.

    Made only by ``aplab.config.resolve.resolve`` (through ``freeze``); ``resolve`` returns one unchanged.
    """


def freeze(cfg: RunConfig) -> ResolvedConfig:
    """``cfg`` frozen in place as a ResolvedConfig: ``resolve`` hands over its private, filled and checked copy."""
    sections = {f.name: getattr(cfg, f.name) for f in fields(RunConfig)}
    resolved = ResolvedConfig(**sections)
    for section in sections.values():
        section._freeze()
    resolved._freeze()
    return resolved


def field_names() -> list[str]:
    """Every dotted field name of a run config."""
    return list(RunConfig().flat())


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
        data = yaml.safe_load(path.read_text()) or {}
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


def _require(condition: bool, path: str, value: Any, allowed: str) -> None:
    if not condition:
        raise ConfigError(path, value, allowed)


def check_settings(cfg: RunConfig) -> None:
    """Check the fields no package owns (optim, runtime, tracking) once presets have filled them."""
    o = cfg.optim
    _require(o.epochs >= 1, "optim.epochs", o.epochs, "an integer >= 1")
    _require(o.batch_size >= 1, "optim.batch_size", o.batch_size, "an integer >= 1")
    _require(math.isfinite(o.lr) and o.lr > 0, "optim.lr", o.lr, "a number > 0")
    _require(o.weight_decay >= 0, "optim.weight_decay", o.weight_decay, "a number >= 0")
    _require(0 <= o.momentum < 1, "optim.momentum", o.momentum, "a number in [0, 1)")
    _require(o.grad_clip >= 0, "optim.grad_clip", o.grad_clip, "a number >= 0 (0 turns clipping off)")
    _require(0 < o.lr_decay <= 1, "optim.lr_decay", o.lr_decay, "a number in (0, 1]")
    if o.schedule == "step":
        _require(o.step_size is not None and o.step_size >= 1, "optim.step_size", o.step_size,
                 "an integer >= 1 (epochs between decays) with optim.schedule=step")
    else:
        _require(o.step_size is None, "optim.step_size", o.step_size,
                 f"unset: optim.schedule={o.schedule} has no steps")
    r = cfg.runtime
    _require(r.precision in PRECISIONS, "runtime.precision", r.precision, one_of(PRECISIONS))
    _require(r.eval_batch_size >= 1, "runtime.eval_batch_size", r.eval_batch_size, "an integer >= 1")
    _require(r.seed >= 0, "runtime.seed", r.seed, "an integer >= 0")
    _require(r.nproc_per_node >= 1, "runtime.nproc_per_node", r.nproc_per_node, "an integer >= 1")
    _require(r.decode in DECODERS, "runtime.decode", r.decode, one_of(DECODERS))
    _require(r.device == "auto" or r.device.split(":")[0] in ("cpu", "cuda", "mps"),
             "runtime.device", r.device, "auto, cpu, cuda, cuda:N or mps")
    _require(bool(cfg.tracking.experiment), "tracking.experiment", cfg.tracking.experiment, "a non-empty name")


def loss_kwargs(cfg: RunConfig) -> dict[str, float]:
    """The loss parameters that are set, for ``losses.build``."""
    return {k: getattr(cfg.loss, k) for k in LOSS_PARAMS if getattr(cfg.loss, k) is not None}


def identity(cfg: RunConfig) -> dict[str, Any]:
    """The part of a resolved config that determines its results."""
    # unset (None) fields are left out: adding one keeps old hashes
    flat = {k: v for k, v in cfg.flat().items() if affects_results(k) and v is not None}
    return {"code_version": __version__, **flat}


def config_hash(cfg: RunConfig) -> str:
    """A 16-hex-digit digest of the run's identity: same config and code version, same hash."""
    text = json.dumps(identity(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def to_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
