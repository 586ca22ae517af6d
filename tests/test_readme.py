"""The README's promises: its first screen shows the two commands, and CI runs the test command."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def first_screen_commands() -> list[str]:
    first_screen = "\n".join((REPO / "README.md").read_text().splitlines()[:30])
    return re.findall(r"```bash\n(.+?)\n```", first_screen, flags=re.S)


def test_first_screen_shows_the_quickstart_the_cpu_install_and_the_test_command():
    quickstart, cpu, tests = first_screen_commands()[:3]
    assert "pip install -e ." in quickstart and quickstart.endswith("aplab quickstart")
    assert "--index-url https://download.pytorch.org/whl/cpu" in cpu and cpu.endswith("aplab quickstart")
    assert "--index-url" not in quickstart  # GPU users keep the default wheels
    assert "pip install" in tests and "pytest" in tests
    first_screen = "\n".join((REPO / "README.md").read_text().splitlines()[:30])
    assert "source .venv/bin/activate" in first_screen
    assert re.search(r"about \d+ minutes", first_screen)


def test_ci_runs_the_readme_test_command_verbatim():
    tests = first_screen_commands()[2]
    ci = (REPO / ".ci" / "run").read_text()
    assert tests in ci.splitlines()


def test_extras_are_quoted_for_zsh():
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        unquoted = re.findall(r"pip install[^`\n]*?\s-e \.\[", page.read_text())
        assert not unquoted, f"{page.name}: {unquoted} (zsh expands an unquoted .[extra])"


def test_the_readme_quickstart_command_installs_the_console_script():
    text = (REPO / "pyproject.toml").read_text()
    assert 'aplab = "aplab.cli:main"' in text
