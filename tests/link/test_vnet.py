"""The virtio_net_hdr (ustack/link/vnet.py): parse/build, partial checksums, named drops, and the
coalescing of our segments into super-segments that the kernel cuts back into the same segments.
No TUN device here: `split_super_segment` does in Python what the kernel's TSO does."""

from __future__ import annotations

import gc
import sys

import pytest
from test_checksum_once import LARGE, Sums, corrupted, fake_link, frame, packet_to_stack, receive, sockets, stack_for
from vnet_helpers import A, ACK, FIN, PSH, SYN, coalesce, partial, segment, transfer, without_ip_id

from ustack.link import vnet
from ustack.link.vnet import (
    DATA_VALID, GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP, GSO_UDP_L4, HEADER_SIZE, NEEDS_CSUM, Coalescer,
    VnetDrop, VnetHeader, build_vnet_header, packet_from_kernel, parse_vnet_header, split_super_segment,
)
from ustack.stack import Stack
from ustack.wire import parse_packet
from ustack.wire.buffers import ChecksumKnownCopy, LinkBuffer
from ustack.wire.tcp import TcpOptions


# --- the header itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("gso_type", [GSO_NONE, GSO_TCPV4, GSO_UDP, GSO_TCPV6, GSO_UDP_L4, GSO_TCPV4 | GSO_ECN])
def test_every_gso_type_survives_build_and_parse(gso_type):
    header = VnetHeader(NEEDS_CSUM, gso_type, 52, 1448, 20, 16)
    data = build_vnet_header(header)
    assert len(data) == HEADER_SIZE == 10
    assert parse_vnet_header(data + b"packet") == header


def test_a_partial_checksum_is_completed_before_parsing():
    whole = segment(1, 1000)
    frame = build_vnet_header(VnetHeader(NEEDS_CSUM, GSO_NONE, 0, 0, 20, 16)) + partial(whole)
    assert partial(whole) != whole
    assert packet_from_kernel(frame) == whole
    parse_packet(packet_from_kernel(frame))  # a valid checksum: parses without WireError


def test_a_packet_marked_data_valid_or_plain_is_passed_as_it_is():
    whole = segment(1, 100)
    assert packet_from_kernel(build_vnet_header(VnetHeader(DATA_VALID)) + whole) == whole
    assert packet_from_kernel(build_vnet_header(VnetHeader()) + whole) == whole


@pytest.mark.parametrize(
    "header, packet, reason",
    [
        (None, b"\0" * 5, "vnet_header_truncated"),
        (VnetHeader(flags=0x08), segment(1, 10), "vnet_unknown_flags"),
        (VnetHeader(gso_type=2), segment(1, 10), "vnet_unknown_gso_type"),
        (VnetHeader(gso_type=GSO_UDP, gso_size=1000), segment(1, 10), "vnet_gso_udp_not_supported"),
        (VnetHeader(gso_type=GSO_TCPV6, gso_size=1000), segment(1, 10), "vnet_gso_not_tcp_over_ipv6"),
        (VnetHeader(gso_type=GSO_UDP_L4, gso_size=1000), segment(1, 10), "vnet_gso_udp_l4_not_supported"),
        (VnetHeader(gso_type=GSO_TCPV4, gso_size=0), segment(1, 10), "vnet_gso_size_zero"),
        (VnetHeader(gso_type=GSO_TCPV4, gso_size=100), b"\x45" + b"\0" * 30, "vnet_gso_not_tcp_over_ipv4"),
        (VnetHeader(NEEDS_CSUM, csum_start=20, csum_offset=4000), segment(1, 10), "vnet_checksum_out_of_range"),
        (VnetHeader(NEEDS_CSUM, csum_start=2, csum_offset=16), segment(1, 10), "vnet_checksum_out_of_range"),
    ],
)
def test_a_malformed_frame_is_dropped_for_a_named_reason(header, packet, reason):
    frame = packet if header is None else build_vnet_header(header) + packet
    with pytest.raises(VnetDrop) as caught:
        packet_from_kernel(frame)
    assert caught.value.reason == reason


# --- coalescing and what the kernel makes of it --------------------------------------------------


