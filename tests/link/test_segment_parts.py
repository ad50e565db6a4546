"""Packets made of parts: a segment the stack builds with its TCP checksum partial is SegmentParts
(codec.build_tcp_packet), its headers and its payload never joined on the way to the TUN device:
the link writes [vnet header, headers, payload] in one os.writev, the payload being the send
buffer's own object. Whatever reads it as a wire would gets it joined and completed from the one
owner of that, vnet.complete_checksum (the pcap writer, the FaultInjector's drops, CE marks and
corruption, the tracer), and the parts go on to the link as they came.

Frames go through a TunLink over one end of an AF_UNIX SOCK_SEQPACKET socketpair in place of the
TUN device (test_checksum_once.py's fake_link; no root needed)."""

from __future__ import annotations

import io
import os

import pytest
from test_checksum_once import fake_link, sockets
from test_checksum_partial_sent import connected_stacks, download_packets, frames_written, large_segment, whole
from vnet_helpers import A, A6, B, B6, partial, scapy_checksum_right

from ustack.link import tun, vnet
from ustack.link.fault import FaultInjector, Faults
from ustack.link.pcap import PcapWriter
from ustack.link.tracer import Tracer
from ustack.link.vnet import GSO_TCPV4, GSO_TCPV6, HEADER, HEADER_SIZE, NEEDS_CSUM, split_super_segment
from ustack.stack import Stack
from ustack.wire import build_tcp_packet, pcap
from ustack.wire.codec import PARTIAL_CHECKSUM_FROM, SegmentParts
from ustack.wire.ipv4 import CE, ECT_0
from ustack.wire.tcp import TcpOptions, TcpSegment

__all__ = ["sockets"]  # the fixture, imported for pytest

MTU = 1500
ACK = 0x10


@pytest.fixture
def writes(monkeypatch):
    """Every os.writev the code under test makes, as the list of buffers it was given."""
    calls = []
    real_writev = os.writev

    def recording(fd, buffers):
        buffers = list(buffers)
        calls.append(buffers)
        return real_writev(fd, buffers)

    monkeypatch.setattr(os, "writev", recording)
    return calls


def never_joined(monkeypatch):
    def joined(self):
        raise AssertionError("joined on the way to the device")

    monkeypatch.setattr(SegmentParts, "joined", joined)


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("batch", [False, True])
def test_the_tun_link_writes_the_parts_without_joining_them(family, batch, sockets, writes, monkeypatch):
    ours, theirs = sockets
    link = fake_link(ours, offload=True)
    large = [packet for packet in download_packets(family) if len(packet) > MTU]
    assert large and all(type(packet) is SegmentParts for packet in large)
    expected = [partial(whole(packet)) for packet in large]  # worked out before joined() is taken away
    never_joined(monkeypatch)
    if batch:
        link.send_batch(large, 0.0)
    else:
        for packet in large:
            link.send(packet, 0.0)
    assert len(writes) == len(large)
    for buffers, packet in zip(writes, large):
        assert len(buffers) == 3 and buffers[1] is packet.headers and buffers[2] is packet.payload
    frames = frames_written(theirs)
    assert [frame[HEADER_SIZE:] for frame in frames] == expected
    for frame in frames:
        assert HEADER.unpack_from(frame)[:2] == (NEEDS_CSUM, GSO_TCPV6 if family == 6 else GSO_TCPV4)
        assert all(scapy_checksum_right(piece) for piece in split_super_segment(frame))


