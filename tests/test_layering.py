"""DESIGN.md rules 1 and 9: the layers stay in their places.

- The sans-IO layers (ustack/tcp, ustack/wire, stack.py, ustack/testing) do no I/O and never read
  the clock.
- No import cycle inside ustack/: the modules form a graph that only points one way.
- Outside ustack/tcp/ a TCP state is the core's `State` enum, never a string such as "TIME-WAIT":
  one owner for the names of the states (display text comes from `State.value`).

The checks read the source with `ast` (nothing is imported), but for one that imports the sans-IO
layers in a fresh interpreter to see what they load; the last tests run each check on a planted
package, so a check that silently finds nothing cannot pass.
"""

from __future__ import annotations

import ast
import fnmatch
import subprocess
import sys
from pathlib import Path

import pytest

from ustack.tcp.state import State

PACKAGE = Path(__file__).resolve().parent.parent / "ustack"
FORBIDDEN = {"asyncio", "socket", "select", "time", "threading", "os", "selectors", "subprocess"}

# Cycles being broken by work not yet merged, tolerated meanwhile. Each entry is the set of modules
# (fnmatch patterns) of one known cycle: a cycle is tolerated only when every module in it matches
# one entry; an entry that no longer matches any cycle fails the test, so it cannot outlive its
# cycle. Empty since issue 10: cli.py <-> the command modules (CliError, now commands/errors.py),
# conform/driver.py <-> conform/runner.py (Result, now conform/result.py) and aio/runtime.py <->
# transport.py/server.py (now the transport.Runtime protocol) are all gone. Keep it empty.
KNOWN_CYCLES: set[frozenset[str]] = set()

# Strings equal to a state's name or value that are data, not a state: (file under ustack/, the
# top-level name they sit in) -> why.
STATE_STRING_ALLOWLIST = {
    ("labs/session.py", "_SS_FILTER_STATES"): "ss's own spelling of its State column, used to read ss's output",
}


# --------------------------------------------------------------------------------------------
# Rule 1: sans-IO
# --------------------------------------------------------------------------------------------
def sans_io_files():
    files = sorted((PACKAGE / "tcp").rglob("*.py")) + sorted((PACKAGE / "wire").rglob("*.py"))
    files += sorted((PACKAGE / "testing").rglob("*.py"))  # the virtual-time harnesses around stack.py
    files.append(PACKAGE / "reassembly.py")
    files.append(PACKAGE / "stack6.py")  # the IPv6 side of stack.py
    files.append(PACKAGE / "host_addresses.py")
    files.append(PACKAGE / "counters.py")  # counter_attributes, which stack.py uses
    files.append(PACKAGE / "timer_heap.py")  # the connections' deadlines, which stack.py keeps
    files.append(PACKAGE / "stack_calls.py")  # the user calls of stack.py's Stack
    stack = PACKAGE / "stack.py"
    if stack.exists():
        files.append(stack)
    return files


def imported_modules(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0], node.lineno


