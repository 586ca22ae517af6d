"""timm ResNets built from scratch, with the CIFAR stem for small images.

For images of at most ``CIFAR_STEM_MAX_SIZE`` px the 7x7/2 stem conv and the max-pool are replaced by
a 3x3/1 conv and an identity (as the authors' CIFAR ResNets); larger images keep timm's stem.
Pretrained weights are never fetched. timm (and through it torchvision) is imported only when a ResNet
is looked up or built: a cnn4 run never pays its import time.
"""

from __future__ import annotations

from functools import lru_cache

from torch import nn

CIFAR_STEM_MAX_SIZE = 64


@lru_cache(maxsize=1)
def timm_resnet_names() -> frozenset[str]:
    """Every model name in timm's ``resnet`` module (resnet*, resnext*, seresnet*, ...: one class)."""
    import timm

    return frozenset(timm.list_models(module="resnet"))


def is_timm_resnet(name: str) -> bool:
    """Whether ``name`` is a model of timm's ResNet family (so it has ``conv1``, ``bn1``, ``maxpool``)."""
    return name in timm_resnet_names()


def use_cifar_stem(model: nn.Module, in_channels: int) -> None:
    """Replace ``conv1`` by a 3x3 stride-1 pad-1 conv (no bias) and ``maxpool`` by an identity, in place.

    The new conv outputs what the old stem fed to ``bn1`` (also for timm's deep "d/t/s" stems, whose
    ``conv1`` is a sequence) and is initialised as timm initialises its convs (kaiming-normal, fan_out).
    """
    out_channels = model.bn1.num_features
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    model.conv1 = conv
    model.maxpool = nn.Identity()


def timm_resnet(name: str, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """timm ResNet ``name`` (checked by ``aplab.models.model_factory``) from scratch with K outputs;
    CIFAR stem when image_size <= 64 px."""
    import timm

    model = timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels)
    if image_size <= CIFAR_STEM_MAX_SIZE:
        use_cifar_stem(model, in_channels)
    return model


def resnet_factory(name: str):
    """A ``(num_classes, in_channels, image_size) -> nn.Module`` factory for one timm ResNet name."""

    def factory(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
        return timm_resnet(name, num_classes, in_channels, image_size)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"timm {name} from scratch (CIFAR stem at <= {CIFAR_STEM_MAX_SIZE} px)."
    return factory
