"""IPv4 headers as the rest of ustack sees them (RFC 791).

Addresses are plain ints (10.77.0.2 is 0x0A4D0002): cheap to hash in the demultiplexer and to hand
to C. `address_text` and `address_value` convert at the edges (CLI, API, display).
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

from .ipv6 import address6_text

PROTOCOL_ICMP = 1
PROTOCOL_TCP = 6
PROTOCOL_UDP = 17

IPV4_HEADER_LENGTH = 20


# The ECN field (RFC 3168 5): the low two bits of the IPv4 TOS byte, and of the IPv6 traffic class
# (RFC 8200 7), which carries the same code points. Both headers read it as `.ecn`.
NOT_ECT = 0b00
ECT_1 = 0b01
ECT_0 = 0b10
CE = 0b11


class Ipv4Header(NamedTuple):
    src: int
    dst: int
    protocol: int
    ttl: int = 64
    total_length: int = 0  # filled in by the builder
    identification: int = 0
    dont_fragment: bool = True
    more_fragments: bool = False
    fragment_offset: int = 0  # in bytes (the wire field times 8)
    header_length: int = IPV4_HEADER_LENGTH  # in bytes (IHL times 4)
    tos: int = 0

    version = 4  # a class constant, not a field: Ipv6Header has version 6

    @property
    def is_fragment(self) -> bool:
        return self.more_fragments or self.fragment_offset != 0

    @property
    def ecn(self) -> int:
        """The ECN field (RFC 3168 5): the low two bits of the TOS byte; Ipv6Header has it too."""
        return self.tos & CE


def address_value(text: str) -> int:
    """'10.77.0.2' -> 0x0A4D0002; raises ValueError with a clear message otherwise."""
    return int(ipaddress.IPv4Address(text))


def address_text(value: int | bytes) -> str:
    """0x0A4D0002 -> '10.77.0.2'. A 16-byte IPv6 address gives its text too (address6_text), so
    code that shows the addresses of parsed packets works for both families."""
    if type(value) is bytes:
        return address6_text(value)
    return str(ipaddress.IPv4Address(value))