@pytest.mark.parametrize("path", sans_io_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_sans_io_layer_imports_no_io_or_clock(path):
    bad = [(name, line) for name, line in imported_modules(path) if name in FORBIDDEN]
    assert not bad, f"{path.name} imports {bad}: ustack/tcp, ustack/wire, stack.py, reassembly.py and ustack/testing must stay sans-IO"


def test_importing_the_sans_io_layers_loads_no_io_machinery():
    """The check above reads each file's own imports; what a sans-IO module takes from the rest of
    ustack (compat.py's DATACLASS_SLOTS and byte_view, counters.py) must not bring an event loop,
    sockets or threads with it either. A fresh interpreter first imports the standard library's
    modules that the sans-IO files import themselves (PyPy's hashlib loads threading and socket
    on its own), then the layers, and lists what the second step loaded."""
    standard = sorted({name for path in sans_io_files() for name, _ in imported_modules(path)}
                      - {"ustack", "__future__"} - FORBIDDEN)
    code = (f"import sys\nfor name in {standard!r}:\n    __import__(name)\nbefore = set(sys.modules)\n"
            "import ustack.stack, ustack.tcp, ustack.wire, ustack.testing\n"
            "print(' '.join(sorted(set(sys.modules) - before)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert "ustack.tcp.connection" in loaded  # the import did happen, after the baseline
    assert not loaded & FORBIDDEN, sorted(loaded & FORBIDDEN)


def test_the_check_sees_the_tcp_core():
    # Guard against the check above silently checking nothing.
    names = {p.name for p in sans_io_files()}
    assert "seq.py" in names and "tcp.py" in names


# --------------------------------------------------------------------------------------------
# Import cycles
# --------------------------------------------------------------------------------------------
def module_files(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is its __init__)."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = (package.name,) + path.relative_to(package).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imported_names(path: Path, module: str) -> set[str]:
    """Every name an import in the file may load, as a dotted module name: module-level imports,
    the deferred ones inside functions and those under `if TYPE_CHECKING:` (a cycle hidden in a
    function, or needed only by the annotations, still ties the modules together), and
    importlib.import_module("prefix" or f"prefix{...}") as the prefix followed by "*"."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names)  # `from pkg import module`
        elif isinstance(node, ast.Call) and _is_import_module(node.func) and node.args:
            argument = node.args[0]
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                names.add(argument.value)
            elif isinstance(argument, ast.JoinedStr) and argument.values:
                first = argument.values[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names.add(first.value + "*")
    return names


def _is_import_module(function: ast.expr) -> bool:
    return (isinstance(function, ast.Attribute) and function.attr == "import_module") or (
        isinstance(function, ast.Name) and function.id == "import_module"
    )


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports."""
    modules = module_files(package)
    graph = {}
    for module, path in modules.items():
        targets = set()
        for name in imported_names(path, module):
            if name.endswith("*"):
                targets.update(fnmatch.filter(modules, name))
            elif name in modules:
                targets.add(name)
        targets.discard(module)
        graph[module] = targets
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm,
    iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))
    return sorted(cycles)


def known(cycle: list[str], patterns: frozenset[str]) -> bool:
    return all(any(fnmatch.fnmatchcase(module, pattern) for pattern in patterns) for module in cycle)


def describe_cycle(graph: dict[str, set[str]], cycle: list[str]) -> str:
    members = set(cycle)
    return "; ".join(f"{module} -> {', '.join(sorted(graph[module] & members))}" for module in cycle)


def test_no_import_cycle_inside_ustack():
    graph = import_graph(PACKAGE)
    assert len(graph) > 50 and sum(map(len, graph.values())) > 100  # it really read the package
    assert {"ustack.trace.live", "ustack.network", "ustack.commands.errors"} <= set(graph)
    cycles = import_cycles(graph)
    unknown = [cycle for cycle in cycles if not any(known(cycle, patterns) for patterns in KNOWN_CYCLES)]
    assert not unknown, "import cycles inside ustack/ (the layers must point one way):\n" + "\n".join(
        describe_cycle(graph, cycle) for cycle in unknown
    )
    stale = [sorted(patterns) for patterns in KNOWN_CYCLES if not any(known(cycle, patterns) for cycle in cycles)]
    assert not stale, f"KNOWN_CYCLES lists cycles that are gone: remove {stale}"


def test_the_command_modules_do_not_import_the_cli():
    # cli.py loads the command modules; what they share (CliError) lives below them.
    graph = import_graph(PACKAGE)
    assert not [name for name, imported in graph.items() if name.startswith("ustack.commands") and "ustack.cli" in imported]
    assert "ustack.commands.errors" in graph["ustack.cli"]


# --------------------------------------------------------------------------------------------
# TCP states written as strings
# --------------------------------------------------------------------------------------------
STATE_SPELLINGS = frozenset(state.value for state in State) | frozenset(state.name for state in State)


