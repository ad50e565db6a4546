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

The two differ by what CPython's allocator (pymalloc: 1 MiB arenas of 16 KiB pools, one size
class per pool) adds: every block rounded up to 16 bytes (a 28-byte int takes 32), the free
blocks of partly used pools, pool headers and arena alignment: about 140 bytes per endpoint
(`--allocator` prints these figures from sys._debugmallocstats()).

Each round drains the stacks' events and active lists, as the runtime does after every round
(aio/runtime.py). Until 2026-12 this script drained them once, at the end: the StackEvents of
all 20,000 handshakes were alive together, and the pools they had filled stayed resident once
they were freed (pymalloc returns only whole empty arenas): 464 bytes per endpoint of the RSS
figure (2,491 then) were the benchmark's own garbage, not what an idle endpoint holds.

Linux needs about 2-4 KB per idle TCP socket (struct tcp_sock plus the socket, the file and
the dentry/inode); the goal for ustack (issue 12) is at most 2 KB.

    .venv/bin/python scripts/bench_memory.py [--connections 10000] [--allocator]
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import sys
import platform

try:
    import tracemalloc
except ImportError:  # PyPy has none: there the RSS figure alone
    tracemalloc = None

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
    """Pass packets both ways until neither host has anything to send; returns packets moved.
    Each pass ends as a runtime's round does: events and the active list are drained."""
    moved = 0
    while True:
        out_a, out_b = a.transmit(now), b.transmit(now)
        for stack in (a, b):
            stack.events()
            stack.drain_active()
        if not out_a and not out_b:
            return moved
        for packet in out_a:
            b.receive(packet, now)
        for packet in out_b:
            a.receive(packet, now)
        moved += len(out_a) + len(out_b)


def _allocator_figures() -> dict[str, int]:
    """pymalloc's totals (sys._debugmallocstats writes them to the C stderr, read through a pipe)."""
    read_end, write_end = os.pipe()
    saved = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    with os.fdopen(read_end, "rb") as pipe:
        text = pipe.read().decode()
    figures = {}
    for name, pattern in _ALLOCATOR_LINES.items():
        match = re.search(pattern, text)
        figures[name] = int(match.group(1).replace(",", "")) if match else 0
    figures["arena bytes"] = figures.pop("arenas") * (1 << 20)
    figures["unused pool bytes"] = figures.pop("unused pools") * (1 << 14)
    return figures


_ALLOCATOR_LINES = {
    "arenas": r"# arenas allocated current\s+=\s+([\d,]+)",
    "allocated blocks": r"# bytes in allocated blocks\s+=\s+([\d,]+)",
    "free blocks in used pools": r"# bytes in available blocks\s+=\s+([\d,]+)",
    "unused pools": r"(\d+) unused pools",
    "pool headers": r"# bytes lost to pool headers\s+=\s+([\d,]+)",
    "quantization": r"# bytes lost to quantization\s+=\s+([\d,]+)",
    "arena alignment": r"# bytes lost to arena alignment\s+=\s+([\d,]+)",
}


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
    established = sum(c.state is State.ESTABLISHED for c in clients) + sum(s.state is State.ESTABLISHED for s in servers)
    if established != 2 * count:
        sys.exit(f"bench_memory: only {established} of {2 * count} endpoints reached ESTABLISHED")
    gc.collect()
    return [a, b, listener, clients, servers], measure() - baseline


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000, help="connections (two endpoints each)")
    parser.add_argument("--allocator", action="store_true",
                        help="also say where the RSS goes: pymalloc's arenas, blocks and losses per endpoint")
    args = parser.parse_args()
    if not 1 <= args.connections <= 28_000:
        parser.error("--connections must be between 1 and 28000 (one ephemeral port each)")
    if args.allocator and platform.python_implementation() != "CPython":
        parser.error("--allocator reads pymalloc's figures (sys._debugmallocstats): CPython only")
    endpoints = 2 * args.connections

    # RSS first, in a process that has not yet grown (freed memory is not given back).
    allocator = []  # pymalloc's figures at the same two moments as the RSS (with --allocator)

    def rss_bytes() -> int:
        if args.allocator:
            allocator.append(_allocator_figures())
        return _rss_bytes()

    kept, rss = build(args.connections, rss_bytes)
    del kept
    print(f"{args.connections} idle ESTABLISHED connections between two Stacks ({endpoints} endpoints), "
          f"on {platform.python_implementation()} {platform.python_version()}")
    if tracemalloc is not None:
        gc.collect()
        tracemalloc.start()
        kept, traced = build(args.connections, lambda: tracemalloc.get_traced_memory()[0])
        tracemalloc.stop()
        del kept
        print(f"  tracemalloc (Python heap): {traced / endpoints:8.0f} bytes per endpoint")
    print(f"  RSS growth:                {rss / endpoints:8.0f} bytes per endpoint")
    print(f"  Linux:                     {LINUX_BYTES_PER_SOCKET} bytes per socket; goal (issue 12): <= {GOAL_BYTES}")
    if allocator:
        before, after = allocator
        print("  where the RSS growth went (pymalloc, bytes per endpoint):")
        for name, value in after.items():
            print(f"    {name + ':':27s}{(value - before[name]) / endpoints:8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
