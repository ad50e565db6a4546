"""Every received TCP checksum is verified at most once, and a bad one is dropped by name on every path.

A super-segment the TUN link hands over whose partial checksum (NEEDS_CSUM) the kernel vouches
for is left partial, and the parser is told through the LinkBuffer it was read into not to sum
it (tests/link/test_checksum_partial.py follows it above the link); a partial checksum elsewhere
is completed by the link; a packet the link did not complete or see verified (no flag, the
checksum field elsewhere, a copy a FaultInjector corrupted: tests/link/test_checksum_partial.py)
is summed by the parser as always. These tests run
frames through a TunLink (offload on and off) over one end of an AF_UNIX SOCK_SEQPACKET
socketpair in place of the TUN device (each write one frame, as on TUN; no root needed) into a
Stack, and count what the parser summed and what was dropped.

The attacker here is whoever puts a frame in front of the link (the kernel, for a corrupted
packet from a wire): it knows everything about the packet and sets the vnet header's flags."""

from __future__ import annotations

import socket

import pytest
from vnet_helpers import A, A6, B, B6, partial, segment

from ustack.link import vnet
from ustack.link.base import Link
from ustack.link.tun import TunLink
from ustack.link.vnet import DATA_VALID, GSO_NONE, GSO_TCPV4, GSO_TCPV6, HEADER, NEEDS_CSUM
from ustack.stack import Stack
from ustack.wire import codec, parse_packet
from ustack.wire.codec import LinkBuffer

# What these tests follow rides on the buffer the link hands over (conftest.py).
pytestmark = pytest.mark.usefixtures("buffers_handed_over")

LARGE = 40_000  # a payload the link hands over as a view (vnet.HANDED_OVER_FROM is 32 KiB)
SMALL = 1_000  # one it copies into bytes


@pytest.fixture
def sockets():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    yield ours, theirs
    ours.close()
    theirs.close()


def fake_link(sock: socket.socket, offload: bool, software: bool = False, gso_max_size: int = 65535) -> TunLink:
    """A TunLink whose device is one end of the socketpair, with or without the vnet header."""
    sock.setblocking(False)
    link = TunLink.__new__(TunLink)
    Link.__init__(link)
    link.name, link.mtu, link.offload, link.tso6 = "fake0", 1500, offload, offload
    link.gso_max_size = gso_max_size
    link.software_offload = software and not offload
    link._use(sock)
    return link


def stack_for(family: int) -> Stack:
    return Stack(None, address6=B6, port_seed=2) if family == 6 else Stack(B, port_seed=2)


def packet_to_stack(family: int, length: int) -> bytes:
    """A data segment from A to the stack at B (which has no connection for it: what matters here
    is whether the parser lets it through)."""
    return segment(1000, length, family=family)


def frame(packet: bytes, flags: int = 0, gso: bool = False, csum_offset: int = 16) -> bytes:
    tcp_start = 40 if packet[0] >> 4 == 6 else 20
    gso_type = (GSO_TCPV6 if tcp_start == 40 else GSO_TCPV4) if gso else GSO_NONE
    return HEADER.pack(flags, gso_type, tcp_start + 32, 1448 if gso else 0, tcp_start, csum_offset) + packet


def corrupted(packet: bytes) -> bytes:
    """One bit of the data flipped: the TCP checksum no longer matches."""
    changed = bytearray(packet)
    changed[-100] ^= 0x10
    return bytes(changed)


class Sums:
    """Counts the passes over a segment: the link completing a checksum, the parser summing one."""

    def __init__(self, monkeypatch) -> None:
        self.link = self.parser = self.parser_skipped = 0
        complete, parse, parse_known = vnet.internet_checksum_of, codec._parse, codec._parse_tcp_checksum_known

        def counted_complete(*arguments):
            self.link += 1
            return complete(*arguments)

        def counted_parse(*arguments):
            self.parser += 1
            return parse(*arguments)

        def counted_parse_known(*arguments):
            self.parser_skipped += 1
            return parse_known(*arguments)

        monkeypatch.setattr(vnet, "internet_checksum_of", counted_complete)
        monkeypatch.setattr(codec, "_parse", counted_parse)
        monkeypatch.setattr(codec, "_parse_tcp_checksum_known", counted_parse_known)


