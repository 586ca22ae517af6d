"""Checks of the fields no domain package owns (optim, runtime, tracking), run once presets have filled them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import ConfigError, one_of
from .schema import RunConfig

DECODERS = ("cpu", "gpu")
PRECISIONS = ("auto", "fp32", "bf16", "fp64")  # fp64: the model and its inputs in float64 (exactness checks)


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
    _require(r.threads is None or r.threads >= 1, "runtime.threads", r.threads,
             "an integer >= 1, or unset (the free cores this process may use)")
    _require(r.decode in DECODERS, "runtime.decode", r.decode, one_of(DECODERS))
    _require(r.device == "auto" or r.device.split(":")[0] in ("cpu", "cuda", "mps"),
             "runtime.device", r.device, "auto, cpu, cuda, cuda:N or mps")
    experiment = cfg.tracking.experiment
    _require(bool(experiment.strip()) and experiment not in (".", "..") and not set("/\\\0") & set(experiment),
             "tracking.experiment", experiment, "a non-empty name without / or \\, not . or .. (it names the run "
             "folders' folder under tracking.workdir)")
    workdir = str(cfg.tracking.workdir)
    _require(bool(workdir.strip()), "tracking.workdir", workdir, "a folder path")
    _require(not Path(workdir).exists() or Path(workdir).is_dir(), "tracking.workdir", workdir,
             "a folder (this is a file)")
