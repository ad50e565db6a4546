"""Where scripts/bench.py's echo rows run their client and servers: pinned, one CPU each, the
same way for ustack and for the kernel twin, so that the ratio of the two compares like with like.

An echo round trip is two wake-ups: the server, asleep in epoll_wait, woken by the request; the
client, asleep in recv, woken by the reply. With both on one CPU, each wake-up is a context switch
on that CPU: the sender's system call runs the receiving stack and marks the reader runnable, and
the reader runs as soon as the sender sleeps, its data still in that CPU's caches. With the two on
different CPUs, each wake-up must reach the other CPU with an inter-processor interrupt, usually
out of its idle state; on a virtual machine sending that interrupt and waking the idle virtual CPU
are each an exit to the hypervisor, and the data then crosses caches. Same work, a longer wait.

Left unpinned, the scheduler put a whole run in one state or the other, and the kernel twin and
ustack independently: on this 2-core VM the twin's echo p50 read ~27 us in some runs and ~65-70 in
others, ustack's 80-90 or 110-150, so the ratio sometimes compared ustack on two CPUs with the
kernel on one (4.05 in one run, 1.60 in the next). Pinned (2026-12-06, load 0.5-1.8, three
batches of single runs of 1,000 echoes, /work/bench/s8/place-exp*.txt): on one CPU ustack 81-84 us
in most runs (107-145 while other work shared that CPU: on one CPU a round trip is all CPU work,
~3x the twin's, so ustack is hit harder) and the twin 26.5-28 (up to 42); on two CPUs ustack
110-193 and the twin 53-116, with millisecond p99 tails on both sides in two of the three
batches (a pinned reader cannot move to a free CPU). Unpinned runs in the same batches fell in
either state, the twin at 25-31 or 69-102 within one batch.
"""

from __future__ import annotations

import contextlib
import os
from typing import NamedTuple


class Placement(NamedTuple):
    """Where an echo row's client and server run: each on one CPU (module docstring)."""

    name: str
    client_cpu: int
    server_cpu: int


def echo_placements(cpus) -> list[Placement]:
    """The placements the echo rows measure, from the CPUs this script may use: client and server
    on one CPU (a wake-up is a context switch there), and, with two CPUs or more, on two (every
    wake-up crosses CPUs). The unpinned runs of earlier sessions landed in either state from one
    run to the next, the kernel twin's and ustack's independently."""
    ordered = sorted(cpus)
    placements = [Placement("client and server on one CPU", ordered[0], ordered[0])]
    if len(ordered) > 1:
        placements.append(Placement("client and server on two CPUs", ordered[0], ordered[1]))
    return placements


def process_threads(pid: int) -> list[int]:
    """The thread ids of process `pid` (serve may have started threads; a pin is per thread)."""
    return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]


@contextlib.contextmanager
def pinned_servers(pids, cpu: int):
    """Run every thread of the processes `pids` on CPU `cpu` alone inside the block, then give each
    thread back the CPUs it had (the later rows run unpinned, as a user's serve does). Not
    `serve --cpu`: that also steers the TUN device's packets (RPS) to the other CPUs, which moves
    the very wake-ups these rows are about."""
    before = {tid: os.sched_getaffinity(tid) for pid in pids for tid in process_threads(pid)}
    try:
        for tid in before:
            os.sched_setaffinity(tid, {cpu})
        yield
    finally:
        for tid, cpus in before.items():
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(tid, cpus)
