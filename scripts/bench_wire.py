#!/usr/bin/env python3
"""How long the wire layer takes per packet, in nanoseconds per call, with the goal beside it.

    .venv/bin/python scripts/bench_wire.py [--seconds 0.5]

Each figure is the best of several timing rounds (the least disturbed by other work on the
machine), for one call of the public Python function, call overhead included.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ustack.wire import TcpOptions, TcpSegment, address_value, build_tcp_packet, parse_packet  # noqa: E402
from ustack.wire.tcp import ACK, PSH  # noqa: E402

SOURCE = address_value("10.77.0.1")
DESTINATION = address_value("10.77.0.2")
DATA_OPTIONS = TcpOptions(timestamps=(123456789, 987654321))


def segment(payload_length: int) -> TcpSegment:
    payload = bytes(index % 251 for index in range(payload_length))
    return TcpSegment(40000, 80, 4294967000, 1000, ACK | PSH, 502, options=DATA_OPTIONS, payload=payload)


def nanoseconds_per_call(statement: str, seconds: float) -> float:
    """The best of many short timing rounds: the machine may be busy with other work, and the
    least disturbed round is the closest to the cost of the call itself."""
    timer = timeit.Timer(statement, globals=globals())
    count, elapsed = timer.autorange()  # count calls take at least 0.2 s
    number = max(1, count // 40)  # rounds of about 5 ms
    rounds = max(5, int(seconds / (elapsed / 40)))
    best = min(timer.repeat(repeat=rounds, number=number))
    return best / number * 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="rough time spent per figure")
    args = parser.parse_args()

    small = segment(1460)
    # The largest TCP payload one IPv4 packet can carry with 12 bytes of options: 65,535 - 20 - 32.
    large = segment(65535 - 20 - 32)
    globals().update(
        small=small,
        large=large,
        small_packet=build_tcp_packet(SOURCE, DESTINATION, small),
        large_packet=build_tcp_packet(SOURCE, DESTINATION, large),
    )
    assert parse_packet(small_packet).tcp == small and parse_packet(large_packet).tcp == large

    rows = [
        (f"parse_packet, {len(small_packet):,}-byte packet", "parse_packet(small_packet)", 1000),
        (f"parse_packet, {len(large_packet):,}-byte packet", "parse_packet(large_packet)", 3000),
        (f"  the same as a memoryview (payload not copied)", "parse_packet(memoryview(large_packet))", 3000),
        (f"build_tcp_packet, {len(small_packet):,}-byte packet", "build_tcp_packet(SOURCE, DESTINATION, small)", 1000),
        (f"build_tcp_packet, {len(large_packet):,}-byte packet", "build_tcp_packet(SOURCE, DESTINATION, large)", None),
    ]
    print(f"{'operation':<44} {'ns/call':>9} {'goal':>8}")
    failed = False
    for name, statement, goal in rows:
        figure = nanoseconds_per_call(statement, args.seconds)
        verdict = "" if goal is None else ("  ok" if figure <= goal else "  OVER")
        failed |= goal is not None and figure > goal
        goal_text = "-" if goal is None else f"<= {goal}"
        print(f"{name:<44} {figure:>9.0f} {goal_text:>8}{verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
