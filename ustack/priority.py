"""The scheduling priority of a process that is a network stack (`ustack serve`, issue 12).

The kernel's own TCP/IP work runs in softirq context, ahead of every process. ustack's runs in a
process like any other, and without offloads each packet it sends is one write(2) in which the
kernel takes the packet in and wakes the peer application (curl, say) with a "sync" wake-up,
which pulls that reader onto serve's CPU whenever the other CPU is busy. At the same priority the
scheduler then lets the woken reader preempt serve at the end of nearly every write (serve has
used more than its fair share, so it is not "eligible" under EEVDF): 14,500 preemptions per
50 MB download measured on a 2-core VM, each one a switch to curl to read ~3 KB and back.
Downloads that landed that way ran at ~130 MB/s against ~190 with curl on the other CPU, and
bench.py's no-offload download row swung between the two (165-186 MB/s over four runs).

Five nice levels above its clients (a weight about three times theirs) keep serve eligible
while it does the work its clients wait for: the reader then runs when serve waits for packets or
its slice ends, and reads in larger pieces. The same download on one shared CPU went from ~130 to
~230 MB/s (4,000 preemptions instead of 14,500), and serve's CPU per download from ~250 to ~170 ms.
bench.py's kernel twin gets the same setting, as it gets heap.py's and collector.py's.

Lowering a nice value needs CAP_SYS_NICE (serve runs as root for its TUN device); without it
nothing changes. Only the calling thread's value changes (Linux keeps it per thread); threads
and processes started afterwards (`serve --workers`) inherit it.
"""

from __future__ import annotations

import os

# Nice levels above the starting process (`serve --renice` changes it; 0 keeps the same).
STACK_RENICE = -5
NICE_RANGE = (-20, 19)  # setpriority(2) clamps to this


def run_ahead_of_clients(increment: int = STACK_RENICE) -> int | None:
    """Add `increment` to this thread's nice value (negative: a higher priority), clamped to
    NICE_RANGE. Returns the nice value now in force, or None if the system refused (no
    CAP_SYS_NICE and a limit below it): the process then runs on at the priority it had."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if increment == 0:
        return current
    wanted = min(max(current + increment, NICE_RANGE[0]), NICE_RANGE[1])
    try:
        os.setpriority(os.PRIO_PROCESS, 0, wanted)
    except OSError:
        return None
    return os.getpriority(os.PRIO_PROCESS, 0)