def test_a_run_whose_last_piece_is_short_becomes_one_super_segment_and_splits_back():
    packets = [segment(1, 1448), segment(1449, 1448), segment(2897, 1448), segment(4345, 500, ACK | PSH)]
    [frame] = coalesce(packets)
    header = parse_vnet_header(frame)
    assert (header.gso_type, header.gso_size, header.flags) == (GSO_TCPV4, 1448, NEEDS_CSUM)
    assert (header.hdr_len, header.csum_start, header.csum_offset) == (20 + 32, 20, 16)
    assert len(frame) - HEADER_SIZE == 52 + 3 * 1448 + 500
    pieces = split_super_segment(frame)
    assert list(map(without_ip_id, pieces)) == list(map(without_ip_id, packets))
    for piece in pieces:
        parse_packet(piece)  # both checksums valid


def test_fin_and_psh_ride_on_the_last_piece_only():
    packets = [segment(1, 1000), segment(1001, 1000), segment(2001, 10, ACK | PSH | FIN)]
    [frame] = coalesce(packets)
    flags = [parse_packet(piece).tcp.flags for piece in split_super_segment(frame)]
    assert flags == [ACK, ACK, ACK | PSH | FIN]


def test_a_psh_before_the_last_piece_ends_the_run():
    packets = [segment(1, 1000, ACK | PSH), segment(1001, 1000)]
    frames = coalesce(packets)
    assert [parse_vnet_header(frame).gso_type for frame in frames] == [GSO_NONE, GSO_NONE]
    assert [frame[HEADER_SIZE:] for frame in frames] == packets


def test_sack_blocks_are_carried_on_every_piece_and_different_options_do_not_join():
    sack = TcpOptions(timestamps=(1000, 2000), sack_blocks=((90000, 91000),))
    packets = [segment(1, 1416, options=sack), segment(1417, 1416, options=sack), segment(2833, 1416)]
    frames = coalesce(packets)
    assert len(frames) == 2  # the third has no SACK block: a header of its own
    pieces = split_super_segment(frames[0]) + split_super_segment(frames[1])
    assert [parse_packet(piece).tcp.options.sack_blocks for piece in pieces] == [((90000, 91000),)] * 2 + [()]
    assert list(map(without_ip_id, pieces)) == list(map(without_ip_id, packets))


@pytest.mark.parametrize(
    "second",
    [
        segment(2001, 1000),  # a gap in sequence space
        segment(1001, 1000, ports=(40001, 80)),  # another connection
        segment(1001, 1001),  # longer than the first piece
        segment(1001, 1000, options=TcpOptions(timestamps=(1001, 2000))),  # another timestamp
        segment(1001, 0),  # no data
        segment(1001, 10, ACK | SYN),
    ],
)
def test_what_the_kernel_could_not_give_back_as_it_was_is_not_joined(second):
    frames = coalesce([segment(1, 1000), second])
    assert [frame[HEADER_SIZE:] for frame in frames] == [segment(1, 1000), second]


def test_a_short_piece_in_the_middle_ends_the_run():
    packets = [segment(1, 1000), segment(1001, 500), segment(1501, 500)]
    frames = coalesce(packets)
    assert len(frames) == 2
    assert [piece for frame in frames for piece in map(without_ip_id, split_super_segment(frame))] == list(
        map(without_ip_id, packets)
    )


def test_no_super_segment_exceeds_the_largest_ipv4_packet():
    packets = [segment(1 + index * 1448, 1448) for index in range(100)]
    frames = coalesce(packets)
    assert all(len(frame) - HEADER_SIZE <= 65535 for frame in frames)
    assert len(frames) == 3  # 45 + 45 + 10 pieces
    assert [piece for frame in frames for piece in map(without_ip_id, split_super_segment(frame))] == list(
        map(without_ip_id, packets)
    )


# --- two stacks: offload on and off give the same byte stream ----------------------------------


def test_segments_the_core_builds_larger_than_the_mtu_are_cut_into_full_sized_ones():
    plain, _, _ = transfer(600_000, offload=False)
    pieces: list[bytes] = []
    cut, _, _ = transfer(600_000, offload=False, tso=True, pieces=pieces)
    assert cut == plain
    data = [parse_packet(piece).tcp for piece in pieces]
    sizes = [len(segment.payload) for segment in data if segment.payload]
    assert max(map(len, pieces)) <= 1500
    assert sizes.count(1448) >= len(sizes) - 20  # full-sized but for a few tails
    assert len(pieces) > 400  # 600 KB in 1448-byte pieces: it really was cut


