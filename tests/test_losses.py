"""Every loss against its formula (float64, numpy), the paper's properties, gradients and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aplab import losses

K = 10
LN_1E4 = math.log(1e-4)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


# Reference formulas, per sample, written from official_settings.md (not from the code under test).
def ref_ce(z, y):
    return -log_softmax(z)[np.arange(len(y)), y]


def ref_fl(z, y, gamma=0.5):
    lp = log_softmax(z)[np.arange(len(y)), y]
    return -((1 - np.exp(lp)) ** gamma) * lp


def ref_mae(z, y, scale=1.0):
    return scale * (1 - softmax(z)[np.arange(len(y)), y])


def ref_rce(z, y, fidelity="code"):
    p = softmax(z)
    if fidelity == "paper":
        return 4.0 * (1 - p[np.arange(len(y)), y])
    p = np.clip(p, 1e-7, 1.0)
    q = np.clip(np.eye(z.shape[1])[y], 1e-4, 1.0)
    return -(p * np.log(q)).sum(axis=1)


def ref_gce(z, y, q=0.7):
    p = np.clip(softmax(z), 1e-7, 1.0)[np.arange(len(y)), y]
    return (1 - p**q) / q


def ref_nce(z, y):
    lp = log_softmax(z)
    return lp[np.arange(len(y)), y] / lp.sum(axis=1)


def ref_nfl(z, y, gamma=0.5):
    lp = log_softmax(z)
    fl = -((1 - np.exp(lp)) ** gamma) * lp
    return fl[np.arange(len(y)), y] / fl.sum(axis=1)


def ref_ngce(z, y, q=0.7):
    p = np.clip(softmax(z), 1e-7, 1.0)
    return (1 - p[np.arange(len(y)), y] ** q) / (z.shape[1] - (p**q).sum(axis=1))


def ref_nmae(z, y):
    # MAE(f, j) summed over all labels j, then the ratio (definition of normalisation, eq. 2 of the paper)
    per_label = np.stack([ref_mae(z, np.full(len(y), j)) for j in range(z.shape[1])], axis=1)
    return ref_mae(z, y) / per_label.sum(axis=1)


def ref_nrce(z, y, fidelity="code"):
    per_label = np.stack([ref_rce(z, np.full(len(y), j), fidelity) for j in range(z.shape[1])], axis=1)
    return ref_rce(z, y, fidelity) / per_label.sum(axis=1)


REFERENCES = {
    "ce": ref_ce, "fl": ref_fl, "mae": ref_mae, "rce": ref_rce, "gce": ref_gce, "nce": ref_nce,
    "nfl": ref_nfl, "ngce": ref_ngce, "nmae": ref_nmae, "nrce": ref_nrce,
    "sce": lambda z, y: 0.1 * ref_ce(z, y) + 1.0 * ref_rce(z, y),
    "nce+rce": lambda z, y: ref_nce(z, y) + ref_rce(z, y),
    "nce+mae": lambda z, y: ref_nce(z, y) + ref_mae(z, y),
    "nfl+rce": lambda z, y: ref_nfl(z, y) + ref_rce(z, y),
    "nfl+mae": lambda z, y: ref_nfl(z, y) + ref_mae(z, y),
    "ngce+rce": lambda z, y: ref_ngce(z, y) + ref_rce(z, y),
    "ngce+mae": lambda z, y: ref_ngce(z, y) + ref_mae(z, y),
    "nfl+nce": lambda z, y: ref_nfl(z, y) + ref_nce(z, y),
    "mae+rce": lambda z, y: ref_mae(z, y) + ref_rce(z, y),
}
NORMALISED = ["nce", "nfl", "ngce", "nmae", "nrce"]


def logit_batches():
    rng = np.random.default_rng(0)
    random = rng.normal(0, 3, size=(64, K))
    extreme = rng.choice([-100.0, 0.0, 100.0], size=(64, K)) + rng.normal(0, 1, size=(64, K))
    one_hot_like = np.full((8, K), -100.0)
    one_hot_like[np.arange(8), np.arange(8)] = 100.0
    labels = rng.integers(0, K, size=64)
    return [(random, labels), (extreme, labels), (one_hot_like, np.arange(8)), (one_hot_like, (np.arange(8) + 1) % K)]


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_each_loss_equals_its_formula_per_sample_in_float64(name):
    loss = losses.build(name, K, reduction="none")
    for z, y in logit_batches():
        got = loss(torch.tensor(z, dtype=torch.float64), torch.tensor(y)).numpy()
        np.testing.assert_allclose(got, REFERENCES[name](z, y), rtol=1e-10, atol=1e-12)


def test_mean_reduction_is_the_mean_of_the_per_sample_losses():
    z, y = logit_batches()[0]
    zt, yt = torch.tensor(z), torch.tensor(y)
    per_sample = losses.build("nce+rce", K, reduction="none", alpha=2.0, beta=0.5)(zt, yt)
    mean = losses.build("nce+rce", K, alpha=2.0, beta=0.5)(zt, yt)
    np.testing.assert_allclose(mean.item(), 2.0 * ref_nce(z, y).mean() + 0.5 * ref_rce(z, y).mean(), rtol=1e-12)
    assert mean.item() == pytest.approx(per_sample.mean().item(), rel=1e-12)


def test_paper_fidelity_uses_the_papers_constants():
    z, y = logit_batches()[0]
    zt, yt = torch.tensor(z), torch.tensor(y)
    rce = losses.build("rce", K, reduction="none", fidelity="paper")(zt, yt).numpy()
    mae = losses.build("mae", K, reduction="none", fidelity="paper")(zt, yt).numpy()
    np.testing.assert_allclose(rce, 4.0 * ref_mae(z, y), rtol=1e-12)  # A = -4
    np.testing.assert_allclose(mae, 2.0 * ref_mae(z, y), rtol=1e-12)  # MAE = sum |p - q| = 2 (1 - p_y)
    np.testing.assert_allclose(mae, np.abs(softmax(z) - np.eye(K)[y]).sum(axis=1), rtol=1e-10)
    nrce = losses.build("nrce", K, reduction="none", fidelity="paper")(zt, yt).numpy()
    np.testing.assert_allclose(nrce, ref_nrce(z, y, "paper"), rtol=1e-10)


@pytest.mark.parametrize("fidelity", ["code", "paper"])
@pytest.mark.parametrize("name", NORMALISED)
def test_normalised_losses_lie_in_unit_interval_and_sum_to_one_over_labels(name, fidelity):
    loss = losses.build(name, K, reduction="none", fidelity=fidelity)
    for z, _ in logit_batches():
        zt = torch.tensor(z)
        per_label = torch.stack([loss(zt, torch.full((len(z),), j)) for j in range(K)], dim=1)
        assert per_label.min() >= 0 and per_label.max() <= 1
        np.testing.assert_allclose(per_label.sum(dim=1).numpy(), 1.0, rtol=1e-10)


def test_nce_rce_equals_nce_mae_with_beta_scaled_by_ln_1e4():
    rng = np.random.default_rng(1)
    z = torch.tensor(rng.normal(0, 2, size=(256, K)))
    y = torch.tensor(rng.integers(0, K, size=256))
    for alpha, beta in [(1.0, 1.0), (0.1, 10.0), (10.0, 0.1)]:
        rce = losses.build("nce+rce", K, alpha=alpha, beta=beta)(z, y)
        mae = losses.build("nce+mae", K, alpha=alpha, beta=9.2103 * beta)(z, y)
        assert rce.item() == pytest.approx(mae.item(), rel=1e-5)
        exact = losses.build("nce+mae", K, alpha=alpha, beta=-LN_1E4 * beta)(z, y)
        assert rce.item() == pytest.approx(exact.item(), rel=1e-6)


@pytest.mark.parametrize("name", [*sorted(REFERENCES), "nlnl"])
def test_gradients_are_finite_at_extreme_logits_in_float32_and_bf16_autocast(name):
    torch.manual_seed(0)
    loss = losses.build(name, K)
    z = (torch.randint(-1, 2, (128, K)) * 100.0).float() + torch.randn(128, K)
    y = torch.randint(0, K, (128,))
    for autocast in (False, True):
        logits = z.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            value = loss(logits.to(torch.bfloat16) if autocast else logits, y)
        assert value.dtype == torch.float32
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(logits.grad).all(), name


def test_gradients_flow_to_every_term_of_a_combination():
    z = torch.randn(16, K, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, K, (16,))
    nce = losses.build("nce", K)(z, y)
    (g_nce,) = torch.autograd.grad(nce, z)
    rce = losses.build("rce", K)(z, y)
    (g_rce,) = torch.autograd.grad(rce, z)
    both = losses.build("nce+rce", K, alpha=2.0, beta=3.0)(z, y)
    (g_both,) = torch.autograd.grad(both, z)
    torch.testing.assert_close(g_both, 2.0 * g_nce + 3.0 * g_rce)


def test_focal_factor_is_detached_as_in_the_reference_code():
    z = torch.randn(8, K, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, K, (8,))
    fl = losses.build("fl", K, reduction="none")(z, y)
    (grad,) = torch.autograd.grad(fl.sum(), z)
    log_p = torch.log_softmax(z, 1).gather(1, y[:, None]).squeeze(1)
    weight = (1 - log_p.exp()).detach() ** 0.5
    (expected,) = torch.autograd.grad((-weight * log_p).sum(), z)
    torch.testing.assert_close(grad, expected)


def test_gamma_zero_focal_is_cross_entropy_and_q_one_gce_is_mae():
    z, y = logit_batches()[0]
    zt, yt = torch.tensor(z), torch.tensor(y)
    fl = losses.build("fl", K, reduction="none", gamma=0.0)(zt, yt)
    np.testing.assert_allclose(fl.numpy(), ref_ce(z, y), rtol=1e-12)
    gce = losses.build("gce", K, reduction="none", q=1.0)(zt, yt)
    np.testing.assert_allclose(gce.numpy(), ref_mae(z, y), rtol=1e-9, atol=1e-12)


def two_class_batch(n: int = 256):
    """K = 2: the only complementary label is the other class, so NL is deterministic: -log max(p_y, 1e-5)."""
    z = torch.randn(n, 2, dtype=torch.float64) * 3
    y = torch.randint(0, 2, (n,))
    p_y = torch.softmax(z, 1).gather(1, y[:, None]).squeeze(1)
    return z, y, p_y


def test_nlnl_under_code_fidelity_learns_negatively_for_the_whole_run():
    z, y, p_y = two_class_batch()
    loss = losses.build("nlnl", 2, reduction="none")
    for epoch in range(10):
        loss.on_epoch_start(epoch, 10)
        torch.testing.assert_close(loss(z, y), -torch.log(p_y.clamp(min=1e-5)))


def test_nlnl_under_paper_fidelity_switches_to_selective_nl_then_selective_pl():
    z, y, p_y = two_class_batch()
    loss = losses.build("nlnl", 2, reduction="none", fidelity="paper")
    negative = -torch.log(p_y.clamp(min=1e-5))
    loss.on_epoch_start(4, 10)  # 40%: negative learning on every sample
    torch.testing.assert_close(loss(z, y), negative)
    loss.on_epoch_start(6, 10)  # 60%: selective NL, only samples with p_y > 1/K
    torch.testing.assert_close(loss(z, y), negative * (p_y > 0.5))
    loss.on_epoch_start(9, 10)  # 90%: selective PL, CE on confident samples only
    torch.testing.assert_close(loss(z, y), -torch.log(p_y) * (p_y > 0.5))
    mean = losses.build("nlnl", K, fidelity="paper")
    mean.on_epoch_start(9, 10)
    nobody = torch.full((4, K), 0.0)  # p_y = 1/K < 0.5: nobody selected, the mean is 0, not NaN
    assert mean(nobody, torch.zeros(4, dtype=torch.int64)).item() == 0.0


def test_nlnl_complementary_labels_are_never_the_label_and_uniform_over_the_others():
    n = 18000
    y = torch.arange(n) % K
    confident = torch.full((n, K), -50.0, dtype=torch.float64)
    confident[torch.arange(n), y] = 50.0  # p_y = 1: a complementary label equal to y would cost -log 1e-5
    loss = losses.build("nlnl", K, reduction="none")
    assert loss(confident, y).max().item() < 1e-12
    # p_k distinct per class: the loss value tells which complementary class was drawn
    z = torch.log(torch.arange(1, K + 1, dtype=torch.float64)).expand(n, K)
    label = torch.zeros(n, dtype=torch.int64)
    p = torch.arange(1, K + 1, dtype=torch.float64) / (K * (K + 1) / 2)
    values = loss(z, label)
    drawn = (values[:, None] - (-torch.log(1 - p))[None, 1:]).abs().argmin(1) + 1
    counts = torch.bincount(drawn, minlength=K)[1:].double()
    expected = n / (K - 1)
    assert (counts - expected).abs().max() < 5 * (expected * (1 - 1 / (K - 1))) ** 0.5


def test_metadata_marks_active_passive_robust_and_ablations():
    assert losses.info("nce").kind == "active" and losses.info("nce").robust
    assert losses.info("rce").kind == "passive" and losses.info("rce").robust
    assert losses.info("ce").kind == "active" and not losses.info("ce").robust
    apl = losses.info("nce+rce")
    assert apl.kind == "active+passive" and apl.robust and not apl.ablation
    assert losses.info("nfl+nce").ablation and losses.info("nfl+nce").kind == "active+active"
    assert losses.info("mae+rce").ablation and losses.info("mae+rce").kind == "passive+passive"
    assert set(losses.available()) == {"ce", "fl", "mae", "rce", "gce", "sce", "nce", "nfl", "ngce", "nmae",
                                       "nrce", "nlnl", "nnce", "nnfl", "agce", "aul", "ael", "anorm",
                                       "anl-ce", "anl-fl", "anl-ce-er",
                                       # since APL (tests/test_losses_recent.py)
                                       "ece", "efl", "ece+mae", "efl+mae", "tce", "poly1", "gls", "js", "bitempered",
                                       "ldr-kl", "ce+sr", "gce+sr", "amse", "jal-ce", "jal-fl"}


def test_docs_loss_table_is_generated_from_the_metadata():
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs" / "losses.md"
    assert losses.loss_table() in docs.read_text()


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(name="nec"), "name"),
        (dict(name="nce+rcee"), "name"),
        (dict(name="nce+rce", alpha=0.0), "alpha"),
        (dict(name="nce+rce", beta=-1.0), "beta"),
        (dict(name="gce", q=0.0), "q"),
        (dict(name="ngce", q=1.5), "q"),
        (dict(name="fl", gamma=-0.1), "gamma"),
        (dict(name="ce", q=0.5), "q"),
        (dict(name="ce", fidelity="text"), "fidelity"),
    ],
)
def test_bad_parameters_raise_value_errors_naming_the_field(kwargs, field):
    name = kwargs.pop("name")
    with pytest.raises(ValueError, match=rf"^{field}=") as err:
        losses.build(name, K, **kwargs)
    assert "allowed" in str(err.value)


def test_unknown_name_lists_choices_and_suggests_the_closest():
    with pytest.raises(ValueError) as err:
        losses.build("nec", K)
    assert "did you mean 'nce'" in str(err.value) and "ngce" in str(err.value)


def test_bad_inputs_raise_input_shape_errors_not_config_errors():
    from aplab.errors import ConfigError, InputShapeError

    with pytest.raises(InputShapeError) as err:
        losses.build("nce", K)(torch.randn(4, K + 1), torch.tensor([0, 1, 2, 3]))
    assert not isinstance(err.value, ConfigError)


def test_bad_inputs_raise_value_errors():
    loss = losses.build("nce+rce", K)
    with pytest.raises(ValueError, match="^targets="):
        loss(torch.randn(4, K), torch.tensor([0, 1, 2, K]))
    with pytest.raises(ValueError, match="^targets="):
        loss(torch.randn(4, K), torch.tensor([0, -1, 2, 3]))
    with pytest.raises(ValueError, match="^logits="):
        loss(torch.randn(4, K + 1), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="^logits="):
        loss(torch.randn(4), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="^targets="):
        loss(torch.randn(4, K), torch.tensor([0, 1, 2]))


def test_nlnl_sums_its_complementary_labels_and_weights_rare_noisy_classes_up():
    z, y, p_y = two_class_batch()
    loss = losses.build("nlnl", 2, reduction="none", ln_neg=3)
    loss.observe_labels(np.array([0] * 30 + [1] * 10))  # class 1 is three times rarer: weight 3
    weights = torch.where(y == 1, 3.0, 1.0).double()
    torch.testing.assert_close(loss(z, y), 3 * weights * -torch.log(p_y.clamp(min=1e-5)))


def test_nlnl_stage_defaults_follow_the_fidelity():
    assert losses.parameters("nlnl")["nl_until"] == 1.0 and losses.parameters("nlnl")["selnl_until"] == 1.0
    assert (losses.parameters("nlnl", "paper")["nl_until"], losses.parameters("nlnl", "paper")["selnl_until"]) == (0.5, 0.8)
    with pytest.raises(ValueError, match="^fidelity="):
        losses.parameters("nlnl", "text")