@pytest.mark.parametrize("family", [4, 6])
def test_observers_see_whole_packets_and_the_link_still_writes_parts(family, sockets, writes, tmp_path):
    """The pcap, the tracer and a FaultInjector's predicate read the packet joined and complete;
    the device gets the parts, checksum partial, and each packet is joined once at most."""
    ours, theirs = sockets
    path = tmp_path / "parts.pcap"
    formatted, predicate_saw = [], []
    fault = FaultInjector(fake_link(ours, offload=True), seed=1)
    fault.drop_when(lambda packet: predicate_saw.append(bytes(packet)) and False)
    link = Tracer(PcapWriter(fault, path, timestamp_offset=0.0), output=io.StringIO(),
                  formatter=lambda packet: formatted.append(bytes(packet)) or "")
    large = [packet for packet in download_packets(family) if len(packet) > MTU]
    expected = [whole(packet) for packet in large]
    link.send_batch(large, 0.0)
    link.flush()
    _, records = pcap.read_records(path.read_bytes())
    assert [record.data for record in records] == expected == formatted == predicate_saw
    assert all(buffers[2] is packet.payload for buffers, packet in zip(writes, large))
    assert [frame[HEADER_SIZE:] for frame in frames_written(theirs)] == [partial(packet) for packet in expected]
    # complete_checksum joined each once: every observer got the same object.
    assert all(vnet.complete_checksum(packet) is packet.joined() for packet in large)


@pytest.mark.parametrize("family", [4, 6])
def test_a_scripted_drop_tells_the_whole_packet_and_keeps_the_note(family, sockets):
    """on_drop and the rule's `dropped` list get the completed packet, the very object the
    predicate saw (a WireWatch gives a dropped packet its rule's note by the object's id)."""
    ours, theirs = sockets
    told, predicate_saw = [], []
    link = FaultInjector(fake_link(ours, offload=True), seed=1,
                         on_drop=lambda now, packet, direction, reason: told.append(packet))
    rule = link.drop_when(lambda packet: predicate_saw.append(packet) or True)
    packet, built_whole = large_segment(family)
    assert type(packet) is SegmentParts
    link.send(packet, 0.0)
    assert told == predicate_saw and told[0] is predicate_saw[0] and bytes(told[0]) == built_whole
    assert [bytes(dropped) for dropped in rule.dropped] == [built_whole]
    assert frames_written(theirs) == []


def ecn_segment(family: int) -> tuple:
    src, dst = (A6, B6) if family == 6 else (A, B)
    tcp = TcpSegment(80, 40000, 5000, 9000, ACK, 700, 0, TcpOptions(timestamps=(7, 8)),
                     bytes(index * 3 & 0xFF for index in range(30_001)))
    ecn = {"traffic_class": ECT_0} if family == 6 else {"tos": ECT_0}
    return build_tcp_packet(src, dst, tcp, partial_checksum_over=MTU, **ecn), build_tcp_packet(src, dst, tcp, **ecn)


@pytest.mark.parametrize("family", [4, 6])
def test_a_ce_mark_on_parts_marks_the_whole_packet(family, sockets):
    ours, theirs = sockets
    link = FaultInjector(fake_link(ours, offload=True), seed=3, outbound=Faults(ce=1.0))
    packet, built_whole = ecn_segment(family)
    assert type(packet) is SegmentParts
    link.send(packet, 0.0)
    pieces = [piece for frame in frames_written(theirs) for piece in split_super_segment(frame)]
    assert len(pieces) > 1 and all(map(scapy_checksum_right, pieces))
    marked = bytearray(built_whole)
    if family == 6:
        marked[1] |= CE << 4
    else:
        marked[1] |= CE
        marked[10:12] = b"\0\0"
        from ustack.wire import internet_checksum
        marked[10:12] = internet_checksum(bytes(marked[:20])).to_bytes(2, "big")
    expected = [bytes(piece) for piece in vnet.cut_tcp_segment(bytes(marked), MTU)]
    assert [piece[:4] + piece[6:10] + piece[12:] if family == 4 else piece for piece in pieces] == \
        [piece[:4] + piece[6:10] + piece[12:] if family == 4 else piece for piece in expected]


@pytest.mark.parametrize("family", [4, 6])
def test_corrupting_parts_flips_one_bit_of_the_whole_packet(family, sockets):
    ours, theirs = sockets
    link = FaultInjector(fake_link(ours, offload=True), seed=5, outbound=Faults(corrupt=1.0))
    packet, built_whole = large_segment(family)
    link.send(packet, 0.0)
    (frame,) = frames_written(theirs)
    # The corrupted copy is whole bytes: the link frames it with a partial checksum of its own.
    sent = frame[HEADER_SIZE:]
    differences = [(x ^ y) for x, y in zip(partial(built_whole), sent) if x != y]
    assert len(sent) == len(built_whole) and len(differences) == 1 and bin(differences[0]).count("1") == 1


