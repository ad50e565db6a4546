"""Connection lifecycles between two Stacks on virtual time: speed, and memory that returns.

    PYTHONPATH=. .venv/bin/python scripts/bench_lifecycles.py                 # 100,000 at 1,000/s
    PYTHONPATH=. .venv/bin/python scripts/bench_lifecycles.py --lifecycles 20000 --keepalive
    PYTHONPATH=. .venv/bin/python scripts/bench_lifecycles.py --lifecycles 5000 --calls 2000  # + Python calls

One lifecycle is an HTTP-like exchange: the client connects, sends a request, the server answers
and closes first (FIN-WAIT-2, then TIME-WAIT on the server), the client closes. A new one starts
every 1/rate virtual seconds; packets cross instantly (no loss), timers run when due. Nothing
here reads the clock except to count CPU seconds (time.process_time), and no packet leaves the
process.

What it prints (issue 12's goals):
- lifecycles per CPU-second (goal 8,000);
- peak RSS above the RSS before the run (the C heap's free memory given back first, see
  give_back_free_heap), beside what the endpoints alive at the worst moment need (goal: at
  most 1.2 times). CPython's allocator takes memory in 1 MiB arenas, and an arena's pages stay
  resident once touched. TIME-WAIT lasts what it lasts by default (TcpConfig.msl, 30 s: Linux's
  60 s TIME-WAIT), so the server holds as many TIME-WAIT endpoints as a real one would: here
  28,232, the client's ephemeral ports, which the server's TIME-WAIT hands on by RFC 6191. With a
  short one (`--msl 0.5`, the default until 2026-12: 1,000 alive, about 1 MB) the fixed ~0.45 MB
  of a new allocator arena and the tables' growth outweigh the endpoints (ratio ~1.45), which
  says little about memory that returns; the stale timer-heap entries that used to pin finished
  connections (FIN-WAIT-2's 60 s timer) show up either way, in the timer entries printed last.

What the alive endpoints need is counted by state, at every sample: each TIME-WAIT endpoint at
what one takes after a lifecycle, every other one at what an idle ESTABLISHED endpoint takes
after a request and its answer, both measured afterwards with tracemalloc on 1,000 of them made exactly
as in the run (events drained after each round, as the runtime does). Each figure includes the
endpoint's share of its host: its connection table entry and one timer heap entry (the stale
entries the heap tolerates are not counted: they are overhead the ratio is meant to show).
The need is the largest such sum over the run. Until 2026-12 every alive endpoint was counted
at what an ESTABLISHED endpoint took right after its handshake, measured with the stacks' events
of all 1,000 handshakes still undrained (about 600 bytes of the 2,504 per endpoint), while the
endpoints alive in this run are almost all TIME-WAIT ones, which hold more than that (their
TIME-WAIT timer and heap entry, the data they exchanged): neither figure was what was alive.
Since 2026-12 a TIME-WAIT endpoint is a compact record (ustack/tcp/time_wait.py) that the stack
keeps in place of the whole Connection: about 1,000 bytes where the Connection took 2,582.
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes
import ctypes.util
import dataclasses
import gc
import pstats
import resource
import platform
import time

try:
    import tracemalloc
except ImportError:  # PyPy has none: the memory figures are measured on CPython
    tracemalloc = None

from ustack.stack import Stack
from ustack.tcp import State
from ustack.tcp.config import TcpConfig

TIME_WAIT = State.TIME_WAIT

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
    connection, _ = request_and_answer(client, server, listener, now, server_closes=True)
    connection.close(now)
    client.poke(connection)
    exchange(client, server, now)


def request_and_answer(client: Stack, server: Stack, listener, now: float, server_closes: bool) -> tuple:
    """Connect, send a request, answer it (closing after the answer, as an HTTP/1.0 server does,
    if `server_closes`) and read both; returns the client's and the server's connection."""
    connection = client.connect(SERVER, PORT, now)
    exchange(client, server, now)
    accepted = listener.accept()
    connection.send(REQUEST, now)
    client.poke(connection)
    exchange(client, server, now)
    accepted.recv(len(REQUEST), now)
    accepted.send(RESPONSE, now)
    if server_closes:
        accepted.close(now)
    server.poke(accepted)
    exchange(client, server, now)
    connection.recv(len(RESPONSE), now)
    return connection, accepted


def make_pair(config: TcpConfig, events: bool = False) -> tuple[Stack, Stack, object]:
    """Two stacks and a listener. Events are off, as the runtime has them while nothing observes
    it (no --trace, --web, --ladder: Stack.events_wanted); `events=True` measures with them."""
    client, server = Stack(CLIENT, config, port_seed=1), Stack(SERVER, config, port_seed=2)
    client.events_wanted = server.events_wanted = events
    listener = server.listen(PORT, backlog=4096)
    return client, server, listener


def end_of_round(*stacks: Stack) -> None:
    """What the runtime does after each round: it takes the events and the active list."""
    for stack in stacks:
        stack.events()
        stack.drain_active()


def traced_bytes(stacks: tuple[Stack, ...], make_some) -> int:
    """The Python heap that `make_some()` leaves allocated (tracemalloc), the stacks' timer heaps
    brought down to their live entries first (one per armed connection)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = make_some()
    for stack in stacks:
        stack.timer_heap._rebuild()  # only the live entries: what the connections need of it
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del kept
    return used


