"""A user's loss by ``module:attr`` (issue 24, item 4): imported from the working directory, trained and probed
like a registered loss, recorded by its import path and source hash; the README's example runs as written."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from aplab import losses
from aplab.config import config_hash, from_flat
from aplab.config.resolve import resolve
from aplab.errors import ConfigError
from tests.helpers import aplab_command, aplab_env

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = re.compile(r"<!-- example: (\w+) -->\n```(\w+)\n(.*?)\n```", flags=re.S)


def readme_audit_line() -> str:
    """The README's ``aplab audit mypkg...`` command, without its comment."""
    line = next(line for line in (REPO / "README.md").read_text().splitlines()
                if line.startswith("aplab audit mypkg.losses:MyLoss"))
    return line.split("#")[0].strip()


def write_example(folder: Path) -> Path:
    """docs/contributing.md's ``mypkg/losses.py`` written into ``folder`` (beside an empty __init__.py)."""
    body = dict((name, text) for name, _, text in EXAMPLE.findall((REPO / "docs" / "contributing.md").read_text()))
    (folder / "mypkg").mkdir()
    (folder / "mypkg" / "__init__.py").write_text("")
    path = folder / "mypkg" / "losses.py"
    path.write_text(body["user_loss"] + "\n")
    return path


@pytest.fixture
def user_folder(tmp_path, monkeypatch):
    """A working directory holding a module of its own (a unique name: imported modules stay in sys.modules)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "userloss_24.py").write_text(textwrap.dedent('''
        import torch

        def half_mae(logits, targets):
            return 1 - logits.softmax(1).gather(1, targets[:, None]).squeeze(1)
    '''))
    path_before = list(sys.path)
    yield tmp_path
    assert sys.path == path_before  # the working directory was on sys.path only during the import
    sys.modules.pop("userloss_24", None)


def test_a_module_in_the_working_directory_builds_without_pythonpath(user_folder):
    loss = losses.build("userloss_24:half_mae", num_classes=3)
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]], dtype=torch.float64)
    targets = torch.tensor([0, 1])
    p = torch.softmax(logits, dim=1)
    expected = (1 - p[torch.arange(2), targets]).mean()
    assert torch.allclose(loss(logits, targets), expected)
    per_sample = losses.build("userloss_24:half_mae", num_classes=3, reduction="none")(logits, targets)
    assert per_sample.shape == (2,)


def test_a_module_attr_loss_takes_no_aplab_parameters(user_folder):
    with pytest.raises(ConfigError) as err:
        resolve(from_flat({"loss.name": "userloss_24:half_mae", "loss.alpha": 2.0}))
    assert str(err.value).startswith("loss.alpha=2.0") and "module:attr" in str(err.value)


def test_its_source_hash_is_recorded_and_part_of_the_identity(user_folder):
    source = user_folder / "userloss_24.py"
    cfg = resolve(from_flat({"loss.name": "userloss_24:half_mae"}))
    assert cfg.loss.source_sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    before = config_hash(cfg)
    source.write_text(source.read_text() + "\n# edited\n")
    assert config_hash(resolve(from_flat({"loss.name": "userloss_24:half_mae"}))) != before
    with pytest.raises(ConfigError, match=r"^loss\.source_sha256="):
        resolve(from_flat({"loss.source_sha256": "abc"}))
    assert resolve(from_flat({})).loss.source_sha256 is None


def test_a_missing_module_is_one_line(user_folder):
    with pytest.raises(ConfigError) as err:
        resolve(from_flat({"loss.name": "no_such_module_24:f"}))
    assert "\n" not in str(err.value) and "importable module" in str(err.value)


def test_train_with_a_module_attr_loss_records_its_path_and_hash(user_folder, small_run):
    from aplab.keys import T
    from aplab.tracking import MemoryTracker
    from aplab.train import train

    tracker = MemoryTracker()
    result = train(small_run(**{"loss.name": "userloss_24:half_mae", "optim.epochs": 1, "runtime.threads": 1}),
                   tracker=tracker, progress=False)
    run = tracker.runs[result.run_id]
    digest = hashlib.sha256((user_folder / "userloss_24.py").read_bytes()).hexdigest()
    assert run.params["loss.name"] == "userloss_24:half_mae" and run.params["loss.source_sha256"] == digest
    assert run.tags[T.LOSS] == "userloss_24:half_mae" and run.status == "FINISHED"


def run_readme_example(folder: Path, *extra: str) -> dict:
    write_example(folder)
    argv = readme_audit_line().split()[1:]
    done = subprocess.run(aplab_command(*argv, *extra, "--tracking-uri", "sqlite:///probe.db"), cwd=folder,
                          env=aplab_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_the_readme_example_runs_from_its_folder(tmp_path):
    """The README's line in the folder holding mypkg/ (no PYTHONPATH=.), one epoch per probe run."""
    found = run_readme_example(tmp_path, "--epochs", "1")
    assert found["symmetric"] is True and found["classes"] == 100
    assert found["sum_over_labels"]["max"] == pytest.approx(2 * 100 - 2)  # sum_k (2 - 2 p_k) = 2K - 2
    assert [(r["loss"], r["noise"], r["status"]) for r in found["probe"]] == [
        ("mypkg.losses:MyLoss", "none", "FINISHED"), ("mypkg.losses:MyLoss", "symmetric:0.6", "FINISHED"),
        ("ce", "none", "FINISHED"), ("ce", "symmetric:0.6", "FINISHED")]
    assert "too few for CE to memorise" in found["probe_note"]


@pytest.mark.slow
def test_the_readme_example_runs_as_written(tmp_path):
    found = run_readme_example(tmp_path)
    assert found["probe_note"] is None and len(found["probe"]) == 4
