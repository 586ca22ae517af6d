"""K models of one architecture computed as one: the forward pass of a stack of solo models.

Each convolution is one grouped convolution over the members' channels, each BatchNorm one BatchNorm over
K times the channels (per-channel statistics are each member's own; the running statistics are written
back into each member's buffers), each linear layer one batched matmul. The parameters stay the members'
own (each member is its solo model, so its state_dict and checkpoint are a solo run's): the fused weights
are concatenated from them at every call, and autograd hands each member exactly its own gradient.

Activations flow member-major: [B, K*C, H, W] through the convolutional part, [K, B, F] after Flatten.
A model can be stacked when its leaf modules, in order, are its forward pass (``STACKABLE``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .head import Float32Linear, head_dtype

Layer = Callable[[torch.Tensor], torch.Tensor]


def is_stackable(model: nn.Module) -> bool:
    """Whether ``model`` declares that its leaf modules, in order, are its forward pass (cnn4, cnn8)."""
    return bool(getattr(model, "STACKABLE", False))


def leaves(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if not list(m.children())]


class StackedForward:
    """The fused forward pass of ``members`` (solo models of one architecture, same dtype and device)."""

    def __init__(self, members: Sequence[nn.Module]):
        if not members:
            raise ValueError("a stack needs at least one member")
        if not all(is_stackable(m) for m in members):
            raise ConfigError("model.name", type(members[0]).__name__, "a model that can be stacked (cnn4, cnn8)")
        self.members = list(members)
        columns = [leaves(m) for m in self.members]
        shapes = {tuple((type(layer).__name__, tuple(p.shape for p in layer.parameters(recurse=False)))
                        for layer in column) for column in columns}
        if len(shapes) != 1:
            raise ConfigError("model", "stack members", "one architecture and input size for every member")
        self.layers: list[Layer] = [self._fuse([column[i] for column in columns]) for i in range(len(columns[0]))]

    @property
    def size(self) -> int:
        return len(self.members)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """[B, K*C, H, W] (member k's images in channels k*C..(k+1)*C-1) -> logits [K, B, classes]."""
        for layer in self.layers:
            x = layer(x)
        return x

    def _fuse(self, layers: list[nn.Module]) -> Layer:
        first = layers[0]
        for kind, fuse in FUSERS.items():
            if type(first) is kind:
                return fuse(layers)
        raise ConfigError("model", type(first).__name__, "layers a stack can fuse: " + ", ".join(
            k.__name__ for k in FUSERS))


def fuse_conv(layers: list[nn.Conv2d]) -> Layer:
    """One grouped convolution: member k's filters see member k's input channels only."""
    first, k = layers[0], len(layers)
    if first.groups != 1 or first.padding_mode != "zeros":
        raise ConfigError("model", "Conv2d", "convolutions with groups=1 and zero padding in a stack")

    def conv(x: torch.Tensor) -> torch.Tensor:
        weight = torch.cat([m.weight for m in layers])
        bias = torch.cat([m.bias for m in layers]) if first.bias is not None else None
        return F.conv2d(x, weight, bias, first.stride, first.padding, first.dilation, groups=k)

    return conv


def batch_norm(layers: list[nn.modules.batchnorm._BatchNorm], x: torch.Tensor) -> torch.Tensor:
    """BatchNorm over [B, K*C, ...]: each member's channels by their own statistics; in training, each
    member's running statistics updated as its own BatchNorm would, and its batch counter counted."""
    first = layers[0]
    training = first.training
    mean = torch.cat([m.running_mean for m in layers])
    var = torch.cat([m.running_var for m in layers])
    weight = torch.cat([m.weight for m in layers]) if first.affine else None
    bias = torch.cat([m.bias for m in layers]) if first.affine else None
    momentum = first.momentum
    if training and momentum is None:
        raise ConfigError("model", "BatchNorm(momentum=None)", "BatchNorm with a momentum in a stack")
    out = F.batch_norm(x, mean, var, weight, bias, training, momentum or 0.0, first.eps)
    if training:
        with torch.no_grad():
            for m, m_mean, m_var in zip(layers, mean.chunk(len(layers)), var.chunk(len(layers))):
                m.running_mean.copy_(m_mean)
                m.running_var.copy_(m_var)
                m.num_batches_tracked.add_(1)
    return out


def fuse_bn2d(layers: list[nn.BatchNorm2d]) -> Layer:
    return lambda x: batch_norm(layers, x)


def fuse_bn1d(layers: list[nn.BatchNorm1d]) -> Layer:
    """BatchNorm1d of [K, B, F]: as [B, K*F] (member-major features), back to [K, B, F]."""

    def bn(x: torch.Tensor) -> torch.Tensor:
        k, b, f = x.shape
        flat = x.transpose(0, 1).reshape(b, k * f)
        return batch_norm(layers, flat).view(b, k, f).transpose(0, 1)

    return bn


def fuse_linear(layers: list[nn.Linear]) -> Layer:
    """One batched matmul [K, B, in] x [K, in, out]; the classifier (Float32Linear) in at least float32."""
    head = isinstance(layers[0], Float32Linear)
    has_bias = layers[0].bias is not None

    def linear(x: torch.Tensor) -> torch.Tensor:
        weight = torch.stack([m.weight for m in layers]).transpose(1, 2)
        bias = torch.stack([m.bias for m in layers]).unsqueeze(1) if has_bias else None
        if head:
            dtype = head_dtype(weight)
            with torch.autocast(device_type=x.device.type, enabled=False):
                x, weight = x.to(dtype), weight.to(dtype)
                return torch.baddbmm(bias.to(dtype), x, weight) if bias is not None else torch.bmm(x, weight)
        return torch.baddbmm(bias, x, weight) if bias is not None else torch.bmm(x, weight)

    return linear


def fuse_flatten(layers: list[nn.Flatten]) -> Layer:
    """[B, K*C, H, W] -> [K, B, C*H*W]: each member's features flattened in its solo order (C, H, W)."""
    k = len(layers)

    def flatten(x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        return x.reshape(b, k, -1).transpose(0, 1)

    return flatten


def fuse_relu(layers: list[nn.ReLU]) -> Layer:
    return F.relu


def fuse_maxpool(layers: list[nn.MaxPool2d]) -> Layer:
    m = layers[0]
    return lambda x: F.max_pool2d(x, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)


#: layer type -> how K of them run as one (exact type match: a subclass may compute otherwise)
FUSERS: dict[type, Callable[[list], Layer]] = {
    nn.Conv2d: fuse_conv, nn.BatchNorm2d: fuse_bn2d, nn.BatchNorm1d: fuse_bn1d, nn.Linear: fuse_linear,
    Float32Linear: fuse_linear, nn.Flatten: fuse_flatten, nn.ReLU: fuse_relu, nn.MaxPool2d: fuse_maxpool,
}


def stack_inputs(images: Sequence[torch.Tensor]) -> torch.Tensor:
    """Members' batches [B, C, H, W] (one size) as the stack's input [B, K*C, H, W]."""
    return torch.cat(list(images), dim=1)
