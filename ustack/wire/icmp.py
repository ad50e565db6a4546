"""ICMPv4 messages as the rest of ustack sees them (RFC 792).

Parsing and building is done in C (csrc/icmp.c) through `ustack.wire.codec`.
"""

from __future__ import annotations

from typing import NamedTuple

from .ipv4 import Ipv4Header

# Message types (RFC 792) and the codes of destination unreachable that TCP cares about.
ECHO_REPLY = 0
DESTINATION_UNREACHABLE = 3
SOURCE_QUENCH = 4
ECHO_REQUEST = 8
TIME_EXCEEDED = 11
PARAMETER_PROBLEM = 12

NET_UNREACHABLE = 0
HOST_UNREACHABLE = 1
PROTOCOL_UNREACHABLE = 2
PORT_UNREACHABLE = 3
FRAGMENTATION_NEEDED = 4  # RFC 1191: carries the next-hop MTU
SOURCE_ROUTE_FAILED = 5

ICMP_HEADER_LENGTH = 8


class QuotedTcp(NamedTuple):
    """The first 8 bytes of the TCP header an ICMP error quotes: enough to find the connection
    and to check the sequence number is one we sent (RFC 5927 4.1)."""

    src_port: int
    dst_port: int
    seq: int


class IcmpMessage(NamedTuple):
    """One ICMP message without its IP header.

    Echo request/reply use `identifier`, `sequence` and `payload` (the echo data); for other
    types those two fields hold bytes 4-7 of the header as received. Error messages
    (destination unreachable, source quench, time exceeded, parameter problem) carry the IP header
    of the datagram that caused them in `quoted_ip`, its first TCP bytes in `quoted_tcp` when it
    was TCP, and all the quoted bytes in `payload`. `next_hop_mtu` is set for destination
    unreachable, fragmentation needed (type 3 code 4, RFC 1191 4).

    When building, bytes 4-7 of the header are `identifier` and `sequence`, except for destination
    unreachable where they are the next-hop MTU; `quoted_ip`/`quoted_tcp` are ignored: put the
    quoted bytes in `payload`.
    """

    type: int
    code: int = 0
    identifier: int = 0
    sequence: int = 0
    next_hop_mtu: int = 0
    quoted_ip: Ipv4Header | None = None
    quoted_tcp: QuotedTcp | None = None
    payload: bytes = b""
