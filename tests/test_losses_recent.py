"""The losses since APL against their official formulas, written here independently, in float64.

Each reference below follows the official code named beside it (cswjl/eps-softmax losses.py,
hongxin001/LogitClip algorithms/clip.py, hitcszx/lnl_sr main.py + norm.py, ErikEnglesson/GJS
losses.py, UCSC-REAL/negative-label-smoothing loss.py, google/bi-tempered-loss tensorflow/loss.py)
or the paper where none is published (Taylor CE, Poly-1): values and autograd gradients must agree
per sample to 1e-9, and where nothing is detached the gradients also match finite differences.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from aplab import losses
from tests.helpers import assert_loss_matches, logit_batches

K = 10
TOL = dict(rtol=1e-9, atol=1e-9)


def softmax(z):
    return torch.softmax(z, 1)


def p_label(z, y):
    return softmax(z)[torch.arange(len(y)), y]


def ce(z, y):
    return F.cross_entropy(z, y, reduction="none")


def ref_eps_softmax(z, m):
    """eps-softmax ECELoss: softmax, + m at the argmax, / (m + 1), clamped at 1e-8."""
    p = softmax(z).clone()
    p[torch.arange(len(p)), p.argmax(1)] += m
    return (p / (m + 1)).clamp(min=1e-8)


def ref_ece(z, y, m=1e5):
    return -ref_eps_softmax(z, m).log()[torch.arange(len(y)), y]


def ref_efl(z, y, m=1e5, gamma=0.1):
    logpt = ref_eps_softmax(z, m).log()[torch.arange(len(y)), y]
    return -((1 - logpt.detach().exp()) ** gamma) * logpt


def ref_mae_official(z, y):  # eps-softmax MAELoss: scale 2.0 by default
    return 2.0 * (1 - p_label(z, y))


def ref_tce(z, y, order=2):  # Feng et al. (2020), eq. of the Taylor series of CE at p_y = 1
    u = 1 - p_label(z, y)
    return torch.stack([u**k / k for k in range(1, order + 1)]).sum(0)


def ref_poly1(z, y, epsilon=1.0):  # Leng et al. (2022): CE + epsilon (1 - p_t)
    return ce(z, y) + epsilon * (1 - p_label(z, y))


def ref_gls(z, y, r=0.1):  # loss_gls with wa = 0, wb = 1
    return (1 - r) * ce(z, y) + r * -torch.log_softmax(z, 1).mean(1)


def ref_js(z, y, pi=0.5):  # GJS JensenShannonDivergenceWeightedScaled, weights "pi 1-pi", one prediction
    labels = F.one_hot(y, z.shape[1]).double()
    p = softmax(z)
    mean = pi * labels + (1 - pi) * p
    mean_log = mean.clamp(1e-7, 1.0).log()

    def kl(target):
        out = target * (target.clamp(min=1e-7).log() - mean_log)
        return torch.where(target > 0, out, torch.zeros_like(out)).sum(1)

    return -1.0 / ((1 - pi) * math.log(1 - pi)) * (pi * kl(labels) + (1 - pi) * kl(p))


def ref_ldr(z, y, margin=0.1, lamb=10.0):  # LDRLoss_V1
    onehot = F.one_hot(y, z.shape[1]).double()
    s = F.softplus(z)
    s = s / s.mean(1, keepdim=True)
    diff = (margin * (1 - onehot) + s - (s * onehot).sum(1, keepdim=True)) / lamb
    top = diff.max(1, keepdim=True).values.detach()
    return (lamb * (torch.log(torch.exp(diff - top).mean(1, keepdim=True)) + top)).squeeze(1)


def ref_sr(z, y, tau=0.5, p=0.1, lamb=1.2, base=ce):  # lnl_sr calculate_loss on CIFAR (F.normalize first)
    out = F.normalize(z, dim=1) / tau
    return base(out, y) + lamb * (softmax(out).clamp(1e-7, 1) ** p).sum(1)


def ref_gce(z, y, q):
    return (1 - p_label(z, y).clamp(1e-7, 1) ** q) / q


def ref_amse(z, y, a=30.0):  # joint-asymmetric-loss AMSELoss: mean over the N x K entries
    return ((softmax(z) - a * F.one_hot(y, z.shape[1]).double()) ** 2).mean(1)


def ref_nfl(z, y, gamma=0.5):  # NormalizedFocalLoss: the normaliser and (1 - p_t)^gamma from .data
    lp = torch.log_softmax(z, 1)
    normaliser = (-(1 - lp.detach().exp()) ** gamma * lp).sum(1)
    lpt = lp[torch.arange(len(y)), y]
    return -((1 - lpt.detach().exp()) ** gamma) * lpt / normaliser


def ref_clip(z, tau):  # LogitClipping.train_batch, lp = 2
    norms = torch.norm(z, p=2, dim=-1, keepdim=True) + 1e-7
    return torch.where((norms > tau).expand(-1, z.shape[-1]), z / norms * (1 / tau), z)


def ref_nce(z, y):
    lp = torch.log_softmax(z, 1)
    return lp[torch.arange(len(y)), y] / lp.sum(1)


def ref_nce_rce(z, y):
    nce = ref_nce(z, y)
    rce = -math.log(1e-4) * (softmax(z).clamp(1e-7, 1) * (1 - F.one_hot(y, z.shape[1]).double())).sum(1)
    return nce + rce


CASES = {
    ("ece", ()): ref_ece,
    ("ece", (("m", 1e3),)): lambda z, y: ref_ece(z, y, 1e3),
    ("ece", (("m", 0.0),)): lambda z, y: ce(z, y).clamp(max=-math.log(1e-8)),  # m = 0: CE with p >= 1e-8
    ("efl", ()): ref_efl,
    ("efl", (("m", 1e2), ("gamma", 2.0))): lambda z, y: ref_efl(z, y, 1e2, 2.0),
    ("ece+mae", (("alpha", 0.01), ("beta", 5.0), ("m", 1e5))):
        lambda z, y: 0.01 * ref_ece(z, y, 1e5) + 5 * ref_mae_official(z, y),
    ("efl+mae", (("alpha", 0.004), ("beta", 1.0), ("m", 1e2))):
        lambda z, y: 0.004 * ref_efl(z, y, 1e2) + ref_mae_official(z, y),
    ("tce", ()): ref_tce,
    ("tce", (("order", 6),)): lambda z, y: ref_tce(z, y, 6),
    ("poly1", ()): ref_poly1,
    ("poly1", (("epsilon", -1.0),)): lambda z, y: ref_poly1(z, y, -1.0),
    ("gls", ()): ref_gls,
    ("gls", (("smooth_rate", -2.0),)): lambda z, y: ref_gls(z, y, -2.0),
    ("ce+gls", (("alpha", 0.5), ("beta", 2.0), ("smooth_rate", -0.4))):  # loss_gls with wa = 0.5, wb = 2
        lambda z, y: (0.5 + 2.0 * 1.4) * ce(z, y) + 2.0 * -0.4 * -torch.log_softmax(z, 1).mean(1),
    ("js", ()): ref_js,
    ("js", (("pi", 0.9),)): lambda z, y: ref_js(z, y, 0.9),
    ("js", (("pi", 0.1),)): lambda z, y: ref_js(z, y, 0.1),
    ("ldr-kl", ()): ref_ldr,
    ("ldr-kl", (("lamb", 1.0), ("margin", 2.0))): lambda z, y: ref_ldr(z, y, 2.0, 1.0),
    ("ce+sr", ()): ref_sr,
    ("ce+sr", (("tau", 0.1), ("p", 0.01), ("lamb", 10.0))): lambda z, y: ref_sr(z, y, 0.1, 0.01, 10.0),
    ("gce+sr", ()): lambda z, y: ref_sr(z, y, base=lambda o, t: ref_gce(o, t, 0.01)),
    ("amse", ()): ref_amse,
    ("amse", (("a", 5.0),)): lambda z, y: ref_amse(z, y, 5.0),
    ("jal-ce", (("alpha", 5.0), ("beta", 1.0), ("a", 20.0), ("delta", 5e-6))):
        lambda z, y: 5 * ref_nce(z, y) + ref_amse(z, y, 20.0),
    ("jal-fl", (("alpha", 1.0), ("beta", 1.0), ("a", 30.0))): lambda z, y: ref_nfl(z, y) + ref_amse(z, y, 30.0),
    ("lc-ce", ()): lambda z, y: ce(ref_clip(z, 1.0), y),
    ("lc-ce", (("tau", 0.4),)): lambda z, y: ce(ref_clip(z, 0.4), y),
    ("lc-ce", (("tau", 9.0),)): lambda z, y: ce(ref_clip(z, 9.0), y),
    ("lc-nce+rce", (("tau", 2.0),)): lambda z, y: ref_nce_rce(ref_clip(z, 2.0), y),
    ("lc-gls", (("tau", 1.5), ("smooth_rate", -0.4))): lambda z, y: ref_gls(ref_clip(z, 1.5), y, -0.4),
}
IDS = [name + "".join(f"-{k}={v}" for k, v in params) for name, params in CASES]


@pytest.mark.parametrize("case", list(CASES), ids=IDS)
def test_values_and_gradients_equal_the_official_formulas_per_sample_in_float64(case):
    name, params = case
    assert_loss_matches(losses.build(name, K, reduction="none", **dict(params)), CASES[case], K, TOL)


@pytest.mark.parametrize("name, params", [("ece", {"m": 10.0}), ("tce", {"order": 3}), ("poly1", {}), ("gls", {}),
                                          ("js", {}), ("ldr-kl", {}), ("ce+sr", {}), ("gce+sr", {"q": 0.5}),
                                          ("lc-ce", {"tau": 2.0}), ("ece+mae", {"m": 10.0}), ("amse", {}),
                                          ("jal-ce", {})])
def test_gradients_match_finite_differences_where_nothing_is_detached(name, params):
    z = torch.randn(6, K, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    y = torch.randint(0, K, (6,), generator=torch.Generator().manual_seed(2))
    loss = losses.build(name, K, reduction="none", **params)
    assert torch.autograd.gradcheck(lambda x: loss(x, y), (z,))


def test_logit_clip_clips_exactly_the_rows_whose_norm_exceeds_tau_to_norm_one_over_tau():
    z = torch.randn(64, K, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 3
    norms = z.norm(dim=1)
    tau = float(norms.median())
    from aplab.losses.recent_zoo import clip_logits

    clipped = clip_logits(z, tau)
    over = norms + 1e-7 > tau
    assert 0 < over.sum() < len(z)  # both branches exercised
    torch.testing.assert_close(clipped[~over], z[~over], rtol=0, atol=0)
    torch.testing.assert_close(clipped[over].norm(dim=1), (norms[over] / (norms[over] + 1e-7)) / tau)


def test_sparse_regularisation_lambda_grows_as_the_official_loop_multiplies_it():
    z = torch.randn(16, K, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    y = torch.randint(0, K, (16,), generator=torch.Generator().manual_seed(5))
    loss = losses.build("ce+sr", K, reduction="none", lamb=3.0, rho=2.0, freq=5, tau=0.1, p=0.1)
    lamb = 3.0
    for epoch in range(12):  # lnl_sr main.py: after epoch ep, if (ep + 1) % freq == 0: lamb *= rho
        loss.on_epoch_start(epoch, 12)
        torch.testing.assert_close(loss(z, y), ref_sr(z, y, 0.1, 0.1, lamb), **TOL)
        if (epoch + 1) % 5 == 0:
            lamb *= 2.0
    loss.on_epoch_start(3, 12)  # resuming at epoch 3 restores its lambda, whatever came before
    torch.testing.assert_close(loss(z, y), ref_sr(z, y, 0.1, 0.1, 3.0), **TOL)


# ----------------------------------------------------------------------------- bi-tempered


def exact_tempered_softmax(z, t):
    """exp_t(z - lam) with sum 1, lam found by bisection to float64 precision (not the official fixed point)."""

    def exp_t(u):
        return torch.relu(1 + (1 - t) * u) ** (1 / (1 - t))

    low = z.max(1, keepdim=True).values  # exp_t(0) = 1 at the max: the sum is above 1
    high = low + 1e6  # the tail of t = 4 is heavy: the sum falls below 1 only far out
    for _ in range(300):
        mid = (low + high) / 2
        too_big = exp_t(z - mid).sum(1, keepdim=True) > 1
        low, high = torch.where(too_big, mid, low), torch.where(too_big, high, mid)
    return exp_t(z - (low + high) / 2)


def official_fixed_point(z, t, iters=5):
    """compute_normalization of the TF code, then exp_t(z - lam)."""
    mu = z.max(1, keepdim=True).values
    a0 = z - mu
    a = a0
    exp_t = lambda u: torch.relu(1 + (1 - t) * u) ** (1 / (1 - t))  # noqa: E731
    for _ in range(iters):
        a = a0 * exp_t(a).sum(1, keepdim=True) ** (1 - t)
    part = exp_t(a).sum(1, keepdim=True)
    lam = -((1 / part) ** (1 - t) - 1) / (1 - t) + mu
    return exp_t(z - lam)


def bitempered_value(p, y, t1):
    """Amid et al. eq. (13) for one-hot labels: the official loss_values summed over classes."""
    labels = F.one_hot(y, p.shape[1]).double()
    log_t = lambda u: (u ** (1 - t1) - 1) / (1 - t1) if t1 != 1 else torch.log(u)  # noqa: E731
    inner = labels * (log_t(labels + 1e-10) - log_t(p)) - (labels ** (2 - t1) - p ** (2 - t1)) / (2 - t1)
    return inner.sum(1)


#: (t1, t2, how far the official 5 fixed-point steps leave the loss from the exact one on these logits, measured)
TEMPERATURES = [(0.8, 1.2, 1e-5), (0.5, 2.0, 1e-2), (1.0, 1.5, 1e-3), (0.2, 4.0, 1e-6)]


@pytest.mark.parametrize("t1, t2, truncation", TEMPERATURES)
def test_bitempered_equals_the_official_fixed_point_and_its_gradient_is_the_exact_one(t1, t2, truncation):
    z = torch.randn(32, K, dtype=torch.float64, generator=torch.Generator().manual_seed(6)) * 3
    y = torch.randint(0, K, (32,), generator=torch.Generator().manual_seed(7))
    loss = losses.build("bitempered", K, reduction="none", t1=t1, t2=t2)
    x = z.clone().requires_grad_(True)
    got = loss(x, y)
    torch.testing.assert_close(got, bitempered_value(official_fixed_point(z, t2), y, t1), **TOL)
    exact = exact_tempered_softmax(z, t2)
    torch.testing.assert_close(exact.sum(1), torch.ones(32, dtype=torch.float64))
    # the official normalisation is truncated after 5 steps: its value is only that close to the exact loss
    torch.testing.assert_close(got, bitempered_value(exact, y, t1), rtol=0, atol=truncation)
    # the official custom gradient is the exact loss's gradient: central differences of the exact loss
    (grad,) = torch.autograd.grad(got.sum(), x)
    h, numeric = 1e-6, torch.zeros_like(z)
    for j in range(K):
        step = torch.zeros_like(z)
        step[:, j] = h
        up = bitempered_value(exact_tempered_softmax(z + step, t2), y, t1)
        down = bitempered_value(exact_tempered_softmax(z - step, t2), y, t1)
        numeric[:, j] = (up - down) / (2 * h)
    torch.testing.assert_close(grad, numeric, rtol=0, atol=10 * truncation)


def test_bitempered_with_both_temperatures_one_is_cross_entropy():
    z, y = logit_batches(K)[0]
    x = z.clone().requires_grad_(True)
    got = losses.build("bitempered", K, reduction="none", t1=1.0, t2=1.0)(x, y)
    torch.testing.assert_close(got, ce(z, y) + math.log(1 + 1e-10), **TOL)
    (grad,) = torch.autograd.grad(got.sum(), x)
    torch.testing.assert_close(grad, softmax(z) - F.one_hot(y, K).double(), **TOL)


def test_bitempered_is_stable_in_float32():
    z64, y = logit_batches(K)[0]
    f32 = losses.build("bitempered", K, reduction="none", t1=0.8, t2=1.2)(z64.float(), y)
    f64 = losses.build("bitempered", K, reduction="none", t1=0.8, t2=1.2)(z64, y)
    torch.testing.assert_close(f32.double(), f64, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["ece", "efl", "ece+mae", "efl+mae", "tce", "poly1", "gls", "js", "bitempered",
                                  "ldr-kl", "ce+sr", "gce+sr", "lc-ce", "lc-nce+rce", "amse", "jal-ce", "jal-fl"])
def test_gradients_are_finite_at_extreme_logits_in_float32_and_bf16_autocast(name):
    z = (torch.randint(-1, 2, (128, K), generator=torch.Generator().manual_seed(8)) * 100.0).float()
    z = z + torch.randn(128, K, generator=torch.Generator().manual_seed(9))
    y = torch.randint(0, K, (128,), generator=torch.Generator().manual_seed(10))
    for autocast in (False, True):
        logits = z.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            value = losses.build(name, K)(logits.to(torch.bfloat16) if autocast else logits, y)
        value.backward()
        assert value.dtype == torch.float32 and torch.isfinite(value) and torch.isfinite(logits.grad).all(), name


# ----------------------------------------------------------------------------- what the auditor says

#: (symmetric, bounded) as each paper states it; where the paper is silent, what its formula implies.
KINDS = {
    ("ece", ()): (False, True),  # bounded through the 1e-8 clamp: at most -log 1e-8
    ("efl", ()): (False, True),
    ("ece+mae", ()): (False, True),
    ("efl+mae", ()): (False, True),
    ("tce", ()): (False, True),  # Feng et al.: bounded for a finite order, by sum_k 1/k
    ("tce", (("order", 1),)): (True, True),  # order 1 is MAE
    ("poly1", ()): (False, False),  # CE plus a bounded term
    ("gls", (("smooth_rate", -0.2),)): (False, False),  # NLS: CE's part is unbounded
    ("js", ()): (False, True),  # Englesson & Azizpour: bounded, not symmetric for pi in (0, 1)
    ("bitempered", ()): (False, True),  # Amid et al.: t1 < 1 bounds the loss
    ("bitempered", (("t1", 1.0), ("t2", 1.0))): (False, False),  # CE
    ("ldr-kl", ()): (False, True),
    ("ce+sr", ()): (False, True),  # normalised logits: every term bounded
    ("gce+sr", ()): (False, True),
    ("lc-ce", ()): (False, True),  # Wei et al.: LogitClip bounds CE
    ("amse", ()): (False, True),  # asymmetric, not symmetric; a squared error of probabilities
    ("jal-ce", ()): (False, True),
    ("jal-fl", ()): (False, True),
}


@pytest.mark.parametrize("case", list(KINDS), ids=[n + "".join(f"-{k}={v}" for k, v in p) for n, p in KINDS])
def test_the_auditor_classifies_each_loss_as_its_paper_states(case):
    from aplab.audit import audit

    name, params = case
    report = audit(name, classes=K, params=dict(params))
    assert (report.symmetric, report.bounded) == KINDS[case]
    assert report.finite and report.finite_gradients
    assert report.kind == losses.info(name).kind
    if name == "ece":
        assert report.range["max"] == pytest.approx(-math.log(1e-8), rel=1e-9)


def test_parameters_defaults_and_bad_values():
    assert losses.parameters("ece+mae") == {"alpha": 1.0, "beta": 1.0, "m": 1e5}
    assert losses.parameters("lc-gce") == {"q": 0.7, "scale": 1.0, "tau": 1.0}
    assert losses.parameters("gce+sr") == {"tau": 0.5, "p": 0.1, "lamb": 1.2, "rho": 1.03, "freq": 1, "q": 0.01}
    for name, kwargs, field in [("js", {"pi": 1.0}, "pi"), ("bitempered", {"t2": 0.5}, "t2"),
                                ("tce", {"order": 0}, "order"), ("tce", {"order": 1.5}, "order"),
                                ("lc-ce", {"tau": 0.0}, "tau"), ("gls", {"smooth_rate": 1.5}, "smooth_rate"),
                                ("ce+sr", {"freq": 0}, "freq"), ("ldr-kl", {"lamb": 0.0}, "lamb"),
                                ("lc-lc-ce", {}, "name"), ("lc-nec", {}, "name"), ("lc-ce+sr", {}, "name")]:
        with pytest.raises(ValueError, match=rf"^{field}="):
            losses.build(name, K, **kwargs)


def test_logit_clip_passes_the_engine_hooks_to_the_loss_it_wraps():
    from torch import nn

    model = nn.Linear(3, 2).double()
    anl = losses.build("lc-anl-ce", K, delta=1e-3)
    l1 = sum(float(p.detach().abs().sum()) for p in model.parameters())
    assert anl.penalty(model).item() == pytest.approx(1e-3 * l1, rel=1e-12)
    staged = losses.build("lc-nlnl", K, fidelity="paper")
    staged.on_epoch_start(9, 10)
    assert staged.inner.stage == "selpl"
    staged.observe_labels(torch.tensor([0, 0, 1]))
    assert staged.inner.class_weights[1].item() == 2.0


def test_settings_are_the_official_configs_per_dataset_and_noise():
    from aplab.config import from_flat
    from aplab.config.resolve import resolve

    def resolved(**flat):
        cfg = resolve(from_flat({f"{k.replace('_', '.', 1)}": v for k, v in flat.items()}))
        return cfg.loss

    c10 = resolved(data_name="cifar10", loss_name="ece+mae", noise_spec="symmetric:0.8")
    assert (c10.alpha, c10.beta, c10.m) == (0.01, 5.0, 1e5)
    c100 = resolved(data_name="cifar100", loss_name="efl+mae", noise_spec="asymmetric:0.3")
    assert (c100.alpha, c100.beta, c100.m, c100.gamma) == (0.005, 1.0, 1e2, 0.1)
    assert resolved(data_name="cifar100", loss_name="ece+mae", noise_spec="none").alpha == 0.1
    assert resolved(data_name="cifar10", loss_name="js", noise_spec="symmetric:0.4").pi == 0.7
    assert resolved(data_name="cifar100", loss_name="js", noise_spec="asymmetric:0.4").pi == 0.5
    assert resolved(data_name="cifar10", loss_name="lc-ce", noise_spec="symmetric:0.8").tau == pytest.approx(1 / 1.5)
    assert resolved(data_name="cifar10", loss_name="lc-ce", noise_spec="symmetric:0.4").tau == 1.0
    sr = resolved(data_name="cifar100", loss_name="gce+sr", noise_spec="symmetric:0.4")
    assert (sr.tau, sr.p, sr.lamb, sr.rho, sr.freq, sr.q) == (0.5, 0.01, 10.0, 1.02, 1, 0.001)
    assert resolved(data_name="mnist", loss_name="ce+sr", noise_spec="symmetric:0.4").rho == 2.0
    dflt = resolved(data_name="cifar10", loss_name="ece+mae", noise_spec="symmetric:0.4", loss_alpha=0.5)
    assert dflt.alpha == 0.5 and dflt.beta == 5.0  # what a config sets wins over the settings
    assert resolved(data_name="digits", loss_name="js", noise_spec="symmetric:0.4").pi == 0.5  # none published
    jal = resolve(from_flat({"data.name": "cifar10", "loss.name": "jal-ce", "noise.spec": "symmetric:0.8"}))
    assert (jal.loss.alpha, jal.loss.beta, jal.loss.a, jal.loss.delta) == (1.0, 1.0, 30.0, 5e-5)
    assert jal.optim.weight_decay == 0.0  # get_weight_decay_config: an L1 penalty instead of weight decay
    jal100 = resolved(data_name="cifar100", loss_name="jal-fl", noise_spec="asymmetric:0.4")
    assert (jal100.alpha, jal100.beta, jal100.a, jal100.delta, jal100.gamma) == (5.0, 1.0, 20.0, 5e-6, 0.5)


# ----------------------------------------------------------------------------- the zoo pipeline

ZOO = Path(__file__).resolve().parents[1] / "pipelines" / "zoo_cifar10.yaml"


def test_the_zoo_pipeline_resolves_each_cell_with_the_official_settings_of_its_noise():
    from aplab.pipeline.spec import expand, load_pipeline

    spec = load_pipeline(ZOO)
    assert set(spec.noise) == {"symmetric:0.4", "symmetric:0.8", "asymmetric:0.4"} and spec.seeds == (0, 1, 2)
    baselines = {"ce", "gce", "sce", "nce+rce", "anl-ce"}
    recent = {"ece+mae", "efl+mae", "lc-ce", "tce", "poly1", "gls", "ce+sr", "gce+sr", "bitempered", "js", "ldr-kl",
              "jal-ce"}
    assert set(spec.loss_order) == baselines | recent
    cells = {(c.config.loss.name, c.config.noise.spec, c.config.runtime.seed): c.config.loss for c in expand(spec)}
    assert len(cells) == 17 * 3 * 3
    ece = cells[("ece+mae", "asymmetric:0.4", 0)]
    assert (ece.alpha, ece.beta, ece.m) == (0.02, 5.0, 1e3)
    assert cells[("ece+mae", "symmetric:0.8", 1)].m == 1e5
    assert cells[("lc-ce", "symmetric:0.4", 0)].tau == 1.0
    assert cells[("lc-ce", "symmetric:0.8", 0)].tau == pytest.approx(1 / 1.5)
    assert cells[("lc-ce", "asymmetric:0.4", 0)].tau == pytest.approx(1 / 2.5)
    assert [cells[("js", n, 2)].pi for n in ("symmetric:0.4", "symmetric:0.8", "asymmetric:0.4")] == [0.7, 0.9, 0.3]
    sr = cells[("gce+sr", "symmetric:0.8", 0)]
    assert (sr.tau, sr.p, sr.lamb, sr.rho, sr.freq, sr.q) == (0.5, 0.1, 1.2, 1.03, 1, 0.01)
    assert cells[("gls", "symmetric:0.8", 0)].smooth_rate == -0.2
    assert cells[("ldr-kl", "symmetric:0.8", 0)].lamb == 10.0
    assert cells[("jal-ce", "asymmetric:0.4", 0)].delta == 5e-5


@pytest.mark.slow
def test_one_cell_of_the_zoo_pipeline_trains_at_smoke_scale(tmp_path, monkeypatch):
    from aplab.cli.command import main

    monkeypatch.chdir(tmp_path)
    text = ZOO.read_text()
    one = text.split("  loss:\n")[0] + "  loss: [ce+sr]\n  seed: [0]\n"
    one = one.replace("noise: [symmetric:0.4, symmetric:0.8, asymmetric:0.4]", "noise: [symmetric:0.8]")
    path = tmp_path / "one.yaml"
    path.write_text(one)
    assert main(["pipeline", "run", str(path), "--scale", "smoke", "--tracking-uri", "memory://", "--no-progress"]) == 0


def test_jal_adds_delta_times_the_l1_norm_of_all_parameters_as_its_official_training_loop():
    from torch import nn

    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).double()
    l1 = sum(float(p.detach().abs().sum()) for p in model.parameters())  # main.py: sum(p.abs().sum())
    for name in ("jal-ce", "jal-fl"):
        assert losses.build(name, K, delta=5e-5).penalty(model).item() == pytest.approx(5e-5 * l1, rel=1e-12)
        assert losses.build(name, K).penalty(model) is None  # delta 0: no penalty