@pytest.mark.parametrize("family", [4, 6])
def test_a_stack_over_a_large_mtu_builds_large_packets_partial(family):
    """At a large MTU (65535: the link cuts nothing), a packet of PARTIAL_CHECKSUM_FROM bytes or
    more still goes with its checksum partial when the link takes that; smaller ones whole."""
    mtu = 65535
    server_stack, client_stack, server, client = connected_stacks(family, offload=True, mtu=mtu)
    data = bytes(index * 7 & 0xFF for index in range(200_003))
    server.send(data, 0.0)
    server_stack.poke(server)
    packets = server_stack.transmit(0.0)
    large = [packet for packet in packets if len(packet) > PARTIAL_CHECKSUM_FROM]
    assert large and all(type(packet) is SegmentParts and len(packet) <= mtu for packet in large)
    assert all(type(packet) is bytes for packet in packets if len(packet) < PARTIAL_CHECKSUM_FROM)
    for packet in packets:  # each, made whole, arrives as the client's stack expects
        client_stack.receive(bytes(vnet.complete_checksum(packet)), 0.0)
    assert not client_stack.drops
    received = client.recv(1 << 20, 0.0)
    assert len(received) == sum(len(packet) - len(packet.headers) for packet in large) and data.startswith(received)


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("length", [1461, 2897, 30_001, 65_535 - 40 - 32 - 20])
@pytest.mark.parametrize("flags", [ACK, ACK | 0x08 | 0x01, ACK | 0x80])  # plain; PSH and FIN; CWR
@pytest.mark.parametrize("payload_type", [bytes, memoryview])
def test_cutting_parts_in_software_gives_the_pieces_of_the_whole_segment(family, length, flags, payload_type,
                                                                         monkeypatch):
    src, dst = (A6, B6) if family == 6 else (A, B)
    tcp = TcpSegment(80, 40000, 2**32 - 3000, 9000, flags, 700, 0, TcpOptions(timestamps=(77, 88)),
                     payload_type(bytes(index * 5 + 1 & 0xFF for index in range(length))))
    packet = build_tcp_packet(src, dst, tcp, partial_checksum_over=MTU)
    built_whole = build_tcp_packet(src, dst, tcp)
    assert type(packet) is SegmentParts
    expected = [bytes(piece) for piece in vnet.cut_tcp_segment(built_whole, MTU)]
    never_joined(monkeypatch)
    pieces = [bytes(piece) for piece in vnet.cut_tcp_segment(packet, MTU)]
    assert pieces == expected and all(map(scapy_checksum_right, pieces))


def test_parts_that_do_not_split_where_the_data_starts_are_not_cut():
    tcp = TcpSegment(80, 40000, 1, 2, ACK, 700, 0, TcpOptions(), bytes(5000))
    packet = build_tcp_packet(A, B, tcp, partial_checksum_over=MTU)
    whole_bytes = bytes(packet)
    assert vnet.cut_tcp_segment(SegmentParts(whole_bytes[:41], whole_bytes[41:]), MTU) is None
    assert vnet.cut_tcp_segment(SegmentParts(whole_bytes[:39], whole_bytes[39:]), MTU) is None
    assert vnet.cut_tcp_segment(SegmentParts(whole_bytes[:40], whole_bytes[40:]), MTU) is not None


@pytest.mark.parametrize("family", [4, 6])
def test_a_device_without_offloads_cuts_the_parts_without_joining_them(family, sockets, monkeypatch):
    ours, theirs = sockets
    link = fake_link(ours, offload=False, software=True)
    large = [packet for packet in download_packets(family) if len(packet) > MTU]
    expected = [bytes(piece) for packet in large for piece in vnet.cut_tcp_segment(whole(packet), MTU)]
    never_joined(monkeypatch)
    link.send_batch(large, 0.0)
    assert frames_written(theirs) == expected and all(map(scapy_checksum_right, expected))


