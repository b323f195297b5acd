"""Imports run one way through the layers, and no two modules import each other.

Every module of ``modelshield`` is parsed with ``ast`` (nothing is imported, so this runs in well under a
second); every ``import`` counts, wherever it sits: module level, inside a function (lazy imports on the
CLI path), or under ``if TYPE_CHECKING:`` (a type-only import still ties the layers together).

The layers, as CONTRIBUTING.md draws them::

    serve, cli, demo                                    (the shells: imported by nothing in the library)
      integrity < audit, supplychain < registry         (beside the stack, on core and on what they consume)
      report
      assess
      defenses
      attacks
    core

``LAYERS`` below is the rule, one row per package: the packages it may import besides itself. Packages beside
the stack (integrity, supplychain, registry, audit, and the future privacy, monitor, incident, threat, govern)
may import core and the lower stack layers they consume (attacks, defenses), never assess or report (those
render findings: hand them findings instead), and each other only along the rows below, which keep them acyclic.

Import cycles between modules fail too: imports at module level and inside functions count (an import moved
into a function to break a loop hides the cycle, it does not remove it); type-only imports do not run and are
left out of that check.

``ALLOWED_UPWARD`` and ``ALLOWED_CYCLES`` list what still breaks the rule, each with who fixes it. They only
shrink: an entry that no longer matches anything fails the test, so remove it with the fix.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "modelshield"

_STACK = ("core", "attacks", "defenses", "assess", "report")
_LIBRARY = (
    *_STACK,
    "integrity",
    "audit",
    "supplychain",
    "registry",
    "threat",
    "privacy",
    "monitor",
    "incident",
    "govern",
    "ingest",
)

LAYERS: dict[str, set[str]] = {
    # the stack: core <- attacks <- defenses <- assess <- report
    "core": set(),
    "attacks": {"core"},
    "defenses": {"core", "attacks"},
    "assess": {"core", "attacks", "defenses", "privacy"},  # --privacy trains the DP twin it audits
    "report": {"core", "attacks", "defenses", "assess"},
    # beside the stack: build on core and the attack/defence layers they consume; never on assess/report
    "integrity": {"core", "attacks", "defenses"},  # scan, sign, watermark (trains through defenses.training)
    "audit": {"core", "integrity"},  # signs checkpoints with integrity's keys
    "supplychain": {"core", "integrity"},  # SBOM and approvals hash with integrity.provenance
    "registry": {"core", "integrity", "audit"},  # records versions in the audit log
    "threat": {"core", "integrity"},  # evidence: scans and verifies the files a threat model names
    "privacy": {"core", "attacks", "defenses"},
    "monitor": {"core", "attacks", "defenses", "integrity", "audit"},
    "incident": {"core", "integrity", "audit", "registry", "monitor", "threat"},  # threat: escalation matrix
    # govern reuses ingest's OpenLineage event builder and supplychain's CycloneDX components; monitor: access
    # denials raise alerts through monitor.alerts; privacy: minimisation flags PII columns with privacy.pii
    "govern": {"core", "integrity", "audit", "registry", "ingest", "supplychain", "monitor", "privacy"},
    "ingest": {"core", "attacks", "defenses", "integrity"},  # provenance + poisoning detectors at the door
    # the shells on top
    "serve": set(_LIBRARY),
    "demo": set(_LIBRARY),
    "pipeline": set(_LIBRARY),  # the secure lifecycle as gated stages, each calling a library package
    "redteam": set(_LIBRARY),  # attacks through a live gateway, scored from its audit log and alert rules
    "cli": {*_LIBRARY, "serve", "demo", "pipeline", "redteam"},
    "__main__": {"cli"},
    "modelshield": set(),  # the package's own __init__ (which every module may import: __version__)
}

# (importing module, imported module): an upward import still in the tree, and who removes it.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}

# Import cycles still in the tree (the modules of each), and who removes them.
ALLOWED_CYCLES: dict[frozenset[str], str] = {}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The modelshield modules an import statement loads (``from pkg import sub`` loads ``pkg.sub``)."""
    if isinstance(node, ast.Import):
        yield from (a.name for a in node.names if a.name.split(".")[0] == "modelshield")
        return
    if node.level:
        base = module.split(".")
        if MODULES[module].name != "__init__.py":
            base = base[:-1]
        base = base[: len(base) - node.level + 1]
        source = ".".join([*base, node.module] if node.module else base)
    else:
        source = node.module or ""
    if source.split(".")[0] != "modelshield":
        return
    for alias in node.names:
        sub = f"{source}.{alias.name}"
        yield sub if sub in MODULES else source


