"""ustack/wire/_wire.pyi, the typed face of the C extension, against the built module, both ways:
every name the stub declares exists in ustack.wire._wire with the same parameters, and every name
the module has is in the stub. A function added to csrc/wire.h without its stub line fails here."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import ustack.wire._wire as built
from ustack.wire._wire import ffi, lib

ROOT = Path(__file__).resolve().parent.parent.parent
STUB = ROOT / "ustack" / "wire" / "_wire.pyi"


def stub_classes() -> dict[str, ast.ClassDef]:
    tree = ast.parse(STUB.read_text(), filename=str(STUB))
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def stub_lib() -> tuple[dict[str, str], dict[str, ast.FunctionDef]]:
    """The stub's Lib: constants (name -> annotation) and functions (name -> definition)."""
    constants, functions = {}, {}
    for node in stub_classes()["Lib"].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            constants[node.target.id] = ast.unparse(node.annotation)
        elif isinstance(node, ast.FunctionDef):
            functions[node.name] = node
    return constants, functions


def test_the_stub_declares_exactly_what_the_built_lib_has():
    constants, functions = stub_lib()
    declared = set(constants) | set(functions)
    present = set(dir(lib))
    assert len(functions) >= 14 and len(constants) >= 25  # the stub really was read
    assert declared - present == set(), "declared in _wire.pyi but not in the built module"
    assert present - declared == set(), "in the built module (csrc/wire.h) but not declared in _wire.pyi"


def test_constants_are_ints_and_functions_have_the_c_parameters():
    constants, functions = stub_lib()
    for name, annotation in constants.items():
        assert annotation == "int" and isinstance(getattr(lib, name), int), name
    for name, definition in functions.items():
        c_type = ffi.typeof(getattr(lib, name))
        assert [d.id for d in definition.decorator_list if isinstance(d, ast.Name)] == ["staticmethod"], name
        parameters = definition.args.posonlyargs
        assert not definition.args.args and not definition.args.kwonlyargs, f"{name}: parameters are positional only"
        assert len(parameters) == len(c_type.args), f"{name}: {len(parameters)} parameters, C has {len(c_type.args)}"
        for parameter, c_argument in zip(parameters, c_type.args):
            annotation = ast.unparse(parameter.annotation)
            if c_argument.kind == "primitive":
                expected = {"int"}
            elif c_argument.cname.startswith("struct "):
                expected = {"CData"}  # C memory from ffi.new
            else:
                expected = {"CData", "InBytes"}  # a byte buffer: bytes where C only reads it
            assert annotation in expected, f"{name}({parameter.arg}): {annotation}, C type {c_argument.cname}"
        assert ast.unparse(definition.returns) == "int" and c_type.result.kind == "primitive", name


def test_module_names_and_ffi_methods_exist():
    tree = ast.parse(STUB.read_text())
    module_names = {node.target.id for node in tree.body if isinstance(node, ast.AnnAssign)}
    assert module_names == {name for name in dir(built) if not name.startswith("_")} == {"ffi", "lib"}
    methods = [node.name for node in stub_classes()["FFI"].body if isinstance(node, ast.FunctionDef)]
    assert methods and all(callable(getattr(ffi, method, None)) for method in methods), methods


def test_the_stub_and_the_typed_marker_are_packaged():
    """PEP 561: py.typed says the package carries its types; the .pyi must be in the wheel too."""
    assert (ROOT / "ustack" / "py.typed").exists()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["ustack"] and "*.pyi" in package_data["ustack.wire"]


def test_the_python_side_of_the_wire_layer_type_checks_against_the_stub():
    """mypy over the modules that call into C: a call with the wrong number or kind of arguments
    to a `lib` function, or a name the C module lacks, fails here. (mypy is a test dependency:
    without it this test fails rather than skips.)"""
    import subprocess
    import sys

    callers = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "ustack" / "wire").glob("*.py")
                     if "from ._wire import" in path.read_text())
    assert {"ustack/wire/checksum.py", "ustack/wire/codec.py"} <= set(callers)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--python-version", "3.11", "--follow-imports=silent", "--check-untyped-defs",
         "--no-incremental", "--cache-dir", "/dev/null", "ustack/wire/_wire.pyi", *callers],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
