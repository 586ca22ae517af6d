"""What the auditor evaluates: a registered loss or the user's ``module:attr``, as per-sample losses [N]."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..losses import build, info
from ..losses.base import LOSS_KINDS
from ..losses.custom import CONTRACT, checked, is_custom, load_callable

PerSample = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = ["CONTRACT", "PerSample", "Target", "load"]


@dataclass(frozen=True)
class Target:
    """A loss to audit: the per-sample function, and its kind if known (registry or declared)."""

    function: PerSample
    kind: str | None


def load(spec: str, classes: int, params: dict[str, object], fidelity: str, kind: str | None) -> Target:
    """A registered name (with ``params``) or ``module:attr`` (imported from the working directory, as
    training does: ``losses.custom``); errors are one ConfigError line."""
    if kind is not None and kind not in LOSS_KINDS:
        raise ConfigError("--kind", kind, f"one of {', '.join(LOSS_KINDS)}")
    if not is_custom(spec):
        loss = build(spec, classes, reduction="none", fidelity=fidelity, **params)
        return Target(loss, kind or info(spec).kind)
    if params:
        key = next(iter(params))
        raise ConfigError(f"--set {key}", params[key], "parameters of registered losses only; "
                                                       "a module:attr loss is called as it is")
    return Target(checked(load_callable(spec, classes), spec), kind)
