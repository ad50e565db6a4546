"""TUN offloads (issue 12) against the real kernel, in namespaces the tests create: the same bytes
with offload on and off, super-segments really crossing the device, and the kernel's own view
(`ss -ti`) of the MSS at MTU 1500 and 65535.

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

from ustack.wire import parse_packet
from ustack.wire.pcap import read_records

MEGABYTE = 1024 * 1024


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def packet_sizes(pcap_path) -> tuple[list[int], list[int]]:
    """Sizes of the TCP packets ustack sent, and of those it received, as the pcap shows them."""
    sent, received = [], []
    for record in read_records(pcap_path.read_bytes())[1]:
        packet = parse_packet(record.data)  # every record decodes, super-segments too
        if packet.tcp is not None:
            mine = packet.ip.src == int.from_bytes(bytes(map(int, STACK_ADDRESS.split("."))), "big")
            (sent if mine else received).append(len(record.data))
    return sent, received


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "no-offload"])
def test_20_megabytes_each_way_are_identical_with_offload_on_and_off(ustack_serve, tmp_path, offload):
    site = tmp_path / "site"
    site.mkdir()
    original = os.urandom(20 * MEGABYTE)
    (site / "big.bin").write_bytes(original)
    serve = ustack_serve("--http", str(site), "--allow-upload", *([] if offload else ["--no-offload"]))
    downloaded = tmp_path / "downloaded.bin"
    result = serve.inside("curl", "-sS", "--fail", "--max-time", "60", "-o", str(downloaded),
                          f"http://{STACK_ADDRESS}/big.bin", timeout=70)
    assert result.returncode == 0, result.stderr
    assert sha256(downloaded.read_bytes()) == sha256(original)
    result = serve.inside("curl", "-sS", "--fail", "--max-time", "60", "-T", str(downloaded), "-w", "%{http_code}",
                          f"http://{STACK_ADDRESS}/uploaded.bin", timeout=70)
    assert result.returncode == 0 and result.stdout.endswith("201"), result.stdout + result.stderr
    assert sha256((site / "uploaded.bin").read_bytes()) == sha256(original)
    serve.stop()
    sent, received = packet_sizes(serve.pcap_path)
    if offload:
        # Super-segments beyond the MTU both ways: ours (download), the kernel's (upload). The
        # kernel cut ours into MSS-sized segments: the other test sees them in `ss -ti`.
        assert max(sent) > 1500 and max(received) > 1500, (max(sent), max(received))
    else:
        assert max(sent) <= 1500 and max(received) <= 1500


def kernel_tcp_info(namespace: str) -> str:
    result = subprocess.run(["ip", "netns", "exec", namespace, "ss", "-tinH", "dst", STACK_ADDRESS],
                            capture_output=True, text=True, timeout=10)
    return result.stdout if "mss:" in result.stdout else ""


@pytest.mark.parametrize("mtu, mss", [(1500, 1448), (65535, 65483)])
def test_the_kernel_sees_the_mss_that_follows_the_mtu_and_normal_sized_segments(ustack_serve, tmp_path, mtu, mss):
    # ustack announces MTU - 40; the kernel's mss leaves out 12 bytes of timestamps.
    serve = ustack_serve("--echo", "--mtu", str(mtu))
    echoed = tmp_path / "echoed.bin"
    data = os.urandom(MEGABYTE)
    with echoed.open("wb") as output:
        peer = subprocess.Popen(["ip", "netns", "exec", serve.namespace, "nc", "-N", STACK_ADDRESS, "7"],
                                stdin=subprocess.PIPE, stdout=output, stderr=subprocess.PIPE)
        try:
            peer.stdin.write(data)
            peer.stdin.flush()
            wait_for(lambda: echoed.stat().st_size == len(data), IO_TIMEOUT, "the echo of 1 MB")
            info = wait_for(lambda: kernel_tcp_info(serve.namespace), 10, "the kernel's ss -ti line")
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
        assert received_mss == mss, info
