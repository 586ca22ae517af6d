"""What the auditor evaluates: a registered loss or the user's ``module:attr``, as per-sample losses [N]."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import AplabError, ConfigError
from ..losses import build, info

PerSample = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: The contract a user's loss must meet, quoted in every error about it.
CONTRACT = "a callable (logits [N, K], targets [N]) -> per-sample losses [N], or an nn.Module class taking num_classes"


@dataclass(frozen=True)
class Target:
    """A loss to audit: the per-sample function, and its kind if known (registry or declared)."""

    function: PerSample
    kind: str | None


def load(spec: str, classes: int, params: dict[str, object], fidelity: str, kind: str | None) -> Target:
    """A registered name (with ``params``) or ``module:attr``; errors are one ConfigError line."""
    if ":" not in spec:
        loss = build(spec, classes, reduction="none", fidelity=fidelity, **params)
        return Target(loss, kind or info(spec).kind)
    if params:
        key = next(iter(params))
        raise ConfigError(f"--set {key}", params[key], "parameters of registered losses only; "
                                                       "a module:attr loss is called as it is")
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError("loss", spec, "a registered loss name or module:attr (a module and an attribute)")
    try:
        module = importlib.import_module(module_name)
    except (ImportError, SyntaxError) as err:  # a syntax error in the user's module is theirs: one line
        raise ConfigError("loss", spec, f"an importable module: importing {module_name!r} failed "
                                        f"({type(err).__name__}: {err})") from None
    if not attr or not hasattr(module, attr):
        raise ConfigError("loss", spec, f"an attribute of module {module_name!r}: it has no {attr!r}")
    obj = getattr(module, attr)
    if inspect.isclass(obj) and issubclass(obj, nn.Module):
        try:
            obj = obj(num_classes=classes)
        except Exception as err:  # the user's constructor: any failure is theirs, reported in one line
            raise ConfigError("loss", spec, f"{CONTRACT}; {attr}(num_classes={classes}) raised "
                                            f"{type(err).__name__}: {err}") from None
    if not callable(obj):
        raise ConfigError("loss", spec, CONTRACT)
    return Target(checked(obj, spec), kind)


def checked(function: PerSample, spec: str) -> PerSample:
    """Wrap a user's loss: any exception or a result that is not a float tensor [N] becomes a ConfigError."""

    def call(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        try:
            out = function(logits, targets)
        except AplabError:
            raise
        except Exception as err:  # the user's code: any failure is theirs, reported in one line
            raise ConfigError("loss", spec, f"{CONTRACT}; calling it raised {type(err).__name__}: {err}") from None
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        if not isinstance(out, torch.Tensor) or out.shape != targets.shape or not out.is_floating_point():
            raise ConfigError("loss", spec, f"{CONTRACT}; it returned {shape} for N = {targets.shape[0]} "
                                            "(reduction='none'?)")
        return out

    return call
