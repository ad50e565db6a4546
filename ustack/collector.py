"""Python's cyclic garbage collector, set for a process that serves many short connections
(`ustack serve`, issue 12; bench.py's kernel twin gets the same setting, as it gets heap.py's).

Every connection makes a few hundred objects that live a few milliseconds (segments, the
connection and its parts, the app's transport, protocol, task and HTTP objects), and a busy
server keeps tens of thousands of long-lived ones (TIME-WAIT records, 2*MSL each). With the
default thresholds (700, 10, 10) a young collection runs every 700 net allocations: the objects
of the connections in flight at that moment are traversed and promoted, and promoted ones
bring the full collections, which traverse everything alive, around sooner.
scripts/bench_runtime.py measured ~20 us of collection per HTTP connection (both ends, ~4 % of
its CPU) with the defaults and ~0.4 us with a young threshold of 7,000: most of a connection's
objects are freed by reference counting before the collector ever sees them.

Freezing what exists at start (the modules, classes and constants imported) moves it out of
every later full collection: it lives as long as the process anyway. Cycles are still
collected; they only wait for more allocations first.
"""

from __future__ import annotations


import gc

# Net allocations before a young collection (default 700); the older generations keep their
# defaults: each is collected after ten collections of the one below.
YOUNG_THRESHOLD = 7_000


def collect_cycles_less_often() -> None:
    """Freeze the objects alive now and raise the young generation's threshold (see above).
    Nothing on PyPy: its collector is not CPython's (no reference counts, no thresholds to set)."""
    if not hasattr(gc, "freeze"):
        return
    gc.collect()  # what startup left as garbage is freed, not frozen
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
