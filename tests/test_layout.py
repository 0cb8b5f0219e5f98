"""The layout's promises, checked on the source: which room may import which, and no cycles.

Every `import` counts, the ones inside functions too (they are how heavy or upward imports hide).
"""

from __future__ import annotations

import ast
from pathlib import Path

import spendwatch

PACKAGE = Path(spendwatch.__file__).parent


def room(module: str) -> str:
    """`spendwatch.collector.store` -> `collector`; a top-level module is its own room."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "spendwatch"


def imports() -> dict[str, set[str]]:
    """Each spendwatch module's imports of other spendwatch modules (`from spendwatch import semconv` is
    an import of spendwatch.semconv)."""
    paths = {".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): path
             for path in PACKAGE.rglob("*.py")}  # fmt: skip
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    found.add(submodule if submodule in paths else node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[module] = {name for name in found if name.startswith("spendwatch")}
    return graph


def room_graph() -> dict[str, set[str]]:
    rooms: dict[str, set[str]] = {}
    for module, targets in imports().items():
        rooms.setdefault(room(module), set()).update(room(target) for target in targets if room(target) != room(module))
    return rooms


def test_the_rooms_import_only_below_them():
    rooms = room_graph()
    # what runs inside the user's app: the base modules only
    assert rooms["instrumentation"] <= {"semconv", "_internal", "version", "spendwatch"}, rooms["instrumentation"]
    # collector and rules never import each other, nor what composes them
    composers = {"daemon", "cli", "config"}
    assert not rooms["collector"] & ({"rules", "ui"} | composers), rooms["collector"]
    assert not rooms["rules"] & ({"collector", "ui"} | composers), rooms["rules"]
    assert not rooms["ui"] & composers, rooms["ui"]
    # the providers' bills: handed a way to write and to price, read by the rules and the dashboard
    assert not rooms["billing"] & ({"collector", "rules", "ui"} | composers), rooms["billing"]
    # nothing below the CLI imports it; only the CLI starts the daemon
    assert [name for name, targets in rooms.items() if "cli" in targets] == []
    assert [name for name, targets in rooms.items() if "daemon" in targets] == ["cli"]


def test_no_import_cycles_between_rooms():
    rooms = room_graph()
    for start in rooms:
        seen, stack = set(), list(rooms[start])
        while stack:
            current = stack.pop()
            assert current != start, f"{start} imports itself back through {sorted(seen)}"
            if current not in seen:
                seen.add(current)
                stack.extend(rooms.get(current, ()))


def test_the_instrumentation_imports_nothing_heavy():
    heavy = {"duckdb", "apscheduler", "apprise", "grpc", "uvicorn", "starlette", "rich", "click", "genai_prices"}
    for path in (PACKAGE / "instrumentation").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            assert not {name.split(".")[0] for name in names} & heavy, (path, names)


def test_no_import_cycles_between_modules():
    """Not even through imports inside functions, the usual way a cycle is hidden rather than removed."""
    graph = imports()
    for start in graph:
        seen, stack = set(), [(target, (start, target)) for target in graph[start]]
        while stack:
            current, path = stack.pop()
            assert current != start, " -> ".join(path)
            if current not in seen and current in graph:
                seen.add(current)
                stack.extend((target, (*path, target)) for target in graph[current])
