"""scripts/bench.py's kernel twin is a Python program held in a string (KERNEL_APP_SERVER) and run
with `python -c` in the twin's namespace: a mistake in it shows only when a benchmark starts it
and waits for a "ready" that never comes. Its text must be a program, and its request log must
write what serve's does, one line per request. DISCARD_CLIENT, the upload to a sink, is one too."""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from bench import DISCARD_CLIENT, KERNEL_APP_SERVER  # noqa: E402


def test_the_kernel_twin_is_a_python_program():
    compile(KERNEL_APP_SERVER, "<KERNEL_APP_SERVER>", "exec")


def test_its_request_log_writes_one_line_per_request_as_serve_does(capsys):
    tree = ast.parse(KERNEL_APP_SERVER)
    (log,) = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "log"]
    namespace = {"sys": sys}
    exec(compile(ast.Module(body=[log], type_ignores=[]), "<log>", "exec"), namespace)
    namespace["log"]('10.77.0.1:40000 "GET /small.html" 200')
    assert capsys.readouterr().out == 'http   : 10.77.0.1:40000 "GET /small.html" 200\n'


def test_the_twin_serves_discard_on_port_9_beside_http_and_echo():
    tree = ast.parse(KERNEL_APP_SERVER)
    servers = [(call.args[0].id, call.args[2].value) for call in ast.walk(tree)
               if isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "start_server"
               and isinstance(call.args[0], ast.Name)]
    assert servers == [("handle_echo", 7), ("handle_discard", 9)]


def test_the_discard_client_sends_the_whole_file_and_times_it_to_the_servers_close(tmp_path):
    # DISCARD_CLIENT, as bench.py runs it, against a sink on loopback that counts what it reads
    # and closes at the end: the client must send every byte, wait for that close, print MB/s.
    source = tmp_path / "upload.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    listener = socket.create_server(("127.0.0.1", 0))
    received = []

    def sink():
        connection, _ = listener.accept()
        with connection:
            received.append(sum(iter(lambda: len(connection.recv(1 << 20)), 0)))

    thread = threading.Thread(target=sink)
    thread.start()
    try:
        result = subprocess.run([sys.executable, "-c", DISCARD_CLIENT, "127.0.0.1", str(source),
                                 str(listener.getsockname()[1])], capture_output=True, text=True, timeout=60)
    finally:
        thread.join(60)
        listener.close()
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) > 0
    assert received == [3 * 1024 * 1024 + 17]
