"""The loss auditor: tells symmetric losses from the rest, for registered and user-written losses."""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap

import pytest

from aplab.audit import audit
from aplab.cli import main
from aplab.cli.audit import register
from aplab.errors import ConfigError

SYMMETRIC = ["mae", "rce", "nce", "nfl", "ngce", "nmae", "nrce", "nce+rce", "nce+mae", "nnce", "nnfl", "anl-ce"]
NOT_SYMMETRIC = ["ce", "fl", "gce", "sce", "agce", "aul", "ael", "anorm"]


@pytest.mark.parametrize("name", SYMMETRIC)
def test_registered_symmetric_losses_are_found_symmetric(name):
    report = audit(name)
    assert report.symmetric and report.finite and report.finite_gradients and report.bounded
    assert report.symmetric_noise_bound == pytest.approx(0.9) and "Theorem 1" in report.guarantees[0]
    assert "is symmetric" in report.conclusion


@pytest.mark.parametrize("name", NOT_SYMMETRIC)
def test_registered_losses_that_are_not_symmetric_are_found_so(name):
    report = audit(name)
    assert not report.symmetric and report.symmetric_noise_bound is None
    assert report.sum_over_labels["max"] - report.sum_over_labels["min"] > 1e-3
    assert "not symmetric" in report.conclusion


def test_the_sum_over_labels_and_the_tolerance_reason():
    nce = audit("nce")
    assert nce.sum_over_labels["min"] == pytest.approx(1.0, abs=1e-12) == nce.sum_over_labels["max"]
    mae = audit("mae", classes=4)
    assert mae.sum_over_labels["max"] == pytest.approx(3.0, abs=1e-12) and mae.symmetric_noise_bound == 0.75
    rce = audit("rce")  # the 1e-7 clamp: a sum that varies, below K * 1e-7 relative, still counted symmetric
    spread = (rce.sum_over_labels["max"] - rce.sum_over_labels["min"]) / rce.sum_over_labels["max"]
    assert 0 < spread <= 10 * 1e-7 < rce.tolerance and "RCE" in rce.tolerance_reason


def test_boundedness_ranges_and_the_largest_gradient_norm():
    ce = audit("ce")
    assert not ce.bounded and ce.range["min"] == pytest.approx(0.0, abs=1e-12) and ce.range["max"] > 1e3
    assert ce.max_gradient_norm == pytest.approx(math.sqrt(2), rel=1e-9)  # |p - e_y| -> sqrt 2, p one-hot elsewhere
    nce = audit("nce")
    assert nce.bounded and 0 <= nce.range["min"] and nce.range["max"] < 1
    assert audit("gce", params={"q": 1.0}).symmetric  # GCE with q = 1 is MAE


