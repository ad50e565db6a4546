#!/usr/bin/env python3
"""ustack beside the Linux kernel, from one run: bulk MB/s each way, new connections per second,
and echo round-trip latency, with the ratio to the kernel and issue 12's goals in the last columns.

    sudo .venv/bin/python scripts/bench.py [--size-mb 100] [--requests 4000] [--echoes 2000] [--repeats 9]
    sudo .venv/bin/python scripts/bench.py --profile profile-dir    # ustack under py-spy too

Every bulk row (curl download and upload, ustack's and the kernel's, the main rows and the
offload/MTU variants) is the MEDIAN of --repeats transfers (default 9), taken in turn with its
kernel twin on the same servers after one untimed transfer each, and the "ustack min-max" column
shows the spread of ustack's. Beside the main rows, each server's CPU per MB over all those
transfers (user and system time from /proc, the untimed one included), a figure the machine's
other load moves far less than MB/s: compare commits by it. One 50 MB transfer lasts about a tenth of a second here, and a
single one swung by a third between runs (a burst of other work, a CPU wake-up, where the
kernel's ACKs fall); the medians of two runs agreed within ~10 % (load 1-2), and the repeats
cost ~1-2 s per row (`--size-mb 50 --requests 2000 --echoes 1000` takes ~45 s). The MTU 65535
downloads still swing more: there the last sub-MSS piece of a file waits for the ACK of the one
full segment before it (Nagle, RFC 9293 3.7.4) while the kernel delays that ACK (40 ms), in some
transfers and not others.

Three small networks, in namespaces named ust-bench-<pid>-* that are always removed at the end
(on errors, Ctrl-C and SIGTERM too); no packet leaves them:

- ustack: the kernel's curl/ab/python in ust-bench-<pid>-u, over the TUN device, to
  `ustack serve` (HTTP, echo) with ustack.network's defaults: 10.77.0.2, MTU 1500.
- kernel: the kernel's curl/ab/python in ust-bench-<pid>-c, over a veth pair (MTU 1500), to the
  SAME Python apps (ustack.apps.HttpFileServer, handle_echo) on asyncio's kernel sockets in
  ust-bench-<pid>-s: the difference between the two columns is the TCP/IP stack.
- native: the same veth pair, with programs that do not run our Python app: nc for bulk data,
  `python3 -m http.server` (a different Python server) for connections per second.

At MTU 1500 the variants also measure `serve --no-offload --cpu 0` (serve on CPU 0 alone, what
its TUN device receives steered to the other CPUs by RPS, ustack/netns.py) beside the kernel's
app pinned to the same CPU with the same steering on both its veth ends.

The connection figures are ab's "Requests per second" without keep-alive (ab -c 20: every request
on a new connection), the median of 3 ab runs taken in turn with the kernel's. The echo rows are
the medians of 5 runs' p50 and p99, in turn with the kernel's, in two stated placements,
the echo client and both servers (serve, the kernel twin's app) pinned to one CPU, then to two
(client on one, servers on the other), so that each ratio compares ustack and the kernel in the
same placement; the servers get their CPUs back afterwards, and the IPv6 echo rows use the
one-CPU placement. Why the placement matters (an echo is two wake-ups: a context switch on one
CPU, an inter-processor interrupt across two) and what it measured: scripts/bench_placement.py.
py-spy's part of --profile is in scripts/bench_profile.py. The server files live on tmpfs (/dev/shm) so the disk is not measured.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import NamedTuple
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ustack.commands.signals import sigterm_as_interrupt  # noqa: E402
from ustack.netns import Namespace, cpu_list_text, create_veth_pair, steer_received_packets, stop_process  # noqa: E402
from ustack.network import DEFAULT_MTU, USTACK_ADDRESS, USTACK_ADDRESS6  # noqa: E402

from bench_placement import echo_placements, pinned_servers  # noqa: E402
from bench_profile import ProfileError, Profiler, profiling, summarize_py_spy  # noqa: E402

KERNEL_SERVER_ADDRESS = "10.78.0.2"
KERNEL_CLIENT_INTERFACE = "10.78.0.1/24"  # the kernel twin's client end of its veth pair
NC_PORT = 5001
NATIVE_HTTP_PORT = 8000
# Issue 12's goals, against the kernel running the same Python app in the same run.
GOAL_DOWNLOAD_MEGABYTES_PER_SECOND = 1000.0  # and at least this fraction of the kernel's:
GOAL_DOWNLOAD_FRACTION = 0.4
GOAL_UPLOAD_FRACTION = 0.9
GOAL_CONNECTIONS_FRACTION = 1.0
GOAL_ECHO_P50_FACTOR = 1.2  # at most this many times the kernel's round trip
GOAL_ECHO_P99_FACTOR = 1.5
IPV6_GOAL_FRACTION = 0.9  # issue 11: ustack over IPv6 within 10 % of ustack over IPv4 (same run, in turn)
READY_TIMEOUT = 30.0
COMMAND_TIMEOUT = 60.0
DEFAULT_REPEATS = 9  # bulk transfers per row: the row is their median (module docstring)
# Untimed ab connections to each server before the connections row: none on CPython; on PyPy,
# whose JIT compiles the connection path as it goes (the rate climbs from ~200/s to ~1,200/s
# over the first ~20,000 connections), enough for the row to measure the compiled code.
WARM_UP_CONNECTIONS = 20_000 if platform.python_implementation() == "PyPy" else 0
# Untimed MB each way to each server before the bulk rows: none on CPython; on PyPy the JIT is
# still compiling the bulk paths over the first few hundred MB (serve's CPU per MB downloaded
# read 5-9 ms over the first 100 MB, 1.3-2.0 by about the sixth), so without it those rows measured
# the compiler more than ustack (twelfth pass). After 600 MB a download's CPU was still ~35 %
# tracing and compiling (pypyjit's counters: 430-465 us of ~1,600 per MB, 80 new traces per 500
# MB, thirteenth pass); after 3 GB each way, ~6 %.
WARM_UP_MEGABYTES = 3000 if platform.python_implementation() == "PyPy" else 0
# Untimed echo round trips to each server before the echo rows, on PyPy: a fresh echo path cost
# serve 193 us of CPU per echo over the first 5,500 echoes, 60-67 over the next 16,000, and
# settled at 40-50 after ~30,000 (the twin's Python 60, then 22-35; fourteenth pass), so without
# it those rows measured the JIT compiling. None on CPython.
WARM_UP_ECHOES = 30_000 if platform.python_implementation() == "PyPy" else 0
MEGABYTE = 1e6  # MB/s as curl and ab count them: 10**6 bytes

# The same Python apps ustack serves, on the kernel's sockets through asyncio, with the same heap,
# garbage-collector and priority settings as `ustack serve` (ustack/heap.py, ustack/collector.py,
# ustack/priority.py). It logs each request as `ustack serve --http` does, a line and a write(2)
# each (until the thirteenth pass, December 2026, it logged nothing, and serve did that work
# alone: ~4 us per connection, under 1 % of its CPU). Its listeners share their ports
# (SO_REUSEPORT) so that scripts/bench_workers.py can run N of them beside `serve --workers N`;
# one process alone serves as it would without. Without the heap setting, glibc's mmap threshold
# rises once the first 1 MiB file chunk is freed, and this app's uploads ran twice as fast after
# downloads as before them (249 against 534 MB/s), a figure that measured glibc rather than the
# stack.
KERNEL_APP_SERVER = """
import asyncio, sys
from ustack.apps import HttpFileServer, handle_discard, handle_echo
from ustack.collector import collect_cycles_less_often
from ustack.heap import keep_freed_heap_for_reuse
from ustack.priority import run_ahead_of_clients

