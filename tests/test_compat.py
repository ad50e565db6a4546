"""ustack/compat.py: what PyPy 3.9 lacks, supplied the same on every Python; and the rules that
keep the code within what PyPy 3.9 runs (`./scripts/pypy`, README "On PyPy").

The replacements are tested here on CPython against CPython's own functions (same results,
same errors); scripts/test runs the core suites on PyPy itself, where they are in use."""

from __future__ import annotations

import array
import ast
import asyncio
import errno
import os
import pathlib
import subprocess
import sys
import types

import pytest

from ustack import compat

ROOT = pathlib.Path(__file__).resolve().parent.parent


def python_files() -> list[pathlib.Path]:
    return sorted(path for folder in ("ustack", "tests", "scripts") for path in (ROOT / folder).rglob("*.py"))


# --- the rules ---------------------------------------------------------------------------------


def test_every_module_is_python_3_9_syntax_with_annotations_left_unevaluated():
    """PyPy 3.9 parses no 3.10 syntax (match, parenthesised context managers), and evaluates
    annotations when a function is defined unless the module says `from __future__ import
    annotations`: `def f() -> int | None` is then a TypeError at import on 3.9."""
    found = []
    for path in python_files():
        text = path.read_text()
        try:
            tree = ast.parse(text, feature_version=(3, 9))
        except SyntaxError as error:
            found.append(f"{path.relative_to(ROOT)}:{error.lineno}: not Python 3.9 syntax ({error.msg})")
            continue
        annotated = any(
            isinstance(node, ast.AnnAssign)
            or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                node.returns is not None
                or any(arg.annotation is not None for arg in ast.walk(node.args) if isinstance(arg, ast.arg)))
            for node in ast.walk(tree)
        )
        if annotated and "from __future__ import annotations" not in text:
            found.append(f"{path.relative_to(ROOT)}: annotations without `from __future__ import annotations`")
    assert not found, "\n".join(found)


def test_no_module_makes_a_union_of_types_as_a_value():
    """`int | bytes` outside an annotation runs on 3.10 only: typing.Union says the same on 3.9.
    (Flags such as SYN | ACK are ints and fine: a union here is of names that are types.)"""
    types = {"int", "bytes", "str", "float", "bool", "tuple", "list", "dict", "set", "frozenset", "memoryview",
             "bytearray", "type", "object", "None"}

    def is_type(node) -> bool:
        if isinstance(node, ast.Constant):
            return node.value is None
        if isinstance(node, ast.Name):
            return node.id in types or (node.id[:1].isupper() and not node.id.isupper())
        if isinstance(node, ast.Subscript):
            return is_type(node.value)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return is_type(node.left) and is_type(node.right)
        return False

    found = []
    for path in python_files():
        tree = ast.parse(path.read_text())
        annotations = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.AnnAssign):
                annotations.add(id(node.annotation))
            elif isinstance(node, ast.arg) and node.annotation is not None:
                annotations.add(id(node.annotation))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
                annotations.add(id(node.returns))
        inside = set()
        for node in ast.walk(tree):
            if id(node) in annotations:
                inside.update(id(child) for child in ast.walk(node))
        for node in ast.walk(tree):
            if (isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and id(node) not in inside
                    and is_type(node)):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "use typing.Union:\n" + "\n".join(found)


def test_the_rules_catch_what_they_name(tmp_path):
    """The two checks above fail on what they are meant to find (so they are not vacuous)."""
    with pytest.raises(SyntaxError):
        ast.parse("match x:\n    case 1:\n        pass\n", feature_version=(3, 9))
    tree = ast.parse("Address = int | bytes\nflags = SYN | ACK\n")
    unions = [node for node in ast.walk(tree) if isinstance(node, ast.BinOp)]
    assert [ast.unparse(node) for node in unions] == ["int | bytes", "SYN | ACK"]


# --- the replacements ---------------------------------------------------------------------------


def test_dataclass_slots_are_slots_where_python_makes_them():
    from ustack.tcp.events import DataReadable

    assert compat.DATACLASS_SLOTS == ({"slots": True} if sys.version_info >= (3, 10) else {})
    if sys.version_info >= (3, 10):
        assert not hasattr(DataReadable(1), "__dict__")


def test_writev_and_readv_move_the_same_bytes_as_the_os_functions():
    read_end, write_end = os.pipe()
    try:
        parts = [b"ab", memoryview(b"cdef")[1:3], bytearray(b"g")]
        assert compat.writev(write_end, parts) == 5
        os.writev(write_end, parts)
        first, second = bytearray(2), bytearray(10)
        assert compat.readv(read_end, [first, memoryview(second)[2:]]) == 10
        assert (first, second) == (bytearray(b"ab"), bytearray(b"\0\0degabdeg"))
    finally:
        os.close(read_end)
        os.close(write_end)


def test_readv_and_writev_raise_what_the_os_functions_raise():
    read_end, write_end = os.pipe()
    try:
        os.set_blocking(read_end, False)
        with pytest.raises(BlockingIOError) as ours:
            compat.readv(read_end, [bytearray(4)])
        with pytest.raises(BlockingIOError) as theirs:
            os.readv(read_end, [bytearray(4)])
        assert ours.value.errno == theirs.value.errno == errno.EAGAIN
        with pytest.raises(TypeError):
            compat.readv(read_end, [b"read-only"])  # a buffer it cannot write into
    finally:
        os.close(read_end)
        os.close(write_end)
    with pytest.raises(OSError) as closed:
        compat.writev(write_end, [b"x"])
    assert closed.value.errno == errno.EBADF


