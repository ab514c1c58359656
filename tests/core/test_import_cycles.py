"""The project's modules form a layered graph: no import cycles, and the core stands below the public `zoo`.

Every module of the project (`zoo_core`, `zoo`, each `plugins/*/zoo_*` and each `examples/*/` package) is parsed
with `ast` (nothing is imported, so the test is fast and sees modules whose dependencies are missing) and every
import becomes an edge: absolute and relative, at module level, inside functions and under `TYPE_CHECKING`.

Function-level and `TYPE_CHECKING` imports count. A lazy import that dodges a circular import at run time leaves
the design circular: each of the two modules still needs the other to be understood, tested or moved, and the
cycle comes back the day someone hoists the import. The fix for a cycle is to move the shared thing to the module
that both can stand on, never to hide the import in a function.

An edge `a -> b` goes to the most specific module an import names (`from zoo_core import hub` is an edge to
`zoo_core.hub`; `from zoo_core import load` is an edge to `zoo_core/__init__`, which defines or re-exports it).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_SKIP_DIRS = {"build", ".venv", "__pycache__", ".git"}


def _package_roots() -> list[Path]:
    """Directories whose children are top-level import packages of the project."""
    roots = [ROOT]
    roots += sorted(p for p in (ROOT / "plugins").iterdir() if p.is_dir())
    roots += sorted(p for p in (ROOT / "examples").iterdir() if p.is_dir())
    return roots


def _top_packages() -> dict[str, Path]:
    """Map each project top-level package name (`zoo_core`, `zoo_ddpm`, ...) to its directory."""
    packages: dict[str, Path] = {}
    for root in _package_roots():
        for child in sorted(root.iterdir()):
            if child.is_dir() and child.name not in _SKIP_DIRS and (child / "__init__.py").is_file():
                if root == ROOT and child.name not in {"zoo", "zoo_core"}:
                    continue
                packages[child.name] = child
    return packages


def project_modules() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the project."""
    modules: dict[str, Path] = {}
    for top, directory in _top_packages().items():
        for path in sorted(directory.rglob("*.py")):
            rel = path.relative_to(directory)
            if any(part in _SKIP_DIRS for part in rel.parts):
                continue
            parts = [top, *rel.with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def _imported_modules(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules this module imports: the most specific module each import statement names.

    `from pkg import sub` is an edge to `pkg.sub` when that is a module, else to `pkg` (a name defined in, or
    re-exported by, `pkg/__init__`: a real dependency on the package). The implicit execution of ancestor
    `__init__` files is not an edge; a package re-exporting its submodules is then not a cycle by itself.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"

    def longest_module(dotted: str) -> str | None:
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):
            if ".".join(parts[:i]) in modules:
                return ".".join(parts[:i])
        return None

    found: set[str | None] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(longest_module(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _resolve_relative(module, is_package, node.level, node.module)
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else longest_module(base))
    return {m for m in found if m is not None and m != module}


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in its source)."""
    return {name: _imported_modules(name, path, modules) for name, path in modules.items()}


def strongly_connected_components(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (the graph is small but recursion depth is not worth a thought)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _cycles() -> list[set[str]]:
    graph = import_graph(project_modules())
    return [c for c in strongly_connected_components(graph) if len(c) > 1]


def _describe(component: set[str], graph: dict[str, set[str]]) -> str:
    edges = sorted(f"{a} -> {b}" for a in component for b in graph[a] if b in component)
    return "{" + ", ".join(sorted(component)) + "}: " + "; ".join(edges)


def test_finds_every_project_package() -> None:
    tops = set(_top_packages())
    assert {"zoo", "zoo_core", "zoo_ddpm", "zoo_latent", "zoo_ddgan", "zoo_stylegan"} <= tops
    assert "zoo_plugin_example" in tops
    assert not any("build" in p.parts for p in project_modules().values())


def test_graph_sees_function_level_and_type_checking_imports() -> None:
    """On the real tree: `zoo_core.model` imports `registry` inside a function and `cards` under TYPE_CHECKING."""
    graph = import_graph(project_modules())
    assert {"zoo_core.registry", "zoo_core.cards", "zoo_core.weights"} <= graph["zoo_core.model"]


def test_graph_sees_relative_lazy_cycle(tmp_path: Path) -> None:
    """A relative import hidden in a function still closes a cycle."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from . import b\n    return b\n")
    (pkg / "b.py").write_text("from pkg.a import f\n")
    modules = {"pkg": pkg / "__init__.py", "pkg.a": pkg / "a.py", "pkg.b": pkg / "b.py"}
    graph = import_graph(modules)
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg.a"}
    assert [c for c in strongly_connected_components(graph) if len(c) > 1] == [{"pkg.a", "pkg.b"}]


def test_no_import_cycles() -> None:
    graph = import_graph(project_modules())
    found = [frozenset(c) for c in _cycles()]
    assert not found, (
        "import cycles among the project's modules (move the shared thing down a layer):\n"
        + ("\n".join(_describe(set(c), graph) for c in found))
    )


def test_core_does_not_import_public_zoo() -> None:
    """`zoo` is the thin public face over `zoo_core`; the core importing it would invert the layers."""
    graph = import_graph(project_modules())
    offenders = sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        if name.startswith("zoo_core")
        for target in targets
        if target == "zoo" or target.startswith("zoo.")
    )
    assert not offenders, "zoo_core imports the public zoo package: " + ", ".join(offenders)