def imports(module: str, source: str | None = None) -> Iterator[tuple[str, int, str]]:
    """(imported module, line, when) for every modelshield import in ``module`` (or in ``source``).

    ``when`` is "load" (module level), "call" (inside a function) or "type" (under ``if TYPE_CHECKING:``).
    """

    def walk(node: ast.AST, when: str) -> Iterator[tuple[str, int, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield from ((t, child.lineno, when) for t in _targets(module, child))
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                yield from walk(child, "type")
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) and when == "load":
                yield from walk(child, "call")
            else:
                yield from walk(child, when)

    yield from walk(ast.parse(MODULES[module].read_text(encoding="utf-8") if source is None else source), "load")


@functools.cache
def tree_imports(module: str) -> tuple[tuple[str, int, str], ...]:
    """``imports(module)`` of a file in the tree, walked once for both checks (the walk is most of their time)."""
    return tuple(imports(module))


def upward_imports() -> dict[tuple[str, str], int]:
    """Every import that runs against ``LAYERS``, with its line."""
    found: dict[tuple[str, str], int] = {}
    for module in MODULES:
        mine = _package(module)
        for target, line, _ in tree_imports(module):
            theirs = _package(target)
            if theirs not in (mine, "modelshield") and theirs not in LAYERS[mine]:
                found.setdefault((module, target), line)
    return found


def load_time_cycles() -> list[frozenset[str]]:
    """Strongly connected groups of modules in the graph of imports that run (Tarjan); type-only ones are left out."""
    graph = {
        m: sorted({t for t, _, when in tree_imports(m) if when != "type" and t != m and t in MODULES}) for m in MODULES
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(frozenset(group))

    for v in graph:
        if v not in index:
            visit(v)
    return groups


def test_every_package_has_a_row_in_the_table() -> None:
    missing = sorted({_package(m) for m in MODULES} - set(LAYERS))
    assert not missing, f"add a row to LAYERS for {missing}: which packages may they import?"


def test_the_table_itself_is_acyclic() -> None:
    """No two packages may import each other, even through others: the layers form an order."""
    done: set[str] = set()

    def visit(package: str, path: tuple[str, ...]) -> None:
        assert package not in path, f"LAYERS lets packages import each other: {' -> '.join((*path, package))}"
        if package not in done:
            for below in LAYERS.get(package, set()):
                visit(below, (*path, package))
            done.add(package)

    for package in LAYERS:
        visit(package, ())


def test_no_import_runs_back_up_the_layers() -> None:
    found = upward_imports()
    new = [
        f"{MODULES[a].relative_to(ROOT.parent)}:{line} imports {b}"
        for (a, b), line in sorted(found.items())
        if (a, b) not in ALLOWED_UPWARD
    ]
    assert not new, "imports against the layers (see LAYERS in tests/test_layers.py):\n" + "\n".join(new)
    stale = sorted(set(ALLOWED_UPWARD) - set(found))
    assert not stale, f"fixed, so remove from ALLOWED_UPWARD: {stale}"


def test_no_import_cycles() -> None:
    cycles = load_time_cycles()
    new = [sorted(c) for c in cycles if c not in ALLOWED_CYCLES]
    assert not new, f"modules that import each other (move the shared piece into a module both import): {new}"
    stale = [sorted(c) for c in set(ALLOWED_CYCLES) - set(cycles)]
    assert not stale, f"fixed (or changed shape), so update ALLOWED_CYCLES: {stale}"


def test_the_checker_sees_lazy_type_only_and_relative_imports() -> None:
    """The parser itself: a relative, a TYPE_CHECKING and a function-level import are all found."""
    source = (
        "from typing import TYPE_CHECKING\nfrom . import errors\n"
        "if TYPE_CHECKING:\n    from modelshield.report.sarif import x\n"
        "def f():\n    import modelshield.serve.app\n"
    )
    found = {(t, when) for t, _, when in imports("modelshield.core.loading", source)}
    assert found == {
        ("modelshield.core.errors", "load"),
        ("modelshield.report.sarif", "type"),
        ("modelshield.serve.app", "call"),
    }
