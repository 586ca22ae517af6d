"""Keep the classifier's last Linear in float32 under bf16 autocast, so logits are never bf16-rounded.

The robust losses compare probabilities near 1e-7; bf16 logits (8 mantissa bits) change their
gradients by 0.3-2.4 % against float32 at K = 10..100. The head is a tiny share of the compute.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def head_dtype(weight: torch.Tensor) -> torch.dtype:
    """The classifier computes in float32, or in float64 for a model held in float64 (``runtime.precision: fp64``)."""
    return torch.float64 if weight.dtype == torch.float64 else torch.float32


class Float32Linear(nn.Linear):
    """An nn.Linear that computes in float32 (float64 when its weights are) whatever the autocast state (same
    parameters and state_dict)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = head_dtype(self.weight)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return F.linear(x.to(dtype), self.weight.to(dtype), None if self.bias is None else self.bias.to(dtype))


def float32_head(model: nn.Module) -> nn.Module:
    """Replace the model's last nn.Linear (its classifier) by a Float32Linear holding the same parameters, in place.

    Public API (torch 2.14): ``nn.Module.set_submodule`` puts the new module where the old one was, so the
    state_dict keys and the order of ``model.parameters()`` (what the optimiser steps) are unchanged; the new
    module is built on the meta device (no memory, no draw from the random generator) and takes the old
    one's Parameter objects.
    """
    linears = [(name, m) for name, m in model.named_modules() if type(m) is nn.Linear]
    if not linears:
        return model
    name, old = linears[-1]
    head = Float32Linear(old.in_features, old.out_features, bias=old.bias is not None, device="meta")
    head.weight = old.weight
    if old.bias is not None:
        head.bias = old.bias
    head.train(old.training)
    model.set_submodule(name, head)
    return model
