"""The registry of base losses: how to make each term, which parameters it takes, and its metadata."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..registry import Registry
from . import terms
from .base import LossInfo, Term

ZHANG = "Zhang & Sabuncu, NeurIPS 2018"
MA = "Ma et al., ICML 2020"
WANG = "Wang et al., ICCV 2019"


@dataclass(frozen=True)
class TermDef:
    """A base loss made of one term: its factory, its parameters (with defaults) and its metadata."""

    info: LossInfo
    make: Callable[..., Term]  # (num_classes, fidelity, **params) -> Term
    defaults: dict[str, float] = field(default_factory=dict)


TERMS: Registry[TermDef] = Registry("loss")


def _term(name: str, kind: str, robust: bool, summary: str, reference: str, make, **defaults) -> None:
    info = LossInfo(name=name, kind=kind, robust=robust, summary=summary, reference=reference)  # type: ignore[arg-type]
    TERMS.register(name, TermDef(info=info, make=make, defaults=defaults))


_term("ce", "active", False, "cross entropy, -log p_y", "standard",
      lambda k, f: terms.CrossEntropy())
_term("fl", "active", False, "focal loss, -(1-p_y)^gamma log p_y", "Lin et al., ICCV 2017",
      lambda k, f, gamma: terms.Focal(gamma), gamma=0.5)
_term("mae", "passive", True, "mean absolute error, 1-p_y (code) or 2(1-p_y) (paper)", "Ghosh et al., AAAI 2017",
      lambda k, f: terms.MeanAbsoluteError(f))
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

#: Losses that are fixed weighted sums of base terms: name -> (components, default alpha, default beta).
COMPOSITES: dict[str, tuple[tuple[str, str], float, float, LossInfo]] = {
    "sce": (("ce", "rce"), 0.1, 1.0,
            LossInfo("sce", "active+passive", False, "symmetric CE, alpha*CE + beta*RCE", WANG)),
}

NLNL_INFO = LossInfo(
    "nlnl", "multi-stage", False,
    "negative learning with complementary labels, then selective NL and selective PL",
    "Kim et al., ICCV 2019",
)


def combination_info(first: TermDef, second: TermDef) -> LossInfo:
    """Metadata of alpha*first + beta*second: an APL loss, or one of the paper's ablations (AAL, PPL)."""
    a, b = first.info, second.info
    kinds = {a.kind, b.kind}
    kind = "active+passive" if kinds == {"active", "passive"} else f"{a.kind}+{b.kind}"
    return LossInfo(
        name=f"{a.name}+{b.name}",
        kind=kind,  # type: ignore[arg-type]
        robust=a.robust and b.robust,
        summary=f"alpha*{a.name.upper()} + beta*{b.name.upper()}",
        reference=MA,
        ablation=kind != "active+passive",
    )
