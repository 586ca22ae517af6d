"""The papers' per-dataset training settings (official_settings.md, successors.md), filled into unset fields.

Choices that follow ``loss.fidelity``: MNIST's APL beta (code 10, paper text 100), CIFAR-100's ResNet
(code 50, paper 34) and CIFAR-100's beta of the ``+MAE`` losses (the official configs 1.0, the paper's
text 0.1). The successors' settings (ANL, Ye et al. 2023; asymmetric losses, Zhou et al. 2021) come
from their official configs and apply to their losses only: ANL trains with weight decay 0, and both
use ResNet-34 on CIFAR-100. The authors' MNIST configs also differ in ways not modelled here (weight
decay 1e-2, nesterov, a cosine floor of 1e-3).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..registry import Registry


@dataclass(frozen=True)
class DatasetPreset:
    """Training defaults of one dataset."""

    model: str
    epochs: int
    lr: float
    weight_decay: float
    augment: str
    batch_size: int = 128
    nesterov: bool = False
    schedule: str = "cosine"
    apl: tuple[float, float] = (1.0, 1.0)  # (alpha, beta) of APL losses
    apl_beta_with_mae: float | None = None  # beta of the +MAE losses where it differs from the APL beta
    sce: tuple[float, float] = (0.1, 1.0)
    ngce_q: float = 0.7
    successors: dict[str, dict[str, float]] = field(default_factory=dict)  # loss name -> its parameters
    successor_model: str | None = None  # the successors' model where it differs from APL's
    paper: dict[str, object] = field(default_factory=dict)  # overrides under fidelity="paper"


#: Losses of Active Negative Loss (Ye et al., NeurIPS 2023): their configs set weight decay 0.
ANL_LOSSES = ("anl-ce", "anl-fl", "anl-ce-er")


def _anl(alpha: float, beta: float, delta: float, lamb: float | None = None) -> dict[str, dict[str, float]]:
    """ANL-CE and ANL-FL share (alpha, beta, delta); ANL-CE-ER adds lamb where the paper gives one."""
    shared = {"alpha": alpha, "beta": beta, "delta": delta}
    settings = {"anl-ce": shared, "anl-fl": shared}
    if lamb is not None:
        settings["anl-ce-er"] = {**shared, "lamb": lamb}
    return settings


PRESETS: Registry[DatasetPreset] = Registry("dataset")
PRESETS.register("digits", DatasetPreset(
    model="cnn4", epochs=60, lr=0.05, weight_decay=1e-4, augment="none", batch_size=64,
    apl=(1.0, 1.0), sce=(0.01, 1.0), ngce_q=0.1))
PRESETS.register("mnist", DatasetPreset(
    model="cnn4", epochs=50, lr=0.01, weight_decay=1e-3, augment="none",
    apl=(1.0, 10.0), sce=(0.01, 1.0), ngce_q=0.1, paper={"apl": (1.0, 100.0)},
    successors={**_anl(1.0, 1.0, 1e-6),  # MNIST runs the asymmetric losses alone (alpha 0 in their configs)
                "agce": {"a": 4.0, "q": 0.2}, "aul": {"a": 3.0, "q": 0.1}, "ael": {"a": 3.5}}))
PRESETS.register("cifar10", DatasetPreset(
    model="cnn8", epochs=120, lr=0.01, weight_decay=1e-4, augment="crop_flip",
    apl=(1.0, 1.0), sce=(0.1, 1.0), ngce_q=0.1,
    successors={**_anl(5.0, 5.0, 5e-5, lamb=2.0),
                "nce+agce": {"alpha": 1.0, "beta": 4.0, "a": 6.0, "q": 1.5},
                "nce+aul": {"alpha": 1.0, "beta": 4.0, "a": 6.3, "q": 1.5},
                "nce+ael": {"alpha": 1.0, "beta": 4.0, "a": 5.0}}))
PRESETS.register("cifar100", DatasetPreset(
    model="resnet50", epochs=200, lr=0.1, weight_decay=1e-5, augment="crop_flip_rotate",
    apl=(10.0, 0.1), apl_beta_with_mae=1.0, sce=(6.0, 0.1), ngce_q=0.7,
    successors={**_anl(10.0, 1.0, 5e-7, lamb=0.01),
                "nce+agce": {"alpha": 10.0, "beta": 0.1, "a": 1.8, "q": 3.0},
                "nce+aul": {"alpha": 10.0, "beta": 0.015, "a": 6.0, "q": 3.0},
                "nce+ael": {"alpha": 10.0, "beta": 0.1, "a": 1.5}},
    successor_model="resnet34", paper={"model": "resnet34", "apl_beta_with_mae": None}))
PRESETS.register("webvision_mini", DatasetPreset(
    model="resnet50", epochs=250, lr=0.4, weight_decay=3e-5, augment="webvision", batch_size=512,
    nesterov=True, schedule="exponential", apl=(50.0, 0.1), apl_beta_with_mae=1.0, sce=(10.0, 1.0),
    successors={"anl-ce": {"alpha": 20.0, "beta": 1.0, "delta": 5e-6},
                "nce+agce": {"alpha": 50.0, "beta": 0.1, "a": 2.5, "q": 3.0}}))


def preset_for(dataset: str, fidelity: str, loss: str | None = None) -> DatasetPreset:
    """The dataset's preset under ``fidelity``; given ``loss``, with that loss's paper's training settings
    (ANL: weight decay 0; the successors' CIFAR-100 model)."""
    preset = PRESETS.get(dataset, "data.name")
    if fidelity == "paper" and preset.paper:
        preset = replace(preset, **preset.paper)  # type: ignore[arg-type]
    if loss in successor_losses() and preset.successor_model is not None:
        preset = replace(preset, model=preset.successor_model)
    if loss in ANL_LOSSES:
        preset = replace(preset, weight_decay=0.0)
    return preset


def successor_losses() -> set[str]:
    """The successors' losses: those whose settings some dataset's preset carries."""
    return {name for _, preset in PRESETS.items() for name in preset.successors}


#: The losses of Ma et al.'s experiments whose weights come from the preset's APL (alpha, beta).
APL_PARTS = frozenset({"ce", "fl", "mae", "rce", "gce", "nce", "nfl", "ngce", "nmae", "nrce"})


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
