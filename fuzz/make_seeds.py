"""Writes a seed corpus for fuzz/fuzz_wire.c: valid packets from the ustack builders, one file per
packet and fuzzing mode (the first byte of each input picks the mode, see fuzz_wire.c).

    python fuzz/make_seeds.py DIRECTORY
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ustack.wire import IcmpMessage, TcpOptions, TcpSegment, build_icmp_packet, build_tcp_packet  # noqa: E402
from ustack.wire.tcp import ACK, PSH, SYN  # noqa: E402

SOURCE, DESTINATION = 0x0A000001, 0x0A000002  # the addresses fuzz_wire.c uses for mode 2


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


def main() -> int:
    directory = Path(sys.argv[1])
    directory.mkdir(parents=True, exist_ok=True)
    for index, packet in enumerate(seed_packets()):
        for mode in (0, 1, 4):
            (directory / f"seed-{index}-mode{mode}").write_bytes(bytes([mode]) + packet)
        (directory / f"seed-{index}-mode2").write_bytes(bytes([2]) + packet[20:])
        (directory / f"seed-{index}-mode3").write_bytes(bytes([3]) + packet[20:])
        (directory / f"seed-{index}-mode6").write_bytes(bytes([6]) + packet[20:22] + packet[24:28] + b"\x00\x01" + packet[28:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