def test_sched_affinity_reads_and_sets_what_the_os_functions_do():
    allowed = os.sched_getaffinity(0)
    assert compat.sched_getaffinity(0) == allowed
    one = min(allowed)
    try:
        compat.sched_setaffinity(0, {one})
        assert os.sched_getaffinity(0) == {one}
    finally:
        os.sched_setaffinity(0, allowed)
    with pytest.raises(OSError) as wrong:
        compat.sched_setaffinity(0, {1 << 20})
    assert wrong.value.errno == errno.EINVAL


def test_timeout_ends_a_wait_with_timeout_error_and_lets_a_quick_one_finish():
    async def main():
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            async with compat.Timeout(0.01):
                await asyncio.Event().wait()  # never set
        assert loop.time() - started >= 0.01
        async with compat.Timeout(10):
            await asyncio.sleep(0)
        async with compat.Timeout(None):
            await asyncio.sleep(0)
        return "done"

    assert asyncio.run(main()) == "done"


def test_timeout_leaves_a_cancellation_from_elsewhere_a_cancellation():
    async def waiter(ready: asyncio.Event):
        async with compat.Timeout(10):
            ready.set()
            await asyncio.Event().wait()

    async def main():
        ready = asyncio.Event()
        task = asyncio.ensure_future(waiter(ready))
        await ready.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_install_keeps_what_python_has():
    before = (os.readv, os.writev, os.sched_getaffinity, os.sched_setaffinity)
    compat.install()
    assert (os.readv, os.writev, os.sched_getaffinity, os.sched_setaffinity) == before


def test_load_vector_io_loads_libc_where_compat_supplies_os_readv(monkeypatch):
    """Where os.readv is compat's (PyPy 3.9), load_vector_io() loads libc's declarations then,
    not at the first read: parsing them cost ~225 ms on a cold PyPy, which fell inside serve's
    first TUN read and made a --delay'ed packet read during it look as if it had come earlier."""
    monkeypatch.setattr(os, "readv", compat.readv)
    monkeypatch.setattr(compat, "_libc", None)
    monkeypatch.setattr(compat, "_ffi", None)
    compat.load_vector_io()
    assert compat._libc is not None


def test_load_vector_io_loads_nothing_where_python_has_os_readv(monkeypatch):
    monkeypatch.setattr(os, "readv", lambda fd, buffers: 0)
    monkeypatch.setattr(os, "writev", lambda fd, buffers: 0)
    monkeypatch.setattr(compat, "_libc", None)
    monkeypatch.setattr(compat, "_ffi", None)
    compat.load_vector_io()
    assert compat._libc is None


def test_asyncio_timeout_is_asyncios_own_where_it_has_one():
    async def main():
        block = compat.asyncio_timeout(5)
        if sys.version_info >= (3, 11):
            assert type(block) is type(asyncio.timeout(5))
        else:
            assert type(block) is compat.Timeout
        with pytest.raises(TimeoutError):
            async with compat.asyncio_timeout(0.01):
                await asyncio.Event().wait()

    asyncio.run(main())


def test_byte_view_casts_only_what_is_not_bytes_already():
    data = b"abcdef"
    view = compat.byte_view(data)
    assert view.format == "B" and view.obj is data and bytes(view[1:3]) == b"bc"
    words = compat.byte_view(array.array("i", [1, 2]))
    assert words.format == "B" and len(words) == 2 * array.array("i").itemsize
    with pytest.raises(TypeError):
        compat.byte_view(memoryview(data)[::2])  # not contiguous: refused, as cast refuses it


class RecordingJit(types.ModuleType):
    """A stand-in for PyPy's `pypyjit` that records what it is told."""

    def __init__(self) -> None:
        super().__init__("pypyjit")
        self.settings: list[str] = []

    def set_param(self, settings: str) -> None:
        self.settings.append(settings)


def test_install_tunes_pypys_jit(monkeypatch):
    """Where Python has the `pypyjit` module (PyPy), install() sets JIT_PARAMETERS: serve's CPU per
    connection comes down 2-3 times sooner (compat.JIT_PARAMETERS has the figures)."""
    jit = RecordingJit()
    monkeypatch.setitem(sys.modules, "pypyjit", jit)
    monkeypatch.setattr(sys, "builtin_module_names", sys.builtin_module_names + ("pypyjit",))
    compat.install()
    assert jit.settings == [compat.JIT_PARAMETERS]
    assert compat.JIT_PARAMETERS == "threshold=300,function_threshold=200,trace_eagerness=50"


def test_install_leaves_a_python_without_a_jit_alone(monkeypatch):
    """CPython has no `pypyjit`: install() neither imports nor looks for one."""
    jit = RecordingJit()
    monkeypatch.setitem(sys.modules, "pypyjit", jit)  # importable, but not one of Python's own
    monkeypatch.setattr(sys, "builtin_module_names",
                        tuple(name for name in sys.builtin_module_names if name != "pypyjit"))
    compat.install()
    assert jit.settings == []


def test_pypys_jit_takes_the_parameters():
    """In a fresh interpreter: `import ustack` runs install(); on PyPy the real pypyjit accepts
    JIT_PARAMETERS (a name it does not know is a ValueError there), on CPython nothing is loaded."""
    code = ("import sys, ustack\n"
            "print('pypyjit' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(sys.implementation.name == "pypy")]
