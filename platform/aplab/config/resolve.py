"""Resolution: a RunConfig becomes the frozen ResolvedConfig a run is made of (presets filled, fields checked).

It sits above every package it consults (presets, losses, noise, data, models), so ``config`` stays the
bottom layer. Each package checks its own fields; the fields no package owns are checked by
``config.checks.check_settings``. A run resolves once: ``resolve`` of a resolved config returns it unchanged.
"""

from __future__ import annotations

from .checks import check_settings
from .overrides import from_flat
from .schema import LOSS_PARAMS, ResolvedConfig, RunConfig, freeze, loss_kwargs
from ..errors import ConfigError, one_of
from ..schedules import SCHEDULES

#: Classes of the probe loss built to validate the loss fields (any K >= 2 validates the same parameters).
PROBE_CLASSES = 10


def resolve(config: RunConfig | ResolvedConfig) -> ResolvedConfig:
    """Fill unset fields from the dataset preset and check every field; a resolved config comes back as is."""
    if isinstance(config, ResolvedConfig):
        return config
    from .. import losses
    from ..data import check_data_config, check_dataset
    from ..models import model_factory
    from ..data.presets import preset_for

    cfg = from_flat(config.flat())
    if cfg.loss.fidelity not in losses.FIDELITIES:
        raise ConfigError("loss.fidelity", cfg.loss.fidelity, one_of(losses.FIDELITIES))
    check_dataset(cfg.data.name)
    preset = preset_for(cfg.data.name, cfg.loss.fidelity, cfg.loss.name)
    o = cfg.optim
    o.epochs = preset.epochs if o.epochs is None else o.epochs
    o.lr = preset.lr if o.lr is None else o.lr
    o.weight_decay = preset.weight_decay if o.weight_decay is None else o.weight_decay
    o.nesterov = preset.nesterov if o.nesterov is None else o.nesterov
    o.batch_size = preset.batch_size if o.batch_size is None else o.batch_size
    o.schedule = preset.schedule if o.schedule is None else o.schedule
    if o.eta_min is None and o.schedule == "cosine":
        o.eta_min = preset.eta_min
    cfg.model.name = cfg.model.name or preset.model
    cfg.data.augment = cfg.data.augment or preset.augment

    check_data_config(cfg.data)
    _resolve_loss(cfg, preset)
    _resolve_noise(cfg)
    model_factory(cfg.model.name)  # the one model-name rule: raises a ConfigError on model.name
    SCHEDULES.get(cfg.optim.schedule, field="optim.schedule")  # the schedules the engine can build
    check_settings(cfg)
    _check_eta_min(cfg)
    return freeze(cfg)


def _check_eta_min(cfg: RunConfig) -> None:
    """optim.eta_min: unset, or a floor in [0, optim.lr] of the cosine schedule (the only one that has one)."""
    o = cfg.optim
    if o.eta_min is None:
        return
    if o.schedule != "cosine":
        raise ConfigError("optim.eta_min", o.eta_min, f"unset: optim.schedule={o.schedule} has no floor")
    if not 0 <= o.eta_min <= o.lr:
        raise ConfigError("optim.eta_min", o.eta_min, f"a number in [0, optim.lr={o.lr}]")


def _resolve_loss(cfg: RunConfig, preset) -> None:
    """Check the loss name and the parameters set (one probe build), then fill the unset ones it takes.

    An unset parameter takes the dataset preset's value (``loss_params``), else the loss's own default.
    """
    from .. import losses
    from ..data.presets import loss_params
    from ..losses import custom

    try:
        probe = losses.build(cfg.loss.name, PROBE_CLASSES, fidelity=cfg.loss.fidelity, **loss_kwargs(cfg))
    except ConfigError as err:
        raise ConfigError(f"loss.{err.field}", err.value, err.allowed) from None
    if custom.is_custom(cfg.loss.name):  # the user's source is part of the run: an edited loss is a new run
        cfg.loss.source_sha256 = custom.source_sha256(cfg.loss.name)
    elif cfg.loss.source_sha256 is not None:
        raise ConfigError("loss.source_sha256", cfg.loss.source_sha256, "unset: only a module:attr loss has a source")
    defaults = {**loss_params(preset, cfg.loss.name),
                **losses.settings.settings(cfg.loss.name, cfg.data.name, cfg.noise.spec)}  # per-noise settings
    for key in LOSS_PARAMS:
        if getattr(cfg.loss, key) is None and key in probe.params:
            setattr(cfg.loss, key, defaults.get(key, probe.params[key]))


def _resolve_noise(cfg: RunConfig) -> None:
    """The noise section checked by the noise package (spec, sampler, label file) for this dataset."""
    from .. import noise

    n = cfg.noise
    n.spec = noise.check_config(n.spec, cfg.data.name, sampler=n.sampler, file=n.file)
