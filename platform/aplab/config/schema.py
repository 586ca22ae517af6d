"""Typed run configuration: the section dataclasses, the frozen resolved type, and the field names.

The bottom layer: it knows no other aplab package. Parsing (``overrides``), checks (``checks``) and the
run's hash (``identity``) sit beside it; ``config.resolve`` (above every package) makes a ResolvedConfig.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any


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


def loss_param() -> Any:
    """A LossConfig field that is a parameter for ``losses.build``: the mark LOSS_PARAMS is read from."""
    return field(default=None, metadata={"loss_param": True})


@dataclass
class LossConfig(_Freezable):
    name: str = "ce"
    alpha: float | None = loss_param()
    beta: float | None = loss_param()
    gamma: float | None = loss_param()
    q: float | None = loss_param()
    ln_neg: int | None = loss_param()
    a: float | None = loss_param()  # asymmetric losses (Zhou et al. 2021)
    p: float | None = loss_param()
    delta: float | None = loss_param()  # ANL's L1 weight (Ye et al. 2023)
    lamb: float | None = loss_param()
    min_prob: float | None = loss_param()
    scale: float | None = loss_param()  # a single loss multiplied by this
    # the losses since APL (docs/losses.md, "Losses since APL")
    m: float | None = loss_param()  # epsilon-softmax's m = 1/epsilon
    tau: float | None = loss_param()  # LogitClip's threshold; sparse regularisation's temperature
    t1: float | None = loss_param()  # bi-tempered loss
    t2: float | None = loss_param()
    order: int | None = loss_param()  # Taylor CE
    epsilon: float | None = loss_param()  # Poly-1
    smooth_rate: float | None = loss_param()  # generalised label smoothing
    pi: float | None = loss_param()  # JS
    rho: float | None = loss_param()  # sparse regularisation's lamb growth, every freq epochs
    freq: int | None = loss_param()
    margin: float | None = loss_param()  # LDR-KL
    fidelity: str = "code"
    source_sha256: str | None = None  # a module:attr loss's source file, filled by resolve (part of the hash)


#: loss.* fields passed to losses.build (a loss takes a subset; unset ones stay None and out of the hash)
LOSS_PARAMS: tuple[str, ...] = tuple(f.name for f in fields(LossConfig) if f.metadata.get("loss_param"))


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
    eta_min: float | None = None  # the cosine schedule's floor (None: 0; the authors' MNIST configs 1e-3)
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
    threads: int | None = None  # torch's intra-op threads; None: the free cores this process may use


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


def loss_kwargs(cfg: RunConfig) -> dict[str, float]:
    """The loss parameters that are set, for ``losses.build``."""
    return {k: getattr(cfg.loss, k) for k in LOSS_PARAMS if getattr(cfg.loss, k) is not None}
