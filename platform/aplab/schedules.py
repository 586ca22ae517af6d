"""Learning-rate schedules by name: each builds its torch scheduler from the optimiser and the run's optim section.

The one list of schedules: ``config.resolve`` checks ``optim.schedule`` against it and the engine builds
from it, so a schedule added here is accepted and built alike. torch is imported by the factories only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .registry import Registry

#: name -> (optimizer, optim config) -> torch LR scheduler, stepped once per epoch
SCHEDULES: Registry[Callable[[Any, Any], Any]] = Registry("schedule")


@SCHEDULES.register("cosine")
def cosine(optimizer, optim):
    """Cosine annealing from optim.lr to optim.eta_min (unset: 0) over optim.epochs (the paper's schedule)."""
    from torch.optim.lr_scheduler import CosineAnnealingLR

    return CosineAnnealingLR(optimizer, T_max=optim.epochs, eta_min=optim.eta_min or 0.0)


@SCHEDULES.register("exponential")
def exponential(optimizer, optim):
    """optim.lr x optim.lr_decay^epoch (WebVision's 0.97 per epoch)."""
    from torch.optim.lr_scheduler import ExponentialLR

    return ExponentialLR(optimizer, gamma=optim.lr_decay)


@SCHEDULES.register("step")
def step(optimizer, optim):
    """optim.lr x optim.lr_decay every optim.step_size epochs (CIFAR-N's 0.1 at epoch 60)."""
    from torch.optim.lr_scheduler import StepLR

    return StepLR(optimizer, step_size=optim.step_size, gamma=optim.lr_decay)


@SCHEDULES.register("constant")
def constant(optimizer, optim):
    """optim.lr throughout."""
    from torch.optim.lr_scheduler import LambdaLR

    return LambdaLR(optimizer, lambda _: 1.0)


def build_schedule(name: str, optimizer, optim):
    """The scheduler ``name`` for ``optimizer``; an unknown name is a ConfigError naming optim.schedule."""
    return SCHEDULES.get(name, field="optim.schedule")(optimizer, optim)
