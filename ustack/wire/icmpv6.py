"""ICMPv6 messages as the rest of ustack sees them (RFC 4443).

Parsing and building is done in C (csrc/icmpv6.c, csrc/ipv6.c) through `ustack.wire.codec`. No
neighbour discovery (RFC 4861): a TUN device carries IP packets only, with no link-layer address to
resolve, so those messages are parsed as type, code and data and nothing more.
"""

from __future__ import annotations

from typing import NamedTuple

from .icmp import QuotedTcp
from .ipv6 import Ipv6Header

# Message types (RFC 4443 2.1) and the codes TCP cares about.
DESTINATION_UNREACHABLE = 1
PACKET_TOO_BIG = 2
TIME_EXCEEDED = 3
PARAMETER_PROBLEM = 4
ECHO_REQUEST = 128
ECHO_REPLY = 129

# Destination unreachable codes (RFC 4443 3.1).
NO_ROUTE = 0
ADMINISTRATIVELY_PROHIBITED = 1
BEYOND_SCOPE = 2
ADDRESS_UNREACHABLE = 3
PORT_UNREACHABLE = 4
SOURCE_ADDRESS_POLICY = 5
REJECT_ROUTE = 6

# Parameter problem codes (RFC 4443 3.4).
ERRONEOUS_HEADER_FIELD = 0
UNRECOGNIZED_NEXT_HEADER = 1
UNRECOGNIZED_OPTION = 2


class Icmpv6Message(NamedTuple):
    """One ICMPv6 message without its IP header.

    Echo request/reply use `identifier`, `sequence` and `payload`; for other types those two fields
    hold bytes 4-7 of the header as received. Error messages (types 1-4) carry the IPv6 header of
    the packet that caused them in `quoted_ip` (its extension headers walked as far as they were
    quoted), its first TCP bytes in `quoted_tcp` when it was TCP, and all the quoted bytes in
    `payload`. `mtu` is set for packet too big, `pointer` for parameter problem.

    When building, bytes 4-7 of the header are `mtu` for packet too big, `pointer` for parameter
    problem, `identifier` and `sequence` otherwise; `quoted_ip`/`quoted_tcp` are ignored: put the
    quoted bytes in `payload`.
    """

    type: int
    code: int = 0
    identifier: int = 0
    sequence: int = 0
    mtu: int = 0
    pointer: int = 0
    quoted_ip: Ipv6Header | None = None
    quoted_tcp: QuotedTcp | None = None
    payload: bytes = b""
