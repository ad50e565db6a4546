"""ustack_parse_packet_tcp_checksum_known (the parse of a packet whose link completed or saw
verified its TCP checksum, ustack/wire/codec.py LinkBuffer) makes every check ustack_parse_packet
makes but the TCP checksum: on seeded random damage to valid packets of both families (bit flips
anywhere, truncation), it agrees with the full parse on every field and every drop reason, the
TCP checksum alone excepted."""

from __future__ import annotations

import random

import pytest

from ustack.wire import build_tcp_packet, parse_packet
from ustack.wire.codec import LinkBuffer
from ustack.wire.errors import WireError
from ustack.wire.tcp import TcpOptions, TcpSegment

A, B = 0x0A4D0001, 0x0A4D0002
A6, B6 = bytes.fromhex("fd000077000000000000000000000001"), bytes.fromhex("fd000077000000000000000000000002")


def marked(packet: bytes) -> memoryview:
    """`packet` as the TUN link hands it over with its TCP checksum known to be right."""
    buffer = LinkBuffer(len(packet))
    buffer[:] = packet
    buffer.tcp_checksum_known = True
    return memoryview(buffer).toreadonly()


def outcome(packet) -> tuple:
    try:
        parsed = parse_packet(packet)
    except WireError as error:
        return ("dropped", error.reason)
    return ("parsed", parsed.ip, parsed.tcp._replace(payload=bytes(parsed.tcp.payload)) if parsed.tcp else None,
            parsed.icmp, bytes(parsed.payload))


@pytest.mark.parametrize("family", [4, 6])
def test_the_parse_without_the_tcp_sum_agrees_with_the_full_one_but_for_that_sum(family):
    seed = 20261206 + family
    rng = random.Random(seed)
    options = TcpOptions(mss=1460, window_scale=7, sack_permitted=True, timestamps=(5, 6))
    segment = TcpSegment(40000, 80, 1000, 2000, 0x18, 500, 0, options, bytes(range(256)) * 8)
    packet = build_tcp_packet(A6, B6, segment) if family == 6 else build_tcp_packet(A, B, segment)
    assert outcome(marked(packet)) == outcome(packet)
    seen = set()
    for _ in range(3000):
        damaged = bytearray(packet)
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(min(len(damaged), 80)) if rng.random() < 0.7 else rng.randrange(len(damaged))
            damaged[position] ^= 1 << rng.randrange(8)
        if rng.random() < 0.2:
            del damaged[rng.randrange(len(damaged)):]
        full, known = outcome(bytes(damaged)), outcome(marked(bytes(damaged)))
        seen.add(full[1] if full[0] == "dropped" else "parsed")
        if full == ("dropped", "tcp_bad_checksum"):
            continue  # the one check the link answered for
        assert known == full, f"seed {seed}: {bytes(damaged).hex()}"
    assert "tcp_bad_checksum" in seen and len(seen) >= 4, f"seed {seed}: {seen}"  # the damage reached several checks
