"""IPv6 with the real kernel (issue 11): `ustack serve` gives ustack fd00:77::2 and the kernel
fd00:77::1/64 on the same TUN device as IPv4, and the kernel's own curl -6, nc -6, ping -6 and
sockets talk to it. Each test in a fresh namespace, every process stopped by its PID."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
from interop_helpers import kernel_sockets, run_cli, wait_for

from ustack.network import KERNEL_ADDRESS6, USTACK_ADDRESS6
from ustack.wire import WireError, parse_packet
from ustack.wire.ipv6 import address6_value
from ustack.wire.pcap import read_records

URL = f"http://[{USTACK_ADDRESS6}]"
OURS = address6_value(USTACK_ADDRESS6)


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text("<h1>served over IPv6</h1>\n")
    return root


def ipv6_packets(serve) -> list:
    """The IPv6 packets of serve's pcap, read after serve has stopped (and so flushed it)."""
    serve.stop()
    _, records = read_records(serve.pcap_path.read_bytes())
    packets = []
    for record in records:
        if record.data[0] >> 4 == 6:
            try:
                packets.append(parse_packet(record.data))
            except WireError:
                pass  # the kernel's own chatter (MLD reports behind hop-by-hop options, ...)
    return packets


def test_curl_6_moves_20_megabytes_each_way_intact(ustack_serve, site, tmp_path):
    big = os.urandom(20 * 1024 * 1024)
    (site / "big.bin").write_bytes(big)
    serve = ustack_serve("--http", str(site), "--allow-upload")
    page = serve.inside("curl", "-6", "-sS", "--fail", f"{URL}/")
    assert (page.returncode, page.stdout) == (0, "<h1>served over IPv6</h1>\n"), page.stderr
    downloaded = tmp_path / "downloaded.bin"
    result = serve.inside("curl", "-6", "-sS", "--fail", "-o", str(downloaded), f"{URL}/big.bin", timeout=120)
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(downloaded.read_bytes()).digest() == hashlib.sha256(big).digest()
    result = serve.inside("curl", "-6", "-sS", "--fail", "-T", str(downloaded), "-w", "%{http_code}",
                          f"{URL}/uploaded.bin", timeout=120)
    assert result.returncode == 0 and result.stdout.endswith("201"), result.stderr
    assert hashlib.sha256((site / "uploaded.bin").read_bytes()).digest() == hashlib.sha256(big).digest()


def test_nc_6_through_the_echo_service_and_ipv4_beside_it(ustack_serve):
    serve = ustack_serve("--echo")
    data = os.urandom(5 * 1024 * 1024).hex()[: 5 * 1024 * 1024]  # 5 MB of text
    echoed = serve.inside("nc", "-6", "-N", "-w", "20", USTACK_ADDRESS6, "7", input=data, timeout=120)
    assert echoed.returncode == 0 and echoed.stdout == data, echoed.stderr
    # The same listener takes IPv4 too (a dual-stack socket).
    over4 = serve.inside("nc", "-4", "-N", "-w", "10", "10.77.0.2", "7", input="four\n")
    assert (over4.returncode, over4.stdout) == (0, "four\n")
    # Our segments carry the MSS of IPv6 (1500 - 60) and one flow label per connection.
    packets = [p for p in ipv6_packets(serve) if p.tcp is not None and p.ip.src == OURS]
    assert packets, "no IPv6 segment from ustack in the pcap"
    assert {p.tcp.options.mss for p in packets if p.tcp.flags & 0x02} == {1440}
    assert len({p.ip.flow_label for p in packets}) == 1 and packets[0].ip.flow_label != 0


def test_ping_6_is_answered_also_when_fragmented(ustack_serve):
    serve = ustack_serve("--echo")
    for size in ("56", "3000"):  # 3000: the request and the reply come in fragments
        ping = serve.inside("ping", "-6", "-c", "2", "-W", "5", "-s", size, USTACK_ADDRESS6)
        assert ping.returncode == 0 and " 0% packet loss" in ping.stdout, ping.stdout + ping.stderr
    fragments = [p for p in ipv6_packets(serve) if p.ip.is_fragment and p.ip.src == OURS]
    assert len(fragments) >= 2 * 3  # two replies of 3,008 bytes, each in three pieces of at most 1,500


