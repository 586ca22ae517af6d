"""The paper's small CNNs: ``cnn4`` (MNIST "4-layer CNN") and ``cnn8`` (CIFAR-10 "8-layer CNN").

Both follow the authors' ``ToyModel`` (HanxunH/Active-Passive-Losses, models.py): stages of
[conv3x3 pad 1 (with bias), BN, ReLU] then maxpool 2, flatten, linear -> BN1d -> ReLU -> linear K.
The flatten size follows the input size, so the same model runs on 8 px digits and 28/32 px images.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError

CNN4_STAGES: tuple[tuple[int, ...], ...] = ((32,), (64,))
CNN4_HIDDEN = 128
CNN8_STAGES: tuple[tuple[int, ...], ...] = ((64, 64), (128, 128), (196, 196))
CNN8_HIDDEN = 256


def conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    """One [conv3x3 pad 1, BN, ReLU] unit (the authors' ``ConvBrunch``; the conv keeps its bias)."""
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class SmallCNN(nn.Module):
    """Conv stages (each ending in maxpool 2) -> flatten -> linear/BN1d/ReLU -> linear to K logits."""

    STACKABLE = True  # its leaf modules, in order, are its forward pass: K of them train as one (models.stacked)

    def __init__(
        self,
        stages: Sequence[Sequence[int]],
        hidden: int,
        num_classes: int,
        in_channels: int,
        image_size: int,
    ):
        super().__init__()
        downsample = 2 ** len(stages)
        if image_size < downsample:
            raise ConfigError(
                "model.image_size", image_size, f"at least {downsample} px for {len(stages)} max-pools"
            )
        layers: list[nn.Module] = []
        channels = in_channels
        for widths in stages:
            for width in widths:
                layers += conv_bn_relu(channels, width)
                channels = width
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)
        side = image_size
        for _ in stages:
            side //= 2  # MaxPool2d(2) floors, exactly as here
        self.flat_features = channels * side * side
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(self.flat_features, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Authors' init: conv kaiming-uniform (fan_in, relu), linear xavier-uniform.

        Biases keep PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)) and BN keeps weight 1,
        bias 0, as in the authors' ``_reset_prams`` (which touches weights only).
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def cnn4(num_classes: int, in_channels: int, image_size: int) -> SmallCNN:
    """The paper's MNIST "4-layer CNN": 2 conv stages (32, 64), hidden 128 (64*7*7 features at 28 px)."""
    return SmallCNN(CNN4_STAGES, CNN4_HIDDEN, num_classes, in_channels, image_size)


def cnn8(num_classes: int, in_channels: int, image_size: int) -> SmallCNN:
    """The paper's CIFAR-10 "8-layer CNN": 3 stages of 2 convs (64, 128, 196), hidden 256, no dropout."""
    return SmallCNN(CNN8_STAGES, CNN8_HIDDEN, num_classes, in_channels, image_size)