keep_freed_heap_for_reuse()
collect_cycles_less_often()
run_ahead_of_clients()

def log(line):
    # As `ustack serve` logs each request: one line, one write (its stdout is line by line).
    sys.stdout.write(f"http   : {line}\\n")
    sys.stdout.flush()

async def main():
    await asyncio.start_server(HttpFileServer(sys.argv[1], allow_upload=True, log=log), "0.0.0.0", 80,
                               backlog=1024, reuse_port=True)
    await asyncio.start_server(handle_echo, "0.0.0.0", 7, backlog=1024, reuse_port=True)
    await asyncio.start_server(handle_discard, "0.0.0.0", 9, backlog=1024, reuse_port=True)
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

# Turns the offloads of veth ends off (ethtool -K DEV tso off gso off gro off), run inside their
# namespace: the kernel's twin of `serve --no-offload`, every segment MSS-sized on the wire and
# through both stacks.
OFFLOADS_OFF = """
import sys
from pyroute2.ethtool import Ethtool
with Ethtool() as tool:
    features = tool.get_features(sys.argv[1])
    for name in ("tx-tcp-segmentation", "tx-tcp6-segmentation", "tx-generic-segmentation", "rx-gro"):
        features.features[name].enable = False
    tool.set_features(sys.argv[1], features)
"""

# N sequential small echoes on one connection: the round-trip time of each, in microseconds.
ECHO_CLIENT_WARM_UP = 100  # round trips the echo client makes before it starts timing them
ECHO_CLIENT = """
import socket, statistics, sys, time
address, count = sys.argv[1], int(sys.argv[2])
client = socket.create_connection((address, 7), timeout=10)
client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
message = b"x" * 64
samples = []
for index in range(count + WARM_UP):  # the first WARM_UP warm up (slow start, caches)
    start = time.perf_counter()
    client.sendall(message)
    received = 0
    while received < len(message):
        chunk = client.recv(len(message) - received)
        if not chunk:
            sys.exit("the echo server closed the connection")
        received += len(chunk)
    if index >= WARM_UP:
        samples.append((time.perf_counter() - start) * 1e6)
client.close()
samples.sort()
print(samples[len(samples) // 2], samples[int(len(samples) * 0.99)])
""".replace("WARM_UP", str(ECHO_CLIENT_WARM_UP))


# One upload to the Discard service (RFC 863, port 9): the file sent with sendfile(2), then our
# side shut; the server closes when it has read everything, so the time to that close is the
# transfer's. MB/s. A sink with no file to write: the HTTP upload rows store each body in a tmpfs
# file, which costs this machine ~850 us of the server's CPU per MB (the write, then freeing the
# file it replaces), most of a 1,000 MB/s upload's budget (README, "How the benchmarks measure").
DISCARD_CLIENT = """
import os, socket, sys, time
address, path = sys.argv[1], sys.argv[2]
port = int(sys.argv[3]) if len(sys.argv) > 3 else 9
with open(path, "rb") as source:
    size = os.fstat(source.fileno()).st_size
    start = time.perf_counter()
    client = socket.create_connection((address, port), timeout=20)
    client.sendfile(source)
    client.shutdown(socket.SHUT_WR)
    if client.recv(1):
        sys.exit("the discard server sent data")
    elapsed = time.perf_counter() - start
print(size / elapsed / 1e6)
"""


class Goal(NamedTuple):
    """A row's goal as printed, and whether this run met it."""

    text: str
    met: bool


def at_least(value: float, threshold: float, text: str | None = None) -> Goal:
    return Goal(text or f">= {threshold:,.0f}", value >= threshold)


def at_most(value: float, threshold: float, text: str) -> Goal:
    return Goal(text, value <= threshold)


def download_goal(ustack: float, kernel: float) -> Goal:
    threshold = max(GOAL_DOWNLOAD_MEGABYTES_PER_SECOND, GOAL_DOWNLOAD_FRACTION * kernel)
    return at_least(ustack, threshold, f">= {GOAL_DOWNLOAD_MEGABYTES_PER_SECOND:,.0f} and {GOAL_DOWNLOAD_FRACTION}x")


class BenchError(Exception):
    """Something the benchmark could not do, in one line."""