def test_the_stack_hands_down_large_segments_only_where_its_segments_fill_the_mtu():
    a = Stack(A, mtu=1500, segmentation_offload=True)
    assert a.offload_segments == 44  # 44 * 1460 + 60 bytes of headers fit in 65535
    assert Stack(A, mtu=65535, segmentation_offload=True).offload_segments == 1
    assert Stack(A, mtu=1500).offload_segments == 1


@pytest.mark.parametrize("mtu", [1500, 65535])
def test_offload_on_and_off_deliver_the_same_bytes_in_fewer_packets(mtu):
    plain, plain_packets, plain_acks = transfer(600_000, offload=False, mtu=mtu)
    joined, joined_packets, joined_acks = transfer(600_000, offload=True, mtu=mtu)
    assert joined == plain == bytes(index * 7 & 0xFF for index in range(600_000))
    if mtu == 1500:
        assert joined_packets * 5 < plain_packets  # one parse per super-segment


# --- the TUN link's readv/writev paths, both families ---------------------------------------------


@pytest.mark.parametrize("family", [4, 6])
def test_a_run_ending_in_psh_or_fin_is_written_as_soon_as_that_piece_comes(family):
    """A reply must not wait for the end of the round: the piece carrying PSH (or FIN) closes
    its run, so add() returns the whole run at once; a lone PSH segment goes out plain."""
    for last_flags in (ACK | PSH, ACK | FIN):
        coalescer = Coalescer()
        first, last = segment(1000, 1000, family=family), segment(2000, 500, flags=last_flags, family=family)
        assert coalescer.add(first) == []
        frames = coalescer.add(last)
        assert len(frames) == 1 and coalescer.flush() == []
        assert parse_vnet_header(frames[0]).gso_type == (GSO_TCPV6 if family == 6 else GSO_TCPV4)
        assert [without_ip_id(piece) for piece in split_super_segment(frames[0])] == [without_ip_id(first), without_ip_id(last)]
    coalescer = Coalescer()
    lone = segment(1000, 64, flags=ACK | PSH, family=family)
    assert coalescer.add(lone) == [build_vnet_header(VnetHeader()) + lone]
    assert coalescer.flush() == []


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("length", [300, 9000, 40000], ids=["sliced", "memoryview", "handed-over"])
def test_a_frame_read_into_buffers_gives_the_same_packet_as_one_read_frame(family, length):
    """packet_from_parts (the TUN link's readv path: the packet buffer reused, longer than the
    packet and holding an earlier frame's bytes past it) completes the partial checksum in place
    exactly as packet_from_kernel does, for a small packet (copied by slicing) and a large one."""
    packet = segment(1000, length, family=family)
    tcp_start = 40 if family == 6 else 20
    header = build_vnet_header(VnetHeader(NEEDS_CSUM, GSO_NONE, 0, 0, tcp_start, 16))
    buffer = bytearray(b"\xee" * 50000)
    buffer[:len(packet)] = partial(packet)
    assert vnet.packet_from_parts(header, buffer, len(packet)) == packet == packet_from_kernel(header + partial(packet))
    assert buffer[len(packet):] == b"\xee" * (50000 - len(packet))  # nothing past the packet touched
    with pytest.raises(VnetDrop) as drop:
        vnet.packet_from_parts(header[:4], buffer, len(packet))
    assert drop.value.reason == "vnet_header_truncated"
    with pytest.raises(VnetDrop) as drop:
        vnet.packet_from_parts(header, buffer, -3)  # a read shorter than the vnet header
    assert drop.value.reason == "vnet_header_truncated"


def super_segment_read_into(buffer_type, family: int):
    """A HANDED_OVER_FROM-byte segment with its checksum partial, as the TUN link reads one: the
    packet, its vnet header (NEEDS_CSUM, TSO) and a `buffer_type` buffer 100 bytes longer that
    holds it."""
    packet = segment(1000, vnet.HANDED_OVER_FROM, family=family)
    tcp_start = 40 if family == 6 else 20
    header = build_vnet_header(VnetHeader(NEEDS_CSUM, GSO_TCPV6 if family == 6 else GSO_TCPV4, 0, 1448, tcp_start, 16))
    buffer = buffer_type(len(packet) + 100)
    buffer[:len(packet)] = partial(packet)
    return packet, header, buffer


