"""A user's own loss by its import path, ``module:attr``: imported from the working directory, trained and
audited like a registered one, and known by its source file's SHA-256 (so an edited loss is a new run).

The contract: a callable ``(logits [N, K], targets [N]) -> per-sample losses [N]``, or an ``nn.Module``
class taking ``num_classes``. It takes no aplab parameters (alpha, beta, ...): it is called as it is.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import AplabError, ConfigError
from .base import Loss, LossInfo, check_inputs, reduce

#: The contract a user's loss must meet, quoted in every error about it.
CONTRACT = "a callable (logits [N, K], targets [N]) -> per-sample losses [N], or an nn.Module class taking num_classes"


def is_custom(name: object) -> bool:
    """Whether a loss name is an import path ``module:attr`` rather than a registered name."""
    return isinstance(name, str) and ":" in name


def import_module(module_name: str, spec: str) -> Any:
    """Import ``module_name`` as ``python -m`` would from here: the working directory first, then sys.path.

    The working directory is on sys.path only during the import (nothing global is left changed but the
    imported module itself); errors are one ConfigError line on ``loss``.
    """
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except (ImportError, SyntaxError) as err:  # a syntax error in the user's module is theirs: one line
        raise ConfigError("loss", spec, f"an importable module (from the working directory or sys.path): "
                                        f"importing {module_name!r} failed ({type(err).__name__}: {err})") from None
    finally:
        if added and os.getcwd() in sys.path:
            sys.path.remove(os.getcwd())


def resolve_attr(spec: str) -> tuple[Any, Any]:
    """``module:attr`` -> (the module, the attribute as found), each failure one ConfigError line."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError("loss", spec, "a registered loss name or module:attr (a module and an attribute)")
    module = import_module(module_name, spec)
    if not hasattr(module, attr):
        raise ConfigError("loss", spec, f"an attribute of module {module_name!r}: it has no {attr!r}")
    return module, getattr(module, attr)


def load_callable(spec: str, num_classes: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The per-sample function ``spec`` names: a callable as is, an nn.Module class made with ``num_classes``."""
    _, obj = resolve_attr(spec)
    if inspect.isclass(obj) and issubclass(obj, nn.Module):
        try:
            obj = obj(num_classes=num_classes)
        except Exception as err:  # the user's constructor: any failure is theirs, reported in one line
            raise ConfigError("loss", spec, f"{CONTRACT}; {spec.partition(':')[2]}(num_classes={num_classes}) raised "
                                            f"{type(err).__name__}: {err}") from None
    if not callable(obj):
        raise ConfigError("loss", spec, CONTRACT)
    return obj


def source_file(spec: str) -> Path | None:
    """The file the module of ``spec`` was loaded from (None for a module without one)."""
    module, _ = resolve_attr(spec)
    path = getattr(module, "__file__", None)
    return Path(path).resolve() if path else None


def source_sha256(spec: str) -> str:
    """The SHA-256 of the source file defining ``spec``'s module: the custom loss's part of a run's identity."""
    path = source_file(spec)
    if path is None or not path.is_file():
        raise ConfigError("loss", spec, "a loss defined in a Python file (its source is hashed into the run's identity)")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def checked(function: Callable, spec: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
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


def custom_info(spec: str) -> LossInfo:
    """Metadata of a user's loss: nothing is claimed about it (``aplab audit`` checks what values can tell)."""
    return LossInfo(name=spec, kind="custom", robust=False,  # type: ignore[arg-type]
                    summary="a user's loss, imported from " + spec, reference=spec)


class CustomLoss(Loss):
    """A user's per-sample loss with the engine hooks of every built loss, reduced as asked (float32 inside)."""

    def __init__(self, spec: str, num_classes: int, reduction: str, params: dict[str, object]):
        super().__init__(custom_info(spec), num_classes, reduction, params)
        function = load_callable(spec, num_classes)
        if isinstance(function, nn.Module):
            self.user = function  # its parameters and buffers move with the loss
        self.function = checked(function, spec)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        check_inputs(logits, targets, self.num_classes)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return reduce(self.function(logits.float() if logits.dtype != torch.float64 else logits, targets),
                          self.reduction)


def build_custom(spec: str, num_classes: int, reduction: str, fidelity: str, params: dict[str, object]) -> Loss:
    """Build a user's loss; it takes no parameters (each one named in a one-line error)."""
    if params:
        key = next(iter(params))
        raise ConfigError(key, params[key], "parameters of registered losses only; a module:attr loss is called "
                                            "as it is")
    return CustomLoss(spec, num_classes, reduction, {"fidelity": fidelity})
