"""Writes a seed corpus for fuzz/fuzz_wire.c: valid packets from the ustack builders, one file per
packet and fuzzing mode (the first byte of each input picks the mode, see fuzz_wire.c).

    python fuzz/make_seeds.py DIRECTORY
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ustack.wire import (  # noqa: E402
    IcmpMessage,
    Icmpv6Message,
    Ipv6Header,
    TcpOptions,
    TcpSegment,
    build_icmp6_packet,
    build_icmp_packet,
    build_ipv6_packet,
    build_tcp_packet,
)
from ustack.wire.tcp import ACK, PSH, SYN  # noqa: E402

SOURCE, DESTINATION = 0x0A000001, 0x0A000002  # the addresses fuzz_wire.c uses for mode 2
SOURCE6 = bytes.fromhex("fd000077000000000000000000000001")  # and for mode 8
DESTINATION6 = bytes.fromhex("fd000077000000000000000000000002")


def seed_packets() -> list[bytes]:
    syn = TcpSegment(40000, 80, 1, 0, SYN, 64240, options=TcpOptions(1460, 7, True, (), (1, 0)))
    data = TcpSegment(40000, 80, 2, 3, ACK | PSH, 502, options=TcpOptions(sack_blocks=((5, 9), (12, 20))),
                      payload=b"hello")  # fmt: skip
    quoted = build_tcp_packet(DESTINATION, SOURCE, syn)[:28]
    return [
        build_tcp_packet(SOURCE, DESTINATION, syn),
        build_tcp_packet(SOURCE, DESTINATION, syn, option_layout="freebsd"),
        build_tcp_packet(SOURCE, DESTINATION, data),
        build_icmp_packet(SOURCE, DESTINATION, IcmpMessage(8, 0, 7, 1, payload=b"ping")),
        build_icmp_packet(SOURCE, DESTINATION, IcmpMessage(3, 4, next_hop_mtu=1400, payload=quoted)),
    ]


def seed_packets6() -> list[bytes]:
    syn = TcpSegment(40000, 80, 1, 0, SYN, 64240, options=TcpOptions(1440, 7, True, (), (1, 0)))
    syn_packet = build_tcp_packet(SOURCE6, DESTINATION6, syn, flow_label=0x12345)
    segment = syn_packet[40:]
    # hop-by-hop (PadN), destination options (Pad1 x6), an atomic fragment, then TCP: the parser walks them all.
    chain = bytes([60, 0, 1, 4, 0, 0, 0, 0]) + bytes([44, 0, 0, 0, 0, 0, 0, 0]) + bytes([6, 0, 0, 0, 0, 0, 0, 9])
    first_fragment = bytes([6, 0, 0, 1, 0, 0, 0, 7]) + segment[:16]
    return [
        syn_packet,
        build_ipv6_packet(Ipv6Header(SOURCE6, DESTINATION6, 0), chain + segment),
        build_ipv6_packet(Ipv6Header(SOURCE6, DESTINATION6, 44), first_fragment),
        build_icmp6_packet(SOURCE6, DESTINATION6, Icmpv6Message(128, 0, 7, 1, payload=b"ping")),
        build_icmp6_packet(DESTINATION6, SOURCE6, Icmpv6Message(2, 0, mtu=1280, payload=syn_packet)),
    ]


def main() -> int:
    directory = Path(sys.argv[1])
    directory.mkdir(parents=True, exist_ok=True)
    for index, packet in enumerate(seed_packets()):
        for mode in (0, 1, 4):
            (directory / f"seed-{index}-mode{mode}").write_bytes(bytes([mode]) + packet)
        (directory / f"seed-{index}-mode2").write_bytes(bytes([2]) + packet[20:])
        (directory / f"seed-{index}-mode3").write_bytes(bytes([3]) + packet[20:])
        (directory / f"seed-{index}-mode6").write_bytes(bytes([6]) + packet[20:22] + packet[24:28] + b"\x00\x01" + packet[28:])
    for index, packet in enumerate(seed_packets6()):
        for mode in (0, 1, 7):
            (directory / f"seed6-{index}-mode{mode}").write_bytes(bytes([mode]) + packet)
        if packet[6] == 58:
            (directory / f"seed6-{index}-mode8").write_bytes(bytes([8]) + packet[40:])
            (directory / f"seed6-{index}-mode10").write_bytes(bytes([10]) + packet[40:42] + packet[44:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
