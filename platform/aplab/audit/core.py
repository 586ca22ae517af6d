"""Evaluate a loss on many random and extreme float64 logits and say what the theory then guarantees.

Ma et al. (ICML 2020), section 3: a loss is symmetric (normalised) when sum_j L(f(x), j) = C for every
x; Theorem 1: then it is noise-tolerant under symmetric noise with eta < (K - 1)/K; Theorem 2 (asymmetric
noise, eta_yk < 1 - eta_y): also when R(f*) = 0 and 0 <= L(f(x), k) <= C/(K - 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from ..errors import ConfigError
from .target import Target, load

#: Relative spread of the sum over labels still counted as constant, per class. The reference code's
#: 1e-7 probability clamps make RCE's sum vary by up to K * 1e-7 (relative), and the paper counts RCE
#: as symmetric; 1e-6 * K admits that with a 10x margin and still rejects CE, GCE or AGCE by far.
TOLERANCE_PER_CLASS = 1e-6
#: Logit scales of the random batches.
SCALES = (0.1, 1.0, 3.0, 10.0, 100.0)
#: One batch of directions, scaled by both: a bounded loss has stopped growing between them.
SATURATION_SCALES = (1e3, 1e4)
SAMPLES_PER_SCALE = 256


@dataclass(frozen=True)
class AuditReport:
    """What the auditor found; ``to_dict()`` is the ``--format json`` object."""

    name: str
    classes: int
    kind: str
    symmetric: bool
    sum_over_labels: dict[str, float]
    tolerance: float
    tolerance_reason: str
    bounded: bool
    range: dict[str, float]
    finite: bool
    finite_gradients: bool | None
    max_gradient_norm: float | None
    symmetric_noise_bound: float | None
    asymmetric_condition: str
    guarantees: list[str] = field(default_factory=list)
    conclusion: str = ""

    @property
    def sound(self) -> bool:
        """Values and gradients finite: the checks can stand (``aplab audit`` exits 1 otherwise)."""
        return self.finite and self.finite_gradients is not False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def render(self) -> str:
        """The text report: one fact a line, then the conclusion."""
        s, r = self.sum_over_labels, self.range
        grad = "not available (the loss returned no gradient)" if self.finite_gradients is None else (
            f"{'finite' if self.finite_gradients else 'NOT finite'}, largest finite norm "
            f"{_g(self.max_gradient_norm, 6)}")
        lines = [
            f"loss: {self.name}   classes: {self.classes}   kind: {self.kind}",
            f"symmetric (sum over labels constant): {'yes' if self.symmetric else 'no'}   "
            f"sum in [{_g(s['min'], 10)}, {_g(s['max'], 10)}]",
            f"  tolerance: relative spread <= {self.tolerance:g} ({self.tolerance_reason})",
            f"bounded: {'yes' if self.bounded else 'no'}   values in [{_g(r['min'], 6)}, {_g(r['max'], 6)}]",
            f"finite values: {'yes' if self.finite else 'NO'}   gradients: {grad}",
            f"asymmetric-noise condition (Theorem 2): {self.asymmetric_condition}",
            *[f"guarantee: {g}" for g in self.guarantees],
            f"conclusion: {self.conclusion}",
        ]
        return "\n".join(lines)


def _g(value: float | None, digits: int) -> str:
    return "none finite" if value is None else f"{value:.{digits}g}"


def logits(classes: int) -> torch.Tensor:
    """Random logits at many scales, plus extremes: one-hot-like, near ties, all equal."""
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(SAMPLES_PER_SCALE, classes, generator=g, dtype=torch.float64) * s for s in SCALES]
    directions = torch.randn(SAMPLES_PER_SCALE, classes, generator=g, dtype=torch.float64)
    batches += [directions * s for s in SATURATION_SCALES]
    one_hot = torch.full((classes, classes), -1000.0, dtype=torch.float64).fill_diagonal_(1000.0)
    signs = torch.randint(-1, 2, (SAMPLES_PER_SCALE, classes), generator=g).double() * 500.0
    ties = torch.zeros(2, classes, dtype=torch.float64)
    ties[1, 0] = 1e-9
    return torch.cat([*batches, one_hot, signs, ties])


def per_label(target: Target, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """L(f(x), j) for every sample and label j [N, K], and each sample's largest gradient norm over j."""
    values, norms = [], []
    for j in range(z.shape[1]):
        x = z.clone().requires_grad_(True)
        out = target.function(x, torch.full((z.shape[0],), j, dtype=torch.int64))
        values.append(out.detach())
        if out.requires_grad:
            (grad,) = torch.autograd.grad(out.sum(), x)
            norms.append(grad.norm(dim=1))
    grad_norms = torch.stack(norms, 1).amax(1) if len(norms) == z.shape[1] else None
    return torch.stack(values, 1), grad_norms


