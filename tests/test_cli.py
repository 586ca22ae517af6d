"""The ``aplab`` command's shape: a module per command, help listing the registries, no torch to parse flags."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from aplab.cli.command import COMMANDS, build_parser, main

CLI = Path(__file__).resolve().parents[1] / "platform" / "aplab" / "cli"


def test_every_command_is_a_module_of_the_cli_package() -> None:
    assert {p.stem for p in CLI.glob("*.py")} >= set(COMMANDS)
    parser = build_parser()
    for name in COMMANDS:
        assert parser.parse_args([name, *_required(name)]).command == name


def _required(name: str) -> list[str]:
    """The fewest arguments each command parses with."""
    return {"study": ["--space", "s.yaml"], "pipeline": ["show", "p.yaml"], "audit": ["ce"],
            "noise": ["digits", "none"]}.get(name, [])


def test_train_help_lists_every_registered_dataset_model_and_loss() -> None:
    from aplab.data import available_datasets
    from aplab.losses import available
    from aplab.models import available_models

    text = " ".join(subprocess.run([sys.executable, "-m", "aplab", "train", "--help"], capture_output=True,
                                   text=True, check=True).stdout.split())
    for name in [*available_datasets(), *available_models(), *available()]:
        assert f" {name}," in text or f" {name} " in text, name


@pytest.mark.parametrize("argv,processes", [
    (["--nproc-per-node", "2"], 2),
    (["--nproc-per-node", "2", "--set", "runtime.nproc_per_node=1"], 1),  # --set comes last and wins, as documented
    (["--set", "runtime.nproc_per_node=3"], 3),
])
def test_flags_then_set_overrides_in_that_order(argv, processes) -> None:
    from aplab.cli.flags import config_from_args

    assert config_from_args(build_parser().parse_args(["train", *argv])).runtime.nproc_per_node == processes


def test_parsing_flags_imports_no_torch() -> None:
    code = ("import sys; from aplab.cli.command import build_parser; "
            "build_parser().parse_args(['train', '--loss', 'nce+rce', '--dataset', 'mnist']); "
            "print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_no_library_function_takes_an_argparse_namespace() -> None:
    package = CLI.parent
    offenders = [str(path.relative_to(package)) for path in package.rglob("*.py")
                 if CLI not in path.parents and "argparse" in {alias.name for node in ast.walk(ast.parse(path.read_text()))
                                                               if isinstance(node, ast.Import) for alias in node.names}]
    assert offenders == []


def test_a_closed_pipe_is_no_traceback() -> None:
    done = subprocess.run(f"{sys.executable} -m aplab losses | head -1", shell=True, capture_output=True, text=True)
    assert done.stdout.startswith("| name |")
    assert "Traceback" not in done.stderr


def test_a_yaml_file_that_is_not_utf8_is_one_line_for_each_command(tmp_path, capsys, monkeypatch) -> None:
    """A config, pipeline or search space saved in Latin-1 (a comment with "é") names the file and the byte."""
    from aplab.cli.command import main

    monkeypatch.chdir(tmp_path)
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("# caf\u00e9\noptim:\n  epochs: 1\n".encode("latin-1"))
    for argv in (["train", "--config", str(latin1), "--tracking-uri", "memory://"],
                 ["pipeline", "run", str(latin1), "--tracking-uri", "memory://", "--no-progress"],
                 ["study", "--space", str(latin1), "--dataset", "digits", "--loss", "nce+rce",
                  "--tracking-uri", "memory://"]):
        with pytest.raises(SystemExit) as exited:
            code = main(argv)
            raise SystemExit(code)
        err = capsys.readouterr().err.strip().splitlines()
        assert exited.value.code == 2, argv
        assert err == [f"aplab: error: config file='{latin1}' is not allowed: UTF-8 text (byte 5 is not)"], argv
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latin1.yaml"]  # nothing left behind


@pytest.mark.parametrize("command", [
    ["study", "--space", "search_spaces/apl_paper_grid.yaml", "--dataset", "cifar10", "--loss", "nce+rce",
     "--set", "data.download=false"],
])
def test_a_study_whose_dataset_is_missing_leaves_no_store_behind(command, tmp_path, capsys, monkeypatch):
    """Issue 22: a study whose dataset is missing created mlflow.db, its optuna journal and a parent run."""

    root = Path(__file__).resolve().parents[1]
    command = [str(root / part) if part.startswith("search_spaces/") else part for part in command]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APLAB_DATA", str(tmp_path / "no-data"))
    assert main([*command, "--tracking-uri", f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"]
                if command[0] == "report" else command) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("aplab: error:") and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == []
