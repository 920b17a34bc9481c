"""The package's shape: which part may import which, no import cycles, no huge modules.

Every module under ``pdeinv/`` is parsed with :mod:`ast` (nothing is imported, so the tests take
well under a second).  Every ``import``/``from ... import`` statement counts, at module level or
inside a function (or under ``if TYPE_CHECKING:``), absolute or relative.  Imports by *string*
(``importlib.import_module``) are not edges: ``pdeinv/__init__.py`` loads its heavy sub-packages
lazily that way, and ``pdeinv.nn.base`` imports the module a checkpoint names to find the
checkpoint's class, both on purpose.

Run ``python tests/test_architecture.py`` to print the graph between the top-level units (and
``-v`` for every edge with its file and line).
"""
from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Set, Tuple

PKG = Path(__file__).resolve().parents[1] / "pdeinv"
REPO = PKG.parent

# ----------------------------------------------------------------------------------------------
# The map.  A module's *unit* is its top-level sub-package or module under pdeinv/ (``physics``,
# ``nn``, ..., ``checks``, ``_validation``); the root ``pdeinv/__init__.py`` is the unit
# ``pdeinv``.  A unit may import itself and what its row lists, nothing else of pdeinv.  An entry
# ``unit.module`` (``data.io``) allows that module only, not its package's ``__init__`` or
# siblings.  Read down the table: physics at the bottom, cli at the top.
# ----------------------------------------------------------------------------------------------
_LEAVES = {"checks", "metrics", "plot", "_validation", "_deepxde"}
_LIBRARY = {"physics", "nn", "priors", "surrogates", "solvers", "tasks", "data"} | _LEAVES

ALLOWED: Dict[str, Set[str]] = {
    # the floor: imported by physics, so it imports nothing of pdeinv
    "_validation": set(),
    # small top-level helpers: nothing above physics
    "_deepxde": {"physics", "_validation"},
    "checks": {"physics", "_validation"},
    "metrics": {"physics", "_validation"},
    "plot": {"physics", "_validation"},
    # simulators, grids, observations, noise, ForwardModel
    "physics": {"_validation"},
    # Network base, training loop, U-Net layers, denoiser nets: shared by surrogates and priors
    "nn": {"physics", "_validation", "_deepxde", "metrics"},
    # priors never import solvers, surrogates, tasks, benchmark, cli
    "priors": {"physics", "nn", "data.io", "metrics", "_validation"},
    # surrogates never import priors, solvers, tasks, benchmark, cli
    "surrogates": {"physics", "nn", "data", "checks", "metrics", "plot", "_validation", "_deepxde"},
    # tasks never import solvers, surrogates, benchmark, cli, data
    "tasks": {"physics", "nn", "priors", "checks", "metrics", "plot", "_validation", "_deepxde"},
    # data never imports solvers, benchmark, cli
    "data": {"physics", "nn", "priors", "surrogates", "tasks", "checks", "metrics", "plot", "_validation",
             "_deepxde"},
    # solvers never import benchmark, cli
    "solvers": _LIBRARY - {"solvers"},
    # the harness uses the whole library, never the command line
    "benchmark": set(_LIBRARY),
    # the command line may use anything; only it imports the benchmark
    "cli": _LIBRARY | {"benchmark"},
    # the root facade (pdeinv/__init__.py): the library; cli and benchmark only by string, lazily
    "pdeinv": set(_LIBRARY),
}

#: what a module may import from the root package itself (``from pdeinv import __version__``):
#: the root is initialised before any submodule, so this runs nothing and depends on nothing.
#: Anything else is a re-export: import it from the module that defines it.
ROOT_NAMES = {"__version__"}

#: Known breaks of the map in files this change could not touch, as
#: ``(importer module, imported module): why``.  Remove an entry once its import is gone (a stale
#: entry fails ``test_allow_lists_are_current``).
KNOWN_VIOLATIONS: Dict[Tuple[str, str], str] = {}

#: Known import cycles in files this change could not touch, as edges
#: ``(importer module, imported module): why``, dropped from the graph before looking for cycles.
KNOWN_CYCLE_EDGES: Dict[Tuple[str, str], str] = {}

#: Module size limit, and the files that may exceed it while someone splits them.
MAX_LINES = 500
LONG_MODULES_ALLOWED: set = set()   # a file named here may exceed MAX_LINES while it is being split


# ----------------------------------------------------------------------------------------------
# the graph
# ----------------------------------------------------------------------------------------------


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES: Dict[str, Path] = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def unit_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "pdeinv"


def rel(name: str) -> str:
    return str(MODULES[name].relative_to(REPO))


@dataclass(frozen=True)
class Import:
    importer: str
    target: str          # a module in MODULES (a package stands for its __init__), or an unknown name
    line: int
    in_function: bool
    names: Tuple[str, ...] = ()   # names taken from ``target`` when it is not a submodule

    def where(self) -> str:
        return f"{rel(self.importer)}:{self.line}"

    def describe(self) -> str:
        kind = "function-level" if self.in_function else "module-level"
        what = f"from {self.target} import {', '.join(self.names)}" if self.names else f"import {self.target}"
        return f"{self.where()}: {what} ({kind})"


