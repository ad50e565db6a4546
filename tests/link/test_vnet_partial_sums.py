"""The partial checksum of a large segment we hand the kernel (vnet.large_segment_parts), whose
address part is worked out once per address pair (vnet._ADDRESS_SUMS): for every length, both
families and more address pairs than the cache keeps, the kernel's split gives every piece a
checksum that verifies, and the field equals the pseudo-header sum worked out in full."""

from __future__ import annotations

import pytest

from ustack.link import vnet
from ustack.link.vnet import HEADER_SIZE, large_segment_parts, split_super_segment
from ustack.wire import build_tcp_packet, parse_packet
from ustack.wire.checksum import pseudo_header_sum, pseudo_header_sum6
from ustack.wire.tcp import ACK, PSH, TcpOptions, TcpSegment

V4 = (0x0A4D0002, 0x0A4D0001)
V6 = (bytes.fromhex("fd000077") + bytes(11) + b"\x02", bytes.fromhex("fd000077") + bytes(11) + b"\x01")


def large_segment(src, dst, length: int) -> bytes:
    payload = bytes(i * 13 & 0xFF for i in range(length))
    options = TcpOptions(None, None, False, (), (123, 456))
    return build_tcp_packet(src, dst, TcpSegment(80, 40000, 1000, 2000, ACK | PSH, 500, 0, options, payload))


def folded(value: int) -> int:
    while value >> 16:
        value = (value & 0xFFFF) + (value >> 16)
    return value


@pytest.mark.parametrize("addresses", [V4, V6], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("length", [1449, 2896, 20_000, 63_712, 65_443])
def test_the_field_is_the_full_pseudo_header_sum_and_every_piece_verifies(addresses, length):
    mtu = 1500
    ipv6 = type(addresses[0]) is bytes
    for _ in range(2):  # the second time from the cache
        packet = large_segment(*addresses, min(length, 65_535 - (60 if ipv6 else 40) - 12))
        parts = large_segment_parts(packet, mtu)
        tcp_length = len(packet) - (40 if ipv6 else 20)
        whole = (pseudo_header_sum6(*addresses, 6, tcp_length) if ipv6
                 else pseudo_header_sum(*addresses, 6, tcp_length))
        assert parts[2] == folded(whole).to_bytes(2, "big")
        frame = b"".join(bytes(part) for part in parts)
        pieces = split_super_segment(frame)
        assert len(pieces) > 1 and all(len(piece) <= mtu for piece in pieces)
        for piece in pieces:
            parse_packet(piece)  # raises on a bad checksum
        assert len(frame) == HEADER_SIZE + len(packet)


def test_the_cache_of_address_sums_stays_bounded_and_right_when_it_fills():
    vnet._ADDRESS_SUMS.clear()
    for host in range(vnet._ADDRESS_SUMS_KEPT + 10):
        src = 0x0A000000 + host
        packet = large_segment(src, V4[1], 3000)
        field = large_segment_parts(packet, 1500)[2]
        assert field == folded(pseudo_header_sum(src, V4[1], 6, len(packet) - 20)).to_bytes(2, "big")
        assert len(vnet._ADDRESS_SUMS) <= vnet._ADDRESS_SUMS_KEPT
