"""``build`` a loss by name, validate its parameters and inputs, and describe the zoo."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError, one_of
from ..registry import did_you_mean
from .base import FIDELITIES, LossInfo, Probabilities, Term
from .nlnl import NLNLTerm
from .zoo import COMPOSITES, NLNL_INFO, TERMS, TermDef, combination_info

REDUCTIONS = ("mean", "sum", "none")
NLNL_DEFAULTS: dict[str, float] = {"ln_neg": 1, "nl_until": 0.5, "selnl_until": 0.8, "pl_threshold": 0.5}


@dataclass(frozen=True)
class WeightedTerm:
    weight: float
    term: Term


class RobustLoss(nn.Module):
    """A weighted sum of per-sample terms sharing one softmax; computed in float32 (or float64)."""

    def __init__(self, info: LossInfo, num_classes: int, terms: list[WeightedTerm], reduction: str,
                 params: dict[str, object], nlnl: NLNLTerm | None = None):
        super().__init__()
        self.info = info
        self.num_classes = num_classes
        self.terms = terms
        self.reduction = reduction
        self.params = params
        self.nlnl = nlnl

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        """Called by the engine before each epoch; only multi-stage losses (NLNL) use it."""
        if self.nlnl is not None:
            self.nlnl.set_progress(epoch, epochs)

    def observe_labels(self, labels) -> None:
        """Called once with the noisy training labels; only NLNL uses them (class weights)."""
        if self.nlnl is not None:
            self.nlnl.observe_labels(labels)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        check_inputs(logits, targets, self.num_classes)
        if logits.dtype not in (torch.float32, torch.float64):
            logits = logits.float()
        with torch.autocast(device_type=logits.device.type, enabled=False):
            probs = Probabilities(logits, targets)
            if self.nlnl is not None:
                losses, mask = self.nlnl.per_sample(probs)
                if self.reduction == "mean":
                    return losses.sum() / mask.sum().clamp(min=1.0)
            else:
                losses = sum(t.weight * t.term(probs) for t in self.terms)
            return reduce(losses, self.reduction)

    def extra_repr(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.info.name}, num_classes={self.num_classes}, reduction={self.reduction}, {shown}"


def reduce(losses: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses


def check_inputs(logits: torch.Tensor, targets: torch.Tensor, num_classes: int) -> None:
    """Shapes and label range; the range check reads values only for CPU tensors (no device sync)."""
    if logits.dim() != 2 or logits.shape[1] != num_classes:
        raise ConfigError("logits", tuple(logits.shape), f"a [N, {num_classes}] tensor")
    if targets.dim() != 1 or targets.shape[0] != logits.shape[0]:
        raise ConfigError("targets", tuple(targets.shape), f"a [N] tensor with N = {logits.shape[0]}")
    if targets.dtype not in (torch.int64, torch.int32):
        raise ConfigError("targets", targets.dtype, "an integer (int64) tensor of class indices")
    if targets.device.type == "cpu" and targets.numel():
        low, high = int(targets.min()), int(targets.max())
        if low < 0 or high >= num_classes:
            bad = low if low < 0 else high
            raise ConfigError("targets", bad, f"class indices in [0, {num_classes})")


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(name, value, "a finite number > 0")
    return float(value)


def _check_param(name: str, value: object) -> float:
    if name == "q":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise ConfigError("q", value, "a number in (0, 1]")
    elif name == "gamma":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ConfigError("gamma", value, "a finite number >= 0")
    elif name == "ln_neg":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError("ln_neg", value, "an integer >= 1")
        return value
    elif name in ("nl_until", "selnl_until", "pl_threshold"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ConfigError(name, value, "a number in [0, 1]")
    return float(value)  # type: ignore[arg-type]


def _parse(name: str) -> tuple[list[TermDef], tuple[float, float] | None, LossInfo]:
    """Component terms, default (alpha, beta) if weighted, and metadata for a loss name."""
    if not isinstance(name, str):
        raise ConfigError("name", name, "a loss name such as 'ce' or 'nce+rce'")
    if name in COMPOSITES:
        (first, second), alpha, beta, meta = COMPOSITES[name]
        return [TERMS.get(first), TERMS.get(second)], (alpha, beta), meta
    parts = name.split("+")
    if len(parts) == 1:
        if name not in TERMS:
            raise _unknown(name)
        term = TERMS.get(name)
        return [term], None, term.info
    if len(parts) != 2 or not all(p in TERMS for p in parts):
        bad = next((p for p in parts if p not in TERMS), name)
        raise ConfigError("name", name, f"'<first>+<second>' of two base losses ({', '.join(TERMS.names())}); "
                                        f"{bad!r} is not one" + did_you_mean(bad, TERMS.names()))
    first, second = TERMS.get(parts[0]), TERMS.get(parts[1])
    return [first, second], (1.0, 1.0), combination_info(first, second)


def _unknown(name: str) -> ConfigError:
    hint = did_you_mean(name, [*available(), *PAPER_COMBINATIONS])
    return ConfigError("name", name, one_of(available()) + " or '<active>+<passive>' such as 'nce+rce'" + hint)


def build(name: str, num_classes: int, *, reduction: str = "mean", fidelity: str = "code",
          **params: object) -> RobustLoss:
    """Build a loss by name: a base name (``available()``), ``"<first>+<second>"`` or ``"nlnl"``.

    Parameters: ``alpha``/``beta`` (weights of combinations and sce), ``gamma`` (fl, nfl), ``q`` (gce, ngce);
    ``fidelity`` "code" (authors' code constants, default) or "paper" (the paper's text).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError("num_classes", num_classes, "an integer >= 2")
    if reduction not in REDUCTIONS:
        raise ConfigError("reduction", reduction, one_of(REDUCTIONS))
    if fidelity not in FIDELITIES:
        raise ConfigError("fidelity", fidelity, one_of(FIDELITIES))
    if name == "nlnl":
        return _build_nlnl(num_classes, reduction, fidelity, params)
    components, weights, meta = _parse(name)
    accepted: dict[str, float] = {}
    for component in components:
        accepted.update(component.defaults)
    if weights is not None:
        accepted.update(alpha=weights[0], beta=weights[1])
    unexpected = sorted(set(params) - set(accepted))
    if unexpected:
        raise ConfigError(unexpected[0], params[unexpected[0]],
                          f"loss {name!r} takes " + (", ".join(sorted(accepted)) or "no parameters"))
    resolved = {**accepted, **params}
    for key in ("alpha", "beta"):
        if key in resolved:
            resolved[key] = _positive(key, resolved[key])
    for key in ("q", "gamma"):
        if key in resolved:
            resolved[key] = _check_param(key, resolved[key])
    built = [c.make(num_classes, fidelity, **{k: resolved[k] for k in c.defaults}) for c in components]
    scales = [resolved["alpha"], resolved["beta"]] if weights is not None else [1.0]
    weighted = [WeightedTerm(w, t) for w, t in zip(scales, built)]
    return RobustLoss(meta, num_classes, weighted, reduction, {"fidelity": fidelity, **resolved})