class Sample(NamedTuple):
    """The median of repeated measurements, with the smallest and largest (the spread)."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> "Sample":
        return cls(statistics.median(values), min(values), max(values))


def repeated(repeats: int, *measures) -> list[Sample]:
    """Each of `measures` (functions returning a figure) run once untimed (a fresh server's first
    transfer pays for its imports, allocations and caches), then `repeats` times in turn (a, b,
    a, b, ...), so that every one of them meets the same moments of a shared machine; the Sample
    of each."""
    for measure in measures:
        measure()
    results: list[list[float]] = [[] for _ in measures]
    for _ in range(repeats):
        for measure, values in zip(measures, results):
            values.append(measure())
    return [Sample.of(values) for values in results]


class Server:
    """A server process started in a namespace, stopped by its own PID at the end. Its stdout and
    stderr go to files, not pipes: `ustack serve` logs a line per HTTP request, and a pipe read by
    a Python thread here made serve wait on every line while ab ran (a third of its time, by
    py-spy), which measured this script rather than the stack."""

    def __init__(self, command: list[str], environment: dict | None = None) -> None:
        self.command = command
        self._stdout = tempfile.TemporaryFile("w+", dir=_SCRATCH)
        self._stderr = tempfile.TemporaryFile("w+", dir=_SCRATCH)
        self.process = subprocess.Popen(command, stdout=self._stdout, stderr=self._stderr, text=True,
                                        env=environment)

    @property
    def output(self) -> list[str]:
        self._stdout.seek(0)
        return self._stdout.read().splitlines()

    def wait_ready(self, prefix: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not any(line.startswith(prefix) for line in self.output):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self._stderr.seek(0)
                error = self._stderr.read() if self.process.poll() is not None else "(still running)"
                raise BenchError(f"{' '.join(self.command[:6])}... never said {prefix!r}: {self.output} {error}")
            threading.Event().wait(0.02)  # a script polling a file, not a test: no event to wait on

    def stop(self) -> None:
        stop_process(self.process, grace=15)
        self._stdout.close()
        self._stderr.close()


_SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None  # tmpfs: no disk in the figures


def connect_kernel_twin(client_space: Namespace, server_space: Namespace, client_end: str, server_end: str,
                        mtu: int = DEFAULT_MTU) -> None:
    """The veth pair between the kernel twin's client and server namespaces, with the twin's
    addresses (this script's and bench_workers.py's one set-up of the kernel's network)."""
    create_veth_pair(client_space, server_space, client_end, server_end, KERNEL_CLIENT_INTERFACE,
                     f"{KERNEL_SERVER_ADDRESS}/24", mtu=mtu)


def inside(namespace: Namespace, *command: str, timeout: float = COMMAND_TIMEOUT) -> str:
    """Run a program in the namespace; its stdout, or BenchError with its stderr."""
    result = subprocess.run(namespace.command(list(command)), capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise BenchError(f"{' '.join(command[:4])}... failed ({result.returncode}): {result.stderr.strip()[-300:]}")
    return result.stdout


def wait_for_listener(namespace: Namespace, port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if inside(namespace, "ss", "-tlnH", f"sport = :{port}").strip():
            return
        threading.Event().wait(0.05)
    raise BenchError(f"nothing listens on port {port} in {namespace.name}")


# --- the measurements ------------------------------------------------------------------------------


def download_rate(namespace: Namespace, url: str) -> float:
    """MB/s of one curl download (curl's own figure: bytes over the whole transfer time)."""
    return float(inside(namespace, "curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{speed_download}", url)) / MEGABYTE


def upload_rate(namespace: Namespace, url: str, source: Path) -> float:
    return float(inside(namespace, "curl", "-sS", "--fail", "-o", "/dev/null", "-T", str(source),
                        "-w", "%{speed_upload}", url)) / MEGABYTE


def discard_rate(namespace: Namespace, address: str, source: Path) -> float:
    """MB/s of one upload of `source` to the Discard service at `address` (DISCARD_CLIENT)."""
    return float(inside(namespace, sys.executable, "-c", DISCARD_CLIENT, address, str(source)))


def in_turn(measure_a, measure_b, rounds: int = 3):
    """The medians of `rounds` measurements of each, taken in turn (a, b, b, a, ...): numbers, or
    tuples of numbers (an echo's p50 and p99) taken element by element. The median, because one
    round on a shared machine can be off by 40 % (a burst of other work, a CPU wake-up), and in
    turn so that both meet the same moments."""
    results_a, results_b = [], []
    for round_ in range(rounds):
        pairs = ((measure_a, results_a), (measure_b, results_b))
        for measure, results in (pairs if round_ % 2 == 0 else pairs[::-1]):
            results.append(measure())
    return _median(results_a), _median(results_b)


def _median(values: list):
    if isinstance(values[0], tuple):
        return tuple(statistics.median(column) for column in zip(*values))
    return statistics.median(values)


def connections_per_second(namespace: Namespace, url: str, requests: int) -> float:
    output = inside(namespace, "ab", "-q", "-n", str(requests), "-c", "20", "-s", "20", url, timeout=120)
    failed = re.search(r"^Failed requests:\s+(\d+)", output, re.M)
    rate = re.search(r"^Requests per second:\s+([\d.]+)", output, re.M)
    if not (failed and rate):
        raise BenchError(f"cannot read ab's report: {output[-500:]}")
    if int(failed.group(1)) or "Non-2xx responses" in output:
        raise BenchError(f"ab saw failed requests against {url}:\n{output[-800:]}")
    return float(rate.group(1))


def process_cpu_seconds(*pids: int) -> float:
    """CPU seconds (user and system) that the processes `pids` and their children still running
    (serve's workers) have used so far: the scheduler's nanosecond count of each of their threads
    (/proc/PID/task/TID/schedstat). /proc/PID/stat counts in ticks of 10 ms, too coarse for the
    ~40-140 ms that serve spends on an echo row; a thread that has ended and a process already
    gone count nothing (serve and the kernel twin run one thread each)."""
    every = list(pids)
    for pid in pids:
        with contextlib.suppress(OSError):
            every += [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    nanoseconds = 0
    for pid in every:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    nanoseconds += int((task / "schedstat").read_text().split()[0])
    return nanoseconds / 1e9


def connections_and_cpu(namespace: Namespace, url: str, requests: int, *server_pids: int) -> tuple[float, float]:
    """ab's connections per second, and the server processes' CPU microseconds per connection
    (user and system, `process_cpu_seconds`) during that run: serve is one process on one core,
    so while it is busy the first is about 10**6 over the second, and the second, unlike the
    first, hardly moves with the machine's other load. The kernel's twin is charged its own
    system calls (a send delivers to ab inside it, as a TUN write does) but not the handshakes,
    which the kernel answers in ab's connect()."""
    before = process_cpu_seconds(*server_pids)
    rate = connections_per_second(namespace, url, requests)
    return rate, (process_cpu_seconds(*server_pids) - before) * 1e6 / requests


def upload_and_cpu(namespace: Namespace, url: str, source: Path, *server_pids: int) -> tuple[float, float]:
    """`upload_rate` of one upload of `source`, and the server processes' CPU microseconds per MB
    during it (`process_cpu_seconds`), as connections_and_cpu is for `ab`."""
    before = process_cpu_seconds(*server_pids)
    rate = upload_rate(namespace, url, source)
    return rate, (process_cpu_seconds(*server_pids) - before) * 1e6 / (source.stat().st_size / MEGABYTE)


def with_server_cpu(megabytes: float, ustack_pids: tuple, kernel_pids: tuple, transfers):
    """`transfers()`'s result, and the servers' CPU microseconds per MB over it (user and system,
    `process_cpu_seconds`), ustack's and the kernel twin's, each having moved `megabytes`. A
    server waiting for its turn uses no CPU (DESIGN.md rule 6; asyncio likewise), so the CPU over
    a block of transfers in turn is each one's own. CPU per MB moves far less than MB/s with the
    machine's other load; the twin is charged as in `connections_and_cpu`."""
    before = process_cpu_seconds(*ustack_pids), process_cpu_seconds(*kernel_pids)
    result = transfers()
    return (result, (process_cpu_seconds(*ustack_pids) - before[0]) * 1e6 / megabytes,
            (process_cpu_seconds(*kernel_pids) - before[1]) * 1e6 / megabytes)


def echo_latency(namespace: Namespace, address: str, count: int, cpu: int | None = None) -> tuple[float, float]:
    """p50 and p99 of `count` echo round trips; the client on CPU `cpu` alone, or where the
    scheduler puts it (None)."""
    pinned = [] if cpu is None else ["taskset", "-c", str(cpu)]
    p50, p99 = inside(namespace, *pinned, sys.executable, "-c", ECHO_CLIENT, address, str(count)).split()
    return float(p50), float(p99)


def echo_latency_and_cpu(namespace: Namespace, address: str, count: int, cpu: int | None,
                         *server_pids: int) -> tuple[float, float, float]:
    """`echo_latency`'s p50 and p99, and the server processes' CPU microseconds per echo over
    it (`process_cpu_seconds`). On one CPU a round trip is all CPU work, and the slower periods
    of this VM's CPU (hundreds to thousands of echoes, both servers alike, fifteenth pass) move
    the latency of whichever row they hit; the CPU per echo says what each server's share is."""
    before = process_cpu_seconds(*server_pids)
    p50, p99 = echo_latency(namespace, address, count, cpu)
    # (the CPU went to every round trip the client made: its warm-up ones too)
    return p50, p99, (process_cpu_seconds(*server_pids) - before) * 1e6 / (count + ECHO_CLIENT_WARM_UP)


def nc_rate(client: Namespace, server: Namespace, size: int, upload: bool) -> float:
    """MB/s of `size` zero bytes through kernel nc over the veth pair; upload = client to server."""
    sender, receiver = (client, server) if upload else (server, client)
    listener_side = server
    feed = f"head -c {size} /dev/zero"
    if upload:
        listen = server.popen(["sh", "-c", f"nc -l -4 {NC_PORT} > /dev/null"])
    else:
        listen = server.popen(["sh", "-c", f"{feed} | nc -N -l -4 {NC_PORT}"])
    try:
        wait_for_listener(listener_side, NC_PORT)
        start = time.perf_counter()
        if upload:
            inside(sender, "sh", "-c", f"{feed} | nc -N {KERNEL_SERVER_ADDRESS} {NC_PORT}")
        else:
            inside(receiver, "sh", "-c", f"nc -d {KERNEL_SERVER_ADDRESS} {NC_PORT} > /dev/null")
        elapsed = time.perf_counter() - start
        listen.wait(timeout=COMMAND_TIMEOUT)
    finally:
        if listen.poll() is None:
            listen.kill()
            listen.wait()
    return size / elapsed / MEGABYTE


# --- the run ---------------------------------------------------------------------------------------


def run(args, work: Path, spaces: list[Namespace]) -> list[tuple[str, str, str, str, str]]:
    prefix = f"ust-bench-{os.getpid()}"
    size = args.size_mb * 1_000_000
    site = work / "site"
    site.mkdir()
    big = site / "big.bin"
    big.write_bytes(os.urandom(1_000_000) * args.size_mb)  # random-looking, nothing compresses it
    (site / "small.html").write_text("<p>hello</p>\n" * 20)
    upload_source = work / "upload.bin"
    shutil.copyfile(big, upload_source)

    ustack_space = Namespace(f"{prefix}-u")
    client_space = Namespace(f"{prefix}-c")
    server_space = Namespace(f"{prefix}-s")
    for space in (ustack_space, client_space, server_space):
        spaces.append(space)
        space.open()
    connect_kernel_twin(client_space, server_space, "ust-bench-c", "ust-bench-s")

    # ustack, as a user runs it. The namespace is ours (so it goes even if serve dies badly);
    # serve adds its TUN device there.
    environment = {**os.environ, "USTACK_RUN_DIR": str(work)}
    serve_command = [sys.executable, "-m", "ustack", "serve", "--netns", ustack_space.name, "--http", str(site),
                     "--allow-upload", "--echo"]
    ustack = Server(serve_command, environment)
    profiler = Profiler(Path(args.profile), ustack.process.pid) if args.profile else None
    kernel_app = Server(server_space.command([sys.executable, "-c", KERNEL_APP_SERVER, str(site)]))
    try:
        ustack.wait_ready("ustack: ready")
        kernel_app.wait_ready("ready")
        ustack_url = f"http://{USTACK_ADDRESS}"
        kernel_url = f"http://{KERNEL_SERVER_ADDRESS}"
        say = (lambda text: print(f"  {text}", file=sys.stderr, flush=True))

        if args.warm_up_mb:
            say(f"  {args.warm_up_mb} MB each way to each server first, untimed (--warm-up-mb)")
            for _ in range(max(1, round(args.warm_up_mb / args.size_mb))):
                download_rate(ustack_space, f"{ustack_url}/big.bin")
                download_rate(client_space, f"{kernel_url}/big.bin")
                upload_rate(ustack_space, f"{ustack_url}/up.bin", upload_source)
                upload_rate(client_space, f"{kernel_url}/up-kernel.bin", upload_source)
        say(f"bulk download (curl), {args.repeats} times each")
        # (repeated() makes one untimed transfer each first: the CPU counts it too)
        moved = (args.repeats + 1) * size / MEGABYTE
        servers = (ustack.process.pid,), (kernel_app.process.pid,)
        with profiling(profiler, "download"):
            (ustack_download, kernel_download), ustack_download_cpu, kernel_download_cpu = with_server_cpu(
                moved, *servers, lambda: repeated(
                    args.repeats, lambda: download_rate(ustack_space, f"{ustack_url}/big.bin"),
                    lambda: download_rate(client_space, f"{kernel_url}/big.bin")))
        rows = [("bulk download MB/s (curl GET)", ustack_download, kernel_download,
                 nc_rate(client_space, server_space, size * 5, upload=False),
                 download_goal(ustack_download.median, kernel_download.median)),
                ("server CPU us per MB downloaded (same runs)", ustack_download_cpu, kernel_download_cpu, None, None)]
        say(f"bulk upload (curl -T), {args.repeats} times each")
        with profiling(profiler, "upload"):
            (ustack_upload, kernel_upload), ustack_upload_cpu, kernel_upload_cpu = with_server_cpu(
                moved, *servers, lambda: repeated(
                    args.repeats, lambda: upload_rate(ustack_space, f"{ustack_url}/up.bin", upload_source),
                    lambda: upload_rate(client_space, f"{kernel_url}/up-kernel.bin", upload_source)))
        rows.append(("bulk upload MB/s (curl -T)", ustack_upload, kernel_upload,
                     nc_rate(client_space, server_space, size * 5, upload=True),
                     at_least(ustack_upload.median, GOAL_UPLOAD_FRACTION * kernel_upload.median,
                              f">= {GOAL_UPLOAD_FRACTION}x")))
        rows.append(("server CPU us per MB uploaded (same runs)", ustack_upload_cpu, kernel_upload_cpu, None, None))
        say("connections per second (ab -c 20)")
        native_http = server_space.popen([sys.executable, "-m", "http.server", str(NATIVE_HTTP_PORT), "--bind",
                                          "0.0.0.0", "--directory", str(site)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_listener(server_space, NATIVE_HTTP_PORT)
        if args.warm_up:
            # PyPy's JIT compiles a server's connection path over its first ~20,000 connections;
            # measured before that, the row says how fast it warms up, for both servers alike.
            say(f"  {args.warm_up} connections to each server first, untimed (--warm-up)")
            for start in range(0, args.warm_up, 5000):  # ab runs of 5,000: each well within its timeout
                count = min(5000, args.warm_up - start)
                connections_per_second(ustack_space, f"{ustack_url}/small.html", count)
                connections_per_second(client_space, f"{kernel_url}/small.html", count)
        with profiling(profiler, "connections"):
            (ustack_connections, ustack_cpu), (kernel_connections, kernel_cpu) = in_turn(
                lambda: connections_and_cpu(ustack_space, f"{ustack_url}/small.html", args.requests,
                                            ustack.process.pid),
                lambda: connections_and_cpu(client_space, f"{kernel_url}/small.html", args.requests,
                                            kernel_app.process.pid))
        rows.append(("connections/s (ab -c 20, 1 request each)", ustack_connections, kernel_connections,
                     connections_per_second(client_space, f"{kernel_url}:{NATIVE_HTTP_PORT}/small.html",
                                            args.requests),
                     at_least(ustack_connections, GOAL_CONNECTIONS_FRACTION * kernel_connections,
                              f">= {GOAL_CONNECTIONS_FRACTION}x")))
        rows.append(("server CPU us per connection (same ab runs)", ustack_cpu, kernel_cpu, None,
                     at_most(ustack_cpu, kernel_cpu / GOAL_CONNECTIONS_FRACTION, "<= 1.0x")))
        native_http.terminate()
        server_pids = [ustack.process.pid, kernel_app.process.pid]
        placements = echo_placements(os.sched_getaffinity(0))
        if args.warm_up_echoes:
            say(f"  {args.warm_up_echoes} echoes to each server first, untimed (--warm-up-echoes)")
            echo_latency(ustack_space, USTACK_ADDRESS, args.warm_up_echoes)
            echo_latency(client_space, KERNEL_SERVER_ADDRESS, args.warm_up_echoes)
        for placement in placements:
            say(f"echo latency, {placement.name} (client on CPU {placement.client_cpu}, servers on "
                f"CPU {placement.server_cpu})")
            with profiling(profiler, f"echo-cpus{placement.client_cpu}{placement.server_cpu}"), pinned_servers(server_pids, placement.server_cpu):
                ustack_latency, kernel_latency = in_turn(
                    lambda: echo_latency_and_cpu(ustack_space, USTACK_ADDRESS, args.echoes, placement.client_cpu,
                                                 ustack.process.pid),
                    lambda: echo_latency_and_cpu(client_space, KERNEL_SERVER_ADDRESS, args.echoes,
                                                 placement.client_cpu, kernel_app.process.pid),
                    rounds=5)  # a tail percentile needs the rounds
            for index, (percentile, factor) in enumerate((("p50", GOAL_ECHO_P50_FACTOR), ("p99", GOAL_ECHO_P99_FACTOR))):
                rows.append((f"echo round trip {percentile} us (64 B), {placement.name}", ustack_latency[index],
                             kernel_latency[index], None,
                             at_most(ustack_latency[index], factor * kernel_latency[index], f"<= {factor}x")))
            rows.append((f"server CPU us per echo, {placement.name} (same runs)", ustack_latency[2],
                         kernel_latency[2], None, None))
        # The same ustack over IPv6 (fd00:77::2 on the same TUN device): issue 11's goal is IPv6
        # within 10 % of IPv4 (90 % of its rate; a round trip at most IPv4's / 0.9).
        say("the same over IPv6")
        url6 = f"http://[{USTACK_ADDRESS6}]"
        if args.warm_up_mb or args.warm_up:
            # PyPy's JIT compiles IPv6's own paths (the codec, the stack's IPv6 side) only when
            # they first run: untimed, they made these rows measure it compiling, and the IPv4
            # transfers timed in turn with them too (300-387 MB/s against ~1,200 above; thirteenth
            # pass). A third of the bulk warm-up, a quarter of the connections' and the echoes
            # once, over IPv6.
            say("  IPv6 to ustack first, untimed (--warm-up-mb, --warm-up)")
            for _ in range(round(args.warm_up_mb / 3 / args.size_mb)):
                download_rate(ustack_space, f"{url6}/big.bin")
                upload_rate(ustack_space, f"{url6}/up6.bin", upload_source)
            if args.warm_up:
                connections_per_second(ustack_space, f"{url6}/small.html", min(5000, args.warm_up // 4))
                echo_latency(ustack_space, USTACK_ADDRESS6, args.echoes)
        # IPv4 and IPv6 measured in turn on the same serve, so both families meet the same moment
        # (a row's slot in a run moved it by up to 40 % on this machine, more than the family).
        download4, download6 = in_turn(
            lambda: download_rate(ustack_space, f"{ustack_url}/big.bin"),
            lambda: download_rate(ustack_space, f"{url6}/big.bin"))
        upload4, upload6 = in_turn(
            lambda: upload_rate(ustack_space, f"{ustack_url}/up.bin", upload_source),
            lambda: upload_rate(ustack_space, f"{url6}/up6.bin", upload_source))
        connections4, connections6 = in_turn(
            lambda: connections_per_second(ustack_space, f"{ustack_url}/small.html", args.requests),
            lambda: connections_per_second(ustack_space, f"{url6}/small.html", args.requests))
        # The echoes in the first placement (one CPU: no cross-CPU wake-ups, whose millisecond
        # tails would decide the p99 row rather than the address family).
        placement = placements[0]
        with pinned_servers([ustack.process.pid], placement.server_cpu):
            latency4, latency6 = in_turn(
                lambda: echo_latency(ustack_space, USTACK_ADDRESS, args.echoes, placement.client_cpu),
                lambda: echo_latency(ustack_space, USTACK_ADDRESS6, args.echoes, placement.client_cpu),
                rounds=5)  # cheap, and a tail percentile needs the rounds
        rows += [
            (f"IPv6: bulk download MB/s (IPv4 in turn: {download4:,.0f})", download6, None, None,
             at_least(download6, IPV6_GOAL_FRACTION * download4)),
            (f"IPv6: bulk upload MB/s (IPv4 in turn: {upload4:,.0f})", upload6, None, None,
             at_least(upload6, IPV6_GOAL_FRACTION * upload4)),
            (f"IPv6: connections/s (IPv4 in turn: {connections4:,.0f})", connections6, None, None,
             at_least(connections6, IPV6_GOAL_FRACTION * connections4)),
            (f"IPv6: echo p50 us, one CPU (IPv4 in turn: {latency4[0]:,.0f})", latency6[0], None, None,
             at_most(latency6[0], latency4[0] / IPV6_GOAL_FRACTION, f"<= {latency4[0] / IPV6_GOAL_FRACTION:,.0f}")),
            (f"IPv6: echo p99 us, one CPU (IPv4 in turn: {latency4[1]:,.0f})", latency6[1], None, None,
             at_most(latency6[1], latency4[1] / IPV6_GOAL_FRACTION, f"<= {latency4[1] / IPV6_GOAL_FRACTION:,.0f}")),
        ]
    finally:
        ustack.stop()
        kernel_app.stop()
    if not args.no_variants:
        rows += variant_rows(work, spaces, prefix, site, upload_source, environment, args.repeats,
                             warm_up_transfers=round(args.warm_up_mb / 3 / args.size_mb))
    if profiler is not None:
        for name, raw in profiler.recorded:
            print(f"\n== where ustack serve spends its time: {name} ==")
            print(summarize_py_spy(raw))
        print(f"\n(py-spy's collapsed stacks are in {profiler.directory}; flamegraph.pl or speedscope draw them)\n")
    return rows


# Issue 12's goals for the bulk rows: (offload, mtu) -> MB/s each way. MTU 1500 with offload has
# the main rows' goals instead (download 1,000 MB/s and 0.4x, upload 0.9x the kernel's same app).
VARIANT_GOALS = {(False, 1500): 200.0, (True, 65535): 1000.0, (False, 65535): 1000.0}


def variant_goals(offload: bool, mtu: int, down: float, kernel_down: float, up: float,
                  kernel_up: float) -> tuple[Goal, Goal]:
    """The goals of one bulk variant's download and upload rows (from the medians)."""
    if (offload, mtu) == (True, 1500):
        return (download_goal(down, kernel_down),
                at_least(up, GOAL_UPLOAD_FRACTION * kernel_up, f">= {GOAL_UPLOAD_FRACTION}x"))
    goal = VARIANT_GOALS[(offload, mtu)]
    return at_least(down, goal), at_least(up, goal)


class Variant(NamedTuple):
    """One bulk variant: ustack's offloads on or off, and `cpu`: None, or the CPU that serve (and
    the kernel's app beside it) runs on alone, with the packets each receiving device gets
    steered (RPS) to the other CPUs (`serve --cpu`)."""

    offload: bool
    cpu: int | None = None

    def label(self, mtu: int) -> str:
        steering = "" if self.cpu is None else f", server on CPU {self.cpu}, RPS to {cpu_list_text(_other_cpus(self.cpu))}"
        return f"offload {'on' if self.offload else 'off'}, mtu {mtu}{steering}"


def _other_cpus(cpu: int) -> set[int]:
    return os.sched_getaffinity(0) - {cpu}


def variants_of(mtu: int) -> list[Variant]:
    """Offload on and off at each MTU; at MTU 1500 also offload off with `serve --cpu` (where
    there are two CPUs or more): the row issue 12's 200 MB/s goal is about."""
    variants = [Variant(True), Variant(False)]
    if mtu == 1500 and len(os.sched_getaffinity(0)) > 1:
        variants.append(Variant(False, cpu=min(os.sched_getaffinity(0))))
    return variants


def variant_rows(work: Path, spaces: list[Namespace], prefix: str, site: Path, upload_source: Path,
                 environment: dict, repeats: int, warm_up_transfers: int = 0) -> list[tuple]:
    """Bulk MB/s each way with offload on and off (`serve --no-offload`), at MTU 1500 and 65535,
    each beside the kernel's same app over a veth pair of the same MTU, its offloads on or off
    like ustack's (issue 12); at MTU 1500 also offload off with `serve --cpu`, beside the kernel's
    app on the same CPU with both its veth ends steered to the same other CPUs (the same
    steering: serve's TUN device is where the kernel receives both directions' packets). Every
    serve runs in a fresh namespace of its own; the kernel's pairs for each MTU are made here. At
    MTU 65535, whose goal is 1,000 MB/s each way, uploads go to the Discard service too (a sink:
    the HTTP rows also measure writing a tmpfs file).
    The serves of one MTU and the kernel's apps run side by side (idle while the others
    measure), so that all are measured in turn, `repeats` times each way, and meet the same
    moments. `warm_up_transfers` (on PyPy) downloads and uploads to each server first, untimed:
    each variant is a fresh serve whose JIT has compiled nothing yet, and so is each twin (until
    the fourteenth pass these rows measured PyPy compiling)."""
    rows = []
    for mtu in (1500, 65535):
        variants = variants_of(mtu)
        kernel_spaces = {}  # variant -> the kernel's client namespace
        servers = []
        ustack_spaces = {}
        try:
            for variant in variants:
                tag = f"{mtu}{'' if variant.offload else 'n'}{'' if variant.cpu is None else 'p'}"
                client_space, server_space = Namespace(f"{prefix}-c{tag}"), Namespace(f"{prefix}-s{tag}")
                for space in (client_space, server_space):
                    spaces.append(space)
                    space.open()
                connect_kernel_twin(client_space, server_space, f"ustb-c{tag}", f"ustb-s{tag}", mtu)
                for space, name in ((client_space, f"ustb-c{tag}"), (server_space, f"ustb-s{tag}")):
                    if not variant.offload:
                        inside(space, sys.executable, "-c", OFFLOADS_OFF, name)
                    if variant.cpu is not None:
                        steer_received_packets(space, name, _other_cpus(variant.cpu))
                kernel_spaces[variant] = client_space
                pinned = [] if variant.cpu is None else ["taskset", "-c", str(variant.cpu)]
                servers.append(Server([*pinned, *server_space.command([sys.executable, "-c", KERNEL_APP_SERVER,
                                                                       str(site)])]))
                space = ustack_spaces[variant] = Namespace(f"{prefix}-u{tag}")
                spaces.append(space)
                space.open()
                servers.append(Server([sys.executable, "-m", "ustack", "serve", "--netns", space.name, "--http",
                                       str(site), "--allow-upload", "--discard", "--mtu", str(mtu),
                                       *([] if variant.offload else ["--no-offload"]),
                                       *([] if variant.cpu is None else ["--cpu", str(variant.cpu)])], environment))
            for kernel, ustack in zip(servers[::2], servers[1::2]):
                kernel.wait_ready("ready")
                ustack.wait_ready("ustack: ready")
            print(f"  bulk both ways, mtu {mtu}: {'; '.join(variant.label(mtu) for variant in variants)} "
                  f"(the kernel's too), {repeats} times each{', and to discard' if mtu == 65535 else ''}"
                  f"{f', after {warm_up_transfers} untimed each' if warm_up_transfers else ''}",
                  file=sys.stderr, flush=True)
            kernel_url, ustack_url = f"http://{KERNEL_SERVER_ADDRESS}", f"http://{USTACK_ADDRESS}"
            pairs = [(kernel_spaces[variant], ustack_spaces[variant]) for variant in variants]
            # Each pair's kernel side, then ustack's: the URL, the upload's name, the address.
            sides = ((kernel_url, "up-kernel.bin", KERNEL_SERVER_ADDRESS), (ustack_url, "up.bin", USTACK_ADDRESS))
            for _ in range(warm_up_transfers):
                for pair in pairs:
                    for space, (url, name, address) in zip(pair, sides):
                        download_rate(space, f"{url}/big.bin")
                        upload_rate(space, f"{url}/{name}", upload_source)
                        if mtu == 65535:
                            discard_rate(space, address, upload_source)
            # In turn: the kernel with offloads on, ustack with, the kernel without, ustack without, ...
            downs = repeated(repeats, *(lambda space=space, url=url: download_rate(space, f"{url}/big.bin")
                                        for pair in pairs for space, (url, _, _) in zip(pair, sides)))
            ups = repeated(repeats, *(lambda space=space, target=f"{url}/{name}": upload_rate(space, target, upload_source)
                                      for pair in pairs for space, (url, name, _) in zip(pair, sides)))
            # At MTU 65535 also uploads to a sink, which stores nothing (DISCARD_CLIENT).
            sinks = [] if mtu != 65535 else repeated(
                repeats, *(lambda space=space, address=address: discard_rate(space, address, upload_source)
                           for pair in pairs for space, (_, _, address) in zip(pair, sides)))
        finally:
            for server in servers:
                server.stop()
        for index, variant in enumerate(variants):
            offload = variant.offload
            kernel_down, down = downs[2 * index], downs[2 * index + 1]
            kernel_up, up = ups[2 * index], ups[2 * index + 1]
            label = variant.label(mtu)
            down_goal, up_goal = variant_goals(offload, mtu, down.median, kernel_down.median, up.median,
                                               kernel_up.median)
            rows.append((f"download MB/s ({label})", down, kernel_down, None, down_goal))
            rows.append((f"upload MB/s ({label})", up, kernel_up, None, up_goal))
            if sinks:
                kernel_sink, sink = sinks[2 * index], sinks[2 * index + 1]
                rows.append((f"upload MB/s to discard, RFC 863 ({label})", sink, kernel_sink, None,
                             at_least(sink.median, VARIANT_GOALS[(offload, mtu)])))
    return rows


def remove_all(spaces: list[Namespace], work: Path, program: str) -> None:
    """The end of every bench script's run, also on errors, Ctrl-C and SIGTERM: each namespace
    closed, the last made first (which kills what was started in it, by PID, and removes it),
    a failure to remove one told and the others removed still; then the scratch directory."""
    for space in reversed(spaces):
        try:
            space.close()
        except Exception as error:  # keep removing the others
            print(f"{program}: removing {space.name}: {error}", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)


def run_and_clean_up(program: str, prefix: str, measure) -> int:
    """A measuring script's run: `measure(work, spaces)` in a new scratch directory (tmpfs where
    there is one), what it returns printed; a BenchError or an OSError is one line, Ctrl-C and SIGTERM end it
    through the same cleanup (remove_all: every namespace it appended to `spaces`, then the
    directory). The exit status: 0, 1 on a BenchError, 130 when interrupted."""
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=_SCRATCH))
    spaces: list[Namespace] = []
    status = 0
    with sigterm_as_interrupt():
        try:
            print(measure(work, spaces))
        except (BenchError, OSError) as error:  # OSError: the scratch files (a full tmpfs, say)
            print(f"{program}: {error}", file=sys.stderr)
            status = 1
        except KeyboardInterrupt:
            print(f"{program}: interrupted; cleaning up", file=sys.stderr)
            status = 130
        finally:
            remove_all(spaces, work, program)
    return status


def format_table(rows) -> str:
    """Rows of (metric, ustack, kernel same app, kernel native, Goal or None), a figure being a
    number or a Sample (its median is shown, and ustack's spread in its own column); the ratio
    column is ustack over the kernel with the same app."""
    def number(value) -> float:
        return value.median if isinstance(value, Sample) else value

    def cell(value):
        if value is None:
            return "-"
        value = number(value)
        return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"

    header = ("metric", "ustack", "ustack min-max", "kernel (same app)", "kernel native", "ratio", "goal")
    body = []
    for metric, ustack, kernel, native, goal in rows:
        ratio = f"{number(ustack) / number(kernel):.2f}" if kernel else "-"
        spread = f"{cell(ustack.low)}-{cell(ustack.high)}" if isinstance(ustack, Sample) else "-"
        goal_text = "-" if goal is None else f"{goal.text}  {'ok' if goal.met else 'MISSED'}"
        body.append((metric, cell(ustack), spread, cell(kernel), cell(native), ratio, goal_text))
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = [" | ".join(text.ljust(widths[i]) if i == 0 else text.rjust(widths[i]) for i, text in enumerate(row))
             for row in [header, *body]]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100, help="size of the bulk transfers (default 100)")
    parser.add_argument("--requests", type=int, default=4000, help="ab requests per server (default 4000)")
    parser.add_argument("--echoes", type=int, default=2000, help="echo round trips per server (default 2000)")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                        help=f"bulk transfers per row, the row their median (default {DEFAULT_REPEATS})")
    parser.add_argument("--warm-up", type=int, default=WARM_UP_CONNECTIONS, metavar="N",
                        help="ab connections to each server, untimed, before the connections row (default "
                             f"{WARM_UP_CONNECTIONS}: {'PyPy compiles as it goes' if WARM_UP_CONNECTIONS else 'none on CPython'})")
    parser.add_argument("--warm-up-mb", type=int, default=WARM_UP_MEGABYTES, metavar="MB",
                        help="MB each way to each server, untimed, before the bulk rows (default "
                             f"{WARM_UP_MEGABYTES}: {'PyPy compiles as it goes' if WARM_UP_MEGABYTES else 'none on CPython'})")
    parser.add_argument("--warm-up-echoes", type=int, default=WARM_UP_ECHOES, metavar="N",
                        help="echo round trips to each server, untimed, before the echo rows (default "
                             f"{WARM_UP_ECHOES}: {'PyPy compiles as it goes' if WARM_UP_ECHOES else 'none on CPython'})")
    parser.add_argument("--profile", metavar="DIR", help="run ustack serve under py-spy; print its top functions")
    parser.add_argument("--no-variants", action="store_true",
                        help="leave out the bulk rows with offload on/off at MTU 1500 and 65535")
    args = parser.parse_args()
    if args.warm_up < 0:
        print(f"bench.py: --warm-up must not be negative, not {args.warm_up}", file=sys.stderr)
        return 2
    if args.warm_up_echoes < 0:
        print(f"bench.py: --warm-up-echoes must not be negative, not {args.warm_up_echoes}", file=sys.stderr)
        return 2
    if args.warm_up_mb < 0:
        print(f"bench.py: --warm-up-mb must not be negative, not {args.warm_up_mb}", file=sys.stderr)
        return 2
    if args.repeats < 1:
        print(f"bench.py: --repeats must be at least 1, not {args.repeats}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("bench.py: needs root (namespaces, TUN): sudo .venv/bin/python scripts/bench.py", file=sys.stderr)
        return 2
    for tool in ("curl", "ab", "nc", "ip", "ss"):
        if shutil.which(tool) is None:
            print(f"bench.py: `{tool}` is not installed (apt-get install curl apache2-utils netcat-openbsd "
                  "iproute2)", file=sys.stderr)
            return 2

    # SIGTERM ends the run like Ctrl-C: through the finally blocks that remove everything.
    with sigterm_as_interrupt():
        return _main(args)


def _main(args) -> int:
    work = Path(tempfile.mkdtemp(prefix="ust-bench-", dir=_SCRATCH))
    spaces: list[Namespace] = []
    started = time.monotonic()
    status = 0
    try:
        print(f"bench.py: {args.size_mb} MB transfers (bulk rows: the median of {args.repeats}), {args.requests} requests, {args.echoes} echoes; "
              f"namespaces ust-bench-{os.getpid()}-*", file=sys.stderr)
        rows = run(args, work, spaces)
        print(format_table(rows))
        print(f"({time.monotonic() - started:.0f} s; serve, the kernel twin and the clients on "
              f"{platform.python_implementation()} {platform.python_version()}; MB = 10**6 bytes; mtu 1500 on both the TUN and the veth; "
              "the kernel beside an offload-off row has its veth's TSO, GSO and GRO off; beside a row with a "
              "server CPU, its app runs on that CPU and both veth ends steer what they receive as serve's TUN does)")
    except (BenchError, ProfileError) as error:
        print(f"bench.py: {error}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print("bench.py: interrupted; cleaning up", file=sys.stderr)
        status = 130
    finally:
        remove_all(spaces, work, "bench.py")
    return status


if __name__ == "__main__":
    sys.exit(main())