def fitting_parts(family: int, length: int) -> tuple:
    """A segment built partial that the MTU of a large-MTU device carries whole, with a payload of
    `length` bytes held in a view (as the send buffer hands it over), and the same built whole."""
    src, dst = (A6, B6) if family == 6 else (A, B)
    payload = memoryview(bytes(index * 13 & 0xFF for index in range(length)))
    tcp = TcpSegment(80, 40000, 5000, 9000, 0x18, 700, 0, TcpOptions(timestamps=(5, 6)), payload)
    return (build_tcp_packet(src, dst, tcp, partial_checksum_over=PARTIAL_CHECKSUM_FROM),
            build_tcp_packet(src, dst, tcp))


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("length", [PARTIAL_CHECKSUM_FROM, 20_001, 65_000])
@pytest.mark.parametrize("batch", [False, True])
def test_a_device_without_offloads_gets_parts_completed_without_a_join(family, length, batch, sockets, writes,
                                                                        monkeypatch):
    """At a large MTU without the vnet header (`--no-offload`), a segment built partial leaves
    complete in one writev of its two parts: headers (checksum completed) and the payload object
    itself, never joined (vnet.completed_parts); the device gets the packet built whole."""
    ours, theirs = sockets
    link = fake_link(ours, offload=False, software=True)
    link.mtu = 65535
    packet, built_whole = fitting_parts(family, length)
    assert type(packet) is SegmentParts and len(packet) <= link.mtu
    never_joined(monkeypatch)
    if batch:
        link.send_batch([packet], 0.0)
    else:
        link.send(packet, 0.0)
    (buffers,) = writes
    assert len(buffers) == 2 and buffers[1] is packet.payload
    assert frames_written(theirs) == [built_whole] and scapy_checksum_right(built_whole)
    assert bytes(packet.headers) == bytes(partial(built_whole))[:len(packet.headers)]  # the parts kept partial


@pytest.mark.parametrize("family", [4, 6])
def test_parts_an_observer_joined_leave_joined_and_complete(family, sockets):
    """Once a pcap writer or a FaultInjector has asked for the packet whole (complete_checksum),
    a device without offloads is given that completed packet, not a second completion."""
    ours, theirs = sockets
    link = fake_link(ours, offload=False, software=True)
    link.mtu = 65535
    packet, built_whole = fitting_parts(family, 30_000)
    seen = vnet.complete_checksum(packet)
    assert bytes(seen) == built_whole
    assert vnet.completed_parts(packet) == [seen]
    link.send(packet, 0.0)
    assert frames_written(theirs) == [built_whole]


