"""TSO6 (issues 11 and 12): the virtio_net_hdr path of ustack/link/vnet.py for TCP over IPv6.
Super-segments from the kernel taken whole with their partial checksum completed over the IPv6
pseudo-header, malformed IPv6 frames dropped by name and counted, our IPv6 segments joined into
TCPV6 super-segments that the kernel (split_super_segment here) cuts back into the very same
segments, and two Stacks over IPv6 exchanging the same bytes with offload on and off.
No TUN device: the link's read and write go through a SOCK_SEQPACKET socketpair, which keeps the
frame boundaries a TUN device keeps."""

from __future__ import annotations

import dataclasses
import socket

import pytest
from vnet_helpers import A6, ACK, B6, FIN, PSH, SYN, TS, coalesce, partial, segment, transfer

from ustack.link.base import Link
from ustack.link.tun import TunLink
from ustack.link.vnet import (
    DATA_VALID, GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP, GSO_UDP_L4, HEADER_SIZE, NEEDS_CSUM, Coalescer,
    VnetDrop, VnetHeader, build_vnet_header, large_segment_frame, packet_from_kernel, parse_vnet_header,
    split_super_segment,
)
from ustack.stack import Stack
from ustack.tcp import State
from ustack.wire import build_tcp_packet, parse_packet
from ustack.wire.tcp import TcpOptions, TcpSegment

MSS6 = 1500 - 60 - 12  # an IPv6 segment with timestamps at MTU 1500
HEADERS6 = 40 + 32  # IPv6, TCP with the timestamp option


def six(seq: int, length: int, flags: int = ACK, **fields) -> bytes:
    return segment(seq, length, flags, family=6, **fields)


# --- from the kernel ------------------------------------------------------------------------------


@pytest.mark.parametrize("gso_type", [GSO_NONE, GSO_TCPV4, GSO_UDP, GSO_TCPV6, GSO_UDP_L4, GSO_TCPV6 | GSO_ECN])
def test_every_gso_type_survives_build_and_parse_with_ipv6_offsets(gso_type):
    header = VnetHeader(NEEDS_CSUM, gso_type, HEADERS6, MSS6, 40, 16)
    assert parse_vnet_header(build_vnet_header(header) + six(1, 10)) == header


def test_an_ipv6_partial_checksum_is_completed_over_the_ipv6_pseudo_header():
    whole = six(1, 1000)
    frame = build_vnet_header(VnetHeader(NEEDS_CSUM, GSO_NONE, 0, 0, 40, 16)) + partial(whole)
    assert partial(whole) != whole
    assert packet_from_kernel(frame) == whole
    assert parse_packet(packet_from_kernel(frame)).tcp.payload == whole[HEADERS6:]  # a valid checksum


def test_a_tcpv6_super_segment_from_the_kernel_is_one_segment_with_a_valid_checksum():
    data = bytes(range(256)) * 40  # 10,240 bytes: seven and a bit MSS-sized pieces
    whole = build_tcp_packet(A6, B6, TcpSegment(40000, 80, 1, 7777, ACK | PSH, 500, 0, TS, data), flow_label=5)
    frame = build_vnet_header(VnetHeader(NEEDS_CSUM, GSO_TCPV6, HEADERS6, MSS6, 40, 16)) + partial(whole)
    packet = packet_from_kernel(frame)
    assert packet == whole
    assert parse_packet(packet).tcp.payload == data
    assert packet_from_kernel(build_vnet_header(VnetHeader(DATA_VALID)) + whole) == whole  # already verified


def ipv6_udp(length: int = 30) -> bytes:
    return bytes([0x60, 0, 0, 0]) + (8 + length).to_bytes(2, "big") + bytes([17, 64]) + A6 + B6 + bytes(8 + length)


MALFORMED = [
    (VnetHeader(gso_type=GSO_TCPV6, gso_size=1000), segment(1, 10), "vnet_gso_not_tcp_over_ipv6"),  # IPv4 inside
    (VnetHeader(gso_type=GSO_TCPV6, gso_size=1000), ipv6_udp(), "vnet_gso_not_tcp_over_ipv6"),
    (VnetHeader(gso_type=GSO_TCPV6, gso_size=1000), six(1, 10)[:30], "vnet_gso_not_tcp_over_ipv6"),  # truncated
    (VnetHeader(gso_type=GSO_TCPV6, gso_size=0), six(1, 10), "vnet_gso_size_zero"),
    (VnetHeader(gso_type=GSO_TCPV4, gso_size=1000), six(1, 10), "vnet_gso_not_tcp_over_ipv4"),  # IPv6 inside
    (VnetHeader(gso_type=GSO_UDP_L4, gso_size=1000), ipv6_udp(), "vnet_gso_udp_l4_not_supported"),
    (VnetHeader(NEEDS_CSUM, csum_start=20, csum_offset=16), six(1, 10), "vnet_checksum_out_of_range"),  # in the IPv6 header
    (VnetHeader(NEEDS_CSUM, csum_start=40, csum_offset=4000), six(1, 10), "vnet_checksum_out_of_range"),
]


