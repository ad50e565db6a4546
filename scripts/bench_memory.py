#!/usr/bin/env python3
"""Memory per idle ESTABLISHED connection: N connections between two Stacks in one process.

Host A opens N connections to a listener on host B; packets pass between the two `Stack`s as
bytes (through the real parser and builder), on virtual time. Once every connection is
ESTABLISHED on both sides, accepted and idle (handshake done, no data, no timer but what an idle
connection keeps), the memory they hold is measured two ways:

- tracemalloc: the Python heap allocated since just before the first connect, divided by the
  number of endpoints (2 N: each connection has a TCB on each host). This counts the
  Connection objects and everything they own, plus each host's share (its connection table
  entry, timer heap entry);
- RSS (/proc/self/statm): the growth of the resident set over the same span, which includes
  the allocator's own overhead; measured first, without tracemalloc, in a process that has not
  grown yet (memory freed later is kept by the allocator and would hide the growth).

Linux needs about 2-4 KB per idle TCP socket (struct tcp_sock plus the socket, the file and
the dentry/inode); the goal for ustack (issue 12) is at most 2 KB.

    .venv/bin/python scripts/bench_memory.py [--connections 10000]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tracemalloc

from ustack.stack import Stack
from ustack.tcp import State
from ustack.tcp.isn import IsnGenerator

A_ADDRESS, B_ADDRESS = 0x0A4D0001, 0x0A4D0002
PORT = 7
LINUX_BYTES_PER_SOCKET = "2048-4096"
GOAL_BYTES = 2048


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _exchange(a: Stack, b: Stack, now: float) -> int:
    """Pass packets both ways until neither host has anything to send; returns packets moved."""
    moved = 0
    while True:
        out_a, out_b = a.transmit(now), b.transmit(now)
        if not out_a and not out_b:
            return moved
        for packet in out_a:
            b.receive(packet, now)
        for packet in out_b:
            a.receive(packet, now)
        moved += len(out_a) + len(out_b)


def build(count: int, measure) -> tuple[list, object]:
    """Open `count` connections between two fresh stacks; returns what must stay alive and the
    measurement `measure()` took once they were idle."""
    a = Stack(A_ADDRESS, isn_generator=IsnGenerator(fixed_isn=1000), port_seed=1)
    b = Stack(B_ADDRESS, isn_generator=IsnGenerator(fixed_isn=5000), port_seed=2)
    listener = b.listen(PORT, backlog=count, syn_queue_size=count)
    now = 1.0
    gc.collect()
    baseline = measure()
    clients, servers = [], []
    batch = 500
    for start in range(0, count, batch):
        for _ in range(min(batch, count - start)):
            clients.append(a.connect(B_ADDRESS, PORT, now))
        _exchange(a, b, now)
        while (child := listener.accept()) is not None:
            servers.append(child)
    # Let every timer an idle connection does not keep (delayed ACKs and the like) run out.
    for _ in range(10):
        deadlines = [d for d in (a.next_deadline(), b.next_deadline()) if d is not None]
        if not deadlines or min(deadlines) > now + 3600:
            break
        now = min(deadlines)
        a.on_timer(now)
        b.on_timer(now)
        _exchange(a, b, now)
    a.events()
    b.events()
    a.drain_active()
    b.drain_active()
    established = sum(c.state is State.ESTABLISHED for c in clients) + sum(s.state is State.ESTABLISHED for s in servers)
    if established != 2 * count:
        sys.exit(f"bench_memory: only {established} of {2 * count} endpoints reached ESTABLISHED")
    gc.collect()
    return [a, b, listener, clients, servers], measure() - baseline


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000, help="connections (two endpoints each)")
    args = parser.parse_args()
    if not 1 <= args.connections <= 28_000:
        parser.error("--connections must be between 1 and 28000 (one ephemeral port each)")
    endpoints = 2 * args.connections

    # RSS first, in a process that has not yet grown (freed memory is not given back).
    kept, rss = build(args.connections, _rss_bytes)
    del kept
    gc.collect()
    tracemalloc.start()
    kept, traced = build(args.connections, lambda: tracemalloc.get_traced_memory()[0])
    tracemalloc.stop()
    del kept

    print(f"{args.connections} idle ESTABLISHED connections between two Stacks ({endpoints} endpoints)")
    print(f"  tracemalloc (Python heap): {traced / endpoints:8.0f} bytes per endpoint")
    print(f"  RSS growth:                {rss / endpoints:8.0f} bytes per endpoint")
    print(f"  Linux:                     {LINUX_BYTES_PER_SOCKET} bytes per socket; goal (issue 12): <= {GOAL_BYTES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
