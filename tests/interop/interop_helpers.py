"""Helpers for the interop tests that run ustack as its users do (`ustack serve`, `ustack connect`)
and read what crossed the wire from the pcap afterwards.

    def test_something(ustack_serve):                    # fixture, offered by conftest.py
        serve = ustack_serve("--echo")                   # a fresh namespace ust-t-<pid>-<n>
        serve.inside("nc", "-N", STACK_ADDRESS, "7", input="hi")
        segments = tcp_segments(serve.pcap_path)         # what the pcap recorded, parsed

Every process is stopped by its own PID, every namespace is removed, and the pcap of a failed
test is kept under test-artifacts/ (the interop_pcap fixture of conftest.py does that).
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, NamedTuple

import pytest

from ustack.aio import AsyncStack
from ustack.aio.transport import FINISHED_STATES
from ustack.netns import Namespace, namespace_exists, stop_process
from ustack.stack import Stack
from ustack.tcp.seq import seq_add, seq_lt
from ustack.wire import address_text, address_value, parse_packet
from ustack.wire.pcap import read_records

from ustack.network import KERNEL_ADDRESS as HOST_ADDRESS  # the kernel's side of the TUN device
from ustack.network import USTACK_ADDRESS as STACK_ADDRESS  # ustack's address: `ustack serve`'s default
RUN_CLI = "import sys; from ustack.cli import main; sys.exit(main())"
READY_TIMEOUT = 30.0
COMMAND_TIMEOUT = 60.0
IO_TIMEOUT = 60.0  # for a whole exchange with a kernel program
POLL_INTERVAL = 0.05  # between two looks at a condition that has no event to wait on


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Ask `condition()` until it gives something true, for at most `timeout` seconds.

    For conditions that have no event to wait on (a kernel socket appearing in `ss`, a timer
    ending): bounded, and done as soon as the condition holds, so never a sleep standing in
    for synchronisation."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        threading.Event().wait(POLL_INTERVAL)


def run_cli(*arguments: str, environment: dict | None = None, input=None, timeout: float = COMMAND_TIMEOUT,
            text: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """`ustack ARGUMENTS...` as a separate process (the same interpreter, this tree)."""
    return subprocess.run([sys.executable, "-c", RUN_CLI, *arguments], input=input, capture_output=True,
                          text=text, timeout=timeout, env=environment, **kwargs)


def inside(namespace: str, *command: str, input=None, timeout: float = COMMAND_TIMEOUT, text: bool = True,
           **kwargs) -> subprocess.CompletedProcess:
    """Run a program in the namespace to completion (killed by subprocess.run on timeout)."""
    if "stdout" not in kwargs and "stderr" not in kwargs:
        kwargs["capture_output"] = True
    return subprocess.run(["ip", "netns", "exec", namespace, *command], input=input, text=text,
                          timeout=timeout, **kwargs)


def kernel_sockets(namespace: str, *filters: str) -> list[str]:
    """Lines of the kernel's `ss -tanH [FILTER...]` inside the namespace."""
    result = inside(namespace, "ss", "-tanH", *filters)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line.strip()]


def wait_for_kernel_listener(namespace: str, port: int, timeout: float = 10.0) -> None:
    """Until a kernel program listens on `port` in the namespace (it has no ready line)."""
    wait_for(lambda: kernel_sockets(namespace, "state", "listening", f"sport = :{port}"), timeout,
             f"a kernel listener on port {port} in {namespace}")


