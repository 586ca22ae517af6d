"""The papers' training settings of a dataset and loss, read from the preset each dataset registered.

``config.resolve`` fills a config's unset fields from ``preset_for`` and its unset loss parameters from
``loss_params``; the presets themselves sit beside their loaders in ``aplab.data.sources``.
"""

from __future__ import annotations

from dataclasses import replace

from ..config.presets import L1_PENALTY_LOSSES, DatasetPreset
from .sources import DATASETS

#: The losses of Ma et al.'s experiments whose weights come from the preset's APL (alpha, beta).
APL_PARTS = frozenset({"ce", "fl", "mae", "rce", "gce", "nce", "nfl", "ngce", "nmae", "nrce"})


def preset_for(dataset: str, fidelity: str, loss: str | None = None) -> DatasetPreset:
    """The dataset's preset under ``fidelity``; given ``loss``, with that loss's paper's training settings
    (ANL, JAL: weight decay 0; the successors' CIFAR-100 model; their own MNIST optimiser)."""
    preset = DATASETS.get(dataset, "data.name").preset
    if fidelity == "paper" and preset.paper:
        preset = replace(preset, **preset.paper)  # type: ignore[arg-type]
    elif fidelity == "code" and loss in preset.code_per_loss:
        preset = replace(preset, **preset.code_per_loss[loss])  # type: ignore[arg-type]
    if loss in successor_losses():
        preset = replace(preset, **preset.successor_training)  # type: ignore[arg-type]
        if preset.successor_model is not None:
            preset = replace(preset, model=preset.successor_model)
    if loss in L1_PENALTY_LOSSES:
        preset = replace(preset, weight_decay=0.0)
    return preset


def successor_losses() -> set[str]:
    """The successors' losses: those whose settings some dataset's preset carries."""
    return {name for _, source in DATASETS.items() for name in source.preset.successors}


def loss_params(preset: DatasetPreset, loss: str) -> dict[str, float]:
    """The dataset's parameters of ``loss`` (only some of those the loss takes; the rest keep their defaults)."""
    if loss in preset.successors:
        return dict(preset.successors[loss])
    if loss == "sce":
        return {"alpha": preset.sce[0], "beta": preset.sce[1]}
    parts = loss.split("+")
    params: dict[str, float] = {}
    if len(parts) == 2 and set(parts) <= APL_PARTS:
        alpha, beta = preset.apl
        if parts[1] == "mae" and preset.apl_beta_with_mae is not None:
            beta = preset.apl_beta_with_mae
        params.update(alpha=alpha, beta=beta)
    if "ngce" in parts:
        params["q"] = preset.ngce_q
    return params
