#!/usr/bin/env python3
"""How long the wire layer takes per packet, in nanoseconds per call, with the goal beside it.

    .venv/bin/python scripts/bench_wire.py [--seconds 2] [--rounds-ms 2]

The goals (issue 2), for one call of the public Python function, call overhead included:
parse_packet (parse and verify both checksums) of a segment carrying 1,460 bytes in at most 1 us
and of the largest one an IPv4 packet can carry in at most 3 us; build_tcp_packet of the 1,460-byte
segment in at most 1 us. Every segment carries the timestamps option, as Linux's do. The IPv6 rows
(issue 11) time the same calls on the same segments over IPv6, beside the IPv4 ones.

The machine may be busy with other work. Each figure is therefore the best of many short timing
rounds: a round disturbed by another process only comes out slower, so the fastest round is the
closest to the cost of the call itself. The rows are timed in turns (row 1, row 2, ..., row 1, ...)
so that a busy spell slows every row a little rather than one row a lot. The load average is
printed too: figures taken at a load near the number of cores are a few tens of percent high.
The exit status is 1 when a figure is over its goal.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ustack.wire import (  # noqa: E402
    TcpOptions,
    TcpSegment,
    address6_value,
    address_value,
    build_tcp_packet,
    parse_packet,
)
from ustack.wire.tcp import ACK, PSH  # noqa: E402

SOURCE = address_value("10.77.0.1")
DESTINATION = address_value("10.77.0.2")
SOURCE6 = address6_value("fd00:77::1")
DESTINATION6 = address6_value("fd00:77::2")
DATA_OPTIONS = TcpOptions(timestamps=(123456789, 987654321))
# The largest TCP payload one IPv4 packet can carry with 12 bytes of options: 65,535 - 20 - 32.
LARGEST_PAYLOAD = 65535 - 20 - 32


def segment(payload_length: int) -> TcpSegment:
    payload = bytes(index % 251 for index in range(payload_length))
    return TcpSegment(40000, 80, 4294967000, 1000, ACK | PSH, 502, options=DATA_OPTIONS, payload=payload)


class Row:
    """One line of the table: a statement timed in the namespace the rows share."""

    def __init__(self, name: str, statement: str, goal: float | None, namespace: dict) -> None:
        self.name = name
        self.goal = goal
        self.timer = timeit.Timer(statement, globals=namespace)
        self.calls_per_round = 1
        self.best = float("inf")

    def calibrate(self, round_seconds: float) -> None:
        """Chooses how many calls one round makes so that it lasts about `round_seconds`."""
        calls, elapsed = self.timer.autorange()  # `calls` calls take at least 0.2 s
        self.calls_per_round = max(1, int(calls * round_seconds / elapsed))

    def time_one_round(self) -> None:
        elapsed = self.timer.timeit(self.calls_per_round)  # timeit turns the garbage collector off
        self.best = min(self.best, elapsed / self.calls_per_round * 1e9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="rough time spent timing each row")
    parser.add_argument("--rounds-ms", type=float, default=2.0, help="length of one timing round")
    args = parser.parse_args()

    small = segment(1460)
    large = segment(LARGEST_PAYLOAD)
    namespace = {
        "parse_packet": parse_packet,
        "build_tcp_packet": build_tcp_packet,
        "SOURCE": SOURCE,
        "DESTINATION": DESTINATION,
        "small": small,
        "large": large,
        "small_packet": build_tcp_packet(SOURCE, DESTINATION, small),
        "large_packet": build_tcp_packet(SOURCE, DESTINATION, large),
        "SOURCE6": SOURCE6,
        "DESTINATION6": DESTINATION6,
        "small_packet6": build_tcp_packet(SOURCE6, DESTINATION6, small),
    }
    for packet, sent in ((namespace["small_packet"], small), (namespace["large_packet"], large),
                         (namespace["small_packet6"], small)):  # fmt: skip
        parsed = parse_packet(packet)
        assert parsed.tcp == sent and type(parsed.payload) is bytes, "parse_packet does not round-trip"

    small_size = len(namespace["small_packet"])
    large_size = len(namespace["large_packet"])
    rows = [
        Row(f"parse_packet, 1,460 B of data ({small_size:,} B packet)", "parse_packet(small_packet)", 1000, namespace),
        Row(f"parse_packet, {LARGEST_PAYLOAD:,} B of data ({large_size:,} B)", "parse_packet(large_packet)", 3000, namespace),
        Row("  the same from a memoryview (data not copied)", "parse_packet(memoryview(large_packet))", None, namespace),
        Row("build_tcp_packet, 1,460 B of data", "build_tcp_packet(SOURCE, DESTINATION, small)", 1000, namespace),
        Row(f"build_tcp_packet, {LARGEST_PAYLOAD:,} B of data", "build_tcp_packet(SOURCE, DESTINATION, large)", None, namespace),
        Row(f"IPv6 parse_packet, 1,460 B of data ({len(namespace['small_packet6']):,} B packet)",
            "parse_packet(small_packet6)", 1000, namespace),
        Row("IPv6 build_tcp_packet, 1,460 B of data", "build_tcp_packet(SOURCE6, DESTINATION6, small)", 1000, namespace),
    ]
    round_seconds = args.rounds_ms / 1000
    for row in rows:
        row.calibrate(round_seconds)
    deadline = time.monotonic() + args.seconds * len(rows)
    rounds = 0
    while rounds < 20 or time.monotonic() < deadline:
        for row in rows:
            row.time_one_round()
        rounds += 1

    load = os.getloadavg()[0]
    print(f"best of {rounds} rounds of about {args.rounds_ms:g} ms per row; "
          f"load average {load:.2f} on {os.cpu_count()} cores")  # fmt: skip
    print(f"{'operation':<56} {'ns/call':>8} {'goal':>8}")
    over = False
    for row in rows:
        if row.goal is None:
            goal_text, verdict = "-", ""
        else:
            goal_text, verdict = f"<= {row.goal:.0f}", ("ok" if row.best <= row.goal else "OVER")
            over |= row.best > row.goal
        print(f"{row.name:<56} {row.best:>8.0f} {goal_text:>8}  {verdict}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
