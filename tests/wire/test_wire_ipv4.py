"""IPv4 parse and build (csrc/ipv4.c through parse_packet / build_*_packet), on byte literals."""

from __future__ import annotations

import pytest
from wire_packets import ipv4_header, reference_checksum, tcp_packet

from ustack.wire import Ipv4Header, WireError, build_ipv4_packet, parse_packet

# A SYN-ACK from 10.0.0.1:5000 to 10.0.0.2:80, checksums verified with scapy when written.
SYN_ACK = bytes.fromhex(
    "4500003400004000400626c20a0000010a000002"
    "13880050b2e5422e22da56258012721067030000020405b40101040201030307"
)


def test_parse_every_header_field():
    ip = parse_packet(SYN_ACK).ip
    assert ip == Ipv4Header(
        src=0x0A000001, dst=0x0A000002, protocol=6, ttl=64, total_length=52, identification=0,
        dont_fragment=True, more_fragments=False, fragment_offset=0, header_length=20, tos=0,
    )  # fmt: skip
    assert type(ip.dont_fragment) is bool


def test_fields_of_a_fragment_are_reported_and_only_the_ip_header_is_validated():
    # MF set, offset 185 * 8 = 1480, and a "TCP" payload whose checksum is garbage.
    packet = ipv4_header(8, 6, identification=0xBEEF, flags_and_offset=0x2000 | 185, ttl=3, tos=0x10) + b"\xff" * 8
    parsed = parse_packet(packet)
    assert parsed.ip.more_fragments and not parsed.ip.dont_fragment
    assert parsed.ip.fragment_offset == 1480 and parsed.ip.identification == 0xBEEF
    assert parsed.ip.ttl == 3 and parsed.ip.tos == 0x10 and parsed.ip.is_fragment
    assert parsed.tcp is None and parsed.icmp is None and parsed.payload == b"\xff" * 8


def test_other_protocols_give_the_ip_payload():
    packet = ipv4_header(4, 17) + b"abcd"
    parsed = parse_packet(packet)
    assert parsed.ip.protocol == 17 and parsed.payload == b"abcd" and parsed.tcp is None


def test_ip_options_are_skipped_by_the_header_length():
    packet = tcp_packet(ip_options=b"\x01\x01\x01\x00", flags=0x10, ack=5)
    parsed = parse_packet(packet)
    assert parsed.ip.header_length == 24 and parsed.tcp.ack == 5


def test_link_padding_after_total_length_is_ignored():
    parsed = parse_packet(SYN_ACK + b"\x00" * 6)  # Ethernet pads short frames
    assert parsed.ip.total_length == 52 and parsed.payload == b""


@pytest.mark.parametrize(
    "packet, reason",
    [
        (SYN_ACK[:19], "ipv4_truncated"),
        (b"", "ipv4_truncated"),
        (ipv4_header(0, version_ihl=0x55), "ipv4_bad_version"),
        (ipv4_header(0, version_ihl=0x44), "ipv4_bad_header_length"),
        (ipv4_header(0, version_ihl=0x46), "ipv4_bad_header_length"),  # 24 bytes claimed, 20 present
        (ipv4_header(0, total_length=19), "ipv4_bad_total_length"),
        (ipv4_header(10, total_length=30) + b"12345", "ipv4_bad_total_length"),  # truncated payload
        (ipv4_header(0, checksum=0x1234), "ipv4_bad_checksum"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_rejections_name_their_reason(packet, reason):
    with pytest.raises(WireError) as caught:
        parse_packet(packet)
    assert caught.value.reason == reason


def test_a_changed_byte_is_caught_by_the_header_checksum():
    corrupted = bytearray(SYN_ACK)
    corrupted[8] ^= 0x01  # TTL
    with pytest.raises(WireError, match="ipv4_bad_checksum"):
        parse_packet(bytes(corrupted))


def test_the_reference_checksum_agrees_with_the_literal():
    assert reference_checksum(SYN_ACK[:20]) == 0


def test_build_an_ipv4_packet_byte_for_byte():
    header = Ipv4Header(0x0A000001, 0x0A000002, protocol=17, ttl=5, identification=0xBEEF, dont_fragment=False,
                        more_fragments=True, fragment_offset=1480, tos=0x10)  # fmt: skip
    packet = build_ipv4_packet(header, b"abcd")
    assert packet == ipv4_header(4, 17, ttl=5, identification=0xBEEF, flags_and_offset=0x2000 | 185, tos=0x10) + b"abcd"
    assert parse_packet(packet).ip == header._replace(total_length=24)


def test_build_ipv4_rejects_what_cannot_be_sent():
    header = Ipv4Header(1, 2, 17)
    with pytest.raises(WireError, match="build_packet_too_long"):
        build_ipv4_packet(header, bytes(65516))
    with pytest.raises(WireError, match="build_bad_field"):
        build_ipv4_packet(header._replace(fragment_offset=4), b"")
    with pytest.raises(WireError, match="build_bad_field"):
        build_ipv4_packet(header._replace(ttl=256), b"")