def _build_nlnl(num_classes: int, reduction: str, fidelity: str, params: dict[str, object]) -> RobustLoss:
    unexpected = sorted(set(params) - set(NLNL_DEFAULTS))
    if unexpected:
        raise ConfigError(unexpected[0], params[unexpected[0]], "loss 'nlnl' takes " + ", ".join(NLNL_DEFAULTS))
    resolved = {k: _check_param(k, v) for k, v in {**NLNL_DEFAULTS, **params}.items()}
    term = NLNLTerm(num_classes, int(resolved["ln_neg"]), resolved["nl_until"], resolved["selnl_until"],
                    resolved["pl_threshold"])
    return RobustLoss(NLNL_INFO, num_classes, [], reduction, {"fidelity": fidelity, **resolved}, nlnl=term)


def available() -> list[str]:
    """The registered base names (combinations ``"<first>+<second>"`` are built on demand)."""
    return sorted([*TERMS.names(), *COMPOSITES, "nlnl"])


#: The combinations of the paper's experiments (APL losses and the section-5 ablations).
PAPER_COMBINATIONS = ("nce+rce", "nce+mae", "nfl+rce", "nfl+mae", "ngce+rce", "ngce+mae", "nfl+nce", "mae+rce")


def info(name: str) -> LossInfo:
    """Metadata of any buildable loss name."""
    if name == "nlnl":
        return NLNL_INFO
    return _parse(name)[2]


def loss_table() -> str:
    """The Markdown table of losses in docs/losses.md, generated from the metadata."""
    rows = ["| name | kind | provably robust | ablation | definition | reference |",
            "|---|---|---|---|---|---|"]
    for name in [*available(), *PAPER_COMBINATIONS]:
        meta = info(name)
        rows.append(f"| `{name}` | {meta.kind} | {'yes' if meta.robust else 'no'} | "
                    f"{'yes' if meta.ablation else ''} | {meta.summary} | {meta.reference} |")
    return "\n".join(rows) + "\n"
