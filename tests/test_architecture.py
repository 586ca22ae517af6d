"""docs/architecture.md's module tree names every module of ``platform/aplab``, and no module that is gone.

``python tests/test_architecture.py`` prints the tree (path, line count, docstring's first line) to paste.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "platform" / "aplab"
DOC = ROOT / "docs" / "architecture.md"


def modules() -> list[Path]:
    return sorted(p.relative_to(PACKAGE) for p in PACKAGE.rglob("*.py"))


def render() -> str:
    lines = []
    for rel in modules():
        path = PACKAGE / rel
        doc = (ast.get_docstring(ast.parse(path.read_text())) or "").strip().splitlines()
        first = doc[0] if doc else ""
        lines.append(f"{rel.as_posix():<34} {len(path.read_text().splitlines()):>4}  {first}")
    return "\n".join(lines)


def documented() -> set[str]:
    tree = DOC.read_text().split("<!-- tree", 1)[1]
    block = re.search(r"```text\n(.*?)```", tree, flags=re.S).group(1)
    return {line.split()[0] for line in block.splitlines() if line.strip()}


def test_the_tree_lists_every_module_and_nothing_else() -> None:
    assert documented() == {rel.as_posix() for rel in modules()}


if __name__ == "__main__":
    print(render())
