"""Model zoo: the paper's cnn4/cnn8 and timm ResNets (CIFAR stem for small images), by name.

``build_model(name, num_classes, in_channels, image_size)`` is the one entry point; every registered
factory has that signature. Any other timm ResNet-family name is accepted through the same factory.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..errors import ConfigError
from ..registry import Registry
from .cnn import cnn4, cnn8
from .head import Float32Linear, float32_head
from .resnet import is_timm_resnet, resnet_factory, timm_resnet

ModelFactory = Callable[[int, int, int], nn.Module]

MODELS: Registry[ModelFactory] = Registry("model")
MODELS.register("cnn4", cnn4)
MODELS.register("cnn8", cnn8)
for _name in ("resnet18", "resnet34", "resnet50"):
    MODELS.register(_name, resnet_factory(_name))


def _check_positive(field: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(field, value, "a positive integer")


def build_model(name: str, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """A freshly initialised model ``name`` mapping [B, in_channels, image_size, image_size] to [B, K]."""
    _check_positive("model.num_classes", num_classes)
    _check_positive("model.in_channels", in_channels)
    _check_positive("model.image_size", image_size)
    if name in MODELS:
        return MODELS.get(name, field="model.name")(num_classes, in_channels, image_size)
    if is_timm_resnet(name):
        return timm_resnet(name, num_classes, in_channels, image_size)
    err = MODELS.unknown(name, field="model.name")
    raise ConfigError(err.field, err.value, f"{err.allowed}; or any other timm ResNet-family name")


def available_models() -> list[str]:
    """The registered model names (other timm ResNet-family names are accepted too)."""
    return MODELS.names()


__all__ = ["MODELS", "Float32Linear", "ModelFactory", "available_models", "build_model", "float32_head"]