def _ours(name: str) -> bool:
    return name == "pdeinv" or name.startswith("pdeinv.")


def _imports_in(name: str) -> List[Import]:
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
    found: List[Import] = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if _ours(alias.name):
                        found.append(Import(name, alias.name, child.lineno, in_function))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    package = name.split(".") if is_package(name) else name.split(".")[:-1]
                    package = package[:len(package) - (child.level - 1)]
                    base = ".".join(package + ([child.module] if child.module else []))
                else:
                    base = child.module or ""
                if _ours(base):
                    modules = [f"{base}.{a.name}" for a in child.names if f"{base}.{a.name}" in MODULES]
                    others = tuple(a.name for a in child.names if f"{base}.{a.name}" not in MODULES)
                    found.extend(Import(name, m, child.lineno, in_function) for m in modules)
                    if others:
                        found.append(Import(name, base, child.lineno, in_function, others))
            visit(child, inner)

    visit(tree, False)
    return found


IMPORTS: List[Import] = [imp for name in MODULES for imp in _imports_in(name)]


def _allows(entries: Set[str], target: str) -> bool:
    return any(target == f"pdeinv.{e}" or target.startswith(f"pdeinv.{e}.") for e in entries)


def _rule(unit: str) -> str:
    allowed = sorted(ALLOWED[unit])
    return f"{unit} may import only {', '.join(allowed) if allowed else 'nothing of pdeinv'} (and itself)"


def layering_violations() -> Dict[Tuple[str, str], List[str]]:
    """``(importer, target) -> [messages]`` for every import that breaks the map."""
    out: Dict[Tuple[str, str], List[str]] = defaultdict(list)
    for imp in IMPORTS:
        unit, target_unit = unit_of(imp.importer), unit_of(imp.target)
        if imp.target not in MODULES:
            msg = "imports a module that does not exist"
        elif unit not in ALLOWED:
            msg = f"unit {unit!r} is not in ALLOWED: give it a row in tests/test_architecture.py"
        elif imp.target == "pdeinv":
            if imp.importer == "pdeinv" or set(imp.names) <= ROOT_NAMES:
                continue
            msg = (f"imports {sorted(set(imp.names) - ROOT_NAMES)} from the root facade; only "
                   f"{sorted(ROOT_NAMES)} may come from there, import the rest from its defining module")
        elif target_unit == unit or _allows(ALLOWED[unit], imp.target):
            continue
        else:
            msg = f"rule: {_rule(unit)}"
        out[(imp.importer, imp.target)].append(f"{imp.describe()} -- {msg}")
    return out


def _ancestors(name: str) -> Set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def module_graph() -> Dict[str, Dict[str, str]]:
    """``importer -> {imported module: why}``, the edges the cycle test looks at.

    An import of ``pdeinv.a.b`` is an edge to ``pdeinv.a.b`` and to the packages Python runs
    first to get there (``pdeinv.a``'s ``__init__``), except those already above the importer
    (its own packages).  Edges into the root ``pdeinv`` are left out: it is initialised before
    every module and only ``__version__`` may be taken from it.
    """
    graph: Dict[str, Dict[str, str]] = {name: {} for name in MODULES}
    for imp in IMPORTS:
        if imp.target not in MODULES or (imp.importer, imp.target) in KNOWN_CYCLE_EDGES:
            continue
        targets = {imp.target: imp.describe()}
        for pkg in _ancestors(imp.target) - _ancestors(imp.importer) - {imp.importer}:
            targets.setdefault(pkg, f"{imp.describe()}, which first runs {pkg}/__init__.py")
        for t, why in targets.items():
            if t != "pdeinv" and t != imp.importer:
                graph[imp.importer].setdefault(t, why)
    return graph


