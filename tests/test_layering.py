"""DESIGN.md rule 1: the sans-IO layers do no I/O and never read the clock."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ustack"
FORBIDDEN = {"asyncio", "socket", "select", "time", "threading", "os", "selectors", "subprocess"}


def sans_io_files():
    files = sorted((PACKAGE / "tcp").rglob("*.py")) + sorted((PACKAGE / "wire").rglob("*.py"))
    files += sorted((PACKAGE / "testing").rglob("*.py"))  # the virtual-time harnesses around stack.py
    files.append(PACKAGE / "reassembly.py")
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


def test_the_check_sees_the_tcp_core():
    # Guard against the check above silently checking nothing.
    names = {p.name for p in sans_io_files()}
    assert "seq.py" in names and "tcp.py" in names
