"""Keep the classifier's last Linear in float32 under bf16 autocast, so logits are never bf16-rounded.

The robust losses compare probabilities near 1e-7; bf16 logits (8 mantissa bits) change their
gradients by 0.3-2.4 % against float32 at K = 10..100. The head is a tiny share of the compute.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Float32Linear(nn.Linear):
    """An nn.Linear that computes in float32 whatever the autocast state (same parameters and state_dict)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return F.linear(x.float(), self.weight.float(), None if self.bias is None else self.bias.float())


def float32_head(model: nn.Module) -> nn.Module:
    """Turn the model's last nn.Linear (its classifier) into a Float32Linear, in place."""
    linears = [m for m in model.modules() if type(m) is nn.Linear]
    if linears:
        linears[-1].__class__ = Float32Linear
    return model
