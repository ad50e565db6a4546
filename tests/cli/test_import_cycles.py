"""No import cycle inside ustack/: each module's imports (at the top or inside a function) point
one way, so any module can be read, tested and replaced without the ones that use it.

The command line was one of them (cli.py defined CliError, the command modules imported cli.py
for it, and cli.py loads the command modules): CliError now lives in ustack/commands/errors.py."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "ustack"

# A cycle that other work removes (issue 10): listed so that no new one can appear meanwhile.
KNOWN_CYCLES = [
    {"ustack.aio.runtime", "ustack.aio.server", "ustack.aio.transport"},
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the ustack modules it imports (a package's __init__ counts as the package)."""
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            imported.update(candidate for candidate in candidates if candidate in paths and candidate != name)
        graph[name] = imported
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(module: str) -> None:
        index[module] = lowest[module] = len(index)
        stack.append(module)
        for imported in sorted(graph[module]):
            if imported not in index:
                visit(imported)
                lowest[module] = min(lowest[module], lowest[imported])
            elif imported in stack:
                lowest[module] = min(lowest[module], index[imported])
        if lowest[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(component)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_new_import_cycle_inside_ustack():
    found = cycles(import_graph())
    new = [cycle for cycle in found if cycle not in KNOWN_CYCLES]
    assert not new, f"import cycles: {[sorted(cycle) for cycle in new]}"
    gone = [cycle for cycle in KNOWN_CYCLES if cycle not in found]
    assert not gone, f"no longer cycles, remove them from KNOWN_CYCLES: {[sorted(cycle) for cycle in gone]}"


def test_the_command_modules_do_not_import_the_cli():
    graph = import_graph()
    assert not [name for name, imported in graph.items() if name.startswith("ustack.commands") and "ustack.cli" in imported]
    assert "ustack.commands.errors" in graph["ustack.cli"]


def test_the_check_sees_a_cycle():
    # Guard against the check above silently finding nothing.
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert {"ustack.trace.live", "ustack.network"} <= set(import_graph())