def audit(loss: str, classes: int = 10, *, params: dict[str, object] | None = None, fidelity: str = "code",
          kind: str | None = None) -> AuditReport:
    """Audit a registered loss (``params`` its parameters) or ``module:attr`` (``kind`` if you declare it)."""
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise ConfigError("--classes", classes, "an integer >= 2")
    target = load(loss, classes, dict(params or {}), fidelity, kind)
    z = logits(classes)
    values, grad_norms = per_label(target, z)
    finite = bool(torch.isfinite(values).all())
    finite_grads = None if grad_norms is None else bool(torch.isfinite(grad_norms).all())
    sums = values.sum(1)
    tolerance = TOLERANCE_PER_CLASS * classes
    spread = float(sums.max() - sums.min()) if finite else float("inf")
    symmetric = finite and spread <= tolerance * max(1.0, float(sums.abs().max()))
    bounded = finite and _stops_growing(values, classes)
    constant = float(sums.max()) if symmetric else None
    bound = (classes - 1) / classes if symmetric else None  # Theorem 1's eta < (K-1)/K
    theorem2, asymmetric = _asymmetric(values, constant, classes, tolerance)
    report = dict(
        name=loss, classes=classes, kind=target.kind or "not decidable from values (declare it with --kind)",
        symmetric=symmetric, sum_over_labels=_span(sums), tolerance=tolerance,
        tolerance_reason=f"{TOLERANCE_PER_CLASS:g} x K: the reference code's 1e-7 probability clamps make RCE's sum "
                         "vary by up to K x 1e-7 (relative) and the paper still counts RCE as symmetric",
        bounded=bounded, range=_span(values), finite=finite, finite_gradients=finite_grads,
        max_gradient_norm=_largest(grad_norms),
        symmetric_noise_bound=bound, asymmetric_condition=asymmetric,
    )
    return AuditReport(**report, guarantees=_guarantees(bound, constant, theorem2, finite_grads),
                       conclusion=_conclusion(loss, bound, finite, classes, finite_grads))


def _largest(norms: torch.Tensor | None) -> float | None:
    """The largest finite gradient norm (None without gradients or when none is finite)."""
    if norms is None or not torch.isfinite(norms).any():
        return None
    return float(norms[torch.isfinite(norms)].max())


def _span(values: torch.Tensor) -> dict[str, float]:
    """min and max of the finite values (None when none is finite: JSON has no NaN)."""
    shown = values[torch.isfinite(values)]
    if shown.numel() == 0:
        return {"min": None, "max": None}  # type: ignore[dict-item]
    return {"min": float(shown.min()), "max": float(shown.max())}


def _stops_growing(values: torch.Tensor, classes: int) -> bool:
    """Bounded as far as values can tell: scaling the same logits from 1e3 to 1e4 grows the largest |value|
    by under 1% (CE grows 10x, even a log of CE grows by a third)."""
    start = len(SCALES) * SAMPLES_PER_SCALE
    low = values[start:start + SAMPLES_PER_SCALE].abs().max()
    high = values[start + SAMPLES_PER_SCALE:start + 2 * SAMPLES_PER_SCALE].abs().max()
    return bool(high <= low * 1.01 + 1e-12)


def _asymmetric(values: torch.Tensor, constant: float | None, classes: int, tolerance: float) -> tuple[bool, str]:
    """Theorem 2's checkable part, 0 <= L(f(x), k) <= C/(K-1), to the same relative tolerance as the sum:
    whether it holds, and the sentence that says so."""
    if constant is None:
        return False, "not applicable (the loss is not symmetric)"
    ceiling = constant / (classes - 1)
    low, high = float(values.min()), float(values.max())
    if low >= -tolerance * ceiling and high <= ceiling * (1 + tolerance):
        return True, (f"values in [0, C/(K-1)] = [0, {ceiling:.6g}]: holds; it also needs R(f*) = 0 on the clean "
                      "data (not checkable from values)")
    return False, f"fails: values reach [{low:.6g}, {high:.6g}], outside [0, C/(K-1)] = [0, {ceiling:.6g}]"


def _guarantees(bound: float | None, constant: float | None, theorem2: bool, finite_grads: bool | None) -> list[str]:
    if finite_grads is False:
        return ["none: its gradients are not finite on some logits, so gradient descent on it is undefined there"]
    if bound is None:
        return ["none from Theorems 1-2 (they need a constant sum over labels)"]
    found = [f"Theorem 1: noise-tolerant under symmetric noise with rate eta < (K-1)/K = {bound:.4g} "
             f"(C = {constant:.6g})"]
    if theorem2:
        found.append("Theorem 2: noise-tolerant under asymmetric noise with eta_yk < 1 - eta_y, if R(f*) = 0")
    return found


def _conclusion(name: str, bound: float | None, finite: bool, classes: int, finite_grads: bool | None) -> str:
    if not finite:
        return f"{name} gives non-finite values on some logits: fix that before training with it."
    if finite_grads is False:
        return f"{name} has non-finite gradients on some logits: fix that before training with it (no guarantee)."
    if bound is not None:
        return (f"{name} is symmetric (normalised): provably noise-tolerant under symmetric label noise below "
                f"{bound:.4g} for K = {classes}.")
    return f"{name} is not symmetric: the APL theorems give it no noise-tolerance guarantee."