@pytest.mark.parametrize("header, packet, reason", MALFORMED)
def test_a_malformed_ipv6_frame_is_dropped_for_a_named_reason(header, packet, reason):
    with pytest.raises(VnetDrop) as caught:
        packet_from_kernel(build_vnet_header(header) + packet)
    assert caught.value.reason == reason


def link_over_socketpair(tso6: bool = True) -> tuple[TunLink, socket.socket]:
    """A TunLink with offloads whose fd is one end of a SOCK_SEQPACKET socketpair instead of a TUN
    device (the other end, returned, plays the kernel): its read and write paths without root."""
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    link = TunLink.__new__(TunLink)
    Link.__init__(link)
    link.name, link.mtu, link.offload, link.tso6, link.software_offload = "fake0", 1500, True, tso6, False
    link.gso_max_size = 65535
    link._use(ours)
    return link, kernel


def test_the_link_counts_each_malformed_ipv6_frame_by_its_reason_and_keeps_the_good_one():
    link, kernel = link_over_socketpair()
    try:
        for header, packet, _ in MALFORMED:
            kernel.send(build_vnet_header(header) + packet)
        good = six(1, 5000)
        kernel.send(build_vnet_header(VnetHeader(NEEDS_CSUM, GSO_TCPV6, HEADERS6, MSS6, 40, 16)) + partial(good))
        assert link.receive_batch(0.0) == [good]
        counters = link.stats()["TunLink(fake0)"]
        expected = {}
        for _, _, reason in MALFORMED:
            expected[f"drop_{reason}"] = expected.get(f"drop_{reason}", 0) + 1
        assert {name: count for name, count in counters.items() if name.startswith("drop_")} == expected
        assert counters["super_segments_in"] == 1
    finally:
        link.close()
        kernel.close()


@pytest.mark.parametrize("family", [4, 6])
def test_the_link_reads_each_frame_into_its_buffers_whole_after_a_longer_one(family):
    """The readv path: a super-segment, then a short packet read into the same buffers; each comes
    out exactly, its partial checksum completed, nothing of the longer frame left on the shorter."""
    link, kernel = link_over_socketpair()
    tcp_start, mss = (40, MSS6) if family == 6 else (20, 1500 - 52)
    big = segment(1, 7 * mss, ACK | PSH, family=family)
    ack = segment(1, 0, family=family)
    gso_type = GSO_TCPV6 if family == 6 else GSO_TCPV4
    try:
        kernel.send(build_vnet_header(VnetHeader(NEEDS_CSUM, gso_type, tcp_start + 32, mss, tcp_start, 16))
                    + partial(big))
        kernel.send(build_vnet_header(VnetHeader(NEEDS_CSUM, GSO_NONE, 0, 0, tcp_start, 16)) + partial(ack))
        kernel.send(b"\0" * 4)  # shorter than a vnet header
        assert link.receive_batch(0.0) == [big, ack]
        counters = link.stats()["TunLink(fake0)"]
        assert counters["super_segments_in"] == 1 and counters["drop_vnet_header_truncated"] == 1
    finally:
        link.close()
        kernel.close()


@pytest.mark.parametrize("family", [4, 6])
def test_the_link_writes_a_run_ending_in_psh_at_once_and_holds_one_without(family):
    link, kernel = link_over_socketpair()
    kernel.setblocking(False)
    run = [segment(1, 1000, family=family), segment(1001, 1000, family=family)]
    try:
        for packet in run:
            link.send(packet, 0.0)
        with pytest.raises(BlockingIOError):
            kernel.recv(70000)  # held: the run may still grow
        link.send(segment(2001, 300, ACK | PSH, family=family), 0.0)
        frame = kernel.recv(70000)  # written with the PSH piece, before any flush
        assert len(split_super_segment(frame)) == 3
        assert link.counters["packets_out"] == 1 and link.counters["bytes_out"] == len(frame) - HEADER_SIZE
    finally:
        link.close()
        kernel.close()


# --- to the kernel --------------------------------------------------------------------------------


