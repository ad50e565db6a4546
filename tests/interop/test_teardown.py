"""How connections end, seen from both sides: refused at once, TIME-WAIT on the side that closed
first (the kernel's `ss` or `ustack ss`), and the RST a kernel client gets from a ustack that
restarted and no longer knows its connection."""

from __future__ import annotations

import subprocess
import sys
import time

from interop_helpers import HOST_ADDRESS, STACK_ADDRESS, kernel_sockets, tcp_segments, wait_for

from ustack.wire.tcp import ACK, RST, SYN

MSL = 1.0  # seconds: TIME-WAIT lasts 2*MSL = 2 s


def test_curl_to_a_port_without_listener_is_refused_at_once_and_ping_answers(ustack_serve):
    serve = ustack_serve("--echo")
    # -v: curl 7.88 says only "Couldn't connect to server" in its error line; the reason, ECONNREFUSED,
    # is in its verbose output.
    result = serve.inside("curl", "-sS", "-v", "--connect-timeout", "10", f"http://{STACK_ADDRESS}:8080/")
    assert result.returncode == 7, result.stderr  # curl's "failed to connect"
    assert "Connection refused" in result.stderr, result.stderr
    ping = serve.inside("ping", "-c", "3", "-i", "0.2", "-s", "1000", "-W", "5", STACK_ADDRESS)
    assert ping.returncode == 0 and "3 received" in ping.stdout, ping.stdout + ping.stderr
    # "At once": the first SYN got an RST (RFC 9293 3.10.7.1, CLOSED state: ACK off, so
    # <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>, where the SYN counts as one); no SYN was retried.
    serve.stop()
    to_8080 = [s for s in tcp_segments(serve.pcap_path) if 8080 in (s.source[1], s.destination[1])]
    syns = [s for s in to_8080 if s.flags & SYN]
    assert len(syns) == 1, to_8080
    (syn,) = syns
    assert [(s.flags, s.seq, s.ack) for s in to_8080 if s.source[0] == STACK_ADDRESS] == [
        (RST | ACK, 0, (syn.seq + 1) % 2**32)]


def ustack_connections(serve, port: int) -> list[dict]:
    """ustack's connections whose kernel end is `port`."""
    return [c for c in serve.ss() if c["remote"]["port"] == port]


def test_kernel_closing_first_holds_time_wait_and_ustack_forgets_the_connection(ustack_serve):
    serve = ustack_serve("--echo", "--msl", str(MSL))

    # The kernel closes first: nc -N sends its FIN at the end of its input, the echo service then
    # closes its side. The kernel goes FIN-WAIT-1/2 -> TIME-WAIT; ustack CLOSE-WAIT -> LAST-ACK
    # -> CLOSED, and forgets the connection.
    echoed = serve.inside("nc", "-N", "-p", "40001", "-w", "10", STACK_ADDRESS, "7", input="kernel first\n")
    assert (echoed.returncode, echoed.stdout) == (0, "kernel first\n"), echoed.stderr
    waiting = kernel_sockets(serve.namespace, "state", "time-wait", "sport = :40001")
    assert len(waiting) == 1 and f"{STACK_ADDRESS}:7" in waiting[0], waiting
    wait_for(lambda: not ustack_connections(serve, 40001), 5.0, "ustack forgetting the connection after LAST-ACK")


def test_ustack_closing_first_holds_time_wait_for_two_msl_and_the_kernel_none(ustack_serve, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("bye\n")
    serve = ustack_serve("--http", str(site), "--msl", str(MSL))
    # "Connection: close": the HTTP server closes after its answer, before curl does. ustack goes
    # FIN-WAIT-1/2 -> TIME-WAIT; the kernel CLOSE-WAIT -> LAST-ACK -> CLOSED.
    fetched = serve.inside("curl", "-sS", "--fail", "--local-port", "40002", "-H", "Connection: close",
                           "-o", "/dev/null", f"http://{STACK_ADDRESS}/")
    assert fetched.returncode == 0, fetched.stderr
    # (Polled: curl may exit before ustack has taken in the kernel's FIN.)
    (connection,) = wait_for(lambda: [c for c in ustack_connections(serve, 40002) if c["linux_state"] == "TIME-WAIT"],
                             5.0, "ustack's TIME-WAIT")
    # Its timer ends TIME-WAIT 2*MSL after it began (RFC 9293 3.4.2); the deadline is on the
    # monotonic clock, which every process shares.
    remaining = connection["timers"]["time_wait"] - time.monotonic()
    assert 0 < remaining <= 2 * MSL, connection["timers"]
    wait_for(lambda: kernel_sockets(serve.namespace, "sport = :40002") == [], 5.0,
             "the kernel's end closed (LAST-ACK -> CLOSED), with no TIME-WAIT")
    wait_for(lambda: not ustack_connections(serve, 40002), 2 * MSL + 3.0, "the end of ustack's TIME-WAIT")


RESTART_CLIENT = """
import socket, sys
client = socket.create_connection(("10.77.0.2", 7), timeout=10)
client.sendall(b"before\\n")
assert client.makefile("rb").readline() == b"before\\n"
print(client.getsockname()[1], flush=True)
sys.stdin.readline()  # meanwhile the test restarts ustack
client.sendall(b"after\\n")
try:
    print("received", client.recv(100), flush=True)
except ConnectionResetError:
    print("reset", flush=True)
except socket.timeout:
    print("timeout", flush=True)
"""


def test_kernel_client_gets_reset_from_a_restarted_ustack(namespace, ustack_serve, tmp_path, interop_pcap):
    # (`namespace` comes first: set up first, removed last, after both ustacks stopped.)
    # The namespace is the test's, so it outlives the first ustack: its TUN device goes when
    # ustack is killed, and comes back with the same addresses when ustack starts again.
    first = ustack_serve("--echo", namespace=namespace.name, pcap=tmp_path / "first.pcap")
    client = namespace.popen([sys.executable, "-c", RESTART_CLIENT], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client_port = int(client.stdout.readline())
    first.kill()  # SIGKILL: no RST, no FIN; the connection just stops existing on ustack's side
    ustack_serve("--echo", namespace=namespace.name, pcap=interop_pcap)
    output, errors = client.communicate("go\n", timeout=30)
    assert output == "reset\n", output + errors

    # RFC 9293 3.10.7.1: a segment for no connection, with ACK on, gets <SEQ=SEG.ACK><CTL=RST>.
    segments = [s for s in tcp_segments(interop_pcap) if client_port in (s.source[1], s.destination[1])]
    offending = [s for s in segments if s.source == (HOST_ADDRESS, client_port) and s.length > 0]
    resets = [s for s in segments if s.source == (STACK_ADDRESS, 7) and s.flags & RST]
    assert offending and resets, segments
    assert (resets[0].flags, resets[0].seq) == (RST, offending[0].ack), segments