def test_the_asymmetric_condition_is_checked_where_the_loss_is_symmetric():
    assert audit("nmae").asymmetric_condition.startswith("values in [0, C/(K-1)]")  # (1 - p_y)/(K-1) <= 1/(K-1)
    assert audit("nce").asymmetric_condition.startswith("fails")
    assert audit("ce").asymmetric_condition.startswith("not applicable")


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_losses.py").write_text(textwrap.dedent('''
        import torch

        def half_mae(logits, targets):
            return 0.5 * (1 - torch.softmax(logits, 1).gather(1, targets[:, None]).squeeze(1))

        def plain_ce(logits, targets):
            return torch.nn.functional.cross_entropy(logits, targets, reduction="none")

        def mean_only(logits, targets):
            return torch.nn.functional.cross_entropy(logits, targets)

        def explodes(logits, targets):
            raise RuntimeError("boom")

        def nan_at_ties(logits, targets):
            p = torch.softmax(logits, 1).gather(1, targets[:, None]).squeeze(1)
            return torch.log(p - 0.5)

        def sqrt_at_zero(logits, targets):  # symmetric values, an infinite gradient (d sqrt(x)/dx at 0)
            return half_mae(logits, targets) + torch.sqrt(torch.zeros_like(logits[:, 0]) * logits[:, 0])

        class Normalised(torch.nn.Module):
            def __init__(self, num_classes):
                super().__init__()
                self.k = num_classes

            def forward(self, logits, targets):
                log_p = torch.log_softmax(logits, 1)
                return log_p.gather(1, targets[:, None]).squeeze(1) / log_p.sum(1)

        not_callable = 3
    '''))
    (tmp_path / "broken_syntax_xyz.py").write_text("def loss(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("my_losses", None)


def test_user_losses_functions_and_module_classes(user_module):
    half = audit("my_losses:half_mae")
    assert half.symmetric and half.kind == "not decidable from values (declare it with --kind)"
    assert half.sum_over_labels["max"] == pytest.approx(4.5, abs=1e-12)
    assert audit("my_losses:half_mae", kind="passive").kind == "passive"
    assert not audit("my_losses:plain_ce").symmetric
    assert audit("my_losses:Normalised", classes=5).symmetric
    broken = audit("my_losses:nan_at_ties")
    assert not broken.finite and not broken.symmetric and "non-finite" in broken.conclusion


def test_non_finite_gradients_give_no_guarantee_and_a_failing_exit(user_module, capsys):
    """Issue 22.9: a loss whose gradients are not finite is never concluded provably noise-tolerant."""
    report = audit("my_losses:sqrt_at_zero")
    assert report.finite and report.finite_gradients is False
    assert "provably" not in report.conclusion and "non-finite gradients" in report.conclusion
    assert not any(g.startswith("Theorem") for g in report.guarantees)
    assert main(["audit", "my_losses:sqrt_at_zero"]) == 1
    assert "provably" not in capsys.readouterr().out
    assert main(["audit", "my_losses:half_mae"]) == 0


@pytest.mark.parametrize("spec, says", [
    ("no_such_module_xyz:loss", "importing"),
    ("my_losses:missing", "has no 'missing'"),
    ("my_losses:not_callable", "a callable"),
    ("my_losses:mean_only", "returned ()"),
    ("my_losses:explodes", "RuntimeError: boom"),
    (":", "a module and an attribute"),
    ("my_losses:", "a module and an attribute"),
    ("broken_syntax_xyz:loss", "SyntaxError"),
])
def test_bad_user_losses_are_one_config_error_line(user_module, spec, says):
    with pytest.raises(ConfigError) as err:
        audit(spec)
    assert says in str(err.value) and "\n" not in str(err.value)


def parse(argv):
    parser = argparse.ArgumentParser(prog="aplab")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_the_command_prints_one_json_object_with_the_promised_fields(capsys):
    args = parse(["audit", "ngce", "--set", "q=0.1", "--classes", "5", "--format", "json"])
    assert args.handler(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"name", "classes", "symmetric", "sum_over_labels", "bounded", "range", "finite", "kind",
            "conclusion"} <= set(out)
    assert (out["name"], out["classes"], out["symmetric"], out["kind"]) == ("ngce", 5, True, "active")
    assert set(out["sum_over_labels"]) == {"min", "max"} and set(out["range"]) == {"min", "max"}


def test_the_command_rejects_bad_arguments_with_config_errors(user_module):
    for argv in (["audit", "nce", "--format", "yaml"], ["audit", "nce", "--classes", "1"],
                 ["audit", "gce", "--set", "q=7"], ["audit", "my_losses:half_mae", "--set", "q=0.5"],
                 ["audit", "my_losses:half_mae", "--kind", "sideways"]):
        args = parse(argv)
        with pytest.raises(ConfigError):
            args.handler(args)
    assert main(["audit", "my_losses:half_mae", "--kind", "passive"]) == 0  # a kind it knows is taken


def test_a_short_probe_says_it_cannot_show_memorisation():
    from aplab.audit.probe import ProbeRow, render

    rows = [ProbeRow("ce", "symmetric:0.6", "FINISHED", 0.9, 0.1, "r1")]
    assert "too few for CE to memorise" in render(rows, epochs=3)
    assert "too few" not in render(rows, epochs=10)


@pytest.mark.slow
def test_the_probe_trains_the_loss_and_ce_clean_and_noisy_as_tracked_runs(tmp_path):
    from aplab.audit.probe import probe
    from aplab.tracking import MemoryTracker

    tracker = MemoryTracker()
    rows = probe("nce+rce", {"beta": 10.0}, epochs=2, workdir=str(tmp_path), tracker=tracker)
    assert [(r.loss, r.noise) for r in rows] == [("nce+rce", "none"), ("nce+rce", "symmetric:0.6"),
                                                 ("ce", "none"), ("ce", "symmetric:0.6")]
    assert all(r.run_id and 0 <= r.test_acc <= 1 for r in rows)
    assert rows[0].memorised == 0.0 and 0 <= rows[1].memorised <= 1  # nothing is flipped without noise
    assert len({r.run_id for r in rows}) == 4


def test_set_values_with_exponents_are_numbers(capsys):
    args = parse(["audit", "anl-ce", "--set", "delta=1e-6", "--set", "loss.min_prob=1e-7", "--format", "json"])
    assert args.handler(args) == 0
    assert json.loads(capsys.readouterr().out)["symmetric"] is True
