"""IPv6 (RFC 8200), TCP over IPv6 and ICMPv6 (RFC 4443) from byte literals: fields, the extension
header chain, fragments, quoted packets, and one named reason for every way a packet is refused."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest
from hypothesis import given, settings
from wire_strategies import addresses6

from ustack.wire import (
    PARSE_REASONS,
    Icmpv6Message,
    Ipv6Header,
    TcpOptions,
    TcpSegment,
    WireError,
    address6_text,
    address6_value,
    build_icmp6_packet,
    build_ipv6_packet,
    build_tcp_packet,
    parse_packet,
)
from ustack.wire.tcp import SYN

A = address6_value("fd00:77::1")
B = address6_value("fd00:77::2")

# Written by scapy 2.8 (an independent implementation): a SYN from fd00:77::1 to fd00:77::2 with
# traffic class 0xb8, flow label 0xabcde, hop limit 63, and an echo request with id 0x1234, seq 5.
SYN_PACKET = bytes.fromhex(
    "6b8abcde0028063ffd000077000000000000000000000001fd0000770000000000000000000000029c4000500102030400000000a002fd20"
    "af060000020405a00402080a000000640000000001030307"
)
ECHO_PACKET = bytes.fromhex(
    "60000000000c3a40fd000077000000000000000000000002fd000077000000000000000000000001800093bc1234000570696e67"
)
SYN_SEGMENT = TcpSegment(40000, 80, 0x01020304, 0, SYN, 64800,
                         options=TcpOptions(mss=1440, window_scale=7, sack_permitted=True, timestamps=(100, 0)))  # fmt: skip


def ext(next_header: int, body: bytes) -> bytes:
    """A hop-by-hop, routing or destination options header: next header, length in 8-byte units
    beyond the first 8, then `body` (6 + 8n bytes)."""
    assert (len(body) + 2) % 8 == 0
    return bytes([next_header, (len(body) + 2) // 8 - 1]) + body


def fragment_header(next_header: int, offset: int, more: bool, identification: int) -> bytes:
    return struct.pack("!BBHI", next_header, 0, offset | more, identification)


PAD = bytes([1, 4, 0, 0, 0, 0])  # one PadN option filling an 8-byte header


def packet(next_header: int, payload: bytes, src: bytes = A, dst: bytes = B, payload_length: int | None = None) -> bytes:
    length = len(payload) if payload_length is None else payload_length
    return struct.pack("!IHBB", 6 << 28, length, next_header, 64) + src + dst + payload


def test_tcp_syn_literal():
    parsed = parse_packet(SYN_PACKET)
    assert parsed.ip == Ipv6Header(A, B, 6, hop_limit=63, payload_length=40, flow_label=0xABCDE, traffic_class=0xB8)
    assert parsed.ip.version == 6 and not parsed.ip.is_fragment
    assert parsed.tcp == SYN_SEGMENT and parsed.icmp is None and parsed.payload == b""
    rebuilt = build_tcp_packet(A, B, SYN_SEGMENT, ttl=63, flow_label=0xABCDE, traffic_class=0xB8)
    assert rebuilt[:40] == SYN_PACKET[:40]
    assert parse_packet(rebuilt).tcp == SYN_SEGMENT  # same fields (option order is the Linux layout's)


def test_echo_literal():
    parsed = parse_packet(ECHO_PACKET)
    assert parsed.icmp == Icmpv6Message(128, 0, 0x1234, 5, payload=b"ping")
    assert build_icmp6_packet(B, A, Icmpv6Message(128, 0, 0x1234, 5, payload=b"ping")) == ECHO_PACKET


def test_ipv4_packets_keep_their_types():
    from ustack.wire import Ipv4Header

    parsed = parse_packet(build_tcp_packet(0x0A000001, 0x0A000002, SYN_SEGMENT))
    assert type(parsed.ip) is Ipv4Header and parsed.ip.version == 4 and parsed.tcp == SYN_SEGMENT


def test_tcp_checksum_covers_the_ipv6_pseudo_header():
    # RFC 8200 8.1: the same segment to another address no longer checks out.
    moved = SYN_PACKET[:39] + b"\x03" + SYN_PACKET[40:]
    with pytest.raises(WireError) as error:
        parse_packet(moved)
    assert error.value.reason == "tcp_bad_checksum"


def test_extension_headers_are_walked_to_tcp():
    segment = SYN_PACKET[40:]
    # hop-by-hop, destination options, routing (type 4, no segments left: ignored, RFC 8200 4.4),
    # an atomic fragment, TCP.
    chain = ext(60, PAD) + ext(43, PAD) + ext(44, bytes([4, 0, 0, 0, 0, 0])) + fragment_header(6, 0, False, 77)
    parsed = parse_packet(packet(0, chain + segment))
    assert parsed.tcp == SYN_SEGMENT
    # The atomic fragment is processed as a whole packet (RFC 6946) but still reported.
    assert parsed.ip.protocol == 6 and parsed.ip.header_length == 40 + 32
    assert parsed.ip.has_fragment_header and not parsed.ip.is_fragment and parsed.ip.identification == 77


def test_icmpv6_behind_destination_options():
    message = ECHO_PACKET[40:]
    # The addresses of ECHO_PACKET: its checksum covers them.
    parsed = parse_packet(packet(60, ext(58, PAD) + message, src=B, dst=A))
    assert parsed.icmp.type == 128 and parsed.icmp.payload == b"ping" and parsed.ip.header_length == 48


def test_fragments_expose_their_fields():
    first = parse_packet(packet(44, fragment_header(6, 0, True, 0xDEADBEEF) + SYN_PACKET[40:56]))
    assert first.ip.is_fragment and first.ip.more_fragments and first.ip.fragment_offset == 0
    assert first.ip.identification == 0xDEADBEEF and first.ip.protocol == 6 and first.ip.header_length == 48
    assert first.tcp is None and first.payload == SYN_PACKET[40:56]
    last = parse_packet(packet(0, ext(44, PAD) + fragment_header(6, 1232, False, 9) + b"tail"))
    assert last.ip.fragment_offset == 1232 and not last.ip.more_fragments and last.payload == b"tail"
    assert last.ip.header_length == 56


def test_unknown_next_headers_are_surfaced_for_the_host():
    for protocol, payload in ((17, b"\x13\x88\x13\x89\x00\x0c\x00\x00abcd"), (59, b""), (253, b"xyz"), (51, bytes(12))):
        parsed = parse_packet(packet(protocol, payload))
        assert parsed.ip.protocol == protocol and parsed.tcp is None and parsed.icmp is None
        assert parsed.payload == payload


def test_link_padding_after_the_payload_is_ignored():
    assert parse_packet(SYN_PACKET + b"\x00" * 6).tcp == SYN_SEGMENT


def quoted_error(kind: int, code: int, rest: int, quote: bytes) -> bytes:
    return build_icmp6_packet(B, A, Icmpv6Message(kind, code, rest >> 16, rest & 0xFFFF, mtu=rest, pointer=rest, payload=quote))


def test_packet_too_big_quotes_the_segment():
    parsed = parse_packet(quoted_error(2, 0, 1280, SYN_PACKET))
    message = parsed.icmp
    assert message.mtu == 1280 and message.pointer == 0
    assert message.quoted_ip.src == A and message.quoted_ip.dst == B and message.quoted_ip.protocol == 6
    assert (message.quoted_tcp.src_port, message.quoted_tcp.dst_port, message.quoted_tcp.seq) == (40000, 80, 0x01020304)


@pytest.mark.parametrize("kind, code", [(1, 4), (1, 0), (3, 0), (3, 1), (4, 0), (4, 1)])
def test_errors_quote_the_first_bytes_of_tcp(kind, code):
    message = parse_packet(quoted_error(kind, code, 6 if kind == 4 else 0, SYN_PACKET[:48])).icmp
    assert message.quoted_tcp.dst_port == 80 and message.quoted_tcp.seq == 0x01020304
    assert message.pointer == (6 if kind == 4 else 0) and message.mtu == 0


def test_quote_with_extension_headers_and_one_cut_short():
    quoted = packet(0, ext(6, PAD) + SYN_PACKET[40:])
    message = parse_packet(quoted_error(1, 4, 0, quoted[:56])).icmp
    assert message.quoted_ip.header_length == 48 and message.quoted_tcp.src_port == 40000
    cut = parse_packet(quoted_error(1, 4, 0, quoted[:44])).icmp  # the hop-by-hop header is not all there
    assert cut.quoted_ip.protocol == 0 and cut.quoted_tcp is None


INVALID = [
    (SYN_PACKET[:39], "ipv6_truncated"),
    (SYN_PACKET[:-1], "ipv6_bad_payload_length"),
    (packet(0, b"\x06\x00\x01\x04"), "ipv6_extension_truncated"),
    (packet(60, ext(6, PAD), payload_length=9), "ipv6_bad_payload_length"),
    (packet(60, bytes([6, 1]) + bytes(6)), "ipv6_extension_truncated"),  # claims 16 bytes, has 8
    (packet(60, b"".join(ext(60, PAD) for _ in range(9)) + SYN_PACKET[40:]), "ipv6_extension_chain_too_long"),
    (packet(60, ext(0, PAD) + ext(6, PAD) + SYN_PACKET[40:]), "ipv6_misplaced_hop_by_hop"),
    (packet(0, ext(6, bytes([1, 5, 0, 0, 0, 0]))), "ipv6_bad_option_length"),
    (packet(0, ext(6, bytes([0, 0, 0, 0, 0, 1]))), "ipv6_bad_option_length"),  # a lone type byte at the end
    (packet(0, ext(6, bytes([0x80, 4, 0, 0, 0, 0]))), "ipv6_unknown_option"),  # action 10: discard
    (packet(60, ext(6, bytes([0xC2, 4, 0, 1, 0, 0]))), "ipv6_unknown_option"),  # jumbo payload
    (packet(43, ext(6, bytes([0, 1, 0, 0, 0, 0]) + A)), "ipv6_routing_segments_left"),
    (packet(44, fragment_header(6, 0, True, 1) + bytes(12)), "ipv6_bad_fragment"),  # 12 is no multiple of 8
    (packet(44, fragment_header(6, 65528, False, 1) + bytes(16)), "ipv6_bad_fragment"),  # past 65,535
    (packet(44, fragment_header(44, 0, False, 1) + fragment_header(6, 8, False, 1)), "ipv6_bad_fragment"),
    (packet(6, SYN_PACKET[40:52]), "tcp_truncated"),
    (packet(58, b"\x80\x00\x00"), "icmpv6_truncated"),
    (ECHO_PACKET[:-1] + b"x", "icmpv6_bad_checksum"),
    (quoted_error(2, 0, 1280, SYN_PACKET[:39]), "icmpv6_bad_quote"),
    (quoted_error(1, 4, 0, b""), "icmpv6_bad_quote"),
    (quoted_error(3, 0, 0, b"\x45" + SYN_PACKET[1:48]), "icmpv6_bad_quote"),  # not IPv6
]


@pytest.mark.parametrize("raw, reason", INVALID)
def test_each_malformed_packet_has_its_named_reason(raw, reason):
    with pytest.raises(WireError) as error:
        parse_packet(raw)
    assert error.value.reason == reason and reason in PARSE_REASONS


def test_builders_refuse_bad_fields():
    for call in (
        lambda: build_tcp_packet(A[:15], B, SYN_SEGMENT),
        lambda: build_tcp_packet(A, 0x0A000001, SYN_SEGMENT),
        lambda: build_tcp_packet(A, B, SYN_SEGMENT, flow_label=1 << 20),
        lambda: build_icmp6_packet(A, B[:4], Icmpv6Message(128)),
        lambda: build_icmp6_packet(A, B, Icmpv6Message(128, identifier=1 << 16)),
        lambda: build_ipv6_packet(Ipv6Header(A, B, 6, flow_label=-1), b""),
    ):
        with pytest.raises(WireError) as error:
            call()
        assert error.value.reason == "build_bad_field"
    with pytest.raises(WireError) as error:
        build_tcp_packet(A, B, SYN_SEGMENT._replace(payload=bytes(65536)))
    assert error.value.reason == "build_packet_too_long"


def test_largest_ipv6_segment():
    segment = SYN_SEGMENT._replace(options=TcpOptions(), payload=bytes(65535 - 20))
    built = build_tcp_packet(A, B, segment)
    assert len(built) == 40 + 65535 and parse_packet(built).tcp == segment
    with pytest.raises(WireError) as error:
        build_tcp_packet(A, B, segment._replace(options=TcpOptions(mss=1)))
    assert error.value.reason == "build_packet_too_long"


@pytest.mark.parametrize("text", ["::", "::1", "fd00:77::2", "::ffff:1.2.3.4", "::1.2.3.4", "1::", "1:0:0:1::",
                                  "1:0:1:0:1:0:1:0", "0:0:1::", "0:2::", "2001:db8::ffff:0:1", "fe80::1:0:0:0"])  # fmt: skip
def test_address_text_is_inet_ntop(text):
    value = address6_value(text)
    assert address6_text(value) == socket.inet_ntop(socket.AF_INET6, value) == text
    assert ipaddress.IPv6Address(value) == ipaddress.IPv6Address(text)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(addresses6)
def test_address_text_matches_inet_ntop_everywhere(value):
    # Zero groups are common in real addresses: zero some out so runs of every length appear.
    assert address6_text(value) == socket.inet_ntop(socket.AF_INET6, value)
    sparse = bytes(byte if (index // 2) % 3 == 0 else 0 for index, byte in enumerate(value))
    assert address6_text(sparse) == socket.inet_ntop(socket.AF_INET6, sparse)


def test_address_value_refuses_bad_text():
    with pytest.raises(ValueError):
        address6_value("fd00::77::1")
    with pytest.raises(ValueError):
        address6_text(b"\x00" * 4)


def test_address_text_takes_both_families():
    # One helper for code that shows the addresses of parsed packets (ladders, traces).
    from ustack.wire import address_text

    assert address_text(0x0A4D0002) == "10.77.0.2" and address_text(B) == "fd00:77::2"