def test_a_run_whose_last_piece_is_short_becomes_one_tcpv6_super_segment_and_splits_back_exactly():
    packets = [six(1, MSS6), six(1 + MSS6, MSS6), six(1 + 2 * MSS6, MSS6), six(1 + 3 * MSS6, 500, ACK | PSH)]
    [frame] = coalesce(packets)
    header = parse_vnet_header(frame)
    assert (header.flags, header.gso_type, header.gso_size) == (NEEDS_CSUM, GSO_TCPV6, MSS6)
    assert (header.hdr_len, header.csum_start, header.csum_offset) == (HEADERS6, 40, 16)
    assert len(frame) - HEADER_SIZE == HEADERS6 + 3 * MSS6 + 500
    assert split_super_segment(frame) == packets  # IPv6 has no identification: byte for byte


def test_fin_and_psh_ride_on_the_last_ipv6_piece_only():
    packets = [six(1, 1000), six(1001, 1000), six(2001, 10, ACK | PSH | FIN)]
    [frame] = coalesce(packets)
    assert [parse_packet(piece).tcp.flags for piece in split_super_segment(frame)] == [ACK, ACK, ACK | PSH | FIN]
    # A PSH before the last piece ends the run: the kernel could not keep it there.
    frames = coalesce([six(1, 1000, ACK | PSH), six(1001, 1000)])
    assert [parse_vnet_header(frame).gso_type for frame in frames] == [GSO_NONE, GSO_NONE]


@pytest.mark.parametrize(
    "second",
    [
        six(1001, 1000, flow_label=0x54321),  # another flow label
        segment(1001, 1000),  # the same ports and sequence number over IPv4
        six(1001, 1000, ports=(40001, 80)),  # another connection
        six(2001, 1000),  # a gap
        six(1001, 1001),  # longer than the first piece
        six(1001, 1000, options=TcpOptions(timestamps=(1001, 2000))),
        six(1001, 10, ACK | SYN),
    ],
)
def test_what_the_kernel_could_not_give_back_as_it_was_is_not_joined(second):
    frames = coalesce([six(1, 1000), second])
    assert [frame[HEADER_SIZE:] for frame in frames] == [six(1, 1000), second]


def test_no_ipv6_super_segment_exceeds_64_kilobytes():
    packets = [six(1 + index * MSS6, MSS6) for index in range(100)]
    frames = coalesce(packets)
    assert all(len(frame) - HEADER_SIZE <= 65535 for frame in frames)
    assert [piece for frame in frames for piece in split_super_segment(frame)] == packets


def test_a_coalescer_without_tso6_leaves_ipv6_segments_whole_and_still_joins_ipv4():
    frames = coalesce([six(1, 1000), six(1001, 1000)], ipv6=False)
    assert [parse_vnet_header(frame).gso_type for frame in frames] == [GSO_NONE, GSO_NONE]
    [frame] = coalesce([segment(1, 1000), segment(1001, 1000)], ipv6=False)
    assert parse_vnet_header(frame).gso_type == GSO_TCPV4


def test_a_large_ipv6_segment_of_the_core_is_cut_at_the_mtu_less_the_headers():
    data = bytes(index & 0xFF for index in range(10 * MSS6 + 100))
    big = build_tcp_packet(A6, B6, TcpSegment(40000, 80, 1, 7777, ACK | PSH | FIN, 500, 0, TS, data), flow_label=9)
    frame = large_segment_frame(big, 1500)
    header = parse_vnet_header(frame)
    assert (header.gso_type, header.gso_size, header.hdr_len, header.csum_start) == (GSO_TCPV6, MSS6, HEADERS6, 40)
    pieces = split_super_segment(frame)
    assert [len(piece) for piece in pieces] == [1500] * 10 + [HEADERS6 + 100]
    parsed = [parse_packet(piece) for piece in pieces]  # every checksum valid
    assert b"".join(packet.tcp.payload for packet in parsed) == data
    assert [packet.tcp.flags for packet in parsed] == [ACK] * 10 + [ACK | PSH | FIN]
    assert {packet.ip.flow_label for packet in parsed} == {9}


def frames_written_for(link: TunLink, kernel: socket.socket, packet: bytes) -> list[bytes]:
    """What the kernel's end reads after the link sends `packet` and flushes; closes both ends."""
    try:
        link.send(packet, 0.0)
        link.flush()
        kernel.setblocking(False)
        frames = []
        while True:
            try:
                frames.append(kernel.recv(70000))
            except BlockingIOError:
                return frames
    finally:
        link.close()
        kernel.close()


