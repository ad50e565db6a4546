"""Every example in docs/examples runs to the end and prints what its docstring promises.

Each runs as its own process (as a reader would run it), with the control sockets in a directory
of the test's own. The TUN example gets a namespace name made for this test, and the test checks
that the namespace is gone afterwards. Needs root and /dev/net/tun for that one: it fails loudly
without them, never skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ustack.netns import namespace_exists

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
RUN_TIMEOUT = 60.0  # a hang guard, never a measurement

# What each example must print (a line it writes when its part worked).
EXPECTED = {
    "asyncio_tun_server.py": ["kernel got: hello, ustack"],
    "asyncio_two_stacks.py": ["A got: HELLO", "A got: WORLD"],
    "asyncio_protocols.py": ["serving: False", "received 102400 bytes; connection_lost(None)"],
    "blocking_sockets.py": ["sendfile sent 5000", "readable True peek: b'5000 '", "answer 5000 bytes", "laddr=('10.0.0.2', 8000)"],
    "socketserver_http.py": ["200 hello from ustack, you asked for /", "200 hello from ustack, you asked for /index.html"],
}


def test_every_example_is_checked():
    assert sorted(path.name for path in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name, tmp_path):
    arguments = [sys.executable, str(EXAMPLES / name)]
    namespace = None
    if name == "asyncio_tun_server.py":
        namespace = f"ust-doc-{os.getpid()}"
        arguments.append(namespace)
    environment = dict(os.environ, USTACK_RUN_DIR=str(tmp_path))
    result = subprocess.run(arguments, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=environment)
    assert result.returncode == 0, result.stderr
    for line in EXPECTED[name]:
        assert line in result.stdout, f"{name} did not print {line!r}:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    if namespace is not None:
        assert not namespace_exists(namespace)
    assert list(tmp_path.iterdir()) == []  # no control socket left behind