class ServeProcess:
    """One `ustack serve --netns NAME ...` child, whose stdout is read line by line."""

    def __init__(self, namespace: str, arguments: list[str], environment: dict, pcap_path: Path | None,
                 creates_namespace: bool = True) -> None:
        self.namespace = namespace
        self.environment = environment
        self.pcap_path = pcap_path
        self.creates_namespace = creates_namespace  # False: started in a namespace that existed
        self.process = subprocess.Popen(
            [sys.executable, "-c", RUN_CLI, "serve", "--netns", namespace,
             *(["--pcap", str(pcap_path)] if pcap_path is not None else []), *arguments],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self.errors: list[str] = []
        # Both pipes are read all the time, so that a chatty serve never blocks on a full pipe.
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=lambda: self.errors.extend(self.process.stderr), daemon=True).start()

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)  # end of output: the process exited

    def wait_for_line(self, prefix: str, timeout: float = READY_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line {prefix!r} from ustack serve in {timeout} s; got {self.output}") from None
            if line is None:
                raise AssertionError(f"ustack serve exited ({self.process.wait()}): {self.output} "
                                     f"{''.join(self.errors)}")
            self.output.append(line)
            if line.startswith(prefix):
                return line

    def inside(self, *command: str, **kwargs) -> subprocess.CompletedProcess:
        return inside(self.namespace, *command, **kwargs)

    def ss(self, *arguments: str) -> list[dict]:
        """This process's sockets as `ustack ss --json` reports them."""
        result = run_cli("ss", "--json", *arguments, environment=self.environment)
        assert result.returncode == 0, result.stderr
        return [c for c in json.loads(result.stdout) if c["pid"] == self.process.pid]

    def stop(self) -> int:
        """SIGTERM to this PID only; SIGKILL if it does not end in 10 s."""
        return stop_process(self.process, grace=10)

    def kill(self) -> None:
        """SIGKILL to this PID: ustack vanishes without a word (no RST, no FIN), as in a crash.
        The kernel closes the TUN fd, which deletes the device."""
        self.process.kill()
        self.process.wait()


@pytest.fixture
def run_directory():
    """USTACK_RUN_DIR for the control sockets; short (UNIX socket paths are limited)."""
    directory = Path(tempfile.mkdtemp(prefix="ust-run-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def serve_starter(namespace_names: Callable[[], str], environment: dict, default_pcap: Path | None):
    """The body of a fixture that starts `ustack serve` processes (use it with `yield from`).

    Yields start(*serve arguments, namespace=None, pcap=None) -> a ready ServeProcess. By default
    each serve gets a fresh namespace named by `namespace_names()` (which serve creates and
    removes) and records into `default_pcap`; pass namespace= to run in an existing one (e.g. a
    restart). At teardown every serve is stopped by its PID, and a namespace serve created must
    be gone with it."""
    started: list[ServeProcess] = []

    def start(*arguments: str, namespace: str | None = None, pcap: Path | None = None) -> ServeProcess:
        serve = ServeProcess(namespace or namespace_names(), list(arguments), environment, pcap or default_pcap,
                             creates_namespace=namespace is None)
        started.append(serve)
        serve.wait_for_line("ustack: ready")
        return serve

    yield start
    for serve in started:
        serve.stop()
    for serve in started:
        # (A namespace the test made itself is removed by its own fixture, after this teardown.)
        if serve.creates_namespace and namespace_exists(serve.namespace):
            subprocess.run(["ip", "netns", "del", serve.namespace], check=False)
            pytest.fail(f"ustack serve left namespace {serve.namespace} behind")


@pytest.fixture
def ustack_serve(require_interop_environment, namespace_name, run_directory, interop_pcap):
    """start(*serve arguments, namespace=None, pcap=None) -> a ready ServeProcess (see serve_starter),
    each in a fresh namespace ust-t-<pid>-<n>, recording into this test's pcap."""
    environment = {**os.environ, "USTACK_RUN_DIR": str(run_directory)}
    yield from serve_starter(namespace_name, environment, interop_pcap)


def opened_namespace(name: str):
    """The body of a fixture giving a fresh namespace NAME (use it with `yield from`): removed in
    teardown whatever the test did, and checked to be gone."""
    space = Namespace(name)
    space.open()
    try:
        yield space
    finally:
        space.close()
    assert not namespace_exists(space.name), f"namespace {space.name} survived its teardown"


# --- ustack in this process: the asyncio API over the tun_in_namespace fixture's link -------------


def run_client(setup, client):
    """asyncio.run(client(astack)) with ustack at setup.stack_address on the namespace's TUN."""

    async def main():
        stack = Stack(address_value(setup.stack_address))
        async with AsyncStack(stack, setup.link) as astack:
            return await asyncio.wait_for(client(astack), IO_TIMEOUT)

    return asyncio.run(main())


async def finished(astack, writer):
    """Until the connection has delivered everything and its FIN handshake is over.

    wait_closed() returns as soon as the data is in the core's send buffer (like asyncio's socket
    transports: the kernel finishes the close after close()). Here the stack is ours and would
    stop with the AsyncStack, so the test waits for the core to get there first."""
    connection = writer.get_extra_info("connection")
    await astack.wait_until(lambda: connection.state in FINISHED_STATES, IO_TIMEOUT)


# --- reading the pcap ----------------------------------------------------------------------------


class Segment(NamedTuple):
    """One TCP segment from the pcap, with the addresses as text."""

    time: float
    source: tuple[str, int]
    destination: tuple[str, int]
    seq: int
    ack: int
    flags: int
    length: int  # payload bytes


def tcp_segments(pcap_path: Path) -> list[Segment]:
    _, records = read_records(Path(pcap_path).read_bytes())
    segments = []
    for record in records:
        packet = parse_packet(record.data)
        if packet.tcp is None:
            continue
        tcp = packet.tcp
        segments.append(Segment(record.timestamp, (address_text(packet.ip.src), tcp.src_port),
                                (address_text(packet.ip.dst), tcp.dst_port), tcp.seq, tcp.ack, tcp.flags,
                                len(tcp.payload)))
    return segments


def retransmissions(segments: list[Segment]) -> dict[tuple, int]:
    """Data segments whose sequence range starts below what the same side had already sent on
    the same connection: retransmissions, counted per (source, destination)."""
    highest_sent: dict[tuple, int] = {}  # (source, destination) -> sequence number after the last byte
    counts: dict[tuple, int] = {}
    for segment in segments:
        if segment.length == 0:
            continue
        direction = (segment.source, segment.destination)
        end = seq_add(segment.seq, segment.length)
        highest = highest_sent.get(direction)
        if highest is not None and seq_lt(segment.seq, highest):
            counts[direction] = counts.get(direction, 0) + 1
        if highest is None or seq_lt(highest, end):
            highest_sent[direction] = end
    return counts
