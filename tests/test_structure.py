"""The package structure: the folders install as ``buque.geo``, ``buque.layers``, ``buque.api``
and ``buque.cli`` (every package folder is listed in pyproject.toml, and no module imports a
bare ``geo``/``api``/``layers``); ``geo`` and ``layers`` never import ``api`` or ``cli``; no
module imports itself through others (imports inside functions count: a cycle there is still a
cycle)."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from synth_world import REPO

PACKAGES = ("geo", "layers", "api", "cli")


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(["buque", *(parts[:-1] if parts[-1] == "__init__" else parts)])


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its body."""
    files = [p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")]
    modules = {_module(p) for p in files}
    graph: dict[str, set[str]] = {}
    for p in files:
        me = _module(p)
        deps: set[str] = set()
        for node in ast.walk(ast.parse(p.read_text("utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module
                     and node.level == 0 else [])
            for n in names:
                while n and n not in modules:  # "geo.gaps.assess" -> "geo.gaps"
                    n = n.rpartition(".")[0]
                if n and n != me:
                    deps.add(n)
        graph[me] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_analysis_never_imports_the_web_layer():
    graph = import_graph()
    assert len(graph) > 50 and sum(map(len, graph.values())) > 100  # the graph is found
    bad = {m: sorted(d for d in deps if d.split(".")[1] in ("api", "cli"))
           for m, deps in graph.items() if m.split(".")[1] in ("geo", "layers")}
    assert {m: d for m, d in bad.items() if d} == {}


def test_every_package_folder_is_installed_under_buque():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["tool"]
                 ["setuptools"]["packages"])
    folders = {_module(p) for pkg in PACKAGES for p in (REPO / pkg).rglob("__init__.py")}
    assert folders == listed


def test_no_module_imports_a_bare_top_level_name():
    files = [p for top in (*PACKAGES, "tests", "bench") for p in (REPO / top).rglob("*.py")]
    bare = []
    for p in files:
        for node in ast.walk(ast.parse(p.read_text("utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module
                     and node.level == 0 else [])
            bare += [f"{p.relative_to(REPO)}:{node.lineno} {n}" for n in names
                     if n.split(".")[0] in PACKAGES]
    assert bare == []



VOCABULARY = {("met", "missing", "unknown"): "STATUSES", ("admin", "natural"): "LEVELS"}


def spelled_out_vocabulary(files: list[Path]) -> list[str]:
    """Places that spell out the statuses or levels as a literal list or tuple instead of
    importing them from layers.schema (where they are defined, once)."""
    found = []
    for p in files:
        for node in ast.walk(ast.parse(p.read_text("utf-8"))):
            if isinstance(node, ast.Tuple | ast.List) and all(
                    isinstance(e, ast.Constant) for e in node.elts):
                name = VOCABULARY.get(tuple(e.value for e in node.elts))
                if name:
                    found.append(f"{p.name}:{node.lineno} {name}")
    return found


def test_statuses_and_levels_are_defined_once(tmp_path):
    files = [p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")
             if p != REPO / "layers" / "schema.py"]
    assert spelled_out_vocabulary(files) == []
    probe = tmp_path / "probe.py"  # the check can fail
    probe.write_text('S = ["met", "missing", "unknown"]\nL = ("admin", "natural")\n', "utf-8")
    assert spelled_out_vocabulary([probe]) == ["probe.py:1 STATUSES", "probe.py:2 LEVELS"]
