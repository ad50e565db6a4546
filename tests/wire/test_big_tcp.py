"""BIG TCP packets (issue 12): a TCP super-segment longer than IP's 16-bit length fields can say,
built for a link whose kernel cuts it (link/tun.py), up to 256 KiB, only with its checksum partial
(the kernel finishes it). Over IPv4 it carries Total Length 0, its length being the frame's
(Linux 6.3; csrc/ipv4.c ustack_ipv4_total_length); over IPv6 it is a jumbogram (RFC 2675: Payload
Length 0 and an 8-byte hop-by-hop header with the Jumbo Payload option; csrc/ipv6.c). The
observers (pcap, tracer, FaultInjector) parse it back whole, and the link cuts it into MTU-sized
ordinary packets where the kernel cannot take it. A length of 0 anywhere else stays the
malformed header it always was."""

from __future__ import annotations

import struct

import pytest

from ustack.link.vnet import complete_checksum
from ustack.wire import WireError, build_tcp_packet, parse_packet
from ustack.wire.buffers import SegmentParts
from ustack.wire.checksum import internet_checksum
from ustack.wire.segment import LARGEST_BIG_PACKET, cut_tcp_segment
from ustack.wire.tcp import ACK, PSH, TcpOptions, TcpSegment
from ustack.wire.text import format_packet

SRC, DST = 0x0A4D0002, 0x0A4D0001
SRC6, DST6 = bytes.fromhex("fd000077" + "00" * 11 + "02"), bytes.fromhex("fd000077" + "00" * 11 + "01")
OPTIONS = TcpOptions(timestamps=(123456, 654321))
TCP_HEADER = 32  # with the timestamp option (and its padding)
HEADERS = {4: 20 + TCP_HEADER, 6: 40 + 8 + TCP_HEADER}  # a jumbogram's: its hop-by-hop header too
FAMILIES = pytest.mark.parametrize("family", [4, 6], ids=["ipv4", "ipv6"])


def big_packet(length: int, family: int = 4, seq: int = 2**32 - 1000) -> SegmentParts:
    payload = bytes((index * 13 + 5) & 0xFF for index in range(length))
    segment = TcpSegment(80, 40000, seq, 99, ACK | PSH, 512, 0, OPTIONS, payload)
    if family == 6:
        return build_tcp_packet(SRC6, DST6, segment, partial_checksum_over=1500)
    return build_tcp_packet(SRC, DST, segment, partial_checksum_over=1500)


def with_total_length(packet: bytes, total_length: int, protocol: int = 6) -> bytes:
    """`packet` with its IPv4 Total Length and protocol fields changed, the header checksum redone."""
    changed = bytearray(packet)
    struct.pack_into("!H", changed, 2, total_length)
    changed[9] = protocol
    struct.pack_into("!H", changed, 10, 0)
    struct.pack_into("!H", changed, 10, internet_checksum(bytes(changed[:20])))
    return bytes(changed)


# Data lengths: just past what the length field can say (IPv4: a packet of 65536 bytes; IPv6: a
# TCP segment of 65536), 200,000 bytes, and the largest that 256 KiB holds.
JUST_PAST = {4: 65536 - 20 - TCP_HEADER, 6: 65536 - TCP_HEADER}


@FAMILIES
@pytest.mark.parametrize("which", ["just past", "200,000", "largest"])
def test_a_segment_past_64_kb_is_built_big_and_parses_back_whole(family, which):
    length = {"just past": JUST_PAST[family], "200,000": 200_000, "largest": LARGEST_BIG_PACKET - HEADERS[family]}[which]
    packet = big_packet(length, family)
    assert type(packet) is SegmentParts and len(packet) == HEADERS[family] + length
    if family == 4:
        assert packet.headers[2:4] == b"\x00\x00"  # Total Length 0: the frame's length is the packet's
    else:
        # Payload Length 0, Next Header hop-by-hop; it holds the Jumbo Payload option alone, whose
        # value is the length past the fixed header, hop-by-hop header included (RFC 2675 2).
        assert packet.headers[4:7] == b"\x00\x00\x00"
        assert packet.headers[40:44] == bytes([6, 0, 0xC2, 4])
        assert struct.unpack_from("!I", packet.headers, 44)[0] == len(packet) - 40
    wire = bytes(complete_checksum(packet))  # as the pcap and the tracer read it
    parsed = parse_packet(wire)  # both checksums checked, over the 32-bit length (RFC 2675 4)
    if family == 4:
        assert parsed.ip.total_length == 0
    else:
        assert parsed.ip.payload_length == 0 and parsed.ip.header_length == 48
    assert parsed.tcp.seq == 2**32 - 1000 and parsed.payload == bytes(packet.payload)