@pytest.mark.parametrize("family", [4, 6])
def test_a_super_segment_is_handed_over_as_a_read_only_view_of_the_buffer_and_parses_to_views(family,
                                                                                             buffers_handed_over):
    """From HANDED_OVER_FROM bytes on, packet_from_parts copies nothing: the packet is a read-only
    view of the buffer (the TUN link reads the next frame into a new one), and the parser's
    payload a view of that, which the receive buffer copies once (issue 12). Shorter packets are
    bytes of their own, so that a short one never keeps a 64 KB buffer alive."""
    packet, header, buffer = super_segment_read_into(bytearray, family)
    handed = vnet.packet_from_parts(header, buffer, len(packet))
    assert type(handed) is memoryview and handed.readonly and handed.obj is buffer and handed == packet
    with pytest.raises(TypeError):
        handed[0] = 0  # nobody above the link can change it
    payload = parse_packet(handed).tcp.payload
    assert type(payload) is memoryview and payload == packet[len(packet) - vnet.HANDED_OVER_FROM :]
    shorter = segment(1000, vnet.HANDED_OVER_FROM - 100, family=family)
    buffer[:len(shorter)] = partial(shorter)
    copied = vnet.packet_from_parts(header, buffer, len(shorter))
    assert type(copied) is bytes and copied == shorter


@pytest.mark.parametrize("family", [4, 6])
def test_where_buffers_are_not_handed_over_a_super_segment_is_a_read_only_view_of_its_copy(family, buffers_copied):
    """PyPy's way (vnet.HANDS_OVER_BUFFERS False; there a slice of a read-only view of a bytearray
    is read a byte at a time, compat.READ_ONLY_SLICES_COPY_BYTEWISE): from HANDED_OVER_FROM bytes
    on, the packet is copied once into bytes and handed over as a read-only view of the copy, its
    checksum completed, and known: a ChecksumKnownCopy, which the parser does not sum again; the
    buffer stays the caller's, and the parser's payload is a view of the copy (no second copy)."""
    packet, header, buffer = super_segment_read_into(LinkBuffer, family)
    handed = vnet.packet_from_parts(header, buffer, len(packet))
    assert type(handed) is memoryview and handed.readonly and type(handed.obj) is ChecksumKnownCopy and handed == packet
    assert not buffer.tcp_checksum_known  # the buffer itself is not handed over, nor marked
    buffer[:] = bytes(len(buffer))  # the next frame read into the buffer leaves the packet as it was
    assert handed == packet
    payload = parse_packet(handed).tcp.payload
    assert type(payload) is memoryview and payload.obj is handed.obj
    assert payload == packet[len(packet) - vnet.HANDED_OVER_FROM :]
    shorter = segment(1000, vnet.HANDED_OVER_FROM - 100, family=family)
    buffer[:len(shorter)] = partial(shorter)
    assert type(copied := vnet.packet_from_parts(header, buffer, len(shorter))) is bytes and copied == shorter


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("flags, checksum_offset, kind", [
    (vnet.NEEDS_CSUM, 16, ChecksumKnownCopy),  # vouched for: completed by the link
    (vnet.DATA_VALID, 16, ChecksumKnownCopy),  # verified by the kernel
    (vnet.NEEDS_CSUM | vnet.DATA_VALID, 16, ChecksumKnownCopy),
    (0, 16, bytes),  # from a wire, unverified: the parser sums it
    (vnet.NEEDS_CSUM, 18, bytes),  # a partial sum elsewhere: completed, but not vouched for
])
def test_where_buffers_are_not_handed_over_a_copy_says_whether_its_checksum_is_known(family, flags, checksum_offset,
                                                                                      kind, buffers_copied):
    """A super-segment's copy (PyPy's way) is a ChecksumKnownCopy exactly where a handed-over
    LinkBuffer would have been marked tcp_checksum_known, and plain bytes otherwise (what the
    link completes where the sum is elsewhere: tests/link/test_checksum_once.py)."""
    packet, _, buffer = super_segment_read_into(LinkBuffer, family)
    tcp_start = 40 if family == 6 else 20
    header = build_vnet_header(VnetHeader(flags, GSO_TCPV6 if family == 6 else GSO_TCPV4, 0, 1448, tcp_start,
                                          checksum_offset))
    if not flags & vnet.NEEDS_CSUM:
        buffer[:len(packet)] = packet  # a complete checksum, as from a wire
    handed = vnet.packet_from_parts(header, buffer, len(packet))
    assert type(handed) is memoryview and handed.readonly and type(handed.obj) is kind
    if checksum_offset == 16:
        assert handed == packet  # complete, as the parser and every observer need it


