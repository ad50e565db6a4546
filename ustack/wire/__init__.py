"""The wire layer: IPv4, IPv6, TCP, ICMPv4 and ICMPv6 packets as typed values, parsed and built in C.

Everything here is pure (no I/O, no clock). The names most code needs:

    parse_packet(bytes) -> Packet(ip, tcp, icmp, payload)    raises WireError(reason); ip.version 4 or 6
    build_tcp_packet(src, dst, TcpSegment, ...) -> bytes     IPv4 for int addresses, IPv6 for 16 bytes
    build_icmp_packet(src, dst, IcmpMessage, ...) -> bytes
    build_icmp6_packet(src, dst, Icmpv6Message, ...) -> bytes
    build_ipv4_packet(Ipv4Header, payload) -> bytes          any other payload, fragments
    build_ipv6_packet(Ipv6Header, payload) -> bytes          the same, extension headers in payload
    format_packet(bytes) -> str                              tcpdump's one-line text
"""

from __future__ import annotations

from .checksum import checksum_add, checksum_finish, checksum_update, internet_checksum, pseudo_header_sum
from .codec import (
    Packet,
    build_icmp6_packet,
    build_icmp_packet,
    build_ipv4_packet,
    build_ipv6_packet,
    build_tcp_packet,
    parse_packet,
    tcp_options_length,
)
from .errors import WireError
from .icmp import IcmpMessage, QuotedTcp
from .icmpv6 import Icmpv6Message
from .ipv4 import Ipv4Header, address_text, address_value
from .ipv6 import Ipv6Header, address6_text, address6_value
from .reasons import PARSE_REASONS, REASON_NAMES
from .tcp import NO_OPTIONS, TcpOptions, TcpSegment
from .text import format_packet, format_tcp

__all__ = [
    "NO_OPTIONS",
    "PARSE_REASONS",
    "REASON_NAMES",
    "IcmpMessage",
    "Icmpv6Message",
    "Ipv4Header",
    "Ipv6Header",
    "Packet",
    "QuotedTcp",
    "TcpOptions",
    "TcpSegment",
    "WireError",
    "address6_text",
    "address6_value",
    "address_text",
    "address_value",
    "build_icmp6_packet",
    "build_icmp_packet",
    "build_ipv4_packet",
    "build_ipv6_packet",
    "build_tcp_packet",
    "checksum_add",
    "checksum_finish",
    "checksum_update",
    "format_packet",
    "format_tcp",
    "internet_checksum",
    "parse_packet",
    "pseudo_header_sum",
    "tcp_options_length",
]
