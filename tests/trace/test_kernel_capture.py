"""The ladder of a real kernel-to-kernel connection, captured by tcpdump.

In a network namespace of its own (removed afterwards, also on failure), the test runs a Python
client and server over the namespace's loopback (127.0.0.1, and ::1 for IPv6, whose ladder writes
the endpoints [::1]:port) while tcpdump writes what crosses `lo`: an
Ethernet pcap (link type 1, zero MAC addresses). The ladder must show the handshake, the data,
both FINs and the client in TIME-WAIT: the kernel's behaviour, drawn by our inference.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree

import pytest

from ustack.netns import stop_process
from ustack.trace.infer import build_ladder
from ustack.trace.model import LEFT, NORMAL, RIGHT
from ustack.trace.pcap_source import read_capture
from ustack.trace.render_mermaid import render_mermaid
from ustack.trace.render_svg import render_svg
from ustack.trace.render_text import WIDTH, render_text
from ustack.wire.pcap import LINKTYPE_ETHERNET, read_records
from ustack.wire.tcp import ACK, FIN, PSH, SYN

pytestmark = pytest.mark.interop

PORT = 5555
REQUEST = b"hello, kernel"
RESPONSE = b"hello yourself" * 10

# Runs inside the namespace. The client closes first (it is the active closer); the server
# closes when it has read the client's FIN. Everything is blocking: each step waits for the last.
# HOST is the loopback address of the family under test (127.0.0.1 or ::1).
CONVERSATION = f"""
import socket
server = socket.socket(socket.AF_INET6 if ":" in HOST else socket.AF_INET)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((HOST, {PORT}))
server.listen(1)
client = socket.create_connection((HOST, {PORT}))
connection, _ = server.accept()
client.sendall({REQUEST!r})
assert connection.recv(1000) == {REQUEST!r}
connection.sendall({RESPONSE!r})
received = b""
while len(received) < {len(RESPONSE)}:
    received += client.recv(1000)
client.close()
assert connection.recv(1000) == b""
connection.close()
server.close()
"""

DEADLINE_SECONDS = 10.0


def run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=DEADLINE_SECONDS)


@pytest.fixture
def namespace():
    if os.geteuid() != 0:
        pytest.fail("this test needs root: it creates a network namespace and runs tcpdump in it")
    if shutil.which("tcpdump") is None or shutil.which("ip") is None:
        pytest.fail("this test needs tcpdump and ip (apt-get install tcpdump iproute2)")
    name = f"ust-trace-{os.getpid()}"
    run("ip", "netns", "add", name)
    try:
        run("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=DEADLINE_SECONDS)


def wait_until_listening(tcpdump: subprocess.Popen) -> None:
    """tcpdump says 'listening on lo' on stderr once its capture is open."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    said = b""
    while b"listening on" not in said:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or tcpdump.poll() is not None:
            pytest.fail(f"tcpdump did not start capturing: {said.decode(errors='replace')}")
        readable, _, _ = select.select([tcpdump.stderr], [], [], remaining)
        if readable:
            said += os.read(tcpdump.stderr.fileno(), 4096)


def capture_complete(path) -> bool:
    """The last segment of the connection (the client's ACK of the server's FIN) is in the file."""
    try:
        capture = read_capture(path.read_bytes())
    except Exception:  # the file header may not be written yet
        return False
    server_fin = None
    for observation in capture.observations:
        tcp = observation.tcp
        if tcp.src_port == PORT and tcp.flags & FIN:
            server_fin = (tcp.seq + len(tcp.payload) + 1) % 2**32
        elif server_fin is not None and tcp.dst_port == PORT and tcp.flags & ACK and tcp.ack == server_fin:
            return True
    return False


@pytest.mark.parametrize("host, server_name", [("127.0.0.1", f"127.0.0.1:{PORT}"), ("::1", f"[::1]:{PORT}")],
                         ids=["ipv4", "ipv6"])
def test_ladder_of_a_kernel_to_kernel_connection(namespace, tmp_path, host, server_name):
    pcap_path = tmp_path / "kernel.pcap"
    tcpdump = subprocess.Popen(
        ["ip", "netns", "exec", namespace, "tcpdump", "-i", "lo", "-n", "-U", "-w", str(pcap_path), f"tcp port {PORT}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_listening(tcpdump)
        talk = subprocess.run(
            ["ip", "netns", "exec", namespace, sys.executable, "-c", f"HOST = {host!r}\n" + CONVERSATION],
            capture_output=True,
            timeout=DEADLINE_SECONDS,
        )
        assert talk.returncode == 0, talk.stderr.decode(errors="replace")
        # tcpdump writes each packet as it reads it (-U); wait for the last one to be on disk.
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not capture_complete(pcap_path):
            assert time.monotonic() < deadline, "tcpdump never wrote the final ACK"
            select.select([], [], [], 0.01)  # poll the file again in 10 ms
    finally:
        stop_process(tcpdump, grace=DEADLINE_SECONDS)

    blob = pcap_path.read_bytes()
    linktype, _ = read_records(blob)
    assert linktype == LINKTYPE_ETHERNET  # Linux lo: Ethernet headers with zero addresses
    capture = read_capture(blob)
    assert not capture.skipped
    ladder = build_ladder(capture.observations, source=str(pcap_path))
    assert ladder.right.name == server_name and ladder.left.label == "client"
    arrows = ladder.arrows
    assert all(arrow.kind == NORMAL for arrow in arrows)  # loopback loses nothing

    # The handshake, with the options Linux offers.
    assert [(a.from_side, a.flags) for a in arrows[:3]] == [(LEFT, SYN), (RIGHT, SYN | ACK), (LEFT, ACK)]
    assert arrows[0].options.mss is not None and arrows[0].options.sack_permitted
    # The data, both ways.
    assert any(a.from_side == LEFT and a.length == len(REQUEST) for a in arrows)
    assert sum(a.length for a in arrows if a.from_side == RIGHT) == len(RESPONSE)
    # The FIN exchange: the client's FIN first, then the server's, then the client's last ACK.
    fins = [a.from_side for a in arrows if a.flags & FIN]
    assert fins == [LEFT, RIGHT]
    assert arrows[-1].from_side == LEFT and arrows[-1].flags & (ACK | FIN | SYN | PSH) == ACK

    left = ladder.states_of(LEFT)
    right = ladder.states_of(RIGHT)
    assert left[:4] == ["CLOSED", "SYN-SENT", "ESTABLISHED", "FIN-WAIT-1"] and left[-1] == "TIME-WAIT"
    assert right == ["LISTEN", "SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]

    text = render_text(ladder, relative=True)
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    assert "TIME-WAIT*" in text and "[S] seq 0 win" in text and f"len {len(REQUEST)}" in text
    print(text)  # shown by pytest -s, and kept in the report on failure
    svg = ElementTree.fromstring(render_svg(ladder).encode())
    words = "".join("".join(element.itertext()) for element in svg.iter("{http://www.w3.org/2000/svg}text"))
    assert server_name in words and "TIME-WAIT" in words
    mermaid = render_mermaid(ladder).splitlines()
    assert mermaid[0] == "sequenceDiagram" and sum("->>" in line for line in mermaid) == len(arrows)