def receive(link: Link, stack: Stack) -> list:
    packets = link.receive_batch(0.0)
    for packet in packets:
        stack.receive(packet, 0.0)
    return packets


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("gso", [False, True])
def test_a_vouched_partial_checksum_is_neither_completed_nor_summed(family, gso, sockets, monkeypatch):
    ours, theirs = sockets
    link, stack, sums = fake_link(ours, offload=True), stack_for(family), Sums(monkeypatch)
    packet = packet_to_stack(family, LARGE)
    theirs.send(frame(partial(packet), NEEDS_CSUM, gso))
    (handed,) = receive(link, stack)
    assert type(handed) is memoryview and type(handed.obj) is LinkBuffer
    assert handed.obj.tcp_checksum_known and handed.obj.tcp_checksum_partial
    assert bytes(handed) == partial(packet)  # left as the kernel handed it
    assert (sums.link, sums.parser, sums.parser_skipped) == (0, 0, 1)
    assert stack.drops["tcp_bad_checksum"] == 0 and stack.counters["packets_in"] == 1
    # Completed on demand, in the buffer, once (whatever reads the bytes as a wire would).
    assert vnet.complete_checksum(handed) is handed and bytes(handed) == packet
    assert not handed.obj.tcp_checksum_partial and handed.obj.tcp_checksum_known
    vnet.complete_checksum(handed)
    assert sums.link == 1


@pytest.mark.parametrize("family", [4, 6])
def test_a_packet_copied_into_bytes_carries_no_mark_and_is_summed_again(family, sockets, monkeypatch):
    """Below vnet.HANDED_OVER_FROM the link copies the packet into bytes, which cannot carry the
    mark: the parser sums it after the link completed it (twice, at most 32 KiB: a microsecond)."""
    ours, theirs = sockets
    link, stack, sums = fake_link(ours, offload=True), stack_for(family), Sums(monkeypatch)
    packet = packet_to_stack(family, SMALL)
    theirs.send(frame(partial(packet), NEEDS_CSUM))
    assert receive(link, stack) == [packet]
    assert (sums.link, sums.parser, sums.parser_skipped) == (1, 1, 0)
    assert stack.drops["tcp_bad_checksum"] == 0 and stack.counters["packets_in"] == 1


@pytest.mark.parametrize("family", [4, 6])
def test_a_packet_the_kernel_marked_data_valid_is_not_summed_again(family, sockets, monkeypatch):
    ours, theirs = sockets
    link, stack, sums = fake_link(ours, offload=True), stack_for(family), Sums(monkeypatch)
    theirs.send(frame(packet_to_stack(family, LARGE), DATA_VALID))
    (handed,) = receive(link, stack)
    assert handed.obj.tcp_checksum_known
    assert (sums.link, sums.parser, sums.parser_skipped) == (0, 0, 1)


def _bad_frames(family: int) -> dict[str, bytes]:
    """Frames whose TCP checksum is wrong, and which the link did not complete at the TCP checksum
    field nor see verified: each must reach the parser's sum and be dropped."""
    large, small = packet_to_stack(family, LARGE), packet_to_stack(family, SMALL)
    tcp_start = 40 if family == 6 else 20
    # The checksum field elsewhere: the link completes the urgent pointer, the TCP checksum field
    # keeps its partial sum, which is no checksum.
    elsewhere = frame(partial(large), NEEDS_CSUM, csum_offset=18)
    # The IP length shorter than the frame: the link sums bytes the parser leaves out.
    trailing = bytearray(partial(large) + b"\x55" * 8)
    if family == 4:
        assert trailing[2:4] == len(large).to_bytes(2, "big")
    else:
        assert trailing[4:6] == (len(large) - tcp_start).to_bytes(2, "big")
    return {
        "large, no flag": frame(corrupted(large)),
        "small, no flag": frame(corrupted(small)),
        "checksum field elsewhere": elsewhere,
        "IP length shorter than the frame": frame(bytes(trailing), NEEDS_CSUM),
    }


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("case", ["large, no flag", "small, no flag", "checksum field elsewhere",
                                  "IP length shorter than the frame"])
