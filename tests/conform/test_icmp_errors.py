"""The ICMP errors of script lines (ustack/conform/icmp_errors.py), one builder for both drill
backends: the type and code packetdrill names, the quoted segment, the next-hop MTU."""

from __future__ import annotations

import pytest

from ustack.conform.icmp_errors import icmp_error_packet
from ustack.conform.profile import Unsupported
from ustack.conform.script import IcmpSpec
from ustack.wire import TcpSegment, parse_packet
from ustack.wire.ipv4 import address_value
from ustack.wire.ipv6 import address6_value
from ustack.wire.tcp import ACK

OURS, PEER = address_value("192.168.0.1"), address_value("192.0.2.1")
OURS6, PEER6 = address6_value("fd3d:fa7b:d17d::1"), address6_value("2001:db8::1")
QUOTED = TcpSegment(8080, 50000, 1234, 0, ACK, 0)


def spec(kind: str, code: str | None = None, mtu: int | None = None) -> IcmpSpec:
    return IcmpSpec(kind, code, mtu, 0, 0, 0)


def test_ipv4_unreachable_with_and_without_a_code():
    parsed = parse_packet(icmp_error_packet(spec("unreachable", "frag_needed", 1200), QUOTED, OURS, PEER))
    assert (parsed.ip.src, parsed.ip.dst) == (PEER, OURS)
    assert (parsed.icmp.type, parsed.icmp.code, parsed.icmp.next_hop_mtu) == (3, 4, 1200)
    assert len(parsed.icmp.payload) == 20 + 8  # RFC 792: the IP header and 8 bytes of TCP
    bare = parse_packet(icmp_error_packet(spec("unreachable"), QUOTED, OURS, PEER))  # packetdrill's code 0
    assert (bare.icmp.type, bare.icmp.code) == (3, 0)


def test_ipv6_packet_too_big_quotes_the_ipv6_and_tcp_headers():
    parsed = parse_packet(icmp_error_packet(spec("packet_too_big", mtu=1280), QUOTED, OURS6, PEER6))
    assert (parsed.icmp.type, parsed.icmp.code, parsed.icmp.mtu) == (2, 0, 1280)
    assert len(parsed.icmp.payload) == 40 + 20


def test_unknown_types_are_none_and_unknown_codes_unsupported():
    assert icmp_error_packet(spec("no_such_type"), QUOTED, OURS, PEER) is None
    assert icmp_error_packet(spec("source_quench"), QUOTED, OURS6, PEER6) is None  # no ICMPv6 counterpart
    with pytest.raises(Unsupported, match="unknown destination unreachable code 'bogus'"):
        icmp_error_packet(spec("unreachable", "bogus"), QUOTED, OURS, PEER)
    with pytest.raises(Unsupported, match="unknown ICMPv6 unreachable code 'bogus'"):
        icmp_error_packet(spec("unreachable", "bogus"), QUOTED, OURS6, PEER6)
