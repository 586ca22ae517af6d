"""The README's promises: its first screen shows the two commands, and CI runs the test command."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def first_screen_commands() -> list[str]:
    first_screen = "\n".join((REPO / "README.md").read_text().splitlines()[:30])
    return re.findall(r"```bash\n(.+?)\n```", first_screen, flags=re.S)


def test_first_screen_shows_the_quickstart_and_the_test_command():
    quickstart, tests = first_screen_commands()[:2]
    assert "pip install" in quickstart and quickstart.endswith("aplab quickstart")
    assert "pip install" in tests and "pytest" in tests


def test_ci_runs_the_readme_test_command_verbatim():
    tests = first_screen_commands()[1]
    ci = (REPO / ".ci" / "run").read_text()
    assert tests in ci.splitlines()


def test_the_readme_quickstart_command_installs_the_console_script():
    text = (REPO / "pyproject.toml").read_text()
    assert 'aplab = "aplab.cli:main"' in text