def bytes_per_endpoint(config: TcpConfig, count: int = 1000) -> dict[str, float]:
    """What one endpoint takes (tracemalloc), by state: "TIME-WAIT" (the server's side after a
    whole lifecycle; TIME-WAIT lasts all through the measurement) and "ESTABLISHED" (either side
    after a request and its answer, read and acknowledged, idle), each made `count` times as in
    the run."""
    client, server, listener = make_pair(dataclasses.replace(config, msl=3600.0))

    def lifecycles() -> None:
        for index in range(count):
            now = index * 0.001
            one_lifecycle(client, server, listener, now)
            end_of_round(client, server)

    time_wait = traced_bytes((client, server), lifecycles)
    states = {connection.state.value for connection in server.connections.values()}
    if len(server.connections) != count or states != {"TIME-WAIT"} or client.connections:
        raise SystemExit(f"bench_lifecycles: expected {count} TIME-WAIT endpoints, found {states}")

    client, server, listener = make_pair(config)

    def established_pairs() -> list:
        pairs = []
        now = 0.0
        for index in range(count):
            now = index * 0.001
            pairs.append(request_and_answer(client, server, listener, now, server_closes=False))
            end_of_round(client, server)
        # Then idle: the timers run in turn (the delayed ACKs go out, the answers are
        # acknowledged) until none is due within the hour.
        while True:
            deadlines = [deadline for deadline in (client.next_deadline(), server.next_deadline()) if deadline is not None]
            if not deadlines or min(deadlines) > now + 3600:
                return pairs
            now = max(now, min(deadlines))
            run_timers(client, now)
            run_timers(server, now)
            exchange(client, server, now)
            end_of_round(client, server)

    established = traced_bytes((client, server), established_pairs)
    return {"TIME-WAIT": time_wait / count, "ESTABLISHED": established / (2 * count)}


def alive_by_state(*stacks: Stack) -> tuple[int, int]:
    """(TIME-WAIT endpoints, other endpoints) in the stacks' tables."""
    time_wait = other = 0
    for stack in stacks:
        for connection in stack.connections.values():
            if connection.state is TIME_WAIT:
                time_wait += 1
            else:
                other += 1
    return time_wait, other


