"""`ustack serve` and `ustack connect` as a user runs them: separate processes, each in a fresh
namespace (ust-t-<pid>-<n>), reached with the kernel's own curl, nc and ping through
`ip netns exec`. Every process is stopped by its PID and every namespace is gone at the end."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
from interop_helpers import HOST_ADDRESS, STACK_ADDRESS, run_cli, wait_for

from ustack.netns import namespace_exists


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text("<h1>served by ustack</h1>\n")
    (root / "data.bin").write_bytes(os.urandom(1024 * 1024))
    return root


def test_curl_gets_pages_and_a_megabyte_intact(ustack_serve, site):
    serve = ustack_serve("--http", str(site))
    page = serve.inside("curl", "-sS", "--fail", f"http://{STACK_ADDRESS}/")
    assert page.returncode == 0, page.stderr
    assert page.stdout == "<h1>served by ustack</h1>\n"
    data = serve.inside("curl", "-sS", "--fail", f"http://{STACK_ADDRESS}/data.bin", text=False)
    assert data.returncode == 0, data.stderr
    assert hashlib.sha256(data.stdout).digest() == hashlib.sha256((site / "data.bin").read_bytes()).digest()


def test_curl_moves_20_megabytes_each_way_intact(ustack_serve, site, tmp_path):
    big = os.urandom(20 * 1024 * 1024)
    (site / "big.bin").write_bytes(big)
    serve = ustack_serve("--http", str(site), "--allow-upload")
    downloaded = tmp_path / "downloaded.bin"
    result = serve.inside("curl", "-sS", "--fail", "-o", str(downloaded), f"http://{STACK_ADDRESS}/big.bin")
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(downloaded.read_bytes()).digest() == hashlib.sha256(big).digest()
    result = serve.inside("curl", "-sS", "--fail", "-T", str(downloaded), "-w", "%{http_code}",
                          f"http://{STACK_ADDRESS}/uploaded.bin")
    assert result.returncode == 0 and result.stdout.endswith("201"), result.stderr
    assert hashlib.sha256((site / "uploaded.bin").read_bytes()).digest() == hashlib.sha256(big).digest()


def test_curl_upload_is_stored(ustack_serve, site):
    serve = ustack_serve("--http", str(site), "--allow-upload")
    body = "uploaded through ustack\n" * 1000
    result = serve.inside("curl", "-sS", "--fail", "-T", "-", "-w", "%{http_code}",
                          f"http://{STACK_ADDRESS}/up/load.txt", input=body)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("201")
    assert (site / "up" / "load.txt").read_text() == body


def test_nc_echo_and_ping(ustack_serve):
    serve = ustack_serve("--echo", "--discard")
    echoed = serve.inside("nc", "-N", "-w", "10", STACK_ADDRESS, "7", input="hello, ustack\n")
    assert (echoed.returncode, echoed.stdout) == (0, "hello, ustack\n")
    discarded = serve.inside("nc", "-N", "-w", "10", STACK_ADDRESS, "9", input="x" * 100000)
    assert (discarded.returncode, discarded.stdout) == (0, "")
    ping = serve.inside("ping", "-c", "1", "-W", "5", STACK_ADDRESS)
    assert ping.returncode == 0, ping.stdout + ping.stderr


def test_ss_shows_listeners_and_time_wait_that_ends(ustack_serve, site):
    serve = ustack_serve("--http", str(site), "--echo", "--msl", "1")
    listening = {(c["linux_state"], c["local"]["port"]) for c in serve.ss()}
    assert listening == {("LISTEN", 80), ("LISTEN", 7)}
    # "Connection: close": ustack closes first, so ustack's side goes to TIME-WAIT (2*MSL = 2 s).
    fetched = serve.inside("curl", "-sS", "--fail", "-H", "Connection: close", "-w", "%{local_port}",
                           "-o", "/dev/null", f"http://{STACK_ADDRESS}/")
    assert fetched.returncode == 0, fetched.stderr
    port = int(fetched.stdout)
    waiting = [c for c in serve.ss("--state", "time-wait") if c["remote"]["port"] == port]
    assert len(waiting) == 1 and waiting[0]["remote"]["address"] == HOST_ADDRESS
    # TIME-WAIT ends by itself after 2*MSL: ask until it is gone (bounded; no fixed sleep).
    wait_for(lambda: not serve.ss("--state", "time-wait"), 10, "the end of TIME-WAIT")
    assert serve.ss("--state", "time-wait") == []


def test_sigterm_removes_namespace_and_control_socket(ustack_serve, run_directory):
    serve = ustack_serve("--echo")
    assert (run_directory / f"{serve.process.pid}.sock").exists()
    assert namespace_exists(serve.namespace)
    assert serve.stop() == 0
    assert not namespace_exists(serve.namespace)
    assert not (run_directory / f"{serve.process.pid}.sock").exists()


def test_download_survives_ten_percent_loss(ustack_serve, site):
    serve = ustack_serve("--http", str(site), "--loss", "0.1", "--seed", "7")
    data = serve.inside("curl", "-sS", "--fail", "--max-time", "50", f"http://{STACK_ADDRESS}/data.bin", text=False)
    assert data.returncode == 0, data.stderr
    assert data.stdout == (site / "data.bin").read_bytes()


# --- ustack connect: ustack as the client of a kernel server ---------------------------------------

KERNEL_SERVER = """
import socket, sys
listener = socket.create_server(("", 5000))  # any address: the TUN does not exist yet
print("listening", flush=True)
connection, _ = listener.accept()
data = b""
while chunk := connection.recv(65536):
    data += chunk
