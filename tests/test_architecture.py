"""The import rules ARCHITECTURE.md draws, checked over the source (AST, nothing imported).

Every ``.py`` of ``runbook_lib``, ``runbook_sandbox`` and ``runbook_demo`` is parsed; every
import counts wherever it is written (module level, inside a function, under
``if TYPE_CHECKING:``), and so does ``importlib.import_module("...")`` with a string literal
(relative ones resolved against ``__name__``/``__package__`` or a literal ``package=``).
Relative imports are resolved, and ``from pkg import name`` is an import of ``pkg.name`` when
that is a module. The rules:

- no module of ``runbook_lib`` imports ``runbook_sandbox`` or ``runbook_demo`` (the runbook
  reaches them only through entry points);
- ``runbook_sandbox`` imports nothing of ``runbook_lib`` or ``runbook_demo`` (a test double
  that shares nothing with what it doubles for);
- ``importlib.metadata.entry_points`` is used in ``runbook_lib/plugins.py`` only;
- no import circle among the modules: each one found is named with the import lines that
  close it.

The checker is tested on a small fake package (``tmp_path``) that breaks each rule, so this
file can fail.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("runbook_lib", "runbook_sandbox", "runbook_demo")
#: (importing package, imported package): the imports that are not allowed
FORBIDDEN = (
    ("runbook_lib", "runbook_sandbox"),
    ("runbook_lib", "runbook_demo"),
    ("runbook_sandbox", "runbook_lib"),
    ("runbook_sandbox", "runbook_demo"),
)
ENTRY_POINTS_HOME = "runbook_lib.plugins"


# --- the checker ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    """One import in ``module``'s source: what it names (a dotted module), and where."""

    module: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.module} line {self.line} imports {self.target}"


