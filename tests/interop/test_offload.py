"""TUN offloads (issues 11 and 12) against the real kernel, in namespaces the tests create, over
IPv4 (TSO4) and IPv6 (TSO6): the same bytes with offload on and off, super-segments really
crossing the device both ways, and the kernel's own view (`ss -ti`) of the MSS at MTU 1500 and
65535.

The pcap is written outside the TunLink: it shows super-segments both ways, as tcpdump on the
device would (link/tun.py's docstring).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess

import pytest
from interop_helpers import IO_TIMEOUT, STACK_ADDRESS, wait_for

from ustack.link.tun import BIG_TCP_SINCE, kernel_version
from ustack.network import USTACK_ADDRESS6
from ustack.wire import WireError, parse_packet
from ustack.wire.ipv4 import address_value
from ustack.wire.ipv6 import address6_value
from ustack.wire.pcap import read_records

MEGABYTE = 1024 * 1024
OUR_ADDRESS = {4: address_value(STACK_ADDRESS), 6: address6_value(USTACK_ADDRESS6)}
OUR_ADDRESS_TEXT = {4: STACK_ADDRESS, 6: USTACK_ADDRESS6}
URL = {4: f"http://{STACK_ADDRESS}", 6: f"http://[{USTACK_ADDRESS6}]"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tcp_packets(pcap_path, family: int):
    """(packet, its length as captured) for each TCP packet of `family` in the pcap (every one
    decodes, super-segments too)."""
    for record in read_records(pcap_path.read_bytes())[1]:
        if record.data[0] >> 4 != family:
            continue
        try:
            packet = parse_packet(record.data)
        except WireError:
            assert family == 6, record.data  # only the kernel's IPv6 chatter (MLD behind hop-by-hop)
            continue
        if packet.tcp is not None:
            yield packet, len(record.data)


def packet_sizes(pcap_path, family: int) -> tuple[list[int], list[int]]:
    """Sizes of the TCP packets of `family` ustack sent, and of those it received, as the pcap
    shows them."""
    sent, received = [], []
    for packet, size in tcp_packets(pcap_path, family):
        (sent if packet.ip.src == OUR_ADDRESS[family] else received).append(size)
    return sent, received


@pytest.mark.parametrize("family", [4, 6], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("offload", [True, False], ids=["offload", "no-offload"])
def test_20_megabytes_each_way_are_identical_with_offload_on_and_off(ustack_serve, tmp_path, offload, family):
    site = tmp_path / "site"
    site.mkdir()
    original = os.urandom(20 * MEGABYTE)
    (site / "big.bin").write_bytes(original)
    serve = ustack_serve("--http", str(site), "--allow-upload", *([] if offload else ["--no-offload"]))
    big = offload and kernel_version() >= BIG_TCP_SINCE
    # The banner says how segments cross the device (TunLink.offload_summary).
    assert any(line.startswith("ustack: offloads on:" if offload else "ustack: offloads off: TCP segments joined")
               and ("262,144 bytes at once (BIG TCP)" in line) == big for line in serve.output), serve.output
    downloaded = tmp_path / "downloaded.bin"
    result = serve.inside("curl", f"-{family}", "-sS", "--fail", "--max-time", "60", "-o", str(downloaded),
                          f"{URL[family]}/big.bin", timeout=70)
    assert result.returncode == 0, result.stderr
    assert sha256(downloaded.read_bytes()) == sha256(original)
    result = serve.inside("curl", f"-{family}", "-sS", "--fail", "--max-time", "60", "-T", str(downloaded), "-w",
                          "%{http_code}", f"{URL[family]}/uploaded.bin", timeout=70)
    assert result.returncode == 0 and result.stdout.endswith("201"), result.stdout + result.stderr
    assert sha256((site / "uploaded.bin").read_bytes()) == sha256(original)
    serve.stop()
    sent, received = packet_sizes(serve.pcap_path, family)
    # Super-segments beyond the MTU both ways: ours (download), the kernel's (upload). The
    # kernel cut ours into MSS-sized segments: the other test sees them in `ss -ti`. Without
    # offloads the link joins and cuts them itself (software GRO/GSO, link/tun.py), and the pcap
    # above it sees the same (tests/link/test_software_offload.py checks the pieces).
    assert max(sent) > 1500 and max(received) > 1500, (max(sent), max(received))
    # BIG TCP (link/tun.py): with offloads, on a kernel that takes them, our segments reach 256
    # KiB (IPv4 with Total Length 0, IPv6 jumbograms; the pcap decodes them), and the kernel cut
    # them into the very bytes curl wrote out above.
    if big:
        assert 65535 + (40 if family == 6 else 0) < max(sent) <= 262144, max(sent)
    else:
        assert max(sent) <= 65535 + (40 if family == 6 else 0), max(sent)


def test_gso_max_size_65535_keeps_segments_within_64_kb(ustack_serve, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    original = os.urandom(8 * MEGABYTE)
    (site / "big.bin").write_bytes(original)
    serve = ustack_serve("--http", str(site), "--gso-max-size", "65535")
    downloaded = tmp_path / "downloaded.bin"
    result = serve.inside("curl", "-4", "-sS", "--fail", "--max-time", "60", "-o", str(downloaded),
                          f"{URL[4]}/big.bin", timeout=70)
    assert result.returncode == 0, result.stderr
    assert sha256(downloaded.read_bytes()) == sha256(original)
    serve.stop()
    sent, _ = packet_sizes(serve.pcap_path, 4)
    assert 1500 < max(sent) <= 65535, max(sent)


def data_lengths_sent(pcap_path, family: int) -> list[int]:
    """The TCP payload length of each data segment ustack sent, in order."""
    return [len(packet.payload) for packet, _ in tcp_packets(pcap_path, family)
            if packet.ip.src == OUR_ADDRESS[family] and len(packet.payload)]


def kernel_tcp_info(namespace: str, family: int) -> str:
    destination = STACK_ADDRESS if family == 4 else f"[{USTACK_ADDRESS6}]"
    result = subprocess.run(["ip", "netns", "exec", namespace, "ss", "-tinH", "dst", destination],
                            capture_output=True, text=True, timeout=10)
    return result.stdout if "mss:" in result.stdout else ""


@pytest.mark.parametrize("family, mtu, mss", [(4, 1500, 1448), (4, 65535, 65483), (6, 1500, 1428), (6, 65535, 65463)],
                         ids=["ipv4-1500", "ipv4-65535", "ipv6-1500", "ipv6-65535"])
def test_the_kernel_sees_the_mss_that_follows_the_mtu_and_normal_sized_segments(ustack_serve, tmp_path, family, mtu,
                                                                                   mss):
    # ustack announces MTU - 40 (IPv6: MTU - 60); the kernel's mss leaves out 12 bytes of timestamps.
    serve = ustack_serve("--echo", "--mtu", str(mtu))
    echoed = tmp_path / "echoed.bin"
    data = os.urandom(MEGABYTE)
    with echoed.open("wb") as output:
        peer = subprocess.Popen(["ip", "netns", "exec", serve.namespace, "nc", f"-{family}", "-N",
                                 OUR_ADDRESS_TEXT[family], "7"], stdin=subprocess.PIPE, stdout=output,
                                stderr=subprocess.PIPE)
        try:
            peer.stdin.write(data)
            peer.stdin.flush()
            wait_for(lambda: echoed.stat().st_size == len(data), IO_TIMEOUT, "the echo of 1 MB")
            info = wait_for(lambda: kernel_tcp_info(serve.namespace, family), 10, "the kernel's ss -ti line")
        finally:
            peer.stdin.close()
            try:
                peer.wait(timeout=IO_TIMEOUT)
            except subprocess.TimeoutExpired:
                peer.kill()
                peer.wait()
    assert echoed.read_bytes() == data
    assert f" mss:{mss} " in info, info
    # rcvmss: the kernel's estimate of the segments it receives, taken from gso_size when our
    # super-segments arrive whole: normal MSS-sized segments, not 64 KB ones.
    received_mss = int(re.search(r"rcvmss:(\d+)", info).group(1))
    assert received_mss <= mss
    if mtu == 1500:
        serve.stop()
        sent, _ = packet_sizes(serve.pcap_path, family)
        assert max(sent) > 1500  # and the echo went in super-segments the kernel cut
        # Linux also takes two data segments in a row of one size (from 536 bytes with the
        # headers) as the new estimate (tcp_measure_rcv_mss): the echo's last two segments may
        # be such a pair (seen under load: 524 and 524, nc's last write echoed as it came).
        last_two = data_lengths_sent(serve.pcap_path, family)[-2:]
        assert received_mss == mss or last_two == [received_mss, received_mss], (info, last_two)
