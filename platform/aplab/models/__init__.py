"""Model zoo: the paper's cnn4/cnn8 and timm ResNets (CIFAR stem for small images), by name.

``build_model(name, num_classes, in_channels, image_size)`` is the one entry point; every registered
factory has that signature. ``model_factory`` holds the one rule for model names, used by both the
config resolution and ``build_model``: a registered name, or any model of timm's ``resnet`` module
(resnet*, resnext*, seresnet*, wide_resnet*, ...). timm is imported only for a name not registered.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, partial

from torch import nn

from ..errors import ConfigError
from ..registry import Registry, did_you_mean
from .cnn import cnn4, cnn8
from .head import Float32Linear, float32_head
from .resnet import is_timm_resnet, resnet_factory, timm_resnet

ModelFactory = Callable[[int, int, int], nn.Module]

MODELS: Registry[ModelFactory] = Registry("model")
MODELS.register("cnn4", cnn4)
MODELS.register("cnn8", cnn8)
for _name in ("resnet18", "resnet34", "resnet50"):
    MODELS.register(_name, resnet_factory(_name))

#: What ``model.name`` may be, after the registered names, in error messages and the --model help.
OTHER_MODELS = "or any other model of timm's resnet module (resnet*, resnext*, seresnet*, wide_resnet*, ...)"


def model_factory(name: str) -> ModelFactory:
    """The factory of model ``name``, or a ConfigError on ``model.name``: THE rule for model names.

    A registered name needs no timm; any other name is accepted when timm's ``resnet`` module lists it.
    """
    if name in MODELS:
        return MODELS.get(name)
    if isinstance(name, str) and is_timm_resnet(name):
        return partial(timm_resnet, name)
    names = MODELS.names()
    raise ConfigError("model.name", name, "one of " + ", ".join(names) + " " + OTHER_MODELS
                      + did_you_mean(name, names))


def _check_positive(field: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(field, value, "a positive integer")


def build_model(name: str, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """A freshly initialised model ``name`` mapping [B, in_channels, image_size, image_size] to [B, K]."""
    factory = model_factory(name)
    _check_positive("model.num_classes", num_classes)
    _check_positive("model.in_channels", in_channels)
    _check_positive("model.image_size", image_size)
    return factory(num_classes, in_channels, image_size)


@lru_cache(maxsize=None)
def can_stack(name: str) -> bool:
    """Whether runs of model ``name`` can train as one stack (``models.stacked``): a registered model whose leaf
    modules are its forward pass (cnn4, cnn8; built on the meta device to ask, no memory, no draws)."""
    if name not in MODELS:
        return False
    import torch

    from .stacked import is_stackable

    with torch.device("meta"):
        return is_stackable(MODELS.get(name)(2, 1, 32))


def available_models() -> list[str]:
    """The registered model names (any other model of timm's resnet module is accepted too)."""
    return MODELS.names()


__all__ = ["MODELS", "OTHER_MODELS", "Float32Linear", "ModelFactory", "available_models", "build_model", "can_stack",
           "float32_head", "model_factory"]
