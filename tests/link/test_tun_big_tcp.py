"""BIG TCP on the TUN link (issue 12, link/tun.py): a segment longer than 65535 bytes that the
Stack built (IPv4 with Total Length 0, an IPv6 jumbogram) goes to the device as one frame, for the
kernel's TSO to cut into segments of the MTU;
where the kernel cannot take it whole (the write fails), the link cuts it into MTU-sized packets
itself and counts it: nothing is lost. Which size a link takes by default depends on the kernel
(Linux 6.3 reads IPv4's Total Length 0 as the frame's length; an older one drops such packets
silently), and a size it cannot take is one clear error.

Frames go through a TunLink over a SOCK_SEQPACKET socketpair in place of the device
(test_checksum_once.py's fake_link; no root needed); tests/interop/test_offload.py sends them to
the real kernel."""

from __future__ import annotations

import errno
import socket

import pytest
from test_checksum_once import fake_link

from ustack.link import LinkError, TunLink
from ustack.link import tun
from ustack.link.vnet import GSO_NONE, GSO_TCPV4, GSO_TCPV6, HEADER_SIZE, NEEDS_CSUM, parse_vnet_header
from ustack.wire import build_tcp_packet, parse_packet
from ustack.wire.tcp import ACK, PSH, TcpOptions, TcpSegment

SRC, DST = 0x0A4D0002, 0x0A4D0001
SRC6, DST6 = bytes.fromhex("fd000077" + "00" * 11 + "02"), bytes.fromhex("fd000077" + "00" * 11 + "01")
PAYLOAD = bytes((index * 7 + 1) & 0xFF for index in range(1448 * 150))  # 217,200 bytes


def big_segment(family: int = 4):
    segment = TcpSegment(80, 40000, 5000, 99, ACK | PSH, 512, 0, TcpOptions(timestamps=(1, 2)), PAYLOAD)
    if family == 6:
        return build_tcp_packet(SRC6, DST6, segment, partial_checksum_over=1500)
    return build_tcp_packet(SRC, DST, segment, partial_checksum_over=1500)


def link_and_kernel(gso_max_size: int):
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    kernel.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    kernel.setblocking(False)
    return fake_link(ours, offload=True, gso_max_size=gso_max_size), ours, kernel


def frames(kernel: socket.socket) -> list[bytes]:
    found = []
    while True:
        try:
            found.append(kernel.recv(1 << 20))
        except BlockingIOError:
            return found


def test_a_big_segment_goes_to_the_device_whole_for_the_kernel_to_cut():
    link, ours, kernel = link_and_kernel(262144)
    link.send(big_segment(), 0.0)
    (frame,) = frames(kernel)
    header = parse_vnet_header(frame)
    assert header.gso_type == GSO_TCPV4 and header.flags == NEEDS_CSUM
    assert header.gso_size == 1448 and header.hdr_len == 52  # the pieces: the MTU less the headers
    assert header.csum_start == 20
    packet = frame[HEADER_SIZE:]
    assert len(packet) == 52 + len(PAYLOAD) and packet[2:4] == b"\x00\x00"
    assert link.counters["big_packets_out"] == 1 and link.counters["packets_out"] == 1
    ours.close()
    kernel.close()


def test_an_ipv6_jumbogram_goes_whole_with_pieces_that_leave_its_hop_by_hop_header_out():
    """TCP starts past the hop-by-hop header (csum_start 48, hdr_len 80), and the pieces' data is
    the MTU less 40 + 32 bytes: the kernel drops the jumbogram's hop-by-hop header before it cuts
    (RFC 2675 is for links that carry jumbograms; the pieces are ordinary packets)."""
    link, ours, kernel = link_and_kernel(262144)
    link.send(big_segment(6), 0.0)
    (frame,) = frames(kernel)
    header = parse_vnet_header(frame)
    assert header.gso_type == GSO_TCPV6 and header.flags == NEEDS_CSUM
    assert (header.csum_start, header.csum_offset, header.hdr_len, header.gso_size) == (48, 16, 80, 1428)
    packet = frame[HEADER_SIZE:]
    assert len(packet) == 80 + len(PAYLOAD) and packet[4:7] == b"\x00\x00\x00" and packet[42] == 0xC2
    assert link.counters["big_packets_out"] == 1 and link.counters["packets_out"] == 1
    ours.close()
    kernel.close()


