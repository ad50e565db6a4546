#!/usr/bin/env python3
"""What reassembly costs: memory under a fragment flood beside the 4 MB ceiling, and time per
fragment beside the time to parse the packet that carried it.

    .venv/bin/python scripts/bench_reassembly.py [--flood 200000] [--seconds 1]

Memory: floods of fragments that never complete a datagram, through the stack's IPv4 reassembly:
1,480-byte first fragments, each of a new datagram (as a spoofing attacker sends them), the same
with 8-byte fragments, and 8-byte fragments 100 to a datagram. The ceiling
(Linux's net.ipv4.ipfrag_high_thresh, 4 MB) is enforced on our own estimate of each fragment's
cost; tracemalloc measures what Python really holds at the peak, which shows whether the estimate
is honest. The goal: the real peak stays within 1.25 times the ceiling.

Time: a 60,000-byte ping's 41 fragments reassembled and parsed again, per fragment, beside
parse_packet on one 1,500-byte fragment (which every packet pays anyway). Best of many rounds.
The exit status is 1 when the memory figure is over its goal.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ustack.reassembly import Ipv4Reassembly, ReassemblyLimits  # noqa: E402
from ustack.wire import IcmpMessage, Ipv4Header, address_value, build_icmp_packet, build_ipv4_packet, parse_packet  # noqa: E402
from ustack.wire.fragment import fragment_ipv4  # noqa: E402
from ustack.wire.icmp import ECHO_REQUEST  # noqa: E402
from ustack.wire.ipv4 import PROTOCOL_UDP  # noqa: E402

PEER = address_value("10.77.0.1")
OURS = address_value("10.77.0.2")
CEILING = ReassemblyLimits().memory_limit
MEMORY_GOAL = 1.25  # times the ceiling


def flood_peak(count: int, payload_length: int, per_datagram: int) -> tuple[int, int]:
    """(our estimate at the end, tracemalloc's peak) for `count` fragments, `per_datagram` of them
    (never the last) for each datagram. Each packet is made inside the traced loop and let go
    after it, as packets from a link are."""
    reassembly = Ipv4Reassembly()
    payload = bytes(payload_length)
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    for number in range(count):
        datagram, index = divmod(number, per_datagram)
        header = Ipv4Header(PEER + (datagram >> 16), OURS, PROTOCOL_UDP, identification=datagram & 0xFFFF,
                            dont_fragment=False, more_fragments=True, fragment_offset=index * payload_length)
        reassembly.receive(parse_packet(build_ipv4_packet(header, payload)), number * 1e-5)
    peak = tracemalloc.get_traced_memory()[1] - baseline
    tracemalloc.stop()
    return reassembly.reassembler.memory_used, peak


def per_fragment_time(seconds: float) -> tuple[float, float]:
    request = build_icmp_packet(PEER, OURS, IcmpMessage(ECHO_REQUEST, payload=bytes(60000)))
    fragments = fragment_ipv4(Ipv4Header(PEER, OURS, 1, identification=1, dont_fragment=False), request[20:], 1500)
    parsed = [parse_packet(fragment) for fragment in fragments]
    now = [0.0]

    def reassemble():
        reassembly = Ipv4Reassembly()
        now[0] += 1
        for fragment in parsed:
            whole = reassembly.receive(fragment, now[0])
        assert whole is not None

    def parse_one():
        parse_packet(fragments[0])

    rounds = max(3, int(seconds * 20))
    reassembly_time = min(timeit.repeat(reassemble, number=10, repeat=rounds)) / 10 / len(parsed)
    parse_time = min(timeit.repeat(parse_one, number=1000, repeat=rounds)) / 1000
    return reassembly_time, parse_time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=200_000, help="fragments in each flood (default 200000)")
    parser.add_argument("--seconds", type=float, default=1.0, help="roughly how long to time (default 1)")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'measure':52} {'ours':>12} {'goal':>12}")
    failed = False
    for length, per_datagram in ((1480, 1), (8, 1), (8, 100)):
        estimate, peak = flood_peak(args.flood, length, per_datagram)
        ok = peak <= MEMORY_GOAL * CEILING
        failed |= not ok
        what = f"{args.flood:,} {length}-byte fragments, {per_datagram} per datagram: held"
        print(f"{what:52} {estimate / 2**20:>10.2f}MB {CEILING / 2**20:>10.2f}MB")
        print(f"{'   real peak (tracemalloc)':52} {peak / 2**20:>10.2f}MB {MEMORY_GOAL * CEILING / 2**20:>10.2f}MB"
              f"{'' if ok else '  OVER'}")
    reassembly_time, parse_time = per_fragment_time(args.seconds)
    print(f"{'60,000-byte ping: reassembly per fragment':52} {reassembly_time * 1e6:>10.2f}us {'-':>12}")
    print(f"{'parse_packet of one 1,500-byte fragment (for scale)':52} {parse_time * 1e6:>10.2f}us {'-':>12}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