@pytest.mark.parametrize("family", [4, 6])
def test_a_device_without_the_vnet_header_gets_packets_the_mtu_carries_built_whole(family, sockets, monkeypatch):
    """Without offloads the kernel takes no partial checksum, so a Stack over such a link
    (`partial_checksums=False`, what `serve --no-offload` gives on CPython) builds the packets its
    MTU carries whole, summed while copied, and asks for parts only for segments the link cuts;
    with the vnet header it asks for them from PARTIAL_CHECKSUM_FROM bytes on."""
    ours, _ = sockets
    monkeypatch.setattr(tun, "PARTS_WITHOUT_OFFLOADS", False, raising=False)  # (CPython's; PyPy's: the test below)
    assert fake_link(ours, offload=True).takes_partial_checksums
    assert not fake_link(ours, offload=False, software=True).takes_partial_checksums
    assert Stack(A, mtu=65535, segmentation_offload=True).partial_checksum_over == PARTIAL_CHECKSUM_FROM
    assert Stack(A, mtu=1500, segmentation_offload=True, partial_checksums=False).partial_checksum_over == 1500
    assert Stack(A, mtu=1500).partial_checksum_over == 0
    server_stack, _, server, _ = connected_stacks(family, offload=True, mtu=65535, partial_checksums=False)
    server.send(bytes(index * 3 & 0xFF for index in range(150_000)), 0.0)
    server_stack.poke(server)
    packets = server_stack.transmit(0.0)
    assert any(len(packet) > PARTIAL_CHECKSUM_FROM for packet in packets)
    assert all(type(packet) is bytes and scapy_checksum_right(packet) for packet in packets)


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("batch", [False, True])
def test_a_packet_built_whole_goes_to_a_device_without_offloads_in_one_os_write(family, batch, sockets, writes,
                                                                                monkeypatch):
    """`serve --no-offload` at MTU 65535: the segments of a download are built whole (bytes of up
    to 64 KB, TunLink.takes_partial_checksums) and each is written with one os.write of that very
    object, never os.writev: on PyPy os.writev is compat's cffi stand-in, whose ffi.from_buffer
    moves a young bytes object out of the collector's nursery, a copy of every byte into memory
    only a major collection frees (compat.FROM_BUFFER_MOVES_YOUNG_BYTES), where os.write pins it
    for the call."""
    ours, theirs = sockets
    link = fake_link(ours, offload=False, software=True)
    link.mtu = 65535
    server_stack, _, server, _ = connected_stacks(family, offload=True, mtu=65535, partial_checksums=False)
    server.send(bytes(index * 7 & 0xFF for index in range(150_000)), 0.0)
    server_stack.poke(server)
    packets = server_stack.transmit(0.0)
    large = [packet for packet in packets if len(packet) > PARTIAL_CHECKSUM_FROM]
    assert large and all(type(packet) is bytes and len(packet) <= link.mtu for packet in large)
    written = []
    real_write = os.write

    def recording(fd, data):
        written.append(data)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", recording)
    if batch:
        link.send_batch(large, 0.0)
    else:
        for packet in large:
            link.send(packet, 0.0)
    assert writes == []  # no os.writev
    assert len(written) == len(large) and all(data is packet for data, packet in zip(written, large))
    assert frames_written(theirs) == large
    assert link.counters["packets_out"] == len(large) and link.counters["bytes_out"] == sum(map(len, large))


@pytest.mark.parametrize("family", [4, 6])
def test_on_pypy_a_device_without_offloads_gets_the_download_in_parts(family, sockets, writes, monkeypatch):
    """On PyPy (tun.PARTS_WITHOUT_OFFLOADS) a link without the vnet header asks the Stack for the
    packets its MTU carries in parts too, from PARTIAL_CHECKSUM_FROM bytes on, and writes each as
    [headers with the checksum completed, the send buffer's payload]: no 64 KB bytes object is
    joined per segment (at MTU 65535 that join and os.writev's move of the young object out of
    the nursery made `serve --no-offload` downloads half as fast as with offloads). The device
    gets the same packets, checksums complete."""
    ours, theirs = sockets
    monkeypatch.setattr(tun, "PARTS_WITHOUT_OFFLOADS", True, raising=False)
    link = fake_link(ours, offload=False, software=True)
    link.mtu = 65535
    assert link.takes_partial_checksums
    server_stack, _, server, _ = connected_stacks(family, offload=True, mtu=65535,
                                                  partial_checksums=link.takes_partial_checksums)
    data = bytes(index * 13 & 0xFF for index in range(150_000))
    server.send(data, 0.0)
    server_stack.poke(server)
    packets = server_stack.transmit(0.0)
    large = [packet for packet in packets if len(packet) > PARTIAL_CHECKSUM_FROM]
    assert large and all(type(packet) is SegmentParts and len(packet) <= link.mtu for packet in large)
    expected = [whole(bytes(packet)) for packet in large]  # (bytes(): not joined())
    never_joined(monkeypatch)
    link.send_batch(large, 0.0)
    assert len(writes) == len(large)
    for buffers, packet in zip(writes, large):
        assert len(buffers) == 2 and buffers[1] is packet.payload
    frames = frames_written(theirs)
    assert frames == expected and all(scapy_checksum_right(frame) for frame in frames)
    assert b"".join(frame[len(frame) - len(packet.payload):] for frame, packet in zip(frames, large)) \
        == data[:sum(len(packet.payload) for packet in large)]
