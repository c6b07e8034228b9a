"""The import graph of `src/colisten`: no cycle, and no import from a lower layer up to a higher one.

The graph is read statically (ast), so it sees every import, run or not:
- `import colisten.x` and `from colisten.x import y` anywhere in a file: at the top, inside
  functions, under `if TYPE_CHECKING:`; relative imports are resolved; `from colisten.x import y`
  depends on the module `colisten.x.y` when that is a module, else on `colisten.x`;
- imports by name: a module that calls `importlib.import_module` depends on every module of ours
  named by a string constant in it (`cli.COMMAND_MODULES`, the stages of `pipeline.PIPELINE`,
  `import_module("colisten.x")`).

Layers, bottom to top; a module may import its own layer and the ones below:

  0  foundation   colisten (the package itself), config, errors, io, device, rundir (the run
                  directory), artifacts (the catalogue of its files), console (the command
                  line's rich consoles), spark (the one SparkSession builder), ddp (the
                  data-parallel ranks' launcher and process group, for hgnn and twotower)
  1  inputs       data, datasets, text (text embeddings), graph, world
  2  models'      hgnn, retrieval (exact top-k and the ANN index: vectors in, ids out)
     building
     blocks
  3  twotower
  4  evaluation   evaluate, tune
  5  serving      serve, abtest (the simulated A/B test: world, evaluate and twotower below)
  6  commands     every `colisten.<package>.commands` (the typer wiring of one package's stages)
  7  top          pipeline, cli, __main__

A package's modules sit in the package's layer, except its `commands` module (layer 6) and the
modules named in `MODULE_LAYERS` (retrieval/stage.py, the index stage, is where the two-tower
model's vectors meet the index: it sits with twotower, above the rest of retrieval/).
Refined from issue 17's table to the real code: retrieval sits below the two-tower package, not
above it (the two-tower model ranks with `retrieval.exact` and serves through `retrieval.ann`;
the index stage is handed the model's vectors), and the `commands` modules are a layer of their
own (each may call any stage, and only `cli` loads them), below `pipeline` and `cli`.

`EXCEPTIONS` names the arrows still allowed against these rules, each with its reason; the test
also fails when one of them is gone, so the list cannot go stale.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "colisten"

LAYERS: list[tuple[str, ...]] = [
    ("colisten", "config", "errors", "io", "device", "rundir", "artifacts", "console", "spark", "ddp"),
    ("data", "datasets", "text", "graph", "world"),
    ("hgnn", "retrieval"),
    ("twotower",),
    ("evaluate", "tune"),
    ("serve", "abtest"),
    ("commands",),
    ("pipeline", "cli", "__main__"),
]

# module -> the package whose layer it sits in, instead of its own package's.
MODULE_LAYERS = {"colisten.retrieval.stage": "twotower"}

# (importer, imported) -> why the arrow is still there.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def module_files() -> dict[str, tuple[Path, bool]]:
    """Every module of the package: dotted name -> (file, is a package's __init__)."""
    out = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_package)
    return out


def _ours(name: str, modules: dict) -> str | None:
    """The module of ours that `name` (a module or a name inside one) belongs to."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, is_package: bool, modules: dict) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = module.split(".") if is_package else module.split(".")[:-1]
    named: list[str] = []
    strings: list[str] = []
    by_name = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            named += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(here[: len(here) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                named.append(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        elif isinstance(node, ast.Call):
            func = node.func
            if getattr(func, "attr", getattr(func, "id", None)) == "import_module":
                by_name = True
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            strings.append(node.value)
    if by_name:
        named += [s for s in strings if s in modules and "." in s]
    found = {_ours(name, modules) for name in named if name.split(".")[0] == PACKAGE}
    return {m for m in found if m is not None and m != module}


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {m: imports_of(m, path, is_package, modules) for m, (path, is_package) in modules.items()}


def layer_of(module: str) -> int:
    parts = module.split(".")
    if module in MODULE_LAYERS:
        key = MODULE_LAYERS[module]
    elif len(parts) > 2 and parts[-1] == "commands":
        key = "commands"
    else:
        key = parts[1] if len(parts) > 1 else parts[0]
    for i, names in enumerate(LAYERS):
        if key in names:
            return i
    raise AssertionError(f"{module}: not in any layer of tests/test_architecture.py; add it to LAYERS")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _without_exceptions(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    return {m: {d for d in deps if (m, d) not in EXCEPTIONS} for m, deps in graph.items()}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_reader_sees_imports_of_every_kind(graph):
    # inside a function, through importlib by a name in a table, and relative to the package
    assert "colisten.rundir" in graph["colisten.cli"]
    assert "colisten.pipeline" in graph["colisten.cli"]
    assert "colisten.hgnn.stage" in graph["colisten.pipeline"]  # pipeline.PIPELINE, by name
    assert "colisten.cli" in graph["colisten.__main__"]
    assert len(graph) > 60


def test_every_module_has_a_layer(graph):
    for module in graph:
        layer_of(module)


def test_no_import_cycle(graph):
    found = cycles(_without_exceptions(graph))
    shown = "\n".join(" <-> ".join(c) for c in found)
    assert not found, f"import cycles (modules that import each other, directly or around a loop):\n{shown}"


def test_no_import_from_a_lower_layer_up_to_a_higher_one(graph):
    upward = sorted(
        f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})"
        for m, deps in _without_exceptions(graph).items()
        for d in deps
        if layer_of(d) > layer_of(m)
    )
    assert not upward, "imports that run up the layers (see this file's docstring):\n" + "\n".join(upward)


def test_every_exception_is_still_needed(graph):
    stale = [f"{m} -> {d}" for m, d in EXCEPTIONS if d not in graph.get(m, set())]
    assert not stale, f"no longer imported, remove from EXCEPTIONS: {stale}"
