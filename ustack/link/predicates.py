"""Small packet predicates for FaultInjector.drop_when, so a lab can say which packet to lose:

    from ustack.wire.tcp import ACK
    injector.drop_when(nth(tcp_flags_equal(ACK), 1), direction="outbound")  # final handshake ACK
    injector.drop_when(nth(tcp_with_data(), 3))                             # the 3rd data segment

They only peek at a few header fields (enough to choose a victim); a packet too short to hold
those fields is simply "not a match". Validating packets is the stack's job, not theirs.
"""

from __future__ import annotations

import struct
from typing import Callable

Predicate = Callable[[bytes], bool]

PROTOCOL_TCP = 6


def tcp_offset_and_length(packet: bytes) -> tuple[int, int] | None:
    """(where the TCP header starts, where the IP packet ends) of an unfragmented IPv4/TCP packet,
    or of an IPv6 packet whose fixed header is followed by TCP (no extension headers, as TCP
    from ustack and from the kernel is sent), else None."""
    if len(packet) < 20:
        return None
    if packet[0] >> 4 == 6:
        if len(packet) < 40 + 20 or packet[6] != PROTOCOL_TCP:
            return None
        (payload_length,) = struct.unpack_from("!H", packet, 4)
        return 40, 40 + payload_length
    if packet[0] >> 4 != 4 or packet[9] != PROTOCOL_TCP:
        return None
    header_length = (packet[0] & 0x0F) * 4
    if len(packet) < header_length + 20:
        return None
    (total_length,) = struct.unpack_from("!H", packet, 2)
    return header_length, total_length


def tcp_flags_and_payload_length(packet: bytes) -> tuple[int, int] | None:
    """(flags, payload length) of a TCP packet tcp_offset_and_length can read, else None."""
    found = tcp_offset_and_length(packet)
    if found is None:
        return None
    offset, end = found
    data_offset = (packet[offset + 12] >> 4) * 4
    flags = packet[offset + 13]
    return flags, max(end - offset - data_offset, 0)


def tcp_flags_equal(flags: int, with_data: bool = False) -> Predicate:
    """TCP with exactly these flags (e.g. ACK alone); by default only segments without data."""

    def matches(packet: bytes) -> bool:
        view = tcp_flags_and_payload_length(packet)
        return view is not None and view[0] == flags and (with_data or view[1] == 0)

    return matches


def tcp_with_data() -> Predicate:
    """A TCP segment that carries at least one byte of data."""

    def matches(packet: bytes) -> bool:
        view = tcp_flags_and_payload_length(packet)
        return view is not None and view[1] > 0

    return matches


def nth(predicate: Predicate, n: int) -> Predicate:
    """True only for the n-th packet (1-based) that satisfies predicate, counted from now on."""
    if n < 1:
        raise ValueError("n counts from 1")
    seen = 0

    def matches(packet: bytes) -> bool:
        nonlocal seen
        if not predicate(packet):
            return False
        seen += 1
        return seen == n

    return matches
