#!/usr/bin/env python3
"""A million hostile packets into a Stack with live connections, on virtual time (issue 9).

The world and the packet maker are those of tests/stack/test_stack_fuzz.py (stack_fuzzing.py):
our Stack and a peer Stack with connections in ESTABLISHED, CLOSE-WAIT and TIME-WAIT and a
listener; an on-path attacker sends crafted, replayed and mutated TCP segments, ICMP errors,
fragments and noise. Every --per-world packets the world closes everything, runs every timer
to the end and must leave both tables empty; a fresh world follows.

    .venv/bin/python scripts/fuzz_stack.py [--packets 1000000] [--seed 1] [--per-world 200]

Prints packets per second, the drops by reason (the stack's, its listeners' and its
connections'), and for any failure (an exception, an ACK storm, a packet counted wrongly, a
table not empty at the end) the seed, the world and the packet in hex, to reproduce. Exit code
1 if anything failed. Nothing leaves the process: no device, no namespace, no socket.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "stack"))

from stack_fuzzing import FuzzWorld, check_drop_names, hostile_packet  # noqa: E402

MAX_FAILURES_SHOWN = 5
SHOWN_REASONS = 40


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--per-world", type=int, default=200, help="packets before the world is torn down and rebuilt")
    args = parser.parse_args()
    if args.packets < 1 or args.per_world < 1:
        parser.error("--packets and --per-world must be at least 1")

    rng = random.Random(args.seed)
    drops: Counter = Counter()
    kinds_in = 0
    failures = 0
    sent = 0
    worlds = 0
    started = time.process_time()
    while sent < args.packets:
        worlds += 1
        world = FuzzWorld(stack_first=worlds % 2 == 0)
        packet = b""
        stage = "running"
        try:
            for _ in range(min(args.per_world, args.packets - sent)):
                packet = hostile_packet(rng, world)
                sent += 1
                world.inject(packet)
                if rng.random() < 0.05:
                    world.run_timers()
                if rng.random() < 0.05:
                    world.accept_all()
            names = world.drop_names()
            check_drop_names(names)
            drops.update(names)
            stage, packet = "teardown", b""
            before = Counter(world.ours.drops)
            world.finish()
            drops.update(Counter(world.ours.drops) - before)
            kinds_in += world.ours.counters["packets_in"]
        except Exception:  # report every failure, with what reproduces it, and carry on
            failures += 1
            if failures <= MAX_FAILURES_SHOWN:
                print(f"FAILURE in world {worlds} ({stage}), seed {args.seed}, after {sent} packets")
                print(f"  packet: {packet.hex() or '(none: during teardown)'}")
                print("  " + traceback.format_exc().strip().replace("\n", "\n  "))
        if worlds % 50 == 0:
            elapsed = time.process_time() - started
            print(f"  ... {sent:,} packets, {sent / elapsed:,.0f} per CPU second", flush=True)
    elapsed = time.process_time() - started
    print(f"{sent:,} packets in {worlds} worlds (seed {args.seed}): {sent / elapsed:,.0f} packets per CPU second, "
          f"{elapsed:.1f} s; {kinds_in:,} taken in by IP")
    print("drops by reason:")
    for name, count in drops.most_common(SHOWN_REASONS):
        print(f"  {name:40} {count:>10,}")
    rest = drops.most_common()[SHOWN_REASONS:]
    if rest:
        print(f"  ... and {len(rest)} more reasons ({sum(count for _, count in rest):,} drops), "
              "mostly one per IP protocol or ICMP type number")
    print(f"failures: {failures}" + (f" (the first {MAX_FAILURES_SHOWN} shown above)" if failures > MAX_FAILURES_SHOWN else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
