"""The registry of losses: how to make each term, which parameters it takes (with rules), and its metadata."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from ..registry import Registry
from . import terms
from .base import PROB_FLOOR, LossInfo, Term

ZHANG = "Zhang & Sabuncu, NeurIPS 2018"
MA = "Ma et al., ICML 2020"
WANG = "Wang et al., ICCV 2019"
ZHOU = "Zhou et al., ICML 2021 (hitcszx/ALFs)"
YE = "Ye et al., NeurIPS 2023 (Virusdoll/Active-Negative-Loss)"


@dataclass(frozen=True)
class Rule:
    """What values a parameter admits, how an error message says so, and the type it is kept as."""

    check: Callable[[float], bool]
    allowed: str
    convert: Callable[[object], object] = float


def _number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


POSITIVE = Rule(lambda v: _number(v) and v > 0, "a finite number > 0")
NON_NEGATIVE = Rule(lambda v: _number(v) and v >= 0, "a finite number >= 0")
ABOVE_ONE = Rule(lambda v: _number(v) and v > 1, "a finite number > 1 (the loss takes powers of a - 1)")
UNIT_Q = Rule(lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]")
PROBABILITY_FLOOR = Rule(lambda v: _number(v) and 0 < v < 0.5, "a number in (0, 0.5)")
FRACTION = Rule(lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]")
COUNT = Rule(lambda v: not isinstance(v, bool) and isinstance(v, int) and v >= 1, "an integer >= 1", int)

# the losses since APL (recent_zoo.py)
OPEN_UNIT = Rule(lambda v: _number(v) and 0 < v < 1, "a number in (0, 1)")
T1 = Rule(lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1] (t1 < 1 bounds the loss)")
T2 = Rule(lambda v: _number(v) and 1 <= v <= 4, "a number in [1, 4] (the fixed-point normalisation needs t2 >= 1)")
AT_MOST_ONE = Rule(lambda v: _number(v) and v <= 1, "a finite number <= 1 (negative: negative label smoothing)")
POLY_EPS = Rule(lambda v: _number(v) and v >= -1, "a finite number >= -1 (below -1 the loss is not >= 0 near p_y = 0)")
GROWTH = Rule(lambda v: _number(v) and v >= 1, "a finite number >= 1 (lambda grows by this factor)")

#: Rules by parameter name; a term overrides one where its formula needs another range.
RULES: dict[str, Rule] = {
    "alpha": POSITIVE, "beta": POSITIVE, "scale": POSITIVE, "delta": NON_NEGATIVE, "lamb": NON_NEGATIVE,
    "gamma": NON_NEGATIVE, "q": UNIT_Q, "a": POSITIVE, "p": POSITIVE, "min_prob": PROBABILITY_FLOOR,
    "ln_neg": COUNT, "nl_until": FRACTION, "selnl_until": FRACTION, "pl_threshold": FRACTION,
    "m": NON_NEGATIVE, "tau": POSITIVE, "t1": T1, "t2": T2, "order": COUNT, "epsilon": POLY_EPS,
    "smooth_rate": AT_MOST_ONE, "pi": OPEN_UNIT, "rho": GROWTH, "freq": COUNT, "margin": NON_NEGATIVE,
}


@dataclass(frozen=True)
class TermDef:
    """A base loss made of one term: its factory, its parameters (with defaults), rules and metadata."""

    info: LossInfo
    make: Callable[..., Term]  # (num_classes, fidelity, **params) -> Term
    defaults: dict[str, float] = field(default_factory=dict)
    rules: dict[str, Rule] = field(default_factory=dict)

    def rule(self, name: str) -> Rule:
        return self.rules.get(name, RULES[name])


TERMS: Registry[TermDef] = Registry("loss")


def _term(name: str, kind: str, robust: bool, summary: str, reference: str, make, rules=None, **defaults) -> None:
    info = LossInfo(name=name, kind=kind, robust=robust, summary=summary, reference=reference)  # type: ignore[arg-type]
    TERMS.register(name, TermDef(info=info, make=make, defaults=defaults, rules=rules or {}))


_term("ce", "active", False, "cross entropy, -log p_y", "standard",
      lambda k, f: terms.CrossEntropy())
_term("fl", "active", False, "focal loss, -(1-p_y)^gamma log p_y", "Lin et al., ICCV 2017",
      lambda k, f, gamma: terms.Focal(gamma), gamma=0.5)
_term("mae", "passive", True, "mean absolute error, 1-p_y (code) or 2(1-p_y) (paper)", "Ghosh et al., AAAI 2017",
      lambda k, f, doubled=False: terms.MeanAbsoluteError("paper" if doubled else f))  # doubled: 2(1-p_y)
_term("rce", "passive", True, "reverse cross entropy, -A(1-p_y); A=ln 1e-4 (code) or -4 (paper)", WANG,
      lambda k, f: terms.ReverseCrossEntropy(f))
_term("gce", "active", False, "generalized cross entropy, (1-p_y^q)/q", ZHANG,
      lambda k, f, q: terms.GeneralizedCrossEntropy(q), q=0.7)
_term("nce", "active", True, "normalized cross entropy, log p_y / sum_k log p_k", MA,
      lambda k, f: terms.NormalizedCrossEntropy())
_term("nfl", "active", True, "normalized focal loss, FL_y / sum_k FL_k", MA,
      lambda k, f, gamma: terms.NormalizedFocal(gamma), gamma=0.5)
_term("ngce", "active", True, "normalized GCE, (1-p_y^q) / (K - sum_k p_k^q)", MA,
      lambda k, f, q: terms.NormalizedGeneralizedCrossEntropy(q, k), q=0.7)
_term("nmae", "passive", True, "normalized MAE, (1-p_y)/(K-1)", MA,
      lambda k, f: terms.NormalizedMeanAbsoluteError(k))
_term("nrce", "passive", True, "normalized RCE, RCE_y / sum_k RCE_k", MA,
      lambda k, f: terms.NormalizedReverseCrossEntropy(f, k))
_term("nnce", "passive", True, "normalized negative CE, 1 - v_y / sum_k v_k, v = log(p/min_prob)", YE,
      lambda k, f, min_prob, clamp_top=False: terms.NormalizedNegativeCrossEntropy(min_prob, clamp_top),
      min_prob=PROB_FLOOR)
_term("nnfl", "passive", True, "normalized negative focal loss, 1 - (A - FL_y) / (K A - sum_k FL_k)", YE,
      lambda k, f, gamma, min_prob: terms.NormalizedNegativeFocal(gamma, min_prob, k),
      gamma=0.5, min_prob=PROB_FLOOR)
_term("agce", "active", True, "asymmetric GCE, ((a+1)^q - (a+p_y)^q)/q", ZHOU,
      lambda k, f, a, q: terms.AsymmetricGeneralizedCrossEntropy(a, q), rules={"q": POSITIVE}, a=0.6, q=0.6)
_term("aul", "active", True, "asymmetric unhinged loss, ((a-p_y)^q - (a-1)^q)/q", ZHOU,
      lambda k, f, a, q: terms.AsymmetricUnhingedLoss(a, q), rules={"a": ABOVE_ONE, "q": POSITIVE}, a=5.5, q=3.0)
_term("ael", "active", True, "asymmetric exponential loss, exp(-p_y/a)", ZHOU,
      lambda k, f, a: terms.AsymmetricExponentialLoss(a), a=2.5)
_term("anorm", "passive", True, "asymmetric p-norm, (sum_k |a 1[k=y] - p_k|^p - (a-1)^p)/p, p clamped at 1e-5",
      ZHOU, lambda k, f, a, p: terms.AsymmetricNorm(a, p), rules={"a": ABOVE_ONE}, a=1.5, p=0.9)


@dataclass(frozen=True)
class CompositeDef:
    """A named loss that is alpha * first + beta * second (+ extra weighted terms, + an L1 penalty)."""

    info: LossInfo
    parts: tuple[str, str]
    defaults: dict[str, float]  # alpha, beta and, for ANL, delta (penalty weight) and lamb
    part_options: dict[str, dict[str, object]] = field(default_factory=dict)  # fixed options of a part
    extra: Callable[[int, dict[str, float]], list[tuple[float, Term]]] | None = None


def _entropy_term(num_classes: int, params: dict[str, float]) -> list[tuple[float, Term]]:
    return [(params["lamb"], terms.BatchEntropyRegulariser(params["min_prob"], num_classes))]


COMPOSITES: dict[str, CompositeDef] = {
    "sce": CompositeDef(LossInfo("sce", "active+passive", False, "symmetric CE, alpha*CE + beta*RCE", WANG),
                        ("ce", "rce"), {"alpha": 0.1, "beta": 1.0}),
    "anl-ce": CompositeDef(
        LossInfo("anl-ce", "active+passive", True, "alpha*NCE + beta*NNCE + delta*||theta||_1", YE),
        ("nce", "nnce"), {"alpha": 1.0, "beta": 1.0, "delta": 0.0}),
    "anl-fl": CompositeDef(
        LossInfo("anl-fl", "active+passive", True, "alpha*NFL + beta*NNFL + delta*||theta||_1", YE),
        ("nfl", "nnfl"), {"alpha": 1.0, "beta": 1.0, "delta": 0.0}),
    "anl-ce-er": CompositeDef(
        LossInfo("anl-ce-er", "active+passive", True,
                 "ANL-CE (p clamped to [min_prob, 1-min_prob]) + lamb*(log K + sum_c pbar_c log pbar_c)", YE),
        ("nce", "nnce"), {"alpha": 1.0, "beta": 1.0, "delta": 0.0, "lamb": 0.0},
        part_options={"nnce": {"clamp_top": True}}, extra=_entropy_term),
}

#: Combinations "<first>+<second>" that a successor paper proposes: not ablations, credited to it.
SUCCESSOR_COMBINATIONS: dict[str, str] = {
    "nce+nnce": YE, "nfl+nnfl": YE,
    "nce+agce": ZHOU, "nce+aul": ZHOU, "nce+ael": ZHOU, "nfl+agce": ZHOU, "nfl+aul": ZHOU, "nfl+ael": ZHOU,
}

NLNL_INFO = LossInfo(
    "nlnl", "multi-stage", False,
    "negative learning with complementary labels (code: for the whole run; paper: then selective NL, PL)",
    "Kim et al., ICCV 2019",
)


def combination_info(first: TermDef, second: TermDef) -> LossInfo:
    """Metadata of alpha*first + beta*second: an APL loss, a successor's pair, or an ablation (AAL, PPL)."""
    a, b = first.info, second.info
    kinds = {*a.kind.split("+"), *b.kind.split("+")}  # a part may itself be active+passive (JS, GLS)
    kind = "active+passive" if kinds == {"active", "passive"} else f"{a.kind}+{b.kind}"
    name = f"{a.name}+{b.name}"
    return LossInfo(
        name=name,
        kind=kind,  # type: ignore[arg-type]
        robust=a.robust and b.robust,
        summary=f"alpha*{a.name.upper()} + beta*{b.name.upper()}",
        reference=SUCCESSOR_COMBINATIONS.get(name, MA),
        ablation=kind != "active+passive" and name not in SUCCESSOR_COMBINATIONS,
    )
