"""The TCP Fast Open option (RFC 7413 4.1.1, kind 34, and the experimental kind 254 with magic
0xF989, RFC 6994) through build_tcp_packet and parse_packet, which handle it beside the C layer."""

from __future__ import annotations

import pytest

from ustack.wire import build_tcp_packet, parse_packet
from ustack.wire.checksum import checksum_update, internet_checksum
from ustack.wire.codec import tcp_options_length
from ustack.wire.tcp import ACK, SYN, TcpOptions, TcpSegment

V4 = (0x0A000001, 0x0A000002)
V6 = (bytes(range(16)), bytes(range(1, 17)))
FULL = dict(mss=1460, window_scale=7, sack_permitted=True, timestamps=(5, 6))


@pytest.mark.parametrize("addresses", [V4, V6], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("cookie", [b"", bytes.fromhex("abcd1234"), bytes(range(8)), bytes(16)])
@pytest.mark.parametrize("experimental", [False, True])
def test_the_option_round_trips(addresses, cookie, experimental):
    options = TcpOptions(**FULL, fast_open=cookie, fast_open_experimental=experimental)
    segment = TcpSegment(1, 2, 3, 4, SYN, 100, 0, options, b"hello")
    packet = build_tcp_packet(*addresses, segment)
    assert parse_packet(packet).tcp == segment  # checksums and lengths were made right, too
    option = (bytes((254, 4 + len(cookie))) + b"\xf9\x89" if experimental else bytes((34, 2 + len(cookie)))) + cookie
    assert option in packet


def test_ipv4_header_checksum_and_lengths():
    segment = TcpSegment(1, 2, 3, 4, SYN | ACK, 100, 0, TcpOptions(mss=1460, fast_open=bytes(8)), b"")
    packet = build_tcp_packet(*V4, segment)
    assert internet_checksum(packet[:20]) == 0
    assert int.from_bytes(packet[2:4], "big") == len(packet)
    assert (packet[32] >> 4) * 4 == 20 + 4 + 12  # MSS, then the 10-byte option and two NOPs
    assert tcp_options_length(segment.options) == 16


def test_the_option_is_read_only_on_a_syn():
    """On any other segment it is an unknown option, skipped (RFC 9293 3.2): RFC 7413 4.1.1 puts it
    on SYNs only."""
    with_option = TcpSegment(1, 2, 3, 4, SYN, 100, 0, TcpOptions(fast_open=bytes(8)))
    packet = bytearray(build_tcp_packet(*V4, with_option))
    old_word = int.from_bytes(packet[32:34], "big")
    packet[33] = ACK  # the flags byte, and the checksum updated for the change (RFC 1624)
    new_word = int.from_bytes(packet[32:34], "big")
    checksum = checksum_update(int.from_bytes(packet[36:38], "big"), old_word, new_word)
    packet[36:38] = checksum.to_bytes(2, "big")
    parsed = parse_packet(bytes(packet))
    assert parsed.tcp.flags == ACK and parsed.tcp.options.fast_open is None


def test_a_cookie_longer_than_16_bytes_is_ignored():
    segment = TcpSegment(1, 2, 3, 4, SYN, 100, 0, TcpOptions(fast_open=bytes(17)))
    assert parse_packet(build_tcp_packet(*V4, segment)).tcp.options.fast_open is None
