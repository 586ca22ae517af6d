"""APL's successors (ANL, Ye et al. 2023; asymmetric losses, Zhou et al. 2021) against their official formulas.

The reference functions below are written in torch from the definitions in successors.md and the
official code's clamps and detached factors (Virusdoll/Active-Negative-Loss loss.py, hitcszx/ALFs
lnl/losses.py), independently of aplab's implementation: values AND autograd gradients must agree in
float64 to 1e-9, per sample.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from aplab import losses
from tests.helpers import assert_loss_matches, logit_batches

K = 10
TOL = dict(rtol=1e-9, atol=1e-9)


def onehot(y, k):
    return torch.nn.functional.one_hot(y, k).double()


def ref_nce(z, y):
    lp = torch.log_softmax(z, 1)
    return (onehot(y, z.shape[1]) * lp).sum(1) / lp.sum(1)


def ref_nfl(z, y, gamma=0.5):
    lp = torch.log_softmax(z, 1)
    fl = -((1 - lp.detach().exp()) ** gamma) * lp
    return (onehot(y, z.shape[1]) * fl).sum(1) / fl.sum(1)


def ref_nnce(z, y, min_prob=1e-7, top=1.0):
    p = torch.softmax(z, 1).clamp(min_prob, top)
    v = -math.log(min_prob) + p.log()
    return 1 - (onehot(y, z.shape[1]) * v).sum(1) / v.sum(1)


def ref_nnfl(z, y, gamma=0.5, min_prob=1e-7):
    k = z.shape[1]
    lp = torch.log_softmax(z, 1).clamp(min=math.log(min_prob))
    fl = -((1 - lp.detach().exp()) ** gamma) * lp
    a = -((1 - min_prob) ** gamma) * math.log(min_prob)
    return 1 - (a - (onehot(y, k) * fl).sum(1)) / (k * a - fl.sum(1))


def p_label(z, y):
    return (onehot(y, z.shape[1]) * torch.softmax(z, 1)).sum(1)


def ref_agce(z, y, a=0.6, q=0.6):
    return ((a + 1) ** q - (a + p_label(z, y)) ** q) / q


def ref_aul(z, y, a=5.5, q=3.0):
    return ((a - p_label(z, y)) ** q - (a - 1) ** q) / q


def ref_ael(z, y, a=2.5):
    return torch.exp(-p_label(z, y) / a)


def ref_anorm(z, y, a=1.5, p=0.9):
    probs = torch.softmax(z, 1).clamp(1e-5, 1)
    return ((a * onehot(y, z.shape[1]) - probs).abs() ** p).sum(1) / p - (a - 1) ** p / p


def ref_entropy(z, min_prob=1e-7):
    prob = torch.softmax(z, 1).clamp(min_prob, 1 - min_prob)
    pbar = (prob.sum(0) / prob.sum()).clamp(min_prob, 1 - min_prob)
    return math.log(z.shape[1]) + (pbar * pbar.log()).sum()


CASES = {
    ("nnce", ()): ref_nnce,
    ("nnce", (("min_prob", 1e-4),)): lambda z, y: ref_nnce(z, y, 1e-4),
    ("nnfl", ()): ref_nnfl,
    ("nnfl", (("gamma", 2.0), ("min_prob", 1e-5))): lambda z, y: ref_nnfl(z, y, 2.0, 1e-5),
    ("agce", ()): ref_agce,
    ("agce", (("a", 6.0), ("q", 1.5))): lambda z, y: ref_agce(z, y, 6.0, 1.5),
    ("aul", ()): ref_aul,
    ("aul", (("a", 6.3), ("q", 1.5))): lambda z, y: ref_aul(z, y, 6.3, 1.5),
    ("ael", ()): ref_ael,
    ("ael", (("a", 5.0),)): lambda z, y: ref_ael(z, y, 5.0),
    ("anorm", ()): ref_anorm,
    ("anorm", (("a", 2.0), ("p", 0.7))): lambda z, y: ref_anorm(z, y, 2.0, 0.7),
    ("nce", (("scale", 10.0),)): lambda z, y: 10 * ref_nce(z, y),
    ("agce", (("scale", 3.0),)): lambda z, y: 3 * ref_agce(z, y),
    ("nce+nnce", (("alpha", 5.0), ("beta", 5.0))): lambda z, y: 5 * ref_nce(z, y) + 5 * ref_nnce(z, y),
    ("nfl+nnfl", (("beta", 2.0),)): lambda z, y: ref_nfl(z, y) + 2 * ref_nnfl(z, y),
    ("nce+agce", (("alpha", 1.0), ("beta", 4.0), ("a", 6.0), ("q", 1.5))):
        lambda z, y: ref_nce(z, y) + 4 * ref_agce(z, y, 6.0, 1.5),
    ("nce+aul", (("alpha", 10.0), ("beta", 0.015), ("a", 6.0), ("q", 3.0))):
        lambda z, y: 10 * ref_nce(z, y) + 0.015 * ref_aul(z, y, 6.0, 3.0),
    ("nce+ael", (("beta", 4.0), ("a", 5.0))): lambda z, y: ref_nce(z, y) + 4 * ref_ael(z, y, 5.0),
    ("nfl+agce", (("gamma", 0.5), ("a", 3.0), ("q", 2.0))): lambda z, y: ref_nfl(z, y) + ref_agce(z, y, 3.0, 2.0),
    ("nfl+aul", (("a", 1.5), ("q", 0.9))): lambda z, y: ref_nfl(z, y) + ref_aul(z, y, 1.5, 0.9),
    ("nfl+ael", (("a", 3.0),)): lambda z, y: ref_nfl(z, y) + ref_ael(z, y, 3.0),
    ("anl-ce", (("alpha", 5.0), ("beta", 5.0), ("delta", 5e-5))): lambda z, y: 5 * ref_nce(z, y) + 5 * ref_nnce(z, y),
    ("anl-fl", (("alpha", 10.0), ("beta", 1.0), ("delta", 5e-7))): lambda z, y: 10 * ref_nfl(z, y) + ref_nnfl(z, y),
    ("anl-ce-er", (("alpha", 10.0), ("beta", 1.0), ("delta", 5e-7), ("lamb", 0.01))):
        lambda z, y: 10 * ref_nce(z, y) + ref_nnce(z, y, top=1 - 1e-7) + 0.01 * ref_entropy(z),
}
IDS = [name + "".join(f"-{k}={v}" for k, v in params) for name, params in CASES]


@pytest.mark.parametrize("case", list(CASES), ids=IDS)
def test_values_and_gradients_equal_the_official_formulas_per_sample_in_float64(case):
    name, params = case
    # the gradient of the batch mean: the batch-level entropy term couples the samples
    assert_loss_matches(losses.build(name, K, reduction="none", **dict(params)), CASES[case], K, TOL, reduce="mean")


@pytest.mark.parametrize("name", ["agce", "aul", "ael", "anorm", "nnce"])
def test_gradients_match_finite_differences_where_nothing_is_detached(name):
    z = torch.randn(6, K, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, K, (6,))
    assert torch.autograd.gradcheck(lambda x: losses.build(name, K, reduction="none")(x, y), (z,))


@pytest.mark.parametrize("name", ["nnce", "nnfl"])
def test_negative_normalised_losses_sum_to_k_minus_one_over_labels(name):
    loss = losses.build(name, K, reduction="none")
    for z, _ in logit_batches(K):
        per_label = torch.stack([loss(z, torch.full((len(z),), j)) for j in range(K)], dim=1)
        assert per_label.min() >= 0 and per_label.max() <= 1 + 1e-12
        torch.testing.assert_close(per_label.sum(1), torch.full((len(z),), K - 1.0, dtype=torch.float64))


def test_anl_penalty_is_delta_times_the_l1_norm_of_all_parameters_batchnorm_included():
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).double()
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(torch.linspace(-1, 1, p.numel()).reshape(p.shape) * (i + 1))
    l1 = sum(float(p.detach().abs().sum()) for p in model.parameters())  # weight, bias, BN weight, BN bias
    for name in ("anl-ce", "anl-fl", "anl-ce-er"):
        penalty = losses.build(name, K, delta=5e-5).penalty(model)
        assert penalty is not None and penalty.item() == pytest.approx(5e-5 * l1, rel=1e-12)
        (grad,) = torch.autograd.grad(penalty, model[1].weight)
        torch.testing.assert_close(grad, 5e-5 * model[1].weight.sign())


@pytest.mark.parametrize("name", ["ce", "nce+rce", "nce+nnce", "nlnl", "agce", "sce"])
def test_losses_without_a_penalty_and_their_hooks_are_no_ops(name):
    loss = losses.build(name, K)
    assert isinstance(loss, losses.LossHooks)
    assert loss.penalty(nn.Linear(2, 2)) is None
    z, y = torch.randn(8, K), torch.randint(0, K, (8,))
    before = loss(z, y) if name != "nlnl" else None
    loss.on_epoch_start(0, 10)
    if name != "nlnl":
        loss.observe_labels([0, 1, 1])
        assert loss(z, y).item() == before.item()


def test_successor_parameters_and_defaults_are_the_papers():
    assert losses.parameters("nnce") == {"min_prob": 1e-7, "scale": 1.0}
    assert losses.parameters("nnfl") == {"gamma": 0.5, "min_prob": 1e-7, "scale": 1.0}
    assert losses.parameters("agce") == {"a": 0.6, "q": 0.6, "scale": 1.0}
    assert losses.parameters("aul") == {"a": 5.5, "q": 3.0, "scale": 1.0}
    assert losses.parameters("ael") == {"a": 2.5, "scale": 1.0}
    assert losses.parameters("anorm") == {"a": 1.5, "p": 0.9, "scale": 1.0}
    assert set(losses.parameters("anl-ce")) == {"alpha", "beta", "delta", "min_prob"}
    assert set(losses.parameters("anl-fl")) == {"alpha", "beta", "delta", "gamma", "min_prob"}
    assert set(losses.parameters("anl-ce-er")) == {"alpha", "beta", "delta", "lamb", "min_prob"}
    assert set(losses.parameters("nce+agce")) == {"alpha", "beta", "a", "q"}
    assert "scale" not in losses.build("nce", K).params  # unset scale stays out of the recorded parameters
    assert losses.build("nce", K, scale=10).params["scale"] == 10.0


def test_successor_metadata():
    assert losses.info("nnce").kind == "passive" and losses.info("agce").kind == "active"
    for name in ("nce+agce", "nfl+ael", "nce+nnce", "anl-ce", "anl-ce-er"):
        assert losses.info(name).robust and not losses.info(name).ablation, name
    assert "Ye et al." in losses.info("anl-fl").reference and "Zhou et al." in losses.info("nce+aul").reference


@pytest.mark.parametrize(
    "name, kwargs, field",
    [
        ("aul", dict(a=1.0), "a"),
        ("anorm", dict(a=0.5), "a"),
        ("agce", dict(q=0.0), "q"),
        ("nnce", dict(min_prob=0.0), "min_prob"),
        ("anl-ce", dict(delta=-1.0), "delta"),
        ("anl-ce-er", dict(lamb=float("nan")), "lamb"),
        ("nce", dict(scale=0.0), "scale"),
        ("nce+rce", dict(scale=2.0), "scale"),
        ("ngce+agce", dict(q=1.5), "q"),  # NGCE admits q in (0, 1] only, even where AGCE admits 1.5
    ],
)
def test_bad_successor_parameters_raise_errors_naming_the_field(name, kwargs, field):
    with pytest.raises(ValueError, match=rf"^{field}="):
        losses.build(name, K, **kwargs)


@pytest.mark.parametrize("name", ["nnce", "nnfl", "agce", "aul", "ael", "anorm", "anl-ce", "anl-fl", "anl-ce-er"])
def test_successor_gradients_are_finite_at_extreme_logits_in_float32_and_bf16_autocast(name):
    z = (torch.randint(-1, 2, (128, K)) * 100.0).float() + torch.randn(128, K)
    y = torch.randint(0, K, (128,))
    for autocast in (False, True):
        logits = z.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            value = losses.build(name, K)(logits.to(torch.bfloat16) if autocast else logits, y)
        value.backward()
        assert value.dtype == torch.float32 and torch.isfinite(value) and torch.isfinite(logits.grad).all()


def test_presets_carry_the_successors_settings_and_anl_trains_without_weight_decay():
    from aplab.data.presets import loss_params, preset_for

    c10 = preset_for("cifar10", "code", "anl-ce-er")
    assert c10.weight_decay == 0.0 and c10.model == "cnn8"
    assert loss_params(c10, "anl-ce-er") == {"alpha": 5.0, "beta": 5.0, "delta": 5e-5, "lamb": 2.0}
    c100 = preset_for("cifar100", "code", "anl-fl")
    assert (c100.weight_decay, c100.model, c100.lr) == (0.0, "resnet34", 0.1)
    assert loss_params(c100, "anl-fl") == {"alpha": 10.0, "beta": 1.0, "delta": 5e-7}
    agce = preset_for("cifar100", "code", "nce+agce")
    assert (agce.weight_decay, agce.model) == (1e-5, "resnet34")  # ALFs keep weight decay
    assert loss_params(agce, "nce+agce") == {"alpha": 10.0, "beta": 0.1, "a": 1.8, "q": 3.0}
    assert loss_params(preset_for("cifar10", "code"), "nce+aul") == {"alpha": 1.0, "beta": 4.0, "a": 6.3, "q": 1.5}
    assert loss_params(preset_for("mnist", "code"), "ael") == {"a": 3.5}
    assert loss_params(preset_for("webvision_mini", "code"), "anl-ce") == {"alpha": 20.0, "beta": 1.0, "delta": 5e-6}
    assert preset_for("cifar10", "code").weight_decay == 1e-4  # the two-argument call is unchanged
    assert preset_for("cifar10", "code", "nce+rce").weight_decay == 1e-4
    assert loss_params(preset_for("cifar10", "code"), "nce+nnce") == {}  # no paper setting: the loss defaults


def test_cifar100_mae_beta_is_the_official_configs_under_code_and_the_papers_under_paper():
    from aplab.data.presets import loss_params, preset_for

    for loss in ("nce+mae", "nfl+mae", "ngce+mae"):
        assert loss_params(preset_for("cifar100", "code", loss), loss)["beta"] == 1.0
        assert loss_params(preset_for("cifar100", "paper", loss), loss)["beta"] == 0.1
    assert loss_params(preset_for("cifar100", "code"), "nce+rce")["beta"] == 0.1