def test_a_link_that_takes_64_kb_drops_a_bigger_segment_by_name():
    link, ours, kernel = link_and_kernel(65535)
    link.send(big_segment(), 0.0)
    assert frames(kernel) == []
    assert link.counters["drop_larger_than_mtu"] == 1
    ours.close()
    kernel.close()


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("error", [errno.ENOBUFS, errno.ENOMEM, errno.EMSGSIZE])
def test_a_big_segment_the_kernel_cannot_take_whole_is_cut_here_and_nothing_is_lost(error, family, monkeypatch):
    link, ours, kernel = link_and_kernel(262144)
    writev = tun.os.writev

    def refuse_big(fd, parts):
        if sum(len(part) for part in parts) > 65535:
            raise OSError(error, "no room")
        return writev(fd, parts)

    monkeypatch.setattr(tun.os, "writev", refuse_big)
    link.send(big_segment(family), 0.0)
    pieces = frames(kernel)
    assert len(pieces) == (150 if family == 4 else 153)  # (1448 and 1428 bytes of data each)
    data = b""
    for frame in pieces:
        assert parse_vnet_header(frame).gso_type == GSO_NONE
        parsed = parse_packet(frame[HEADER_SIZE:])  # complete checksums
        assert parsed.tcp.seq == 5000 + len(data)
        data += parsed.payload
    assert data == PAYLOAD
    assert link.counters["big_packets_cut_here"] == 1 and "big_packets_out" not in link.counters
    ours.close()
    kernel.close()


def test_a_gone_device_is_still_a_link_error(monkeypatch):
    link, ours, kernel = link_and_kernel(262144)

    def gone(fd, parts):
        raise OSError(errno.EBADFD, "File descriptor in bad state")

    monkeypatch.setattr(tun.os, "writev", gone)
    with pytest.raises(LinkError):
        link.send(big_segment(), 0.0)
    ours.close()
    kernel.close()


@pytest.mark.parametrize("release, offload, wanted, expected", [
    ("6.18.44-fc-v1272", True, None, 262144),
    ("6.3.0", True, None, 262144),
    ("6.2.16-generic", True, None, 65535),  # before IPv4 BIG TCP: such packets would be dropped
    ("6.18.44", False, None, 65535),  # software offload: 64 KB unless asked
    ("6.18.44", False, 200000, 200000),  # ... cut here, whatever the kernel
    ("6.18.44", True, 65535, 65535),
])
def test_the_default_size_follows_the_kernel(release, offload, wanted, expected, monkeypatch):
    monkeypatch.setattr(tun, "kernel_version", lambda: tun._version_of(release))
    assert tun._big_tcp_size(wanted, offload, not offload) == expected


def test_big_tcp_asked_of_an_older_kernel_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(tun, "kernel_version", lambda: (6, 1))
    with pytest.raises(LinkError, match=r"gso_max_size 262144 needs Linux 6.3 or later"):
        tun._big_tcp_size(262144, True, False)


@pytest.mark.parametrize("size", [65534, 262145])
def test_a_size_out_of_range_is_refused_before_touching_the_kernel(size):
    with pytest.raises(LinkError, match="outside 65535..262144"):
        TunLink("ustun0", gso_max_size=size)


@pytest.mark.parametrize("offload, software, tso6, size, expected", [
    (True, False, True, 262144,
     "offloads on: the kernel cuts our TCP segments and joins its own, IPv4 and IPv6, up to 262,144 bytes at once (BIG TCP)"),
    (True, False, False, 65535,
     "offloads on: the kernel cuts our TCP segments and joins its own, IPv4 (IPv6 segments cut here), up to 64 KB at once"),
    (False, True, False, 65535,
     "offloads off: TCP segments joined and cut here, in software (--no-software-offload: every packet as it comes)"),
    (False, False, False, 65535, "offloads off: every packet as it comes"),
])
def test_serve_says_how_segments_cross_the_device(offload, software, tso6, size, expected):
    link = TunLink.__new__(TunLink)
    link.offload, link.software_offload, link.tso6, link.gso_max_size = offload, software, tso6, size
    assert link.offload_summary() == expected
