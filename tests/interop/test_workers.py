"""`ustack serve --workers 2`: two processes on two queues of one multi-queue TUN device, reached
by the kernel's own curl and by plain sockets in a fresh namespace (ust-t-<pid>-<n>). What must
hold (ustack/workers.py): every connection is served, each by exactly one worker from SYN to
end (no segment of it ever reaches the other: that one would count tcp_no_connection and answer
with a RST), every worker listens on every port, `ustack ss` and `ustack stats` merge the
workers, and stopping the parent stops every worker and removes the device and namespace once.

The kernel spreads NEW flows over the queues by their flow hash: with N connections from random
ephemeral ports, all N on one queue has probability 2**(1-N) (2**-23 for 24 connections)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from interop_helpers import STACK_ADDRESS, ServeProcess, run_cli, serve_starter, wait_for

from ustack.netns import namespace_exists

CONNECTIONS = 24
HELD_CONNECTIONS_CLIENT = r"""
import socket, sys
address, count = sys.argv[1], int(sys.argv[2])
sockets = []
for index in range(count):
    connection = socket.create_connection((address, 7), timeout=10)
    sockets.append(connection)
def round_trip(tag):
    for index, connection in enumerate(sockets):
        message = f"{tag} {index}\n".encode()
        connection.sendall(message)
        received = b""
        while len(received) < len(message):
            piece = connection.recv(100)
            if not piece:
                raise SystemExit(f"connection {index} closed")
            received += piece
        assert received == message, (received, message)
round_trip("first")
print(" ".join(str(c.getsockname()[1]) for c in sockets), flush=True)
sys.stdin.readline()  # the test looks at ustack ss meanwhile
round_trip("second")
print("second round ok", flush=True)
"""


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text("served by a worker\n")
    return root


@pytest.fixture
def workers_serve(require_interop_environment, namespace_name, run_directory):
    """start(*serve arguments) -> a ready ServeProcess (interop_helpers.serve_starter) without a
    pcap, which workers take none of; stopped at teardown, its namespace checked gone."""
    yield from serve_starter(namespace_name, {**os.environ, "USTACK_RUN_DIR": str(run_directory)}, None)


def worker_pids(serve: ServeProcess) -> list[int]:
    line = next(line for line in serve.output if " workers, one per queue of " in line)
    return [int(pid) for pid in line.split("(pids ")[1].rstrip(")").split()]


def worker_statistics(serve: ServeProcess) -> dict[int, dict]:
    result = run_cli("stats", "--json", "--pid", str(serve.process.pid), environment=serve.environment)
    assert result.returncode == 0, result.stderr
    return {answer["pid"]: answer for answer in json.loads(result.stdout)}


def test_many_curls_all_served_each_by_one_worker(workers_serve, site):
    serve = workers_serve("--workers", "2", "--http", str(site))
    workers = worker_pids(serve)
    assert len(workers) == 2 and serve.process.pid not in workers
    script = (f"for i in $(seq {CONNECTIONS}); do curl -sS --fail -m 10 -o /dev/null -w '%{{http_code}}\\n' "
              f"http://{STACK_ADDRESS}/ & done; wait")
    result = serve.inside("sh", "-c", script)
    assert result.stdout.split() == ["200"] * CONNECTIONS, result.stderr
    statistics = worker_statistics(serve)
    assert sorted(statistics) == workers  # --pid PARENT: every worker, and only them
    for pid, answer in statistics.items():
        assert answer["worker"]["parent"] == serve.process.pid
        stack = answer["statistics"]["stack"]
        assert stack["counters"].get("packets_in", 0) > 0, f"worker {pid} got no packet"  # both queues used
        # A segment of a connection served by the other worker would be counted here.
        assert stack["drops"].get("tcp_no_connection", 0) == 0, stack["drops"]
        assert stack["counters"].get("resets_sent", 0) == 0, stack["counters"]
    text = run_cli("stats", environment=serve.environment).stdout
    assert f"#ustack serve (pid {serve.process.pid}) all 2 workers summed" in text


def test_held_connections_stay_on_one_worker_and_ss_merges_them(workers_serve):
    serve = workers_serve("--workers", "2", "--echo")
    workers = worker_pids(serve)
    client = subprocess.Popen(["ip", "netns", "exec", serve.namespace, sys.executable, "-c", HELD_CONNECTIONS_CLIENT,
                               STACK_ADDRESS, str(CONNECTIONS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        client_ports = [int(port) for port in client.stdout.readline().split()]
        assert len(client_ports) == CONNECTIONS, client.stderr.read() if client.poll() is not None else ""
        result = run_cli("ss", "--json", "-a", environment=serve.environment)
        assert result.returncode == 0, result.stderr
        rows = json.loads(result.stdout)
        listeners = {(row["pid"], row["local"]["port"]) for row in rows if row["state"] == "LISTEN"}
        assert listeners == {(pid, 7) for pid in workers}  # a listener on every worker
        established = [row for row in rows if row["state"] == "ESTABLISHED"]
        served_by: dict[int, list[int]] = {}
        for row in established:
            served_by.setdefault(row["remote"]["port"], []).append(row["pid"])
        assert sorted(served_by) == sorted(client_ports)
        assert all(len(pids) == 1 for pids in served_by.values()), served_by  # exactly one worker each
        assert {pids[0] for pids in served_by.values()} == set(workers)  # both workers serve some
        assert all(row["worker"]["count"] == 2 and row["namespace"] == serve.namespace for row in established)
        table = run_cli("ss", environment=serve.environment).stdout
        assert "worker=1/2" in table and "worker=2/2" in table
        # A second exchange on every connection: its segments still reach the worker that has it.
        out, errors = client.communicate("\n", timeout=30)
        assert client.returncode == 0 and out.strip() == "second round ok", errors
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()


def test_sigterm_stops_every_worker_and_removes_the_namespace_once(workers_serve):
    serve = workers_serve("--workers", "2", "--echo")
    workers = worker_pids(serve)
    assert serve.stop() == 0
    serve.wait_for_line("ustack: stopped", timeout=5)  # (already printed: the process has ended)
    for pid in workers:
        assert not os.path.exists(f"/proc/{pid}"), f"worker {pid} outlived its parent"
    assert not namespace_exists(serve.namespace)
    assert os.listdir(serve.environment["USTACK_RUN_DIR"]) == []  # control sockets and marker gone


def test_a_worker_that_dies_stops_the_others(workers_serve):
    serve = workers_serve("--workers", "2", "--echo")
    workers = worker_pids(serve)
    os.kill(workers[0], signal.SIGKILL)  # our own worker, by pid
    assert serve.process.wait(timeout=20) == 1
    wait_for(lambda: not os.path.exists(f"/proc/{workers[1]}"), 10, "the other worker to end")
    assert not namespace_exists(serve.namespace)


def test_workers_refuse_what_needs_the_whole_wire(require_interop_environment, namespace_name, run_directory,
                                                  tmp_path):
    environment = {**os.environ, "USTACK_RUN_DIR": str(run_directory)}
    name = namespace_name()
    result = run_cli("serve", "--netns", name, "--workers", "2", "--echo", "--pcap", str(tmp_path / "x.pcap"),
                     environment=environment)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "ustack serve: --workers takes no --pcap, --trace, faults (--loss ...), --ladder, --plot or --web: "
        "each worker has its own queue and nothing sees the whole wire"]
    assert not namespace_exists(name)
    result = run_cli("serve", "--netns", name, "--workers", "0", environment=environment)
    assert result.returncode == 2 and "workers 0 is outside 1..64" in result.stderr
    assert "Traceback" not in result.stderr