def current_rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def give_back_free_heap() -> None:
    """glibc's malloc_trim(0): the free memory of the C heap leaves the resident set (madvise).
    Called just before the RSS at the start is read: what the imports and the set-up freed stays
    resident otherwise (between 0.1 and 0.6 MB, depending on what the set-up allocated in which
    order), and the run reuses it without growing the RSS: the growth read up to a fifth low,
    and code whose connections need the same bytes read 1.02 or 1.19 (issue 12's 1.14 and 1.27
    on one commit were this too)."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: the start may then hold some slack (see above)


def count_calls(client: Stack, server: Stack, listener, first: int, count: int, rate: float) -> None:
    """Calls per lifecycle (cProfile's count of every Python function and builtin called)
    over `count` more lifecycles run as in the main loop, and the functions called most: a
    figure that does not move with the machine's load, to compare commits by."""
    profile = cProfile.Profile()
    profile.enable()
    for index in range(first, first + count):
        now = index / rate
        run_timers(client, now)
        run_timers(server, now)
        exchange(client, server, now)
        one_lifecycle(client, server, listener, now)
        end_of_round(client, server)
    profile.disable()
    stats = pstats.Stats(profile).stats
    total = sum(calls for _, calls, _, _, _ in stats.values())
    print(f"calls per lifecycle (Python functions and builtins, as cProfile counts them): {total / count:,.0f} "
          f"(over {count:,} more lifecycles); the most called:")
    for (path, line, name), (_, calls, _, _, _) in sorted(stats.items(), key=lambda item: -item[1][1])[:12]:
        where = f"{path.split('/ustack/')[-1]}:{line}" if line else "builtin"
        print(f"  {calls / count:6.1f}  {name} ({where})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lifecycles", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="new lifecycles per virtual second")
    parser.add_argument("--msl", type=float, default=TcpConfig().msl,
                        help="TIME-WAIT lasts 2*msl virtual seconds (default TcpConfig's)")
    parser.add_argument("--keepalive", action="store_true", help="keepalive on (its timer is 2 hours)")
    parser.add_argument("--events", action="store_true",
                        help="collect every connection's events, as with a tracer attached")
    parser.add_argument("--calls", type=int, default=0, metavar="N",
                        help="then count Python calls per lifecycle over N more lifecycles (cProfile)")
    args = parser.parse_args()
    if args.lifecycles < 1 or args.rate <= 0 or args.msl < 0 or args.calls < 0:
        parser.error("--lifecycles must be at least 1, --rate positive, --msl and --calls not negative")
    config = TcpConfig(msl=args.msl, keepalive=args.keepalive)

    client, server, listener = make_pair(config, args.events)
    gc.collect()
    give_back_free_heap()
    rss_before = current_rss()
    peak_rss, peak_alive, alive_at_peak_rss = rss_before, 0, 0
    # (TIME-WAIT endpoints, other endpoints) alive, as seen by the samples: a set, since they
    # repeat, so that the script's own memory does not grow with the run (a list of 1,000 samples
    # added 0.1 MB to the peak RSS of 100,000 lifecycles).
    samples: set[tuple[int, int]] = set()
    sample_every = max(1, int(args.rate) // 10)  # ten times a virtual second
    cpu_start = time.process_time()
    # The CPU the samples take is this script's, not the stacks': counting the endpoints by state
    # walks every one of them (~28,000 TIME-WAIT records at the default rate), ~3 % of the run on
    # CPython. It is left out of the lifecycles per CPU-second (it was counted until December 2026).
    sampling_cpu = 0.0
    half = args.lifecycles // 2
    for index in range(args.lifecycles):
        if index == half:
            cpu_half = time.process_time() - sampling_cpu  # the second half: after PyPy's JIT has compiled the loop
        now = index / args.rate
        run_timers(client, now)
        run_timers(server, now)
        exchange(client, server, now)
        one_lifecycle(client, server, listener, now)
        end_of_round(client, server)
        if index % sample_every == 0:
            sample_start = time.process_time()
            alive = len(client.connections) + len(server.connections)
            samples.add(alive_by_state(client, server))
            rss = current_rss()
            peak_alive = max(peak_alive, alive)
            if rss > peak_rss:
                peak_rss, alive_at_peak_rss = rss, alive
            sampling_cpu += time.process_time() - sample_start
    cpu_end = time.process_time() - sampling_cpu
    cpu = cpu_end - cpu_start
    if args.calls:
        count_calls(client, server, listener, args.lifecycles, args.calls, args.rate)
    print(f"{args.lifecycles:,} lifecycles at {args.rate:,.0f}/s (virtual), msl {args.msl} s, "
          f"keepalive {'on' if args.keepalive else 'off'}, events {'collected' if args.events else 'off'}, "
          f"on {platform.python_implementation()} {platform.python_version()}")
    print(f"lifecycles per CPU-second: {args.lifecycles / cpu:,.0f} (goal 8,000; {cpu:.1f} CPU-s); "
          f"over the second half alone: {(args.lifecycles - half) / max(cpu_end - cpu_half, 1e-9):,.0f}")
    if tracemalloc is None:
        print(f"peak RSS above the start: {(peak_rss - rss_before) / 1e6:,.2f} MB (with {alive_at_peak_rss:,} endpoints "
              f"alive then, {peak_alive:,} at most); what they need is measured with tracemalloc, which "
              f"{platform.python_implementation()} lacks: the memory goal is CPython's (.venv/bin/python)")
        return
    # Measured after the run, so that its memory cannot be reused by the run and hide growth.
    per_endpoint = bytes_per_endpoint(config)
    need, time_wait, other = max(
        (time_wait * per_endpoint["TIME-WAIT"] + other * per_endpoint["ESTABLISHED"], time_wait, other)
        for time_wait, other in samples
    )
    grown = peak_rss - rss_before
    print(f"one endpoint (tracemalloc, 1,000 of each): TIME-WAIT {per_endpoint['TIME-WAIT']:,.0f} bytes, "
          f"idle ESTABLISHED after a request and its answer {per_endpoint['ESTABLISHED']:,.0f} bytes")
    print(f"endpoints alive at most: {peak_alive:,}; the most they needed: {need / 1e6:,.2f} MB "
          f"({time_wait:,} TIME-WAIT, {other:,} others)")
    print(f"peak RSS above the start: {grown / 1e6:,.2f} MB (with {alive_at_peak_rss:,} endpoints alive then); "
          f"ratio {grown / max(need, 1):.2f} (goal at most 1.2)")
    print(f"timer entries at the end (heap + TIME-WAIT queue): client {len(client.timer_heap.heap):,} + "
          f"{len(client.timer_heap.time_wait_queue):,}, server {len(server.timer_heap.heap):,} + "
          f"{len(server.timer_heap.time_wait_queue):,}; connections {len(client.connections):,} / {len(server.connections):,}")


if __name__ == "__main__":
    main()
