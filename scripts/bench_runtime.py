#!/usr/bin/env python3
"""CPU per echo and per HTTP connection through the asyncio runtime, without TUN and without root.

Two AsyncStacks in one process over a memory link (ustack/link/memory.py): a client stack runs N
sequential 64-byte echoes against ustack.apps.handle_echo, then M connections (ten at a time) that
each GET a small file from ustack.apps.HttpFileServer and close. Both ends are ustack, so each
figure is the CPU time (process_time) of both ends together: the runtime, the core and the apps,
with no kernel, no TUN device and no other process in the measurement. It moves much less than
bench.py's wall-clock rows on a busy machine, so compare two commits with it, in turn.

    .venv/bin/python scripts/bench_runtime.py [--echoes 5000] [--connections 2000] [--profile] [--calls]

Beside the CPU times it prints what an echo costs the echo server in counts, which the machine's
load does not move: rounds and transmits (driver.py) and packets out per echo, and with --calls the Python
function calls per echo round trip (both ends, cProfile's count; the CPU figures are then left
out, as cProfile inflates them).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

from ustack.aio import AsyncStack
from ustack.apps import HttpFileServer, handle_echo
from ustack.link.memory import MemoryLink
from ustack.stack import Stack

SERVER, CLIENT = "10.0.0.1", "10.0.0.2"
WARM_UP_ECHOES = 200
REQUEST = b"GET /small.html HTTP/1.0\r\nHost: ustack\r\n\r\n"


class Figures:
    """What measure() found."""

    per_echo = per_connection = 0.0  # CPU seconds, both ends
    server_rounds_per_echo = server_transmits_per_echo = server_packets_per_echo = 0.0


async def measure(echoes: int, connections: int, site: Path, profiler: cProfile.Profile | None) -> Figures:
    figures = Figures()
    server_link, client_link = MemoryLink.pair()
    async with AsyncStack(Stack(SERVER), server_link, control=False) as server, \
            AsyncStack(Stack(CLIENT), client_link, control=False) as client:
        await server.start_server(handle_echo, port=7)
        await server.start_server(HttpFileServer(site), port=80)
        reader, writer = await client.open_connection(SERVER, 7)
        for _ in range(WARM_UP_ECHOES):
            writer.write(b"x" * 64)
            await reader.readexactly(64)
        counters = server.counters
        rounds, transmits, packets = counters["rounds"], counters.get("transmits", 0), server.stack.counters["packets_out"]
        if profiler:
            profiler.enable()
        start = time.process_time()
        for _ in range(echoes):
            writer.write(b"x" * 64)
            await reader.readexactly(64)
        figures.per_echo = (time.process_time() - start) / max(echoes, 1)
        if profiler:
            profiler.disable()
        figures.server_rounds_per_echo = (counters["rounds"] - rounds) / max(echoes, 1)
        figures.server_transmits_per_echo = (counters.get("transmits", 0) - transmits) / max(echoes, 1)
        figures.server_packets_per_echo = (server.stack.counters["packets_out"] - packets) / max(echoes, 1)
        writer.close()

        async def one_request() -> None:
            reader, writer = await client.open_connection(SERVER, 80)
            writer.write(REQUEST)
            if not (await reader.read()).startswith(b"HTTP/1.1 200 "):
                raise SystemExit("bench_runtime.py: the HTTP server did not answer 200")
            writer.close()

        if profiler:
            profiler.enable()
        start = time.process_time()
        for _ in range(connections // 10):
            await asyncio.gather(*(one_request() for _ in range(10)))
        figures.per_connection = (time.process_time() - start) / max(connections // 10 * 10, 1)
        if profiler:
            profiler.disable()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--echoes", type=int, default=5000, help="sequential 64-byte echoes (default 5000)")
    parser.add_argument("--connections", type=int, default=2000, help="HTTP connections, ten at a time (default 2000)")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions too")
    parser.add_argument("--calls", action="store_true",
                        help="Python function calls per echo round trip (both ends) instead of CPU times")
    args = parser.parse_args()
    if args.echoes < 0 or args.connections < 0:
        parser.error("--echoes and --connections cannot be negative")
    if args.calls:
        args.connections = 0  # the echoes alone under the profiler
    profiler = cProfile.Profile() if args.profile or args.calls else None
    with tempfile.TemporaryDirectory() as directory:
        site = Path(directory)
        (site / "small.html").write_text("<p>hello</p>\n" * 20)
        figures = asyncio.run(measure(args.echoes, args.connections, site, profiler))
    if args.profile:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    print(f"echo server: {figures.server_rounds_per_echo:.2f} rounds, "
          f"{figures.server_transmits_per_echo:.2f} transmits and "
          f"{figures.server_packets_per_echo:.2f} packets out per echo")
    if args.calls:
        calls = pstats.Stats(profiler).total_calls
        print(f"Python calls per echo round trip (both ends): {calls / max(args.echoes, 1):.1f}")
        return 0
    print(f"CPU per echo round trip (both ends): {figures.per_echo * 1e6:.1f} us")
    print(f"CPU per HTTP connection (both ends): {figures.per_connection * 1e6:.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
