"""The per-dataset and per-noise settings of the losses since APL, copied from their official configs.

``settings(loss, dataset, noise_spec)`` gives the parameters a run of that loss takes there (only those
the official code sets; the rest keep the loss's defaults). ``config.resolve`` fills a config's unset
loss parameters from it, after the dataset presets (``aplab.data.presets``). docs/losses.md lists them.
Clean runs ('none') take the symmetric settings at rate 0, as the official scripts run them.
"""

from __future__ import annotations

from dataclasses import dataclass

EPS_LOSSES = ("ece+mae", "efl+mae")
SR_LOSSES = ("ce+sr", "gce+sr")
JAL_LOSSES = ("jal-ce", "jal-fl")


@dataclass(frozen=True)
class Setting:
    """``params`` for ``losses`` on ``dataset`` under noise ``kind`` at ``rates`` (None: any rate)."""

    losses: tuple[str, ...]
    dataset: str
    kind: str
    rates: tuple[float, ...] | None
    params: dict[str, float]


def _eps(dataset: str, kind: str, rates, alpha: float, beta: float, m: float) -> Setting:
    return Setting(EPS_LOSSES, dataset, kind, rates, {"alpha": alpha, "beta": beta, "m": m})


def _js(dataset: str, kind: str, rates, pi: float) -> Setting:
    return Setting(("js",), dataset, kind, rates, {"pi": pi})


def _clip(dataset: str, kind: str, rates, delta: float) -> Setting:
    # eps-softmax's CEandLC(delta) clips norms above 1/delta to delta: LogitClip's tau = 1/delta
    return Setting(("lc-ce",), dataset, kind, rates, {"tau": 1.0 / delta})


def _sr(dataset: str, losses, tau: float, p: float, lamb: float, rho: float, freq: int, **extra: float) -> Setting:
    return Setting(losses, dataset, "*", None, {"tau": tau, "p": p, "lamb": lamb, "rho": rho, "freq": freq, **extra})


SETTINGS: tuple[Setting, ...] = (
    # cswjl/eps-softmax config.py, get_loss_config
    _eps("cifar10", "symmetric", None, 0.01, 5.0, 1e5),
    _eps("cifar10", "asymmetric", None, 0.02, 5.0, 1e3),
    _eps("cifar100", "symmetric", (0.0,), 0.1, 1.0, 1e4),
    _eps("cifar100", "symmetric", (0.2,), 0.05, 1.0, 1e4),
    _eps("cifar100", "symmetric", (0.4,), 0.03, 1.0, 1e4),
    _eps("cifar100", "symmetric", (0.6,), 0.00125, 1.0, 1e4),
    _eps("cifar100", "symmetric", (0.8,), 0.0075, 1.0, 1e4),
    _eps("cifar100", "asymmetric", (0.1,), 0.015, 1.0, 1e2),
    _eps("cifar100", "asymmetric", (0.2,), 0.007, 1.0, 1e2),
    _eps("cifar100", "asymmetric", (0.3,), 0.005, 1.0, 1e2),
    _eps("cifar100", "asymmetric", (0.4,), 0.004, 1.0, 1e2),
    # the same file's LogitClip baseline, CEandLC(delta)
    _clip("cifar10", "symmetric", (0.0, 0.1, 0.2, 0.3, 0.4), 1.0),
    _clip("cifar10", "symmetric", (0.5, 0.6, 0.7, 0.8, 0.9), 1.5),
    _clip("cifar10", "asymmetric", None, 2.5),
    _clip("cifar100", "symmetric", None, 0.5),
    _clip("cifar100", "asymmetric", None, 2.5),
    # ErikEnglesson/GJS scripts/C10, C100 */js-*.yaml: js_weights "pi 1-pi" of the JSWCS loss
    _js("cifar10", "symmetric", (0.0,), 0.1),
    _js("cifar10", "symmetric", (0.2, 0.4), 0.7),
    _js("cifar10", "symmetric", (0.6, 0.8), 0.9),
    _js("cifar10", "asymmetric", (0.2, 0.4), 0.3),
    _js("cifar100", "symmetric", (0.0, 0.2), 0.1),
    _js("cifar100", "symmetric", (0.4, 0.8), 0.3),
    _js("cifar100", "symmetric", (0.6,), 0.5),
    _js("cifar100", "asymmetric", (0.2, 0.4), 0.5),
    # hitcszx/lnl_sr config.py: (tau, p, lamb, rho, freq) by dataset, and GCE's q of its *_CONFIG
    _sr("mnist", ("ce+sr",), 0.1, 0.1, 4.0, 2.0, 5),
    _sr("mnist", ("gce+sr",), 0.5, 0.1, 3.0, 2.0, 5, q=0.01),
    _sr("cifar10", ("ce+sr",), 0.5, 0.1, 1.2, 1.03, 1),
    _sr("cifar10", ("gce+sr",), 0.5, 0.1, 1.2, 1.03, 1, q=0.01),
    _sr("cifar100", ("ce+sr",), 0.5, 0.01, 10.0, 1.02, 1),
    _sr("cifar100", ("gce+sr",), 0.5, 0.01, 10.0, 1.02, 1, q=0.001),
    # cswjl/joint-asymmetric-loss config.py (*_CONFIG NCEandAMSE / NFLandAMSE) and get_weight_decay_config (delta)
    Setting(JAL_LOSSES, "cifar10", "*", None, {"alpha": 1.0, "beta": 1.0, "a": 30.0, "delta": 5e-5}),
    Setting(JAL_LOSSES, "cifar100", "*", None, {"alpha": 5.0, "beta": 1.0, "a": 20.0, "delta": 5e-6}),
    # LDRLoss_V1(threshold=0.1, Lambda) in cswjl/eps-softmax config.py
    Setting(("ldr-kl",), "mnist", "*", None, {"margin": 0.1, "lamb": 10.0}),
    Setting(("ldr-kl",), "cifar10", "*", None, {"margin": 0.1, "lamb": 10.0}),
    Setting(("ldr-kl",), "cifar100", "*", None, {"margin": 0.1, "lamb": 1.0}),
    Setting(("ldr-kl",), "webvision_mini", "*", None, {"margin": 0.1, "lamb": 1.0}),
)


def _noise(spec: str) -> tuple[str, float | None]:
    """(kind, rate) of a noise spec; 'none' is symmetric at 0; a rate that is not a number is None."""
    parts = str(spec).strip().split(":")
    if parts[0] == "none":
        return "symmetric", 0.0
    try:
        return parts[0], float(parts[1]) if len(parts) > 1 else None
    except ValueError:
        return parts[0], None


def settings(loss: str, dataset: str, noise_spec: str) -> dict[str, float]:
    """The official parameters of ``loss`` on ``dataset`` under ``noise_spec``, or {} where none are published."""
    kind, rate = _noise(noise_spec)
    for s in SETTINGS:
        if loss in s.losses and s.dataset == dataset and s.kind in ("*", kind):
            if s.rates is None or (rate is not None and any(abs(rate - r) < 1e-9 for r in s.rates)):
                return dict(s.params)
    return {}
