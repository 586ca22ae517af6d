"""MNIST's training settings under each fidelity, against the authors' configs and the paper's text.

The expected values are written out here from HanxunH/Active-Passive-Losses configs/mnist/{sym,asym}/*.yaml
(SGD lr 0.01, momentum 0.9, nesterov True, weight_decay 1.e-2 (nlnl.yaml 1.e-3), CosineAnnealingLR
eta_min 0.001), the paper's text (weight decay 1e-3), and the successors' configs
(Virusdoll/Active-Negative-Loss config/mnist_*.json: weight decay 1e-3, ANL 0, no nesterov, eta_min 0).
"""

from __future__ import annotations

import pytest
import torch

from aplab.config import from_flat
from aplab.config.resolve import resolve
from aplab.errors import ConfigError
from aplab.schedules import build_schedule

AUTHORS_CODE = {"weight_decay": 1e-2, "nesterov": True, "eta_min": 1e-3, "lr": 0.01, "epochs": 50,
                "batch_size": 128, "momentum": 0.9, "grad_clip": 5.0, "schedule": "cosine"}
PAPER_TEXT = {"weight_decay": 1e-3, "nesterov": False, "eta_min": None, "lr": 0.01, "epochs": 50}


def optim(dataset: str, loss: str, fidelity: str, **extra):
    return resolve(from_flat({"data.name": dataset, "loss.name": loss, "loss.fidelity": fidelity, **extra})).optim


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
@pytest.mark.parametrize("loss", ["ce", "gce", "sce", "nce+rce", "ngce+mae"])
def test_code_fidelity_follows_the_authors_mnist_configs(dataset, loss):
    o = optim(dataset, loss, "code")
    assert {k: getattr(o, k) for k in AUTHORS_CODE} == AUTHORS_CODE


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_paper_fidelity_follows_the_papers_text(dataset):
    o = optim(dataset, "nce+rce", "paper")
    assert {k: getattr(o, k) for k in PAPER_TEXT} == PAPER_TEXT
    assert resolve(from_flat({"data.name": dataset, "loss.name": "nce+rce", "loss.fidelity": "paper"})).loss.beta == 100


def test_nlnl_keeps_its_own_weight_decay_under_code():
    o = optim("mnist", "nlnl", "code")
    assert (o.weight_decay, o.nesterov, o.eta_min) == (1e-3, True, 1e-3)


@pytest.mark.parametrize("loss, weight_decay", [("agce", 1e-3), ("aul", 1e-3), ("ael", 1e-3), ("anl-ce", 0.0)])
def test_the_successors_mnist_presets_keep_their_own_configs(loss, weight_decay):
    o = optim("mnist", loss, "code")
    assert (o.weight_decay, o.nesterov, o.eta_min) == (weight_decay, False, None)


def test_other_datasets_have_no_floor_and_any_run_can_set_one():
    assert optim("cifar10", "ce", "code").eta_min is None
    assert optim("cifar10", "ce", "code", **{"optim.eta_min": 1e-4}).eta_min == 1e-4
    assert optim("mnist", "ce", "code", **{"optim.eta_min": 0.0, "optim.nesterov": False}).nesterov is False


def test_a_floor_outside_zero_to_lr_or_without_cosine_is_one_line():
    with pytest.raises(ConfigError, match=r"optim\.eta_min.*\[0, optim\.lr=0\.01\]"):
        optim("mnist", "ce", "code", **{"optim.eta_min": 0.5})
    with pytest.raises(ConfigError, match=r"optim\.eta_min.*optim\.schedule=constant has no floor"):
        optim("cifar10", "ce", "code", **{"optim.eta_min": 1e-3, "optim.schedule": "constant"})
    assert optim("mnist", "ce", "code", **{"optim.schedule": "constant"}).eta_min is None


def test_the_cosine_schedule_ends_at_the_floor():
    o = optim("mnist", "ce", "code", **{"optim.epochs": 4})
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=o.lr)
    schedule = build_schedule(o.schedule, opt, o)
    lrs = []
    for _ in range(4):
        opt.step()
        schedule.step()
        lrs.append(opt.param_groups[0]["lr"])
    # eta_min + (lr - eta_min) (1 + cos(pi t / T)) / 2 at t = 2 and t = T = 4
    assert lrs[1] == pytest.approx(1e-3 + (0.01 - 1e-3) * 0.5)
    assert lrs[-1] == pytest.approx(1e-3)