def test_a_refused_port_is_reset_at_once(ustack_serve):
    serve = ustack_serve("--echo")
    refused = serve.inside("nc", "-6", "-z", "-w", "5", USTACK_ADDRESS6, "5999")
    assert refused.returncode != 0
    # Refused, not timed out: an RST came back for the SYN.
    packets = ipv6_packets(serve)
    assert any(p.tcp is not None and p.tcp.src_port == 5999 and p.tcp.flags & 0x04 for p in packets)


def test_time_wait_on_both_sides(ustack_serve, site):
    serve = ustack_serve("--http", str(site), "--msl", "1")
    # "Connection: close": ustack closes first, so its side goes to TIME-WAIT.
    fetched = serve.inside("curl", "-6", "-sS", "--fail", "-H", "Connection: close", "-w", "%{local_port}",
                           "-o", "/dev/null", f"{URL}/")
    assert fetched.returncode == 0, fetched.stderr
    port = int(fetched.stdout)
    waiting = [c for c in serve.ss("--state", "time-wait") if c["remote"]["port"] == port]
    assert len(waiting) == 1 and waiting[0]["remote"]["address"] == KERNEL_ADDRESS6
    text = run_cli("ss", "--state", "time-wait", environment=serve.environment)
    assert f"[{USTACK_ADDRESS6}]:80" in text.stdout and f"[{KERNEL_ADDRESS6}]:{port}" in text.stdout, text.stdout
    wait_for(lambda: not serve.ss("--state", "time-wait"), 10, "the end of ustack's TIME-WAIT")
    # And the kernel's TIME-WAIT when the kernel closes first: nc -N sends its FIN after the
    # request, the server answers and closes after it.
    kernel = serve.inside("nc", "-6", "-N", "-w", "5", USTACK_ADDRESS6, "80", input="GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert kernel.returncode == 0 and " 200 " in kernel.stdout.splitlines()[0], kernel.stdout + kernel.stderr
    assert any(f"[{USTACK_ADDRESS6}]:80" in line for line in kernel_sockets(serve.namespace, "state", "time-wait"))


KERNEL_SERVER6 = """
import socket
listener = socket.create_server(("::", 5000), family=socket.AF_INET6)
print("listening", flush=True)
connection, peer = listener.accept()
data = b""
while chunk := connection.recv(65536):
    data += chunk
connection.sendall(data.upper())
connection.close()
print(peer[0], flush=True)
"""


def test_ustack_connects_to_a_kernel_ipv6_server(namespace):
    server = namespace.popen([sys.executable, "-c", KERNEL_SERVER6], stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline() == "listening\n"
    result = run_cli("connect", "--netns", namespace.name, KERNEL_ADDRESS6, "5000", input="shout this over six\n")
    assert (result.returncode, result.stdout) == (0, "SHOUT THIS OVER SIX\n"), result.stderr
    assert server.stdout.readline() == f"{USTACK_ADDRESS6}\n"  # the kernel saw ustack's IPv6 address


def test_connect_to_a_refused_ipv6_port_is_one_line(namespace):
    result = run_cli("connect", "--netns", namespace.name, KERNEL_ADDRESS6, "5001")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"ustack connect: connection to [{KERNEL_ADDRESS6}]:5001 refused"]


def test_ipv6_only_and_ipv4_only(ustack_serve):
    only6 = ustack_serve("--echo", "--no-ipv4")
    echoed = only6.inside("nc", "-6", "-N", "-w", "10", USTACK_ADDRESS6, "7", input="six only\n")
    assert (echoed.returncode, echoed.stdout) == (0, "six only\n")
    assert only6.inside("ping", "-4", "-c", "1", "-W", "1", "10.77.0.2").returncode != 0  # no route: no IPv4 at all
    only6.stop()
    only4 = ustack_serve("--echo", "--no-ipv6")
    assert only4.inside("ping", "-6", "-c", "1", "-W", "1", USTACK_ADDRESS6).returncode != 0
    assert only4.inside("ping", "-4", "-c", "1", "-W", "5", "10.77.0.2").returncode == 0


def test_curl_6_download_survives_five_percent_loss_both_ways(ustack_serve, site):
    data = os.urandom(1024 * 1024)
    (site / "data.bin").write_bytes(data)
    serve = ustack_serve("--http", str(site), "--loss", "0.05", "--seed", "11")
    fetched = serve.inside("curl", "-6", "-sS", "--fail", "--max-time", "50", f"{URL}/data.bin", text=False)
    assert fetched.returncode == 0, fetched.stderr
    assert hashlib.sha256(fetched.stdout).digest() == hashlib.sha256(data).digest()
