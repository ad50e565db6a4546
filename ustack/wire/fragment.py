"""IPv4 fragmentation (RFC 791 3.2, "An Example Fragmentation Procedure") and IPv6's (RFC 8200
4.5, a fragment header in each piece), for the rare datagram we must send larger than the MTU: an
echo reply to a request that came in fragments.

    fragment_ipv4(header, payload, mtu) -> [packet, ...]
    fragment_ipv6(header, payload, mtu, identification) -> [packet, ...]

Our TCP never needs it (its segments are sized to the path MTU), so this is plain Python over
`build_ipv4_packet`, which writes each fragment's header and checksum in C.
"""

from __future__ import annotations

import struct

from .codec import build_ipv4_packet, build_ipv6_packet
from .errors import WireError
from .ipv4 import IPV4_HEADER_LENGTH, Ipv4Header
from .ipv6 import IPV6_HEADER_LENGTH, MINIMUM_MTU as IPV6_MINIMUM_MTU, PROTOCOL_FRAGMENT, Ipv6Header
from .reasons import BUILD_BAD_FIELD

# Fragment offsets count 8-byte units (RFC 791 3.1): every fragment but the last carries a
# multiple of 8 bytes.
FRAGMENT_UNIT = 8
# RFC 791 3.2: every link carries 68 bytes, so a 20-byte header and 8 bytes of data always fit.
MINIMUM_MTU = 68


def fragment_ipv4(header: Ipv4Header, payload: bytes, mtu: int) -> list[bytes]:
    """`payload` (a whole transport message, checksum included) as IPv4 packets of at most `mtu`
    bytes, each with `header`'s addresses, protocol, TTL and identification, the right offset and
    more-fragments flag, and its own header checksum. One packet if it fits already."""
    if header.dont_fragment:
        raise WireError(BUILD_BAD_FIELD, "a datagram marked don't-fragment cannot be fragmented")
    if mtu < MINIMUM_MTU:
        raise WireError(BUILD_BAD_FIELD, f"an IPv4 MTU is at least {MINIMUM_MTU} bytes")
    if IPV4_HEADER_LENGTH + len(payload) <= mtu:
        return [build_ipv4_packet(header, payload)]
    step = (mtu - IPV4_HEADER_LENGTH) // FRAGMENT_UNIT * FRAGMENT_UNIT
    view = memoryview(payload)
    packets = []
    for offset in range(0, len(payload), step):
        end = min(offset + step, len(payload))
        fragment = header._replace(fragment_offset=header.fragment_offset + offset, more_fragments=end < len(payload) or header.more_fragments)
        packets.append(build_ipv4_packet(fragment, view[offset:end]))
    return packets


# RFC 8200 4.5: Next Header, a reserved byte, the offset in 8-byte units with two reserved bits and
# the M flag below it, and the 32-bit identification.
FRAGMENT_HEADER = struct.Struct("!BBHI")


def fragment_header(next_header: int, offset: int, more: bool, identification: int) -> bytes:
    """An IPv6 fragment header; `offset` in bytes (a multiple of 8)."""
    return FRAGMENT_HEADER.pack(next_header, 0, offset | more, identification)


def fragment_ipv6(header: Ipv6Header, payload: bytes, mtu: int, identification: int) -> list[bytes]:
    """`payload` (the fragmentable part: a whole transport message, checksum included) as IPv6
    packets of at most `mtu` bytes. Each has `header`'s fixed fields and a fragment header whose
    Next Header is `header.protocol`, with `identification`, the offset and the M flag (RFC 8200
    4.5). One packet without a fragment header if it fits already: RFC 8021 deprecates atomic
    fragments, so none is ever made."""
    if mtu < IPV6_MINIMUM_MTU:
        raise WireError(BUILD_BAD_FIELD, f"an IPv6 MTU is at least {IPV6_MINIMUM_MTU} bytes")
    if not 0 <= identification <= 0xFFFFFFFF:
        raise WireError(BUILD_BAD_FIELD, "the fragment identification is 32 bits")
    if IPV6_HEADER_LENGTH + len(payload) <= mtu:
        return [build_ipv6_packet(header, payload)]
    step = (mtu - IPV6_HEADER_LENGTH - FRAGMENT_HEADER.size) // FRAGMENT_UNIT * FRAGMENT_UNIT
    fixed = header._replace(protocol=PROTOCOL_FRAGMENT)
    view = memoryview(payload)
    packets = []
    for offset in range(0, len(payload), step):
        end = min(offset + step, len(payload))
        piece = fragment_header(header.protocol, offset, end < len(payload), identification) + view[offset:end]
        packets.append(build_ipv6_packet(fixed, piece))
    return packets
