"""Typed run configuration: dataclasses, YAML files, dotted overrides, presets and validation.

One run = one resolved config. ``resolve`` fills unset fields from the dataset's preset and checks
every field before anything runs; ``config_hash`` is the run's identity (with the code version).
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

from . import __version__
from .errors import ConfigError, one_of
from .registry import did_you_mean

PRECISIONS = ("auto", "fp32", "bf16")
SCHEDULES = ("cosine", "exponential", "constant", "step")
#: loss.* fields passed to losses.build (a loss takes a subset; unset ones stay None and out of the hash)
LOSS_PARAMS = ("alpha", "beta", "gamma", "q", "ln_neg", "a", "p", "delta", "lamb", "min_prob", "scale")


@dataclass
class DataConfig:
    name: str = "digits"
    data_dir: str | None = None
    val_fraction: float = 0.2
    clean_val: bool = False
    augment: str | None = None
    download: bool = True


@dataclass
class NoiseConfig:
    spec: str = "none"
    file: str | None = None  # a human label file (CIFAR-N) instead of <data-dir>/cifar-n/...
    sampler: str | None = None  # None: aplab's exact counts; "official": the reference code's sampler


@dataclass
class ModelConfig:
    name: str | None = None


@dataclass
class LossConfig:
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
class OptimConfig:
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
class RuntimeConfig:
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    channels_last: bool | None = None
    eval_batch_size: int = 1024


@dataclass
class TrackingConfig:
    uri: str | None = None
    experiment: str = "aplab"
    run_name: str | None = None
    offline: bool = False
    workdir: str = "aplab_runs"
    system_metrics: bool = True
    log_model: bool = True


@dataclass
class RunConfig:
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


#: Sections that do not change a run's results, left out of its identity.
NON_IDENTITY_SECTIONS = ("tracking",)
NON_IDENTITY_FIELDS = ("data.data_dir", "data.download", "runtime.device", "runtime.eval_batch_size",
                       "runtime.compile")


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
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 as text
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, value, "a number")
        return float(value)
    if annotation.startswith("str"):
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(path, value, "a string")
        return str(value)
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


def from_dict(data: dict[str, Any], base: RunConfig | None = None, source: str = "config") -> RunConfig:
    """Build a config from a nested dict (a YAML file's content) over ``base``."""
    config = from_flat(base.flat()) if base else RunConfig()
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


def resolve(config: RunConfig) -> RunConfig:
    """Fill unset fields from the dataset preset and validate everything; returns a new config."""
    from . import losses, noise
    from .data import AUGMENTATIONS, available_datasets
    from .data.files import FILE_TRANSFORMS
    from .models import available_models
    from .presets import PRESETS, loss_params, preset_for

    cfg = from_flat(config.flat())
    if cfg.data.name not in available_datasets() or cfg.data.name not in PRESETS:
        raise ConfigError("data.name", cfg.data.name, one_of(available_datasets())
                          + did_you_mean(cfg.data.name, available_datasets()))
    _require(cfg.loss.fidelity in losses.FIDELITIES, "loss.fidelity", cfg.loss.fidelity, one_of(losses.FIDELITIES))
    preset = preset_for(cfg.data.name, cfg.loss.fidelity)
    o = cfg.optim
    o.epochs = preset.epochs if o.epochs is None else o.epochs
    o.lr = preset.lr if o.lr is None else o.lr
    o.weight_decay = preset.weight_decay if o.weight_decay is None else o.weight_decay
    o.nesterov = preset.nesterov if o.nesterov is None else o.nesterov
    o.batch_size = preset.batch_size if o.batch_size is None else o.batch_size
    o.schedule = preset.schedule if o.schedule is None else o.schedule
    cfg.model.name = cfg.model.name or preset.model
    cfg.data.augment = cfg.data.augment or preset.augment

    try:
        info = losses.info(cfg.loss.name)
    except ConfigError as err:
        raise ConfigError("loss.name", err.value, err.allowed) from None
    defaults = loss_params(preset, cfg.loss.name)
    probe = losses.build(cfg.loss.name, 10, fidelity=cfg.loss.fidelity)
    takes = set(probe.params) - {"fidelity"}
    for key in LOSS_PARAMS:
        current = getattr(cfg.loss, key)
        if current is None and key in takes:
            setattr(cfg.loss, key, defaults.get(key, probe.params[key]))
        elif current is not None and key not in takes:
            raise ConfigError(f"loss.{key}", current, f"unset: loss {info.name!r} takes "
                              + (", ".join(sorted(takes)) or "no parameters"))
    try:
        losses.build(cfg.loss.name, 10, fidelity=cfg.loss.fidelity, **loss_kwargs(cfg))
    except ConfigError as err:
        raise ConfigError(f"loss.{err.field}", err.value, err.allowed) from None

    try:
        cfg.noise.spec = str(noise.parse_spec(cfg.noise.spec, noise.available()))
    except ConfigError as err:
        raise ConfigError("noise.spec", cfg.noise.spec, f"{err.field} {err.value!r}: {err.allowed}") from None
    models = available_models()
    if cfg.model.name not in models and not str(cfg.model.name).startswith("resnet"):
        raise ConfigError("model.name", cfg.model.name, one_of(models) + did_you_mean(cfg.model.name, models))
    augmentations = [*AUGMENTATIONS.names(), *FILE_TRANSFORMS.names()]
    if cfg.data.augment not in augmentations:
        raise ConfigError("data.augment", cfg.data.augment, one_of(augmentations))
    _require(0.0 <= cfg.data.val_fraction < 1.0, "data.val_fraction", cfg.data.val_fraction, "a number in [0, 1)")
    _require(o.epochs >= 1, "optim.epochs", o.epochs, "an integer >= 1")
    _require(o.batch_size >= 1, "optim.batch_size", o.batch_size, "an integer >= 1")
    _require(math.isfinite(o.lr) and o.lr > 0, "optim.lr", o.lr, "a number > 0")
    _require(o.weight_decay >= 0, "optim.weight_decay", o.weight_decay, "a number >= 0")
    _require(0 <= o.momentum < 1, "optim.momentum", o.momentum, "a number in [0, 1)")
    _require(o.grad_clip >= 0, "optim.grad_clip", o.grad_clip, "a number >= 0 (0 turns clipping off)")
    _require(o.schedule in SCHEDULES, "optim.schedule", o.schedule, one_of(SCHEDULES))
    _require(0 < o.lr_decay <= 1, "optim.lr_decay", o.lr_decay, "a number in (0, 1]")
    _require(cfg.runtime.precision in PRECISIONS, "runtime.precision", cfg.runtime.precision, one_of(PRECISIONS))
    _require(cfg.runtime.eval_batch_size >= 1, "runtime.eval_batch_size", cfg.runtime.eval_batch_size,
             "an integer >= 1")
    _require(cfg.runtime.seed >= 0, "runtime.seed", cfg.runtime.seed, "an integer >= 0")
    _require(cfg.runtime.device == "auto" or cfg.runtime.device.split(":")[0] in ("cpu", "cuda", "mps"),
             "runtime.device", cfg.runtime.device, "auto, cpu, cuda, cuda:N or mps")
    _require(bool(cfg.tracking.experiment), "tracking.experiment", cfg.tracking.experiment, "a non-empty name")
    return cfg


def loss_kwargs(cfg: RunConfig) -> dict[str, float]:
    """The loss parameters that are set, for ``losses.build``."""
    return {k: getattr(cfg.loss, k) for k in LOSS_PARAMS if getattr(cfg.loss, k) is not None}


def identity(cfg: RunConfig) -> dict[str, Any]:
    """The part of a resolved config that determines its results."""
    flat = {k: v for k, v in cfg.flat().items()  # unset (None) fields are left out: adding one keeps old hashes
            if k.split(".")[0] not in NON_IDENTITY_SECTIONS and k not in NON_IDENTITY_FIELDS and v is not None}
    return {"code_version": __version__, **flat}


def config_hash(cfg: RunConfig) -> str:
    """A 16-hex-digit digest of the run's identity: same config and code version, same hash."""
    text = json.dumps(identity(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def to_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