@dataclass
class Source:
    """The modules of some packages: name -> (file, syntax tree, is a package ``__init__``)."""

    files: dict[str, Path]
    trees: dict[str, ast.Module]
    packages: set[str]

    @classmethod
    def read(cls, root: Path, packages: Iterable[str]) -> Source:
        files: dict[str, Path] = {}
        trees: dict[str, ast.Module] = {}
        inits: set[str] = set()
        for package in packages:
            for path in sorted((root / package).rglob("*.py")):
                parts = list(path.relative_to(root).with_suffix("").parts)
                if parts[-1] == "__init__":
                    parts.pop()
                    inits.add(".".join(parts))
                name = ".".join(parts)
                files[name] = path
                trees[name] = ast.parse(path.read_text(encoding="utf-8"), str(path))
        return cls(files, trees, inits)

    def package_of(self, module: str) -> str:
        """The package a relative import in ``module`` starts from."""
        return module if module in self.packages else module.rpartition(".")[0]

    def resolve(self, module: str, name: str | None, level: int) -> str | None:
        """The absolute dotted name of ``from <level dots><name>``; None if it leaves the tree."""
        if level == 0:
            return name
        base = self.package_of(module).split(".")
        if level - 1 > len(base) - 1:
            return None
        base = base[: len(base) - (level - 1)]
        return ".".join([*base, name] if name else base)

    def imports(self, module: str) -> Iterator[Import]:
        """Every import ``module`` makes (a relative one that leaves the tree is left out)."""
        for node in ast.walk(self.trees[module]):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(module, alias.name, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                base = self.resolve(module, node.module, node.level)
                if base is None:
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    # `from pkg import submodule` imports the submodule (and pkg)
                    yield Import(module, sub if sub in self.files else base, node.lineno)
            elif isinstance(node, ast.Call) and _is_import_module(node):
                target = self._import_module_target(module, node)
                if target is not None:
                    yield Import(module, target, node.lineno)

    def _import_module_target(self, module: str, call: ast.Call) -> str | None:
        if not call.args or not isinstance(call.args[0], ast.Constant):
            return None
        name = call.args[0].value
        if not isinstance(name, str):
            return None
        if not name.startswith("."):
            return name
        anchor: ast.expr | None = call.args[1] if len(call.args) > 1 else None
        for keyword in call.keywords:
            if keyword.arg == "package":
                anchor = keyword.value
        if isinstance(anchor, ast.Name) and anchor.id in ("__name__", "__package__"):
            # __name__ is the module itself (`.x` is then module.x), __package__ its package
            package = module if anchor.id == "__name__" else self.package_of(module)
        elif isinstance(anchor, ast.Constant) and isinstance(anchor.value, str):
            package = anchor.value
        else:
            return None
        level = len(name) - len(name.lstrip("."))
        parts = package.split(".")
        if level - 1 > len(parts) - 1:
            return None
        rest = name[level:]
        base = parts[: len(parts) - (level - 1)]
        return ".".join([*base, rest] if rest else base)

    def own(self, target: str) -> str | None:
        """The module of these packages ``target`` is (or lies in); None for anything else."""
        probe = target
        while probe:
            if probe in self.files:
                return probe
            probe = probe.rpartition(".")[0]
        return None


def _is_import_module(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr == "import_module"
    return isinstance(func, ast.Name) and func.id == "import_module"


def _top(name: str) -> str:
    return name.partition(".")[0]


def forbidden_imports(source: Source, rules: Iterable[tuple[str, str]]) -> list[str]:
    """One line per import that breaks a rule (importing package, imported package)."""
    rules = set(rules)
    return [
        f"{found} (a {_top(found.module)} module must not import {_top(found.target)})"
        for module in sorted(source.files)
        for found in source.imports(module)
        if (_top(module), _top(found.target)) in rules
    ]


def entry_point_uses(source: Source, allowed: str) -> list[str]:
    """Every use of ``importlib.metadata.entry_points`` outside ``allowed``."""
    uses: list[str] = []
    for module in sorted(source.files):
        if module == allowed:
            continue
        for node in ast.walk(source.trees[module]):
            named = (
                isinstance(node, ast.ImportFrom)
                and node.module in ("importlib.metadata", "importlib_metadata")
                and any(alias.name == "entry_points" for alias in node.names)
            ) or (isinstance(node, ast.Attribute) and node.attr == "entry_points")
            if named:
                uses.append(f"{module} line {getattr(node, 'lineno', '?')} uses entry_points")
    return uses


def layer_violations(graph: dict[str, dict[str, list[Import]]], order: list[str]) -> list[str]:
    """Every import of a module in ``order`` from one listed after it (lower may not import
    higher)."""
    rank = {module: n for n, module in enumerate(order)}
    return [
        f"{edge} (listed after it)"
        for module in order
        for target, edges in sorted(graph.get(module, {}).items())
        if rank.get(target, -1) > rank[module]
        for edge in edges
    ]


def record_order(source: Source) -> list[str]:
    """The record's modules in the order its package docstring lists them."""
    doc = ast.get_docstring(source.trees["runbook_lib.record"]) or ""
    return [f"runbook_lib.record.{name}" for name in re.findall(r"^:mod:`\.(\w+)`", doc, re.M)]


def import_graph(source: Source) -> dict[str, dict[str, list[Import]]]:
    """module -> imported module of these packages -> the imports that make that edge."""
    graph: dict[str, dict[str, list[Import]]] = {name: {} for name in source.files}
    for module in source.files:
        for found in source.imports(module):
            target = source.own(found.target)
            if target is not None and target != module:
                edges = graph[module].setdefault(target, [])
                if all(edge.line != found.line for edge in edges):
                    edges.append(found)
    return graph


def import_cycles(graph: dict[str, dict[str, list[Import]]]) -> list[str]:
    """One paragraph per import circle (a strongly connected set of modules): its members, a
    shortest circle through the first of them, and every import among the members (each one
    closes a circle: the ones to break)."""
    found: list[str] = []
    for members in _strongly_connected(graph):
        if len(members) < 2:
            continue
        inside = set(members)
        path = _shortest_cycle(graph, min(inside), inside)
        edges = [
            edge
            for module in sorted(inside)
            for target in sorted(set(graph[module]) & inside)
            for edge in graph[module][target]
        ]
        found.append(
            f"circle among {', '.join(sorted(inside))}: "
            + " -> ".join(path)
            + "".join(f"\n    {edge}" for edge in edges)
        )
    return sorted(found)


def _strongly_connected(graph: dict[str, dict[str, list[Import]]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                members: list[str] = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    members.append(top)
                    if top == node:
                        break
                out.append(members)
    return out


def _shortest_cycle(
    graph: dict[str, dict[str, list[Import]]], start: str, members: set[str]
) -> list[str]:
    """start -> ... -> start, breadth first, staying among ``members``."""
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start]
                if child not in parents:
                    parents[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start} is on no circle")  # pragma: no cover


# --- the rules, on the real packages ----------------------------------------------------------


@pytest.fixture(scope="module")
def source() -> Source:
    return Source.read(ROOT, PACKAGES)


def test_every_package_is_read(source: Source) -> None:
    for package in PACKAGES:
        assert package in source.packages
    assert "runbook_lib.record.run" in source.files
    assert "runbook_sandbox._server" in source.files


def test_the_runbook_and_the_sandbox_import_only_what_they_may(source: Source) -> None:
    assert forbidden_imports(source, FORBIDDEN) == []


def test_entry_points_are_read_in_plugins_only(source: Source) -> None:
    assert entry_point_uses(source, ENTRY_POINTS_HOME) == []
    assert entry_point_uses(source, "") != [], "plugins.py reads them: the check must see that"


def test_no_import_circle(source: Source) -> None:
    cycles = import_cycles(import_graph(source))
    assert not cycles, "import circles:\n" + "\n".join(cycles)


def test_the_record_modules_import_only_those_listed_above_them(source: Source) -> None:
    """runbook_lib/record/__init__.py lists its modules lowest first; each imports only
    modules above it in that list."""
    order = record_order(source)
    assert set(order) == {m for m in source.files if m.startswith("runbook_lib.record.")}
    assert layer_violations(import_graph(source), order) == []


def test_the_demo_is_the_glue(source: Source) -> None:
    """runbook_demo imports both packages: it is the glue (the rules above keep the other two
    from importing it)."""
    graph = import_graph(source)
    targets = {_top(t) for m, edges in graph.items() if _top(m) == "runbook_demo" for t in edges}
    assert {"runbook_lib", "runbook_sandbox"} <= targets


# --- the checker can fail ---------------------------------------------------------------------


def _fake(tmp_path: Path, files: dict[str, str]) -> Source:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return Source.read(tmp_path, sorted({rel.partition("/")[0] for rel in files}))


def test_the_checker_finds_circles_through_every_kind_of_import(tmp_path: Path) -> None:
    source = _fake(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/a.py": "from . import b\n",  # from pkg import submodule
            "app/b.py": "def f():\n    from .sub.c import x\n",  # inside a function
            "app/sub/__init__.py": "",
            "app/sub/c.py": "import importlib\nimportlib.import_module('..a', __package__)\n",
            "app/d.py": "import app.e\n",
            "app/e.py": "from app import d as _d\n",
            "app/f.py": "from .a import b\n",  # on no circle: imports into one
        },
    )
    graph = import_graph(source)
    assert set(graph["app.a"]) == {"app.b"}
    assert set(graph["app.b"]) == {"app.sub.c"}
    assert set(graph["app.sub.c"]) == {"app.a"}
    assert set(graph["app.f"]) == {"app.a"}
    cycles = import_cycles(graph)
    assert cycles == [
        "circle among app.a, app.b, app.sub.c: app.a -> app.b -> app.sub.c -> app.a\n"
        "    app.a line 1 imports app.b\n"
        "    app.b line 2 imports app.sub.c\n"
        "    app.sub.c line 2 imports app.a",
        "circle among app.d, app.e: app.d -> app.e -> app.d\n"
        "    app.d line 1 imports app.e\n"
        "    app.e line 1 imports app.d",
    ]


def test_the_checker_finds_forbidden_imports_and_entry_points(tmp_path: Path) -> None:
    source = _fake(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/plugins.py": "from importlib.metadata import entry_points\n",
            "app/x.py": "def g():\n    import double.y\n",
            "app/z.py": "import importlib.metadata as md\nmd.entry_points(group='g')\n",
            "double/__init__.py": "",
            "double/y.py": "import importlib\nimportlib.import_module('app.x')\n",
        },
    )
    assert forbidden_imports(source, [("app", "double"), ("double", "app")]) == [
        "app.x line 2 imports double.y (a app module must not import double)",
        "double.y line 2 imports app.x (a double module must not import app)",
    ]
    assert entry_point_uses(source, "app.plugins") == ["app.z line 2 uses entry_points"]
    assert import_cycles(import_graph(source)) == [
        "circle among app.x, double.y: app.x -> double.y -> app.x\n"
        "    app.x line 2 imports double.y\n"
        "    double.y line 2 imports app.x"
    ]


def test_relative_imports_resolve_from_packages_and_modules(tmp_path: Path) -> None:
    source = _fake(
        tmp_path,
        {
            "app/__init__.py": "from .sub import c\nfrom . import d\n",
            "app/d.py": "from .sub.c import thing\n",
            "app/sub/__init__.py": "from .. import d\nfrom ..sub import c\n",
            "app/sub/c.py": "from ... import outside\nfrom .. import d\n",
        },
    )
    graph = import_graph(source)
    assert set(graph["app"]) == {"app.sub.c", "app.d"}
    assert set(graph["app.d"]) == {"app.sub.c"}
    assert set(graph["app.sub"]) == {"app.d", "app.sub.c"}
    assert set(graph["app.sub.c"]) == {"app.d"}  # `from ... import` leaves the tree: ignored


def test_the_layer_check_names_an_import_from_below(tmp_path: Path) -> None:
    source = _fake(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/low.py": "def f():\n    from . import high\n",
            "app/high.py": "from .low import f\n",
        },
    )
    graph = import_graph(source)
    assert layer_violations(graph, ["app.low", "app.high"]) == [
        "app.low line 2 imports app.high (listed after it)"
    ]
    assert layer_violations(graph, ["app.high", "app.low"]) == [
        "app.high line 1 imports app.low (listed after it)"
    ]
