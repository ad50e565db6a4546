"""Connection lifecycles between two Stacks on virtual time: speed, and memory that returns.

    PYTHONPATH=. .venv/bin/python scripts/bench_lifecycles.py                 # 100,000 at 1,000/s
    PYTHONPATH=. .venv/bin/python scripts/bench_lifecycles.py --lifecycles 20000 --keepalive

One lifecycle is an HTTP-like exchange: the client connects, sends a request, the server answers
and closes first (FIN-WAIT-2, then TIME-WAIT on the server), the client closes. A new one starts
every 1/rate virtual seconds; packets cross instantly (no loss), timers run when due. Nothing
here reads the clock except to count CPU seconds (time.process_time), and no packet leaves the
process.

What it prints (issue 12's goals):
- lifecycles per CPU-second (goal 8,000);
- peak RSS above the RSS before the run, beside what the endpoints alive at the worst moment
  need: their count times the bytes one endpoint takes, measured afterwards with tracemalloc on 1,000
  connection pairs (goal: at most 1.2 times). TIME-WAIT is short here (--msl, default 0.5 s), so
  that the endpoints that must stay alive are few and any that stay longer for another reason
  show up; FIN-WAIT-2's timer (60 s) is the one that used to pin finished connections.
"""

from __future__ import annotations

import argparse
import gc
import resource
import time
import tracemalloc

from ustack.stack import Stack
from ustack.tcp.config import TcpConfig

CLIENT, SERVER, PORT = 0x0A4D0001, 0x0A4D0002, 80
REQUEST, RESPONSE = b"GET / HTTP/1.0\r\n\r\n", b"HTTP/1.0 200 OK\r\n\r\nhello"


def exchange(client: Stack, server: Stack, now: float) -> None:
    """Move packets both ways until neither stack has anything more to send."""
    while True:
        to_server, to_client = client.transmit(now), server.transmit(now)
        if not to_server and not to_client:
            return
        for packet in to_server:
            server.receive(packet, now)
        for packet in to_client:
            client.receive(packet, now)


def run_timers(stack: Stack, now: float) -> None:
    deadline = stack.next_deadline()
    if deadline is not None and deadline <= now:
        stack.on_timer(now)


def one_lifecycle(client: Stack, server: Stack, listener, now: float) -> None:
    connection = client.connect(SERVER, PORT, now)
    exchange(client, server, now)
    accepted = listener.accept()
    connection.send(REQUEST, now)
    client.poke(connection)
    exchange(client, server, now)
    accepted.recv(len(REQUEST), now)
    accepted.send(RESPONSE, now)
    accepted.close(now)  # the server closes first, as an HTTP/1.0 server does
    server.poke(accepted)
    exchange(client, server, now)
    connection.recv(len(RESPONSE), now)
    connection.close(now)
    client.poke(connection)
    exchange(client, server, now)


def make_pair(config: TcpConfig, events: bool = False) -> tuple[Stack, Stack, object]:
    """Two stacks and a listener. Events are off, as the runtime has them while nothing observes
    it (no --trace, --web, --ladder: Stack.events_wanted); `events=True` measures with them."""
    client, server = Stack(CLIENT, config, port_seed=1), Stack(SERVER, config, port_seed=2)
    client.events_wanted = server.events_wanted = events
    listener = server.listen(PORT, backlog=4096)
    return client, server, listener


def bytes_per_endpoint(config: TcpConfig, pairs: int = 1000) -> float:
    """What one established endpoint takes (tracemalloc), with a request and its answer read."""
    client, server, listener = make_pair(config)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = []
    for index in range(pairs):
        now = index * 0.001
        connection = client.connect(SERVER, PORT, now)
        exchange(client, server, now)
        kept.append((connection, listener.accept()))
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / (2 * pairs)


def current_rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lifecycles", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="new lifecycles per virtual second")
    parser.add_argument("--msl", type=float, default=0.5, help="TIME-WAIT lasts 2*msl virtual seconds")
    parser.add_argument("--keepalive", action="store_true", help="keepalive on (its timer is 2 hours)")
    parser.add_argument("--events", action="store_true",
                        help="collect every connection's events, as with a tracer attached")
    args = parser.parse_args()
    config = TcpConfig(msl=args.msl, keepalive=args.keepalive)

    client, server, listener = make_pair(config, args.events)
    gc.collect()
    rss_before = current_rss()
    peak_rss, peak_alive, alive_at_peak_rss = rss_before, 0, 0
    sample_every = max(1, int(args.rate) // 10)  # ten times a virtual second
    cpu_start = time.process_time()
    for index in range(args.lifecycles):
        now = index / args.rate
        run_timers(client, now)
        run_timers(server, now)
        exchange(client, server, now)
        one_lifecycle(client, server, listener, now)
        for stack in (client, server):  # what the runtime does after each round
            stack.events()
            stack.drain_active()
        if index % sample_every == 0:
            alive = len(client.connections) + len(server.connections)
            rss = current_rss()
            peak_alive = max(peak_alive, alive)
            if rss > peak_rss:
                peak_rss, alive_at_peak_rss = rss, alive
    cpu = time.process_time() - cpu_start
    # Measured after the run, so that its memory cannot be reused by the run and hide growth.
    per_endpoint = bytes_per_endpoint(config)

    need = peak_alive * per_endpoint
    grown = peak_rss - rss_before
    print(f"{args.lifecycles:,} lifecycles at {args.rate:,.0f}/s (virtual), msl {args.msl} s, "
          f"keepalive {'on' if args.keepalive else 'off'}, events {'collected' if args.events else 'off'}")
    print(f"lifecycles per CPU-second: {args.lifecycles / cpu:,.0f} (goal 8,000; {cpu:.1f} CPU-s)")
    print(f"one established endpoint: {per_endpoint:,.0f} bytes (tracemalloc, 1,000 pairs)")
    print(f"endpoints alive at most: {peak_alive:,} -> need {need / 1e6:,.1f} MB")
    print(f"peak RSS above the start: {grown / 1e6:,.1f} MB (with {alive_at_peak_rss:,} endpoints alive then); "
          f"ratio {grown / max(need, 1):.2f} (goal at most 1.2)")
    print(f"heap entries at the end: client {len(client.timer_heap.heap):,}, server {len(server.timer_heap.heap):,}; "
          f"connections {len(client.connections):,} / {len(server.connections):,}")


if __name__ == "__main__":
    main()
