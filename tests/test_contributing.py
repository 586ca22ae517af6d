"""docs/contributing.md's worked examples run as written: each Python block in a fresh process (a
registration never leaks into other tests), the YAML pipeline through ``aplab pipeline show``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import aplab_command

DOC = Path(__file__).resolve().parents[1] / "docs" / "contributing.md"
EXAMPLE = re.compile(r"<!-- example: (\w+) -->\n```(\w+)\n(.*?)\n```", flags=re.S)


def examples() -> dict[str, tuple[str, str]]:
    return {name: (language, body) for name, language, body in EXAMPLE.findall(DOC.read_text())}


def test_the_page_has_an_example_for_each_thing_people_add():
    assert {"loss", "noise", "dataset", "executor", "pipeline"} <= set(examples())


@pytest.mark.parametrize("name", sorted(name for name, (language, _) in examples().items() if language == "python"))
def test_a_python_example_runs_as_written(name, tmp_path):
    _, body = examples()[name]
    done = subprocess.run([sys.executable, "-c", body], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_pipeline_example_resolves_to_the_cells_the_page_promises(tmp_path):
    language, body = examples()["pipeline"]
    assert language == "yaml"
    path = tmp_path / "apl_vs_ce_digits.yaml"
    path.write_text(body + "\n")
    done = subprocess.run(aplab_command("pipeline", "show", str(path)), cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("pipeline apl_vs_ce_digits: 12 runs in experiment apl-vs-ce")
    assert len(lines) == 1 + 12
    assert sum("nce+rce" in line for line in lines[1:]) == 4