def bytes_allocated_per_call(call, count: int) -> float:
    """What one call allocates, its result included, as the running Python can tell: on PyPy from
    the minor collections (each a nursery's worth of new objects) that `count` calls cause; on
    CPython tracemalloc's peak over one call."""
    if sys.implementation.name == "pypy":
        number, unit = gc.get_stats().nursery_size[:-2], gc.get_stats().nursery_size[-2:]  # "8.0MB", "264.0kB"
        nursery = float(number) * {"kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[unit]
        minors = []
        gc.hooks.on_gc_minor = lambda stats: minors.append(stats.count)
        try:
            for _ in range(count):
                call()
        finally:
            gc.hooks.on_gc_minor = None
        return sum(minors) * nursery / count
    import tracemalloc  # (CPython's: PyPy has none)

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        call()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("flags, kind", [(vnet.NEEDS_CSUM, ChecksumKnownCopy), (0, bytes)])
def test_where_buffers_are_not_handed_over_a_super_segment_is_copied_once(flags, kind, buffers_copied):
    """PyPy's way copies each super-segment, and copies it once: on PyPy, bytes() of a slice of the
    link's bytearray (or of a view of it) fills a temporary of the same size first, so every
    super-segment of an upload put two 64 KB objects in the collector's nursery, and minor
    collections, each copying out what a batch still held, came twice as often
    (buffers.copy_of). On CPython a bytes subclass copies the bytes it is made from, once more:
    there (where the link hands its buffers over instead) a ChecksumKnownCopy costs two."""
    packet, header, buffer = super_segment_read_into(LinkBuffer, 4)
    header = build_vnet_header(VnetHeader(flags, GSO_TCPV4, 0, 1448, 20, 16))
    if not flags:
        buffer[:len(packet)] = packet
    handed = vnet.packet_from_parts(header, buffer, len(packet))
    assert type(handed.obj) is kind and handed == packet
    copies = 1 if kind is bytes or sys.implementation.name == "pypy" else 2
    allocated = bytes_allocated_per_call(lambda: vnet.packet_from_parts(header, buffer, len(packet)), 4000)
    assert allocated < (copies + 0.25) * len(packet), f"{allocated:.0f} bytes for a {len(packet)}-byte packet"


@pytest.mark.parametrize("family", [4, 6])
def test_where_buffers_are_not_handed_over_the_link_reads_every_frame_into_its_one_buffer(family, sockets, monkeypatch,
                                                                                        buffers_copied):
    """The TUN link on PyPy: no new buffer per super-segment, every checksum checked once (completed
    by the link where the kernel left it partial, and then not summed again by the parser: a
    ChecksumKnownCopy; summed by the parser otherwise), a bad one dropped."""
    ours, theirs = sockets
    link, stack, sums = fake_link(ours, offload=True), stack_for(family), Sums(monkeypatch)
    buffer = link._packet_buffer
    good = packet_to_stack(family, LARGE)
    theirs.send(frame(partial(good), NEEDS_CSUM, gso=True))
    theirs.send(frame(corrupted(good)))
    first, second = receive(link, stack)
    assert link._packet_buffer is buffer and first.obj is not buffer and second.obj is not first.obj
    assert first.readonly and bytes(first) == good and bytes(second) == corrupted(good)
    assert type(first.obj) is ChecksumKnownCopy and type(second.obj) is bytes
    assert (sums.link, sums.parser, sums.parser_skipped) == (1, 1, 1)
    assert stack.drops["tcp_bad_checksum"] == 1 and stack.counters["packets_in"] == 1


__all__ = ["sockets"]  # the fixture, imported for pytest
