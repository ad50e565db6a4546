"""The commands as people type them, against the real kernel in namespaces this test creates:
`ustack ss` beside the kernel's own `ss` on the same connections, a second `serve` on the same
subnet refused, `ustack cleanup` after a SIGKILLed serve (only the PID this test started), the
namespace reuse message, uploads off by default, fault flags that act on the wire, and
`connect --timeout 0`."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from interop_helpers import HOST_ADDRESS, STACK_ADDRESS, inside, kernel_sockets, run_cli, wait_for

from ustack.netns import namespace_exists

ECHO, DISCARD = 7, 9


def kernel_clients(serve, ports: list[int]) -> list[subprocess.Popen]:
    """One kernel `nc` per port, each connected to ustack and held open (stdin never ends)."""
    clients = [serve.namespace_popen(["nc", STACK_ADDRESS, str(port)]) for port in ports]
    wait_for(lambda: len(kernel_sockets(serve.namespace, "state", "established")) == len(ports), 30,
             f"{len(ports)} kernel connections established")
    return clients


@pytest.fixture
def served_with_clients(ustack_serve):
    serve = ustack_serve("--echo", "--discard")
    started = []

    def namespace_popen(command):
        process = subprocess.Popen(["ip", "netns", "exec", serve.namespace, *command], stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(process)
        return process

    serve.namespace_popen = namespace_popen
    kernel_clients(serve, [ECHO, ECHO, DISCARD])
    yield serve
    for process in started:  # by PID, these only
        process.kill()
        process.wait()


def ustack_lines(serve, *arguments: str) -> list[list[str]]:
    result = run_cli("ss", *arguments, environment=serve.environment)
    assert result.returncode == 0, result.stderr
    return [line.split() for line in result.stdout.splitlines() if line.strip()]


def mirrored(kernel_filter: str) -> str:
    """The same condition seen from the other end: the kernel's sport is ustack's dport, src its dst."""
    swap = {"sport": "dport", "dport": "sport", "src": "dst", "dst": "src"}
    return re.sub(r"\b(sport|dport|src|dst)\b", lambda match: swap[match.group(1)], kernel_filter)


def test_the_header_and_flags_are_those_of_the_kernels_ss(served_with_clients):
    serve = served_with_clients
    kernel = inside(serve.namespace, "ss", "-tan")
    ours = run_cli("ss", "-tan", environment=serve.environment)
    # (The kernel's ss runs "Address:Port" and "Process" together when it prints no process.)
    assert kernel.stdout.split()[:6] == ours.stdout.split()[:6] == [
        "State", "Recv-Q", "Send-Q", "Local", "Address:Port", "Peer"]
    assert kernel.stdout.split()[6].startswith("Address:Port") and ours.stdout.split()[6:8] == ["Address:Port", "Process"]
    for flags in ("-tanoi", "-tanH", "-tnem", "-tlnp", "-tanoiemH"):
        assert inside(serve.namespace, "ss", flags).returncode == 0
        assert run_cli("ss", flags, environment=serve.environment).returncode == 0, flags
    # -H: no header on either; -l: ustack's listeners (the kernel has none here).
    assert [row[0] for row in ustack_lines(serve, "-tanH")] == ["LISTEN", "LISTEN", "ESTAB", "ESTAB", "ESTAB"]
    assert {row[3].rpartition(":")[2] for row in ustack_lines(serve, "-tlnH")} == {str(ECHO), str(DISCARD)}


def test_the_process_column_names_pid_namespace_and_device(served_with_clients):
    serve = served_with_clients
    rows = ustack_lines(serve, "-tanH")
    assert all(row[5:] == ["ustack", "serve", f"pid={serve.process.pid}", f"netns={serve.namespace}", "dev=ustun0"]
               for row in rows), rows


def connections(rows: list[list[str]]) -> list[tuple[str, str, str]]:
    """(state, local, peer) of each row; "=" for the state when ss left its column out (one state)."""
    return sorted(("=", row[2], row[3]) if row[0].isdigit() else (row[0], row[3], row[4]) for row in rows)


@pytest.mark.parametrize("kernel_filter", [
    "state established",
    "state connected",
    "state synchronized",
    "dport = :7",
    "dport == :7",
    "dport eq :7",
    "dport != :7",
    "dport neq :7",
    "dport > :7",
    "dport gt :7",
    "dport >= :9",
    "dport < :9",
    "dport le :7",
    f"dst {STACK_ADDRESS}",
    f"dst {STACK_ADDRESS}:9",
    f"src {HOST_ADDRESS}/24",
    "( dport = :7 or dport = :9 ) and not dport = :9",
    "state established dport = :9",
    "not dport = :7",
])
def test_filters_select_the_same_connections_as_the_kernels_ss(served_with_clients, kernel_filter):
    serve = served_with_clients
    # -tn (no -a) on both sides: ss's default states; ustack's listeners have no kernel twin.
    result = inside(serve.namespace, "ss", "-tnH", *kernel_filter.split())
    assert result.returncode == 0, result.stderr
    kernel = connections([line.split() for line in result.stdout.splitlines() if line.strip()])
    ours = connections(ustack_lines(serve, "-tnH", *mirrored(kernel_filter).split()))
    # Each connection once on each side, its endpoints swapped: the kernel's local is ustack's peer.
    assert kernel == sorted((state, peer, local) for state, local, peer in ours)
    assert kernel, "the filter should select something on both sides"
    if kernel_filter.startswith("dport = :7"):
        assert len(kernel) == 2


def test_a_second_serve_on_the_same_subnet_is_refused_in_one_line(ustack_serve):
    first = ustack_serve("--echo")
    second = run_cli("serve", "--netns", first.namespace, "--tun", "ustun1", "--echo", environment=first.environment)
    assert second.returncode == 2 and second.stdout == ""
    lines = second.stderr.splitlines()
    assert len(lines) == 1, second.stderr
    assert lines[0] == (f"ustack serve: 10.77.0.0/24 is already in use in namespace {first.namespace} "
                        f"(10.77.0.1/24 on ustun0 by ustack pid {first.process.pid} (ustack serve)); "
                        "stop it, or use another --netns or --host-addr")
    echoed = first.inside("nc", "-N", "-w", "10", STACK_ADDRESS, str(ECHO), input="still here\n")
    assert echoed.stdout == "still here\n"  # the first one is untouched


def test_cleanup_removes_what_a_killed_serve_left_and_nothing_else(ustack_serve, namespace):
    killed = ustack_serve("--echo")
    alive = ustack_serve("--echo")
    in_borrowed = ustack_serve("--echo", namespace=namespace.name)  # a namespace it did not make
    killed.kill()  # SIGKILL to this PID only: no cleanup runs in it
    in_borrowed.kill()
    assert namespace_exists(killed.namespace)
    environment = killed.environment
    dry = run_cli("cleanup", "--dry-run", environment=environment)
    assert dry.returncode == 0 and namespace_exists(killed.namespace)
    assert f"would remove namespace {killed.namespace} (left by ustack serve, pid {killed.process.pid})" in dry.stdout
    assert f"would remove a marker only (left by ustack serve, pid {in_borrowed.process.pid})" in dry.stdout
    assert alive.namespace not in dry.stdout
    done = run_cli("cleanup", environment=environment)
    assert done.returncode == 0, done.stderr
    assert f"removed namespace {killed.namespace} (left by ustack serve, pid {killed.process.pid})" in done.stdout
    assert not namespace_exists(killed.namespace)
    assert namespace_exists(namespace.name) and namespace_exists(alive.namespace)  # not theirs to remove
    again = run_cli("cleanup", environment=environment)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "ustack cleanup: nothing left behind\n")


def test_serve_says_when_it_reuses_a_namespace(ustack_serve, namespace):
    killed = ustack_serve("--echo")
    killed.kill()
    again = ustack_serve("--echo", namespace=killed.namespace)
    assert (f"ustack: reusing namespace {killed.namespace}, left by ustack pid {killed.process.pid} which died "
            "without removing it; it is removed when this one stops") in again.output
    assert again.stop() == 0
    assert not namespace_exists(killed.namespace)  # adopted, so removed with it
    borrowed = ustack_serve("--echo", namespace=namespace.name)
    assert (f"ustack: using the existing namespace {namespace.name} (not made by ustack: left in place on exit)"
            in borrowed.output)


def test_uploads_are_refused_unless_allowed(ustack_serve, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("original\n")
    serve = ustack_serve("--http", str(site))
    put = serve.inside("curl", "-sS", "-T", "-", "-w", "%{http_code}", "-o", "/dev/null",
                       f"http://{STACK_ADDRESS}/index.html", input="overwritten\n")
    assert put.stdout == "405" and (site / "index.html").read_text() == "original\n"
    allowed = ustack_serve("--http", str(site), "--allow-upload")
    escape = allowed.inside("curl", "-sS", "--path-as-is", "-T", "-", "-w", "%{http_code}", "-o", "/dev/null",
                            f"http://{STACK_ADDRESS}/../planted.txt", input="x\n")
    assert escape.stdout == "403" and not (tmp_path / "planted.txt").exists()
    stored = allowed.inside("curl", "-sS", "-T", "-", "-w", "%{http_code}", "-o", "/dev/null",
                            f"http://{STACK_ADDRESS}/new.txt", input="new\n")
    assert stored.stdout == "201" and (site / "new.txt").read_text() == "new\n"


def ping_milliseconds(serve, count: int = 3) -> list[float]:
    result = serve.inside("ping", "-c", str(count), "-i", "0.2", "-W", "5", STACK_ADDRESS)
    assert result.returncode == 0, result.stdout + result.stderr
    return [float(value) for value in re.findall(r"time=([0-9.]+) ms", result.stdout)]


def test_delay_flags_act_on_the_wire_per_direction(ustack_serve):
    both = ustack_serve("--echo", "--delay", "60")
    assert "faults : in: delay 60 ms; out: delay 60 ms (seed 0)" in both.output
    assert all(rtt >= 120 for rtt in ping_milliseconds(both))
    inbound_only = ustack_serve("--echo", "--delay", "in:60/20,out:0")
    assert all(60 <= rtt < 120 + 60 for rtt in ping_milliseconds(inbound_only))


def test_duplicate_flag_duplicates_pings(ustack_serve):
    serve = ustack_serve("--echo", "--duplicate", "out:1", "--seed", "3")
    result = serve.inside("ping", "-c", "2", "-i", "0.2", "-W", "5", STACK_ADDRESS)
    assert "DUP!" in result.stdout, result.stdout  # every reply sent twice


KERNEL_LISTENER = """
import socket
listener = socket.create_server(("", 5005))
print("listening", flush=True)
connection, _ = listener.accept()
print(connection.recv(100).decode(), end="", flush=True)
"""


def test_connect_timeout_0_means_no_limit_and_connects(namespace):
    server = namespace.popen([sys.executable, "-c", KERNEL_LISTENER], stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline() == "listening\n"
    result = run_cli("connect", "--netns", namespace.name, "--timeout", "0", HOST_ADDRESS, "5005", input="hello\n")
    assert result.returncode == 0, result.stderr
    assert server.stdout.read() == "hello\n"


def test_corrupt_flag_breaks_every_segment_and_the_kernel_counts_bad_checksums(ustack_serve):
    # (TCP, not ping: a raw ICMP socket gets its copy before the kernel checks the ICMP checksum.)
    serve = ustack_serve("--echo", "--corrupt", "out:0.999999", "--seed", "5")
    result = serve.inside("nc", "-N", "-w", "2", STACK_ADDRESS, str(ECHO), input="hello\n")
    assert result.stdout == ""  # every SYN-ACK arrives with a flipped bit: no connection
    counters = serve.inside("nstat", "-az", "TcpInCsumErrors")
    assert int(counters.stdout.split("TcpInCsumErrors")[1].split()[0]) >= 1, counters.stdout


def test_rate_flag_paces_a_download(ustack_serve, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "file.bin").write_bytes(bytes(400_000))
    serve = ustack_serve("--http", str(site), "--rate", "out:2mbit")
    assert "out: rate 2 Mbit/s" in " ".join(serve.output)
    result = serve.inside("curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{time_total} %{size_download}",
                          f"http://{STACK_ADDRESS}/file.bin")
    assert result.returncode == 0, result.stderr
    seconds, size = result.stdout.split()
    # 400 kB at 2 Mbit/s is 1.6 s; the bucket's 64 kB burst goes at once: at least ~1.3 s.
    assert int(size) == 400_000 and float(seconds) >= 1.2, result.stdout