def test_with_offload_a_bad_checksum_the_link_did_not_complete_is_summed_and_dropped(family, case, sockets,
                                                                                       monkeypatch):
    ours, theirs = sockets
    link, stack, sums = fake_link(ours, offload=True), stack_for(family), Sums(monkeypatch)
    theirs.send(_bad_frames(family)[case])
    (handed,) = receive(link, stack)
    assert not (type(handed) is memoryview and handed.obj.tcp_checksum_known)
    assert vnet.complete_checksum(handed) is handed  # nothing left partial: nothing to complete
    assert (sums.parser, sums.parser_skipped) == (1, 0)
    assert stack.drops["tcp_bad_checksum"] == 1 and stack.counters.get("packets_in", 0) == 0


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("length", [SMALL, 1400])
@pytest.mark.parametrize("software", [False, True])
def test_without_offload_every_checksum_is_summed_by_the_parser(family, length, software, sockets, monkeypatch):
    ours, theirs = sockets
    link, stack, sums = fake_link(ours, offload=False, software=software), stack_for(family), Sums(monkeypatch)
    theirs.send(corrupted(packet_to_stack(family, length)))
    theirs.send(packet_to_stack(family, length))
    receive(link, stack)
    assert sums.parser_skipped == 0 and sums.parser >= 2
    assert stack.drops["tcp_bad_checksum"] == 1 and stack.counters["packets_in"] == 1


def test_the_mark_covers_the_tcp_checksum_only_and_only_a_read_only_view_of_the_buffer():
    packet = packet_to_stack(4, LARGE)
    buffer = LinkBuffer(len(packet))
    buffer[:] = corrupted(packet)  # a wrong TCP checksum, under a mark that says it is right
    buffer.tcp_checksum_known = True
    assert parse_packet(memoryview(buffer).toreadonly()).tcp.seq == 1000  # the mark is believed
    for unmarked in (memoryview(buffer), bytes(buffer), bytearray(buffer), memoryview(bytes(buffer))):
        with pytest.raises(Exception, match="tcp_bad_checksum"):
            parse_packet(unmarked)  # writable, or not the link's buffer: summed
    buffer[10] ^= 0x01  # the IPv4 header checksum is checked still
    with pytest.raises(Exception, match="ipv4_bad_checksum"):
        parse_packet(memoryview(buffer).toreadonly())
    buffer.tcp_checksum_known = False
    buffer[10] ^= 0x01
    with pytest.raises(Exception, match="tcp_bad_checksum"):
        parse_packet(memoryview(buffer).toreadonly())


@pytest.mark.parametrize("family", [4, 6])
def test_the_link_marks_a_fresh_buffer_for_each_frame_it_hands_over(family, sockets, monkeypatch):
    """A marked buffer goes with its packet; the next frame is read into a new, unmarked one."""
    ours, theirs = sockets
    link, stack, sums = fake_link(ours, offload=True), stack_for(family), Sums(monkeypatch)
    good = packet_to_stack(family, LARGE)
    theirs.send(frame(partial(good), NEEDS_CSUM, gso=True))
    theirs.send(frame(corrupted(good)))
    first, second = receive(link, stack)
    assert first.obj is not second.obj
    assert first.obj.tcp_checksum_known and not second.obj.tcp_checksum_known
    assert bytes(first) == partial(good)  # the second read did not touch the first's buffer
    assert (sums.parser, sums.parser_skipped) == (1, 1)
    assert stack.drops["tcp_bad_checksum"] == 1 and stack.counters["packets_in"] == 1
