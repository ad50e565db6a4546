"""scripts/bench.py's kernel twin is a Python program held in a string (KERNEL_APP_SERVER) and run
with `python -c` in the twin's namespace: a mistake in it shows only when a benchmark starts it
and waits for a "ready" that never comes. Its text must be a program, and its request log must
write what serve's does, one line per request."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from bench import KERNEL_APP_SERVER  # noqa: E402


def test_the_kernel_twin_is_a_python_program():
    compile(KERNEL_APP_SERVER, "<KERNEL_APP_SERVER>", "exec")


def test_its_request_log_writes_one_line_per_request_as_serve_does(capsys):
    tree = ast.parse(KERNEL_APP_SERVER)
    (log,) = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "log"]
    namespace = {"sys": sys}
    exec(compile(ast.Module(body=[log], type_ignores=[]), "<log>", "exec"), namespace)
    namespace["log"]('10.77.0.1:40000 "GET /small.html" 200')
    assert capsys.readouterr().out == 'http   : 10.77.0.1:40000 "GET /small.html" 200\n'
