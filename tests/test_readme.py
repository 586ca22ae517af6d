"""The README's promises: its first screen shows the install and test commands (CPU-only too), CI runs the test
command, every `aplab` command it shows parses, and those that run offline run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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


def readme_aplab_commands() -> list[str]:
    """Every ``aplab ...`` command of the README's bash blocks, continuation lines joined, comments dropped."""
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.+?)\n```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("aplab "):
                commands.append(" ".join(line.split()))
    return commands


#: README commands that run offline in seconds: a test runs each as written (the others train for hours, need a
#: dataset, a GPU, Slurm or a server; the mypkg audit line runs in tests/test_custom_loss.py).
RUN_AS_WRITTEN = ("aplab audit nce+rce", "aplab noise digits symmetric:0.6 --out noise/",
                  "aplab pipeline status pipelines/paper_table2_cifar10.yaml")


def test_every_readme_command_is_one_the_parser_accepts():
    from aplab.cli.command import build_parser

    commands = readme_aplab_commands()
    assert len(commands) >= 12
    for command in commands:
        argv = command.replace("[", "").replace("]", "").split()[1:]  # [--refit]: an optional flag
        try:
            build_parser().parse_args(argv)
        except SystemExit as err:
            raise AssertionError(f"the README's `{command}` is refused by the parser") from err


@pytest.mark.slow
def test_the_readme_commands_that_run_offline_run_as_written(tmp_path):
    import subprocess

    from tests.helpers import aplab_command, aplab_env

    assert set(RUN_AS_WRITTEN) <= set(readme_aplab_commands())
    (tmp_path / "pipelines").symlink_to(REPO / "pipelines")
    for command in RUN_AS_WRITTEN:
        done = subprocess.run(aplab_command(*command.split()[1:]), cwd=tmp_path, env=aplab_env(), capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, f"{command}: {done.stderr[-2000:]}"
    assert (tmp_path / "noise").is_dir() and any((tmp_path / "noise").iterdir())