@FAMILIES
def test_a_segment_that_fits_keeps_its_length_field(family):
    """The largest that the field says: not BIG (over IPv6 its TCP header is moved back behind the
    fixed header, where room for a hop-by-hop header had been left)."""
    packet = big_packet(JUST_PAST[family] - 1, family)
    if family == 4:
        assert struct.unpack_from("!H", packet.headers, 2)[0] == 65535
    else:
        assert struct.unpack_from("!H", packet.headers, 4)[0] == 65535 and packet.headers[6] == 6
        assert len(packet.headers) == 40 + TCP_HEADER
    parsed = parse_packet(bytes(complete_checksum(packet)))
    assert parsed.tcp.seq == 2**32 - 1000 and parsed.payload == bytes(packet.payload)


@FAMILIES
def test_past_256_kib_or_built_whole_past_64_kb_it_is_refused(family):
    with pytest.raises(WireError, match="too_long"):
        big_packet(LARGEST_BIG_PACKET - HEADERS[family] + 1, family)
    segment = TcpSegment(80, 40000, 1, 99, ACK, 512, 0, OPTIONS, bytes(65536))
    with pytest.raises(WireError, match="too_long"):  # a whole packet goes on a wire as it is
        build_tcp_packet(*((SRC6, DST6) if family == 6 else (SRC, DST)), segment)


def test_total_length_0_is_malformed_anywhere_but_on_a_tcp_packet_past_65535_bytes():
    wire = bytes(complete_checksum(big_packet(100_000)))
    parse_packet(wire)
    for bad in (with_total_length(wire, 0, protocol=17),  # not TCP
                with_total_length(wire[:1500], 0),  # TCP, but short enough for the field
                with_total_length(wire[:65535], 0),
                with_total_length(wire + bytes(LARGEST_BIG_PACKET - len(wire) + 1), 0)):  # past 256 KiB
        with pytest.raises(WireError, match="ipv4_bad_total_length"):
            parse_packet(bad)


def jumbogram_with(wire: bytes, *, option: int = 0xC2, length_delta: int = 0, payload_length: int = 0) -> bytes:
    changed = bytearray(wire)
    struct.pack_into("!H", changed, 4, payload_length)
    changed[42] = option
    struct.pack_into("!I", changed, 44, len(wire) - 40 + length_delta)
    return bytes(changed)


def test_a_jumbo_payload_option_out_of_its_one_layout_is_discarded():
    """RFC 2675 3 makes each of these an error; the parser then reads the packet as an ordinary
    one, whose Payload Length 0 leaves no room for the hop-by-hop header it announces, or whose
    option it does not know: dropped by name either way."""
    wire = bytes(complete_checksum(big_packet(100_000, 6)))
    parse_packet(wire)
    for bad, reason in (
        (jumbogram_with(wire, length_delta=+1), "ipv6_extension_truncated"),  # longer than the frame
        (jumbogram_with(wire[:60000]), "ipv6_extension_truncated"),  # a jumbogram of 64 KB or less
        (jumbogram_with(wire + bytes(LARGEST_BIG_PACKET)), "ipv6_extension_truncated"),  # past 256 KiB
        (jumbogram_with(wire, payload_length=1000), "ipv6_unknown_option"),  # with a Payload Length
    ):
        with pytest.raises(WireError, match=reason):
            parse_packet(bad)


@FAMILIES
def test_the_tracer_line_counts_the_whole_payload(family):
    line = format_packet(bytes(complete_checksum(big_packet(200_000, family))))
    assert "length 200000" in line and "TS val 123456 ecr 654321]" in line, line


@FAMILIES
@pytest.mark.parametrize("mtu", [1500, 9000, 65535])
def test_cut_in_software_it_gives_ordinary_pieces_of_the_mtu_that_carry_the_same_bytes(family, mtu):
    packet = big_packet(200_000, family)
    pieces = cut_tcp_segment(packet, mtu)
    assert pieces is not None
    payload, seq = b"", 2**32 - 1000
    for index, piece in enumerate(pieces):
        assert len(piece) <= mtu
        parsed = parse_packet(bytes(piece))  # complete checksums, a real length field
        if family == 4:
            assert parsed.ip.total_length == len(piece)
        else:  # no hop-by-hop header: the pieces are ordinary packets
            assert parsed.ip.payload_length == len(piece) - 40 and parsed.ip.header_length == 40
        assert parsed.tcp.seq == seq % 2**32
        assert bool(parsed.tcp.flags & PSH) == (index == len(pieces) - 1)
        seq += len(parsed.payload)
        payload += parsed.payload
    assert payload == bytes(packet.payload)


def test_total_length_0_on_a_fragment_is_malformed_too():
    """A BIG TCP packet is never a fragment (the kernel cuts it before any wire): a frame past 64 KB
    with Total Length 0 and a fragment offset or More Fragments is the malformed header it
    always was, not a datagram of the frame's length for reassembly."""
    wire = bytearray(complete_checksum(big_packet(100_000)))
    for flags_and_offset in (0x2000, 0x0001, 0x4001):  # MF; an offset; DF with an offset
        struct.pack_into("!H", wire, 6, flags_and_offset)
        with pytest.raises(WireError, match="ipv4_bad_total_length"):
            parse_packet(with_total_length(bytes(wire), 0))