def _top_level_name(node: ast.stmt) -> str:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    names = [target.id for target in targets if isinstance(target, ast.Name)]
    return names[0] if names else f"<line {node.lineno}>"


def state_strings(package: Path, core: str = "tcp") -> list[tuple[str, str, int, str]]:
    """(file, top-level name, line, text) of every string constant spelled like a TCP state
    ("TIME-WAIT" or "TIME_WAIT"), outside the core package `core`. Docstrings and comments never
    equal a state's bare name, so they do not count."""
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if relative.parts[0] == core:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for statement in tree.body:
            for node in ast.walk(statement):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in STATE_SPELLINGS:
                    found.append((relative.as_posix(), _top_level_name(statement), node.lineno, node.value))
    return found


def test_no_tcp_state_written_as_a_string_outside_the_core():
    found = state_strings(PACKAGE)
    bad = [f"ustack/{path}:{line} {text!r} (in {scope})" for path, scope, line, text in found
           if (path, scope) not in STATE_STRING_ALLOWLIST]
    assert not bad, "a TCP state outside ustack/tcp/ is the State enum (display text: State.value):\n" + "\n".join(bad)
    used = {(path, scope) for path, scope, _, _ in found}
    stale = sorted(set(STATE_STRING_ALLOWLIST) - used)
    assert not stale, f"STATE_STRING_ALLOWLIST entries that match nothing any more: remove {stale}"


# --------------------------------------------------------------------------------------------
# The checks themselves, on a planted package
# --------------------------------------------------------------------------------------------
def _plant(root: Path, files: dict[str, str]) -> Path:
    package = root / "ustack"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


def test_the_cycle_check_finds_planted_cycles_and_nothing_else(tmp_path):
    package = _plant(tmp_path, {
        "__init__.py": "",
        "a.py": "from .b import thing\n",  # a -> b at module level
        "b.py": "def later():\n    from ustack import a\n",  # b -> a deferred: still a cycle
        "typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .user import x\n",
        "user.py": "from .typed import y\n",  # typed -> user for annotations only: still a cycle
        "cli.py": "import importlib\ndef load(n):\n    return importlib.import_module(f'ustack.commands.{n}')\n",
        "commands/__init__.py": "",
        "commands/one.py": "from ..cli import CliError\n",
        "down.py": "from . import a\nfrom .commands import one\n",  # points down only: no cycle
    })  # fmt: skip
    graph = import_graph(package)
    assert import_cycles(graph) == [
        ["ustack.a", "ustack.b"], ["ustack.cli", "ustack.commands.one"], ["ustack.typed", "ustack.user"],
    ]  # fmt: skip
    assert known(["ustack.cli", "ustack.commands.one"], frozenset({"ustack.cli", "ustack.commands.*"}))
    assert not known(["ustack.a", "ustack.b"], frozenset({"ustack.cli", "ustack.commands.*"}))


def test_the_state_string_check_finds_planted_strings_and_nothing_else(tmp_path):
    package = _plant(tmp_path, {
        "tcp/state.py": "NAME = 'TIME-WAIT'\n",  # the core may spell its states
        "aio/transport.py": (
            '"""Docstrings may say TIME-WAIT."""\n'
            "FINISHED = frozenset(['CLOSED', 'TIME-WAIT'])\n"
            "def update(state):\n"
            "    return state == 'SYN_SENT' or state == 'time_wait' or f'{state} -> CLOSED'\n"
        ),
    })  # fmt: skip
    assert state_strings(package) == [
        ("aio/transport.py", "FINISHED", 2, "CLOSED"),
        ("aio/transport.py", "FINISHED", 2, "TIME-WAIT"),
        ("aio/transport.py", "update", 4, "SYN_SENT"),
    ]  # ('time_wait' is a timer's name; ' -> CLOSED' is part of a longer text)
