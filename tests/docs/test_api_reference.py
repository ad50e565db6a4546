"""scripts/docs builds the API reference from the docstrings (pdoc), with a page per module and
the entry points on them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_scripts_docs_builds_the_reference(tmp_path):
    output = tmp_path / "api"
    result = subprocess.run([str(ROOT / "scripts" / "docs"), str(output)], capture_output=True, text=True, timeout=120,
                            env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    pages = {path.name: path.read_text() for path in (output / "ustack").glob("*.html")}
    assert sorted(pages) == ["aio.html", "control.html", "network.html", "sock.html", "stack.html"]
    for page, names in {"aio.html": ["open_tun_stack", "AsyncStack", "start_serving", "ServerSocket"],
                        "sock.html": ["create_server", "makefile", "recv_into", "getaddrinfo", "fileno"],
                        "stack.html": ["host_address"]}.items():
        for name in names:
            assert name in pages[page], f"{name} missing from {page}"
