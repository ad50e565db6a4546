"""IPv6 headers as the rest of ustack sees them (RFC 8200).

Addresses are 16-byte `bytes` (fd00:77::2 is b"\\xfd\\x00\\x00\\x77" + 11 zero bytes + b"\\x02"), not
128-bit ints as the IPv4 side's 32-bit ints would suggest, for three reasons: C reads and writes
them in place (a 16-byte field, no conversion to or from a Python int in the per-packet path); they
hash as fast as ints in the demultiplexer; and an IPv6 address can never be equal to an IPv4 one,
so one table keyed by (src, src_port, dst, dst_port) holds connections of both families without a
family field. `address6_text` and `address6_value` convert at the edges (CLI, API, display);
`ipaddress.IPv6Address(value)` also takes them as they are.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

PROTOCOL_HOP_BY_HOP = 0
PROTOCOL_ROUTING = 43
PROTOCOL_FRAGMENT = 44
PROTOCOL_ICMPV6 = 58
PROTOCOL_NO_NEXT_HEADER = 59
PROTOCOL_DESTINATION_OPTIONS = 60

IPV6_HEADER_LENGTH = 40
# A jumbogram as IPv6 BIG TCP builds one (RFC 2675; csrc/ipv6.c ustack_ipv6_jumbo_length): Payload
# Length 0, then an 8-byte hop-by-hop header holding the Jumbo Payload option (type 0xC2) alone.
JUMBO_HEADER_LENGTH = 8
JUMBO_OPTION = 0xC2
LARGEST_PAYLOAD = 65535  # what Payload Length can say; past it, a jumbogram
MINIMUM_MTU = 1280  # RFC 8200 5: every link carries packets of this size


class Ipv6Header(NamedTuple):
    """One IPv6 header with what its extension header chain told the parser (field order mirrors
    struct ustack_ipv6_fields in csrc/wire.h).

    `protocol` is the upper-layer protocol at the end of the chain (6 for TCP, 58 for ICMPv6), named
    like Ipv4Header.protocol so the host demultiplexes both families alike; `header_length` is where
    that protocol's header starts (40 plus the extension headers). In a fragment the chain stops at
    the fragment header: `protocol` is the Next Header it names and the fragment's data starts at
    `header_length` (RFC 8200 4.5). `has_fragment_header` is also set for an atomic fragment
    (offset 0, M clear), which is otherwise a whole packet (RFC 6946).

    When building with build_ipv6_packet, `protocol` is the fixed header's Next Header and the
    payload carries any extension headers; payload_length and header_length are computed.
    """

    src: bytes
    dst: bytes
    protocol: int
    hop_limit: int = 64
    payload_length: int = 0
    flow_label: int = 0  # 20 bits (RFC 6437)
    traffic_class: int = 0
    has_fragment_header: bool = False
    more_fragments: bool = False
    fragment_offset: int = 0  # in bytes (the wire field times 8)
    header_length: int = IPV6_HEADER_LENGTH
    identification: int = 0  # of the fragment header

    version = 6

    @property
    def is_fragment(self) -> bool:
        return self.more_fragments or self.fragment_offset != 0

    @property
    def ecn(self) -> int:
        """The ECN field: the low two bits of the traffic class (RFC 8200 7, RFC 3168 5)."""
        return self.traffic_class & 0b11  # the code points are ipv4.py's (RFC 3168 5)


def is_jumbogram(head, length: int) -> bool:
    """Whether the IPv6 packet of `length` bytes whose headers start `head` is a jumbogram of
    that layout (the parser checks the rest: the length in the option and the frame's agree)."""
    return (length > IPV6_HEADER_LENGTH + LARGEST_PAYLOAD and head[6] == PROTOCOL_HOP_BY_HOP
            and head[4] == head[5] == 0 and head[IPV6_HEADER_LENGTH + 2] == JUMBO_OPTION)


def address6_value(text: str) -> bytes:
    """'fd00:77::2' -> its 16 bytes; raises ValueError with a clear message otherwise."""
    return ipaddress.IPv6Address(text).packed


def endpoint_text(address: str, port: object) -> str:
    """An address (as text) and a port as `ss` prints them: '10.77.0.2:80', and for IPv6 the
    address in brackets, '[fd00:77::2]:80' (RFC 5952 6), since its colons would swallow the port."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def address6_text(value: bytes) -> str:
    """16 bytes -> the text inet_ntop (and so tcpdump and ss) prints: RFC 5952 form, the first of
    the longest runs of two or more zero groups shown as '::', and an IPv4 address in dotted form
    at the end of '::ffff:0:0/96' and '::/96' addresses (except '::' and '::1')."""
    if len(value) != 16:
        raise ValueError(f"an IPv6 address is 16 bytes, not {len(value)}")
    groups = [(value[i] << 8) | value[i + 1] for i in range(0, 16, 2)]
    best_start, best_length, start = -1, 0, -1
    for index, group in enumerate(groups + [1]):
        if group == 0 and index < 8:
            if start < 0:
                start = index
        elif start >= 0:
            if index - start > best_length:
                best_start, best_length = start, index - start
            start = -1
    if best_length < 2:
        best_start, best_length = -1, 0
    dotted = best_start == 0 and (best_length == 6 or (best_length == 5 and groups[5] == 0xFFFF))
    texts = [f"{group:x}" for group in groups]
    if dotted:
        texts[6:8] = [".".join(str(byte) for byte in value[12:16])]
    if best_start < 0:
        return ":".join(texts)
    head = ":".join(texts[:best_start])
    tail = ":".join(texts[best_start + best_length :])
    return f"{head}::{tail}"