def strongly_connected(graph: Dict[str, Dict[str, str]]) -> List[List[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    comps: List[List[str]] = []

    def visit(v):
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
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return comps


def _cycle_through(graph, comp: List[str]) -> List[str]:
    """One shortest cycle inside a component, as the import lines that make it."""
    members, start = set(comp), comp[0]
    prev: Dict[str, str] = {}
    frontier, seen = [start], {start}
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    path.reverse()
                    path.append(start)
                    return [graph[a][b] for a, b in zip(path, path[1:])]
                if w in members and w not in seen:
                    seen.add(w)
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return []  # pragma: no cover - a component always has a cycle through each member


# ----------------------------------------------------------------------------------------------
# the tests
# ----------------------------------------------------------------------------------------------


def test_every_module_is_parsed():
    assert "pdeinv.physics" in MODULES and len(MODULES) > 20
    assert any(imp.in_function for imp in IMPORTS), "function-level imports are not being found"
    assert all(unit_of(name) in ALLOWED for name in MODULES), \
        f"units without a row in ALLOWED: {sorted({unit_of(n) for n in MODULES} - set(ALLOWED))}"


def test_import_direction():
    """No module imports a unit its row of :data:`ALLOWED` does not list."""
    problems = [msg for key, msgs in sorted(layering_violations().items()) if key not in KNOWN_VIOLATIONS
                for msg in msgs]
    assert not problems, "imports against the package map:\n  " + "\n  ".join(problems)


def test_no_import_cycles():
    """No cycle between modules, counting function-level imports too.

    The rule that keeps this meaningful: an import is an edge to the module it names (a package
    stands for its ``__init__``) *and* to every package ``__init__`` Python runs first to reach it,
    except packages enclosing the importer, which are already initialised.  So a package
    ``__init__`` re-exporting its own submodules is fine (those edges only point down), but a
    submodule importing its own package back -- typically a registry dict kept in the
    ``__init__`` and read lazily from a submodule the ``__init__`` imports -- is a cycle: move the
    registry to its own small module that both import.  A function-level import that closes a
    loop is reported too: it works only because of import order, and it tangles two modules that
    should be layered.  Edges into the root ``pdeinv`` are ignored (see :func:`module_graph`).
    """
    graph = module_graph()
    cycles = ["\n    ".join(["cycle " + " <-> ".join(comp) + ":"] + _cycle_through(graph, comp))
              for comp in strongly_connected(graph)]
    assert not cycles, "import cycles:\n  " + "\n  ".join(cycles)


def test_allow_lists_are_current():
    """Every allow-list entry still matches something; remove the ones that do not."""
    edges = {(imp.importer, imp.target) for imp in IMPORTS}
    stale = [f"KNOWN_VIOLATIONS {k}" for k in KNOWN_VIOLATIONS if k not in layering_violations()]
    stale += [f"KNOWN_CYCLE_EDGES {k}" for k in KNOWN_CYCLE_EDGES if k not in edges]
    # a long module already split away (file gone) is not flagged, so the split can land without
    # touching this file; delete its entry afterwards all the same
    stale += [f"LONG_MODULES_ALLOWED {p!r}" for p in LONG_MODULES_ALLOWED
              if (REPO / p).exists() and _n_lines(REPO / p) <= MAX_LINES]
    assert not stale, "allow-list entries that no longer apply (delete them):\n  " + "\n  ".join(stale)


def _n_lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_modules_are_small():
    long = [f"{rel(n)}: {_n_lines(p)} lines" for n, p in MODULES.items()
            if _n_lines(p) > MAX_LINES and rel(n) not in LONG_MODULES_ALLOWED]
    assert not long, f"modules over {MAX_LINES} lines (split them):\n  " + "\n  ".join(long)


def test_the_checker_sees_violations():
    """The rules bite: a few imports that must be refused, and some that must pass."""
    refused = [("pdeinv.physics.grid", "pdeinv.nn.base"), ("pdeinv.nn.base", "pdeinv.surrogates"),
               ("pdeinv.priors.gaussian", "pdeinv.solvers.base"), ("pdeinv.priors.gaussian", "pdeinv.data"),
               ("pdeinv.priors.gaussian", "pdeinv.data.generate"), ("pdeinv.surrogates.fno", "pdeinv.priors"),
               ("pdeinv.tasks.base", "pdeinv.data.io"), ("pdeinv.solvers.map", "pdeinv.benchmark.runner"),
               ("pdeinv.data.io", "pdeinv.solvers"), ("pdeinv.benchmark.runner", "pdeinv.cli.app"),
               ("pdeinv.metrics", "pdeinv.nn.base"), ("pdeinv._validation", "pdeinv.physics")]
    passed = [("pdeinv.priors.diffusion.training", "pdeinv.data.io"), ("pdeinv.nn.base", "pdeinv.physics.grid"),
              ("pdeinv.cli.benchmark", "pdeinv.benchmark.runner"), ("pdeinv.solvers.amortized", "pdeinv.surrogates")]
    for importer, target in refused:
        assert not _allows(ALLOWED[unit_of(importer)], target), (importer, target)
    for importer, target in passed:
        assert _allows(ALLOWED[unit_of(importer)], target), (importer, target)
    assert strongly_connected({"a": {"b": ""}, "b": {"a": ""}, "c": {}}) == [["a", "b"]]


# ----------------------------------------------------------------------------------------------


def _print_graph(verbose: bool) -> None:
    units: Dict[str, Dict[str, List[Import]]] = defaultdict(lambda: defaultdict(list))
    for imp in IMPORTS:
        if unit_of(imp.target) != unit_of(imp.importer):
            units[unit_of(imp.importer)][unit_of(imp.target)].append(imp)
    for unit in sorted(units):
        print(f"{unit} -> {', '.join(sorted(units[unit]))}")
        if verbose:
            for target in sorted(units[unit]):
                for imp in units[unit][target]:
                    print(f"    {imp.describe()}")
    for key, msgs in sorted(layering_violations().items()):
        print(("allowed: " if key in KNOWN_VIOLATIONS else "VIOLATION: ") + "; ".join(msgs))
    graph = module_graph()
    for comp in strongly_connected(graph):
        print("CYCLE:", " <-> ".join(comp), *_cycle_through(graph, comp), sep="\n    ")


if __name__ == "__main__":
    _print_graph("-v" in sys.argv)