connection.sendall(data.upper())
connection.close()
"""


def run_connect(namespace: str, *arguments: str, input: str = "") -> subprocess.CompletedProcess:
    return run_cli("connect", "--netns", namespace, *arguments, input=input)


def test_connect_sends_stdin_half_closes_and_prints_the_answer(namespace):
    # The namespace exists before ustack connect, so the kernel server can listen in it first;
    # connect must create its TUN there and leave the namespace (not its own) in place.
    server = namespace.popen([sys.executable, "-c", KERNEL_SERVER], stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline() == "listening\n"
    result = run_connect(namespace.name, HOST_ADDRESS, "5000", input="shout this\n")
    assert (result.returncode, result.stdout) == (0, "SHOUT THIS\n"), result.stderr
    assert namespace_exists(namespace.name)


def test_connect_refused_is_one_line_and_exit_1(namespace):
    result = run_connect(namespace.name, HOST_ADDRESS, "5001")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"ustack connect: connection to {HOST_ADDRESS}:5001 refused"]


def test_connect_timeout_is_one_line_and_exit_1(namespace):
    # 10.77.0.5 is on the kernel's /24 but nobody's address: the SYN goes unanswered.
    result = run_connect(namespace.name, "--timeout", "1", "10.77.0.5", "80")
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["ustack connect: connecting to 10.77.0.5:80 timed out"]


RESETTING_SERVER = """
import socket, struct
listener = socket.create_server(("", 5002))
print("listening", flush=True)
connection, _ = listener.accept()
connection.recv(100)
# SO_LINGER with a zero timeout: close() sends RST instead of FIN.
connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
connection.close()
"""


def test_connect_reset_is_one_line_and_exit_1(namespace):
    server = namespace.popen([sys.executable, "-c", RESETTING_SERVER], stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline() == "listening\n"
    result = run_connect(namespace.name, HOST_ADDRESS, "5002", input="trigger\n")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"ustack connect: connection reset by {HOST_ADDRESS}:5002"]


def test_trace_prints_state_changes_on_the_lines_of_their_packets(ustack_serve):
    # --trace: the Tracer is registered with the runtime as an observer; without that, the packet
    # lines would come out bare.
    serve = ustack_serve("--echo", "--trace")
    echoed = serve.inside("nc", "-N", "-w", "10", STACK_ADDRESS, "7", input="traced\n")
    assert (echoed.returncode, echoed.stdout) == (0, "traced\n")
    lines = []
    while not any("SYN-RECEIVED -> ESTABLISHED" in line for line in lines):
        lines.append(serve.wait_for_line(""))  # every line, in order
    (syn,) = [line for line in lines if " < " in line and "Flags [S]," in line]
    assert "LISTEN -> SYN-RECEIVED" in syn, lines
    (established,) = [line for line in lines if "SYN-RECEIVED -> ESTABLISHED" in line]
    assert " < " in established and "Flags [.]" in established, lines
