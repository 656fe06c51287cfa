"""Reads a package's imports and checks them against a layer order (not a test module).

Used by ``tests/test_layering.py`` on ``phone/`` with the order written in
``docs/architecture.md``, and on synthetic trees to show that it fails when it should.

Every ``import`` and ``from ... import`` counts, wherever it is written: at the top, inside a
function (a lazy import dodging a cycle is still a cycle) or under ``if TYPE_CHECKING:`` (a
type that names an upper layer still couples the lower one to it). ``from pkg import name``
is an import of ``pkg.name`` when that is a module, else of ``pkg``. Importing a submodule is
not counted as importing its parent package's ``__init__``: that is Python's mechanism, not a
dependency the code chose.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_LAYERS_BLOCK = re.compile(r"```layers\n(.*?)```", re.S)


@dataclass(frozen=True)
class Violation:
    """An import against the order: ``importer`` (layer ``low``) imports ``imported``."""

    importer: str
    imported: str
    line: int
    why: str

    def __str__(self) -> str:
        return f"{self.importer}:{self.line} imports {self.imported}: {self.why}"


def read_layers(markdown: str) -> list[list[str]]:
    """The layer order of a ```` ```layers ```` block: one line per layer, lowest first, each
    the module prefixes (``phone.trust``) in that layer, separated by spaces."""
    match = _LAYERS_BLOCK.search(markdown)
    if match is None:
        raise ValueError("no ```layers block in the document")
    return [line.split() for line in match[1].splitlines() if line.strip()]


def modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` (whose folder is ``root``), by dotted name."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = (package, *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: Mapping[str, Path]) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every import of a module inside the package."""
    package = name.split(".", maxsplit=1)[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    here = name if is_package else name.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub if sub in known else target, node.lineno))
    return [(m, line) for m, line in found if m == package or m.startswith(package + ".")]


def _layer_of(module: str, layers: Sequence[Sequence[str]]) -> tuple[int, str] | None:
    best: tuple[int, str] | None = None
    for index, prefixes in enumerate(layers):
        for prefix in prefixes:
            inside = module == prefix or module.startswith(prefix + ".")
            if inside and (best is None or len(prefix) > len(best[1])):
                best = (index, prefix)
    return best


def check(root: Path, package: str, layers: Sequence[Sequence[str]]) -> list[Violation]:
    """Every import in ``package`` against ``layers``, and every import cycle.

    A module may import any module of a lower layer, and in its own layer only modules under
    its own prefix (``phone.formats`` and ``phone.wire`` share a layer and know nothing of
    each other). A module no layer names is a violation too, so a new package has to be placed.
    """
    known = modules(root, package)
    graph: dict[str, set[str]] = {m: set() for m in known}
    problems: list[Violation] = []
    for name, path in known.items():
        mine = _layer_of(name, layers)
        for imported, line in imports(name, path, known):
            if imported not in known:
                problems.append(Violation(name, imported, line, "no such module"))
                continue
            graph[name].add(imported)
            theirs = _layer_of(imported, layers)
            if mine is None or theirs is None:
                missing = name if mine is None else imported
                problems.append(Violation(name, imported, line, f"{missing} is in no layer"))
            elif theirs[0] > mine[0]:
                problems.append(Violation(name, imported, line, f"{theirs[1]} is above {mine[1]}"))
            elif theirs[0] == mine[0] and theirs[1] != mine[1]:
                problems.append(Violation(name, imported, line, f"{theirs[1]} is beside {mine[1]}"))
    for cycle in cycles(graph):
        problems.append(
            Violation(
                cycle[0], cycle[1 % len(cycle)], 0, "cycle " + " -> ".join([*cycle, cycle[0]])
            )
        )
    return problems


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module, or a self-import
    (Tarjan's algorithm, iterative so deep packages do not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
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
                    work.append((child, iter(sorted(graph.get(child, ())))))
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
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    found.append(sorted(component))
    return found
