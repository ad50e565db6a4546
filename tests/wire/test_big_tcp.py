"""IPv4 BIG TCP packets (issue 12): a TCP super-segment longer than IPv4's 16-bit Total Length can
say, built for a link whose kernel cuts it (Linux 6.3 and later, link/tun.py), carries Total
Length 0, its length being the frame's (csrc/ipv4.c ustack_ipv4_total_length). Built only with
the checksum partial (the kernel finishes it), up to 256 KiB; parsed back whole by the observers
(pcap, tracer, FaultInjector) and cut into MTU-sized pieces where the kernel cannot take it. A
Total Length of 0 anywhere else stays the malformed header it always was."""

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
OPTIONS = TcpOptions(timestamps=(123456, 654321))
HEADERS = 20 + 32  # IPv4, TCP with the timestamp option (and its padding)


def big_packet(length: int, seq: int = 2**32 - 1000) -> SegmentParts:
    payload = bytes((index * 13 + 5) & 0xFF for index in range(length))
    segment = TcpSegment(80, 40000, seq, 99, ACK | PSH, 512, 0, OPTIONS, payload)
    return build_tcp_packet(SRC, DST, segment, partial_checksum_over=1500)


def with_total_length(packet: bytes, total_length: int, protocol: int = 6) -> bytes:
    """`packet` with its IPv4 Total Length and protocol fields changed, the header checksum redone."""
    changed = bytearray(packet)
    struct.pack_into("!H", changed, 2, total_length)
    changed[9] = protocol
    struct.pack_into("!H", changed, 10, 0)
    struct.pack_into("!H", changed, 10, internet_checksum(bytes(changed[:20])))
    return bytes(changed)


@pytest.mark.parametrize("length", [65536 - HEADERS, 200_000, LARGEST_BIG_PACKET - HEADERS])
def test_a_segment_past_65535_bytes_is_built_with_total_length_0_and_parses_back_whole(length):
    packet = big_packet(length)
    assert type(packet) is SegmentParts and len(packet) == HEADERS + length
    assert packet.headers[2:4] == b"\x00\x00"  # Total Length 0: the frame's length is the packet's
    wire = bytes(complete_checksum(packet))  # as the pcap and the tracer read it
    parsed = parse_packet(wire)  # both checksums checked
    assert parsed.ip.total_length == 0
    assert parsed.tcp.seq == 2**32 - 1000 and parsed.payload == bytes(packet.payload)


def test_a_segment_that_fits_keeps_its_total_length():
    packet = big_packet(65535 - HEADERS)
    assert struct.unpack_from("!H", packet.headers, 2)[0] == 65535


def test_past_256_kib_or_built_whole_past_65535_it_is_refused():
    with pytest.raises(WireError, match="too_long"):
        big_packet(LARGEST_BIG_PACKET - HEADERS + 1)
    segment = TcpSegment(80, 40000, 1, 99, ACK, 512, 0, OPTIONS, bytes(65536))
    with pytest.raises(WireError, match="too_long"):
        build_tcp_packet(SRC, DST, segment)  # a whole packet goes on a wire as it is: 65535 at most


def test_total_length_0_is_malformed_anywhere_but_on_a_tcp_packet_past_65535_bytes():
    wire = bytes(complete_checksum(big_packet(100_000)))
    parse_packet(wire)
    for bad in (with_total_length(wire, 0, protocol=17),  # not TCP
                with_total_length(wire[:1500], 0),  # TCP, but short enough for the field
                with_total_length(wire[:65535], 0),
                with_total_length(wire + bytes(LARGEST_BIG_PACKET - len(wire) + 1), 0)):  # past 256 KiB
        with pytest.raises(WireError, match="ipv4_bad_total_length"):
            parse_packet(bad)


def test_the_tracer_line_counts_the_whole_payload():
    line = format_packet(bytes(complete_checksum(big_packet(200_000))))
    assert "length 200000" in line, line


@pytest.mark.parametrize("mtu", [1500, 9000, 65535])
def test_cut_in_software_it_gives_pieces_of_the_mtu_that_carry_the_same_bytes(mtu):
    packet = big_packet(200_000)
    pieces = cut_tcp_segment(packet, mtu)
    assert pieces is not None
    payload, seq = b"", 2**32 - 1000
    for index, piece in enumerate(pieces):
        assert len(piece) <= mtu
        parsed = parse_packet(bytes(piece))  # complete checksums, a real Total Length
        assert parsed.ip.total_length == len(piece)
        assert parsed.tcp.seq == seq % 2**32
        assert bool(parsed.tcp.flags & PSH) == (index == len(pieces) - 1)
        seq += len(parsed.payload)
        payload += parsed.payload
    assert payload == bytes(packet.payload)
