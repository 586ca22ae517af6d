"""The import graph of ``platform/aplab`` runs one way: no cycle, and no module imports a higher layer.

Every import counts, a function's lazy one too: a lazy import is a dependency that only hides. The layer
order is written once, here; docs/architecture.md explains it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "platform" / "aplab"

#: Lowest first. A module belongs to the layer of its longest listed prefix ("aplab" is the package's own
#: ``__init__`` alone); it may import its own layer and the layers below.
LAYERS: tuple[tuple[str, ...], ...] = (
    # foundations: no aplab dependency beyond each other
    ("aplab", "aplab.errors", "aplab.registry", "aplab.atomic", "aplab.locks", "aplab.processes",
     "aplab.cache", "aplab.keys", "aplab.log", "aplab.placement", "aplab.version", "aplab.distributed",
     "aplab.status", "aplab.plotting", "aplab.config", "aplab.writable"),
    # the domain: pure losses, noise, datasets, models, LR schedules
    ("aplab.losses", "aplab.noise", "aplab.data", "aplab.models", "aplab.schedules"),
    # a config checked against the domain; the tracking store
    ("aplab.config.resolve", "aplab.tracking"),
    # one run
    ("aplab.train",),
    # worker processes (GPU slots, Slurm's plumbing), and what reads or audits runs
    ("aplab.workers", "aplab.report", "aplab.audit"),
    # many runs: pipelines and studies
    ("aplab.pipeline", "aplab.study"),
    # where they execute: the executor protocol, registry and executors (local, slurm)
    ("aplab.executors",),
    # the command line
    ("aplab.cli", "aplab.__main__"),
)


def module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def import_graph() -> dict[str, set[str]]:
    """Each aplab module and the aplab modules it imports (``from pkg import submodule`` names the submodule)."""
    files = {module_name(p)[0]: p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = module_name(path)[1]
        here = name if is_package else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.split(".")[0] == "aplab")
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                if module.split(".")[0] != "aplab":
                    continue
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    targets.add(sub if sub in files else module)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def layer_of(module: str) -> int:
    best, layer = "", None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module == prefix or (prefix != "aplab" and module.startswith(prefix + "."))
            if inside and len(prefix) >= len(best):
                best, layer = prefix, index
    assert layer is not None, f"{module} is in no layer: add it to LAYERS"
    return layer


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_cycle():
    assert cycles(import_graph()) == []


def test_no_module_imports_a_higher_layer():
    upward = sorted(f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
                    for module, targets in import_graph().items() for target in targets
                    if layer_of(target) > layer_of(module))
    assert upward == []


def test_every_module_has_a_layer():
    for module in import_graph():
        layer_of(module)


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"a"}, "c": set()}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
])
def test_the_cycle_finder_finds_cycles(graph, expected):
    assert cycles(graph) == expected


def test_a_lower_layer_importing_a_higher_one_is_seen():
    assert layer_of("aplab.losses.zoo") < layer_of("aplab.train.run") < layer_of("aplab.cli.train")
    assert layer_of("aplab.config.resolve") > layer_of("aplab.config.schema")


def test_the_presets_sit_with_the_dataset_sources_below_the_resolver():
    assert layer_of("aplab.config.identity") == layer_of("aplab.config.presets") == 0  # pure data and the hash
    assert layer_of("aplab.config.presets") < layer_of("aplab.data.sources.cifar") == layer_of("aplab.data.presets")
    assert layer_of("aplab.data.presets") < layer_of("aplab.config.resolve")
