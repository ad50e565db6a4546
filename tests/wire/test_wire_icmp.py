"""ICMPv4 parse and build (csrc/icmp.c): echo, destination unreachable with its quote, next-hop
MTU (RFC 1191), other errors and types, and the rejections."""

from __future__ import annotations

import struct

import pytest
from wire_packets import DESTINATION, SOURCE, icmp_message, icmp_packet, ipv4_header, reference_checksum, tcp_packet

from ustack.wire import IcmpMessage, Ipv4Header, QuotedTcp, WireError, build_icmp_packet, parse_packet
from ustack.wire.icmp import DESTINATION_UNREACHABLE, ECHO_REPLY, ECHO_REQUEST, TIME_EXCEEDED

# An echo request from 10.0.0.1 to 10.0.0.2: id 0x1234, seq 1, data "abcdefgh" (checksums
# verified with scapy when written).
ECHO = bytes.fromhex("4500002400000000400166d70a0000010a000002" "0800543512340001" "6162636465666768")


def reason_of(packet: bytes) -> str:
    with pytest.raises(WireError) as caught:
        parse_packet(packet)
    return caught.value.reason


def test_echo_request_literal():
    assert reference_checksum(ECHO[:20]) == 0  # the literal's IP header is right
    parsed = parse_packet(ECHO)
    assert parsed.icmp == IcmpMessage(ECHO_REQUEST, 0, 0x1234, 1, 0, None, None, b"abcdefgh")
    assert parsed.payload == b"abcdefgh" and parsed.tcp is None


def test_build_echo_reply_and_parse_it_back():
    reply = IcmpMessage(ECHO_REPLY, 0, identifier=0x1234, sequence=1, payload=b"abcdefgh")
    packet = build_icmp_packet(DESTINATION, SOURCE, reply, ttl=63, identification=9)
    assert packet[20:] == icmp_message(0, 0, struct.pack("!HH", 0x1234, 1), b"abcdefgh")
    parsed = parse_packet(packet)
    assert parsed.icmp == reply
    assert (parsed.ip.src, parsed.ip.dst, parsed.ip.ttl, parsed.ip.identification, parsed.ip.protocol) == (
        DESTINATION, SOURCE, 63, 9, 1,
    )  # fmt: skip


def test_odd_length_echo_data():
    message = IcmpMessage(ECHO_REQUEST, 0, 1, 2, payload=b"abc")
    assert parse_packet(build_icmp_packet(SOURCE, DESTINATION, message)).icmp == message


def quote_of_our_syn() -> bytes:
    """What a router quotes of a SYN we sent to 10.0.0.2:80: IP header + 8 bytes of TCP."""
    return tcp_packet(src=SOURCE, dst=DESTINATION, src_port=40000, dst_port=80, seq=0xDEADBEEF)[:28]


def test_port_unreachable_quotes_the_tcp_ports_and_sequence():
    packet = icmp_packet(3, 3, data=quote_of_our_syn(), src=DESTINATION, dst=SOURCE)
    message = parse_packet(packet).icmp
    assert message.type == DESTINATION_UNREACHABLE and message.code == 3 and message.next_hop_mtu == 0
    assert message.quoted_ip == Ipv4Header(SOURCE, DESTINATION, 6, 64, 40, 0, True, False, 0, 20, 0)
    assert message.quoted_tcp == QuotedTcp(40000, 80, 0xDEADBEEF)
    assert message.payload == quote_of_our_syn()


def test_fragmentation_needed_carries_the_next_hop_mtu():
    packet = icmp_packet(3, 4, rest=struct.pack("!HH", 0, 1400), data=quote_of_our_syn())
    message = parse_packet(packet).icmp
    assert message.code == 4 and message.next_hop_mtu == 1400 and message.quoted_tcp.seq == 0xDEADBEEF


def test_build_fragmentation_needed():
    message = IcmpMessage(DESTINATION_UNREACHABLE, 4, next_hop_mtu=1280, payload=quote_of_our_syn())
    packet = build_icmp_packet(DESTINATION, SOURCE, message)
    assert packet[24:28] == b"\x00\x00\x05\x00"
    parsed = parse_packet(packet).icmp
    assert parsed.next_hop_mtu == 1280 and parsed.quoted_tcp == QuotedTcp(40000, 80, 0xDEADBEEF)


def test_time_exceeded_quotes_too():
    message = parse_packet(icmp_packet(11, 0, data=quote_of_our_syn())).icmp
    assert message.type == TIME_EXCEEDED and message.quoted_tcp.dst_port == 80


def test_a_quoted_udp_datagram_has_no_tcp_part():
    quote = ipv4_header(8, 17) + struct.pack("!HHHH", 5353, 53, 8, 0)
    message = parse_packet(icmp_packet(3, 3, data=quote)).icmp
    assert message.quoted_ip.protocol == 17 and message.quoted_tcp is None


def test_other_types_give_type_code_and_data():
    message = parse_packet(icmp_packet(13, 0, rest=b"\x00\x01\x00\x02", data=b"x" * 12)).icmp
    assert (message.type, message.code, message.quoted_ip, message.payload) == (13, 0, None, b"x" * 12)


@pytest.mark.parametrize(
    "packet, reason",
    [
        (ipv4_header(7, 1, flags_and_offset=0) + b"\x08\x00\xf7\xff\x00\x00\x00", "icmp_truncated"),
        (icmp_packet(8, 0)[:-1] + b"\x01", "icmp_bad_checksum"),
        (icmp_packet(3, 3, data=quote_of_our_syn()[:27]), "icmp_bad_quote"),  # 7 bytes of TCP
        (icmp_packet(3, 1, data=b""), "icmp_bad_quote"),
        (icmp_packet(11, 0, data=b"\x65" + quote_of_our_syn()[1:]), "icmp_bad_quote"),  # version 6
    ],
    ids=["truncated", "checksum", "short-quote", "no-quote", "quote-version"],
)
def test_rejections(packet, reason):
    assert reason_of(packet) == reason


def test_build_rejects_out_of_range_fields():
    with pytest.raises(WireError, match="build_bad_field"):
        build_icmp_packet(SOURCE, DESTINATION, IcmpMessage(ECHO_REQUEST, 0, identifier=70000))
    with pytest.raises(WireError, match="build_bad_field"):
        build_icmp_packet(SOURCE, DESTINATION, IcmpMessage(300, 0))
    with pytest.raises(WireError, match="build_packet_too_long"):
        build_icmp_packet(SOURCE, DESTINATION, IcmpMessage(ECHO_REQUEST, payload=bytes(65508)))
