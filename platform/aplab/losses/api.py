"""``build`` a loss by name, validate its parameters, and describe the zoo."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError, one_of
from ..registry import did_you_mean
from . import custom, nlnl, recent_zoo
from .base import FIDELITIES, Loss, LossInfo, Probabilities, Term, check_inputs, float_logits, reduce
from .zoo import (COMPOSITES, NLNL_INFO, RULES, SUCCESSOR_COMBINATIONS, TERMS, CompositeDef, Rule, TermDef,
                  combination_info)

REDUCTIONS = ("mean", "sum", "none")
#: Every single (one-term) loss takes ``scale``: the authors' configs scale some single losses (NCE x10).
SCALE_DEFAULT = 1.0


@dataclass(frozen=True)
class WeightedTerm:
    weight: float
    term: Term


class RobustLoss(Loss):
    """A weighted sum of per-sample terms sharing one softmax, plus an optional L1 penalty on the model.

    Computed in float32 (float64 for float64 logits), also under autocast.
    """

    def __init__(self, info: LossInfo, num_classes: int, terms: list[WeightedTerm], reduction: str,
                 params: dict[str, object], l1_weight: float = 0.0):
        super().__init__(info, num_classes, reduction, params)
        self.terms = terms
        self.l1_weight = l1_weight

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        check_inputs(logits, targets, self.num_classes)
        logits = float_logits(logits)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            probs = Probabilities(logits, targets)
            losses = sum(t.weight * t.term(probs) for t in self.terms)
            return reduce(losses, self.reduction)

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        """delta * sum of |theta| over ALL model parameters (ANL; BatchNorm included), else None."""
        if self.l1_weight == 0:
            return None
        return self.l1_weight * sum(p.abs().sum() for p in model.parameters())


@dataclass(frozen=True)
class Parsed:
    """What a loss name means: its component terms, its own parameters' defaults, metadata, composite,
    or NLNL (a staged loss of its own class, whose stage defaults follow the fidelity)."""

    parts: list[TermDef]
    own: dict[str, float]  # alpha/beta (and delta, lamb) of combinations, scale of single losses
    info: LossInfo
    composite: CompositeDef | None = None
    staged: bool = False  # NLNL
    special: recent_zoo.SpecialDef | None = None  # a loss with its own class (sparse regularisation)
    inner: Parsed | None = None  # what LogitClip (``lc-<loss>``) wraps


def _parse(name: str) -> Parsed:
    if not isinstance(name, str):
        raise ConfigError("name", name, "a loss name such as 'ce' or 'nce+rce'")
    if name == "nlnl":
        return Parsed([], dict(nlnl.DEFAULTS), NLNL_INFO, staged=True)
    if name.startswith(recent_zoo.CLIP_PREFIX):
        rest = name[len(recent_zoo.CLIP_PREFIX):]
        if rest.startswith(recent_zoo.CLIP_PREFIX):
            raise ConfigError("name", name, "'lc-<loss>' around a loss that is not itself clipped")
        if rest in recent_zoo.SPECIAL:  # they normalise the logits: a clip before that changes nothing
            raise ConfigError("name", name, "'lc-<loss>' around a loss other than " + ", ".join(recent_zoo.SPECIAL)
                              + " (they normalise the logits, so clipping them first changes nothing)")
        inner = _parse(rest)
        return Parsed([*inner.parts, recent_zoo.CLIP_PART], {}, recent_zoo.clip_info(inner.info), inner=inner)
    if name in recent_zoo.SPECIAL:
        special = recent_zoo.SPECIAL[name]
        return Parsed([special], {}, special.info, special=special)  # type: ignore[list-item]
    if name in COMPOSITES:
        composite = COMPOSITES[name]
        return Parsed([TERMS.get(p) for p in composite.parts], dict(composite.defaults), composite.info, composite)
    parts = name.split("+")
    if len(parts) == 1:
        if name not in TERMS:
            raise _unknown(name)
        term = TERMS.get(name)
        return Parsed([term], {"scale": SCALE_DEFAULT}, term.info)
    if len(parts) != 2 or not all(p in TERMS for p in parts):
        bad = next((p for p in parts if p not in TERMS), name)
        raise ConfigError("name", name, f"'<first>+<second>' of two base losses ({', '.join(TERMS.names())}); "
                                        f"{bad!r} is not one" + did_you_mean(bad, TERMS.names()))
    first, second = TERMS.get(parts[0]), TERMS.get(parts[1])
    return Parsed([first, second], {"alpha": 1.0, "beta": 1.0}, combination_info(first, second))


def _unknown(name: str) -> ConfigError:
    hint = did_you_mean(name, [*available(), *PAPER_COMBINATIONS, *SUCCESSOR_COMBINATIONS])
    return ConfigError("name", name, one_of(available()) + " or '<active>+<passive>' such as 'nce+rce'" + hint)


def parameters(name: str, fidelity: str = "code") -> dict[str, float]:
    """Every parameter ``name`` accepts, with its default (``scale`` of single losses included)."""
    if fidelity not in FIDELITIES:
        raise ConfigError("fidelity", fidelity, one_of(FIDELITIES))
    return _accepted(_parse(name), fidelity)


def _accepted(parsed: Parsed, fidelity: str) -> dict[str, float]:
    """The parameters of a parsed loss, with their defaults (NLNL's stage boundaries follow the fidelity)."""
    if parsed.inner is not None:
        return {**_accepted(parsed.inner, fidelity), **recent_zoo.CLIP_PART.defaults}
    if parsed.staged:
        return {**parsed.own, **nlnl.SCHEDULES[fidelity]}
    accepted: dict[str, float] = {}
    for part in parsed.parts:
        accepted.update(part.defaults)
    return {**accepted, **parsed.own}


def _validate(key: str, value: object, parts: list[TermDef]) -> float:
    rules: list[Rule] = [part.rule(key) for part in parts if key in part.defaults] or [RULES[key]]
    for rule in rules:
        if not rule.check(value):  # type: ignore[arg-type]
            raise ConfigError(key, value, rule.allowed)
    return rules[0].convert(value)  # type: ignore[return-value]


def build(name: str, num_classes: int, *, reduction: str = "mean", fidelity: str = "code", **params: object) -> Loss:
    """Build a loss by name: a base name (``available()``), ``"<first>+<second>"``, a composite, ``"nlnl"``,
    ``"lc-<any of these>"`` (LogitClip around it, parameter ``tau``), or a user's ``"module:attr"`` (imported from
    the working directory, ``custom``).

    Parameters: ``alpha``/``beta`` (weights), ``delta`` (ANL's L1 weight), ``lamb`` (ANL-CE-ER), ``gamma``,
    ``q``, ``a``, ``p``, ``min_prob``, ``scale`` (single losses); ``parameters(name)`` lists a loss's own.
    ``fidelity`` "code" (authors' code constants, default) or "paper" (the paper's text).
    Only parameters that are passed or that the loss always takes appear in ``loss.params``: an unset
    ``scale`` stays out (so configs that never set it keep their identity).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError("num_classes", num_classes, "an integer >= 2")
    if reduction not in REDUCTIONS:
        raise ConfigError("reduction", reduction, one_of(REDUCTIONS))
    if fidelity not in FIDELITIES:
        raise ConfigError("fidelity", fidelity, one_of(FIDELITIES))
    if custom.is_custom(name):  # the user's module:attr (losses/custom.py)
        return custom.build_custom(name, num_classes, reduction, fidelity, params)
    parsed = _parse(name)
    accepted = _accepted(parsed, fidelity)
    unexpected = sorted(set(params) - set(accepted))
    if unexpected:
        raise ConfigError(unexpected[0], params[unexpected[0]], f"loss {name!r} takes " + ", ".join(sorted(accepted)))
    optional = {"scale"} - set(params)
    resolved = {k: _validate(k, v, parsed.parts) for k, v in {**accepted, **params}.items() if k not in optional}
    recorded: dict[str, object] = {"fidelity": fidelity, **resolved}
    return _make(parsed, num_classes, reduction, fidelity, resolved, recorded)


def _make(parsed: Parsed, num_classes: int, reduction: str, fidelity: str, resolved: dict[str, float],
          recorded: dict[str, object]) -> Loss:
    """The loss a parsed name and its validated parameters describe."""
    if parsed.inner is not None:
        inner = _make(parsed.inner, num_classes, reduction, fidelity, resolved, recorded)
        return recent_zoo.LogitClipped(parsed.info, inner, recorded)
    if parsed.special is not None:
        return parsed.special.make(parsed.info, num_classes, reduction, recorded)
    if parsed.staged:
        return nlnl.NLNLLoss(parsed.info, num_classes, reduction, recorded)
    options = parsed.composite.part_options if parsed.composite else {}
    made = [part.make(num_classes, fidelity, **{k: resolved[k] for k in part.defaults},
                      **options.get(part.info.name, {})) for part in parsed.parts]
    if len(made) == 1:
        weighted = [WeightedTerm(float(resolved.get("scale", SCALE_DEFAULT)), made[0])]
    else:
        weighted = [WeightedTerm(resolved["alpha"], made[0]), WeightedTerm(resolved["beta"], made[1])]
    if parsed.composite is not None and parsed.composite.extra is not None:
        weighted += [WeightedTerm(w, t) for w, t in parsed.composite.extra(num_classes, resolved)]
    return RobustLoss(parsed.info, num_classes, weighted, reduction, recorded, l1_weight=resolved.get("delta", 0.0))


def available() -> list[str]:
    """The registered names (other combinations ``"<first>+<second>"`` are built on demand)."""
    return sorted([*TERMS.names(), *COMPOSITES, *recent_zoo.SPECIAL, "nlnl"])


#: The combinations of the paper's experiments (APL losses and the section-5 ablations).
PAPER_COMBINATIONS = ("nce+rce", "nce+mae", "nfl+rce", "nfl+mae", "ngce+rce", "ngce+mae", "nfl+nce", "mae+rce")


def info(name: str) -> LossInfo:
    """Metadata of any buildable loss name (a ``module:attr`` loss: what its name says, nothing claimed)."""
    return custom.custom_info(name) if custom.is_custom(name) else _parse(name).info


def loss_table() -> str:
    """The Markdown table of losses in docs/losses.md, generated from the metadata."""
    rows = ["| name | kind | provably robust | ablation | definition | reference |",
            "|---|---|---|---|---|---|"]
    for name in [*available(), *PAPER_COMBINATIONS, *SUCCESSOR_COMBINATIONS, *recent_zoo.LISTED_CLIPS]:
        meta = info(name)
        rows.append(f"| `{name}` | {meta.kind} | {'yes' if meta.robust else 'no'} | "
                    f"{'yes' if meta.ablation else ''} | {meta.summary} | {meta.reference} |")
    return "\n".join(rows) + "\n"
