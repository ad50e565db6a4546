"""`ustack serve` and `ustack connect` as a user runs them: separate processes, each in a fresh
namespace (ust-t-<pid>-<n>), reached with the kernel's own curl, nc and ping through
`ip netns exec`. Every process is stopped by its PID and every namespace is gone at the end."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from ustack.netns import namespace_exists

STACK_ADDRESS = "10.77.0.2"
HOST_ADDRESS = "10.77.0.1"
RUN_CLI = "import sys; from ustack.cli import main; sys.exit(main())"
READY_TIMEOUT = 30.0
COMMAND_TIMEOUT = 60.0


class ServeProcess:
    """One `ustack serve --netns NAME ...` child, whose stdout is read line by line."""

    def __init__(self, namespace: str, arguments: list[str], environment: dict) -> None:
        self.namespace = namespace
        self.environment = environment
        self.process = subprocess.Popen(
            [sys.executable, "-c", RUN_CLI, "serve", "--netns", namespace, *arguments],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)  # end of output: the process exited

    def wait_for_line(self, prefix: str, timeout: float = READY_TIMEOUT) -> str:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line {prefix!r} from ustack serve in {timeout} s; got {self.output}") from None
            if line is None:
                raise AssertionError(f"ustack serve exited ({self.process.wait()}): {self.output} "
                                     f"{self.process.stderr.read()}")
            self.output.append(line)
            if line.startswith(prefix):
                return line

    def inside(self, *command: str, input: str | None = None, timeout: float = COMMAND_TIMEOUT,
               text: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.namespace, *command], input=input,
                              capture_output=True, text=text, timeout=timeout)

    def ss(self, *arguments: str) -> list[dict]:
        result = subprocess.run([sys.executable, "-c", RUN_CLI, "ss", "--json", *arguments],
                                capture_output=True, text=True, timeout=COMMAND_TIMEOUT, env=self.environment)
        assert result.returncode == 0, result.stderr
        return [c for c in json.loads(result.stdout) if c["pid"] == self.process.pid]

    def stop(self) -> int:
        """SIGTERM to this PID only; SIGKILL if it does not end in 10 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def run_directory():
    directory = Path(tempfile.mkdtemp(prefix="ust-run-", dir="/tmp"))  # short: UNIX socket paths
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text("<h1>served by ustack</h1>\n")
    (root / "data.bin").write_bytes(os.urandom(1024 * 1024))
    return root


@pytest.fixture
def ustack_serve(require_interop_environment, namespace_name, run_directory, interop_pcap):
    started: list[ServeProcess] = []
    environment = {**os.environ, "USTACK_RUN_DIR": str(run_directory)}

    def start(*arguments: str) -> ServeProcess:
        serve = ServeProcess(namespace_name(), ["--pcap", str(interop_pcap), *arguments], environment)
        started.append(serve)
        serve.wait_for_line("ustack: ready")
        return serve

    yield start
    for serve in started:
        serve.stop()
        if namespace_exists(serve.namespace):  # only if serve failed to clean up after itself
            subprocess.run(["ip", "netns", "del", serve.namespace], check=False)
            pytest.fail(f"ustack serve left namespace {serve.namespace} behind")


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
    serve = ustack_serve("--http", str(site))
    downloaded = tmp_path / "downloaded.bin"
    result = serve.inside("curl", "-sS", "--fail", "-o", str(downloaded), f"http://{STACK_ADDRESS}/big.bin")
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(downloaded.read_bytes()).digest() == hashlib.sha256(big).digest()
    result = serve.inside("curl", "-sS", "--fail", "-T", str(downloaded), "-w", "%{http_code}",
                          f"http://{STACK_ADDRESS}/uploaded.bin")
    assert result.returncode == 0 and result.stdout.endswith("201"), result.stderr
    assert hashlib.sha256((site / "uploaded.bin").read_bytes()).digest() == hashlib.sha256(big).digest()


def test_curl_upload_is_stored(ustack_serve, site):
    serve = ustack_serve("--http", str(site))
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
    for _ in range(100):
        if not serve.ss("--state", "time-wait"):
            break
        threading.Event().wait(0.1)
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
    return subprocess.run([sys.executable, "-c", RUN_CLI, "connect", "--netns", namespace, *arguments],
                          input=input, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)


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