@pytest.mark.parametrize("tso6", [True, False], ids=["tso6", "kernel-refused-tso6"])
def test_the_link_hands_a_large_ipv6_segment_to_the_kernel_or_cuts_it_itself(tso6):
    link, kernel = link_over_socketpair(tso6)
    data = bytes(index & 0xFF for index in range(5 * MSS6))
    big = build_tcp_packet(A6, B6, TcpSegment(40000, 80, 1, 7777, ACK, 500, 0, TS, data))
    frames = frames_written_for(link, kernel, big)
    if tso6:
        [frame] = frames
        assert parse_vnet_header(frame).gso_type == GSO_TCPV6
        pieces = split_super_segment(frame)
    else:
        assert {parse_vnet_header(frame) for frame in frames} == {VnetHeader()}
        pieces = [frame[HEADER_SIZE:] for frame in frames]
    assert [len(piece) for piece in pieces] == [1500] * 5
    assert b"".join(parse_packet(piece).tcp.payload for piece in pieces) == data


@pytest.mark.parametrize("family", [4, 6])
def test_a_large_segment_carrying_cwr_is_cut_by_the_link_with_cwr_on_its_first_piece_only(family):
    """The kernel was not offered TUN_F_TSO_ECN, so a large segment with CWR (the first new data
    after an ECN reduction, RFC 3168 6.1.2) is cut here: before, it was dropped as larger_than_mtu."""
    cwr, ece = 0x80, 0x40
    link, kernel = link_over_socketpair()
    mss = MSS6 if family == 6 else 1500 - 40 - 12
    data = bytes(index & 0xFF for index in range(3 * mss))
    tcp = TcpSegment(40000, 80, 1, 7777, ACK | PSH | cwr | ece, 500, 0, TS, data)
    big = build_tcp_packet(A6, B6, tcp) if family == 6 else build_tcp_packet(0x0A4D0001, 0x0A4D0002, tcp)
    frames = frames_written_for(link, kernel, big)
    assert {parse_vnet_header(frame) for frame in frames} == {VnetHeader()}  # plain packets, no GSO
    pieces = [parse_packet(frame[HEADER_SIZE:]) for frame in frames]  # parse_packet checks the checksums
    assert b"".join(piece.tcp.payload for piece in pieces) == data
    assert [piece.tcp.flags for piece in pieces] == [ACK | cwr | ece, ACK | ece, ACK | PSH | ece]
    assert link.counters["large_segments_cut_here"] == 1 and link.counters["drop_larger_than_mtu"] == 0


# --- two stacks over IPv6 -------------------------------------------------------------------------


def test_offload_on_and_off_deliver_the_same_bytes_over_ipv6_in_fewer_packets():
    expected = bytes(index * 7 & 0xFF for index in range(600_000))
    plain, plain_packets, _ = transfer(600_000, offload=False, family=6)
    joined, joined_packets, _ = transfer(600_000, offload=True, family=6)
    assert joined == plain == expected
    assert joined_packets * 5 < plain_packets  # one parse per super-segment


def test_an_ipv6_connection_hands_down_large_segments_as_an_ipv4_one_does():
    pieces: list[bytes] = []
    cut, _, _ = transfer(600_000, offload=True, tso=True, pieces=pieces, family=6)
    assert cut == bytes(index * 7 & 0xFF for index in range(600_000))
    assert max(map(len, pieces)) <= 1500
    sizes = [len(parse_packet(piece).tcp.payload) for piece in pieces]
    sizes = [size for size in sizes if size]
    assert sizes.count(MSS6) >= len(sizes) - 20  # full-sized but for a few tails
    assert len(pieces) > 400  # 600 KB in 1428-byte pieces: the link really cut them
    # The same rule as IPv4: several segments at once while the segments fill the MTU.
    stack = Stack(None, address6=A6, segmentation_offload=True)
    assert stack.offload_segments == 44


def test_a_syn_flood_over_ipv6_reuses_one_fitted_configuration_per_listener():
    stack = Stack(0x0A4D0002, address6=B6)
    listener = stack.listen(80)
    children = []
    for port in range(40000, 40005):
        syn = TcpSegment(port, 80, 1000, 0, SYN, 65535, 0, TcpOptions(mss=1440), b"")
        stack.receive(build_tcp_packet(A6, B6, syn), 0.0)
        children.append(stack.connections[(B6, 80, A6, port)])
    assert {child.state for child in children} == {State.SYN_RECEIVED}
    configs = {id(child.config) for child in children}
    assert len(configs) == 1 and children[0].config.mss == 1440
    listener.config = dataclasses.replace(listener.config, mss=1000)  # a socket option set on the listener
    syn = TcpSegment(41000, 80, 1000, 0, SYN, 65535, 0, TcpOptions(mss=1440), b"")
    stack.receive(build_tcp_packet(A6, B6, syn), 0.0)
    assert stack.connections[(B6, 80, A6, 41000)].config.mss == 1000  # a changed listener is fitted again
