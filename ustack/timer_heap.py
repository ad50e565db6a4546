"""When each connection's next timer is due, for a whole Stack: a heap of deadlines.

Finding the next deadline costs O(log n), and an idle stack with thousands of dead connections
costs nothing (DESIGN.md rule 6). An entry names its connection by 4-tuple, not by reference: a
connection that re-armed or finished leaves a stale entry (a deadline and its 4-tuple), never
itself, in the heap. Each armed connection's live entry is also kept beside it (`entries`), so an
entry that surfaces is live exactly when it is that very tuple, a re-arm reuses the 4-tuple of
the entry before, and once stale entries number more than half the live ones the heap is rebuilt
from the live entries alone (a copy and a heapify, both in C): it holds at most about 1.5 times
as many entries as there are armed connections. Pushes and pops stay O(log n); a rebuild costs
O(n) but comes only after n/2 stale entries appeared, so it adds O(1) per push (amortized). The
heap counts its stale entries as they come and go (`stale`, always len(heap) - len(entries)), so
that the bound is checked only where it can break: when an entry turns stale or a live one
leaves, and then with a len() only once there are more than HEAP_SLACK of them (where it took two
len() calls at every push: several times in every connection's life). (One
entry per connection would need a heap with decrease-key, which heapq lacks; weak references
would tie Connection to __weakref__.) Issue 12 measured ~60,000 finished connections pinned by
stale entries at 1,000 lifecycles per second (scripts/bench_lifecycles.py).

A live entry's deadline is a lower bound, not always the deadline itself: when a connection's
deadline moves later (the retransmission timer restarted by an ACK, a FIN-WAIT-2 timer replacing
an earlier one: several times in every connection's life), its entry stays where
it is and nothing is pushed. When the entry comes to the top, the connection is asked for its
deadline again and the entry is filed anew if that moved (next_deadline, pop_due), so both still
answer exactly. A deadline that moves earlier, or a first one, is pushed at once.

TIME-WAIT records are not in the heap but in a queue of their own (`time_wait_queue`), first
in, first out. Every record waits the same 2*MSL from the moment it is filed (RFC 9293 3.4.2; a
repeated FIN files it again, 3.10.7.4), so records come due in the order they were filed: a
queue keeps them in deadline order with an append and a popleft, O(1) where the heap's push
and pop are O(log n). A busy server holds far more TIME-WAIT records than live connections
(an `ab` burst leaves one per request for 60 s), and with them in the heap every retransmission
timer of every live connection sifted through all of them. A record whose deadline would not
come last in the queue (a listener with a shorter MSL than the records before it) goes into the
heap instead, so the answers stay exact whatever the configs. Stale queue entries (a record
filed again, or gone before its time: a SYN reopened its 4-tuple, RFC 6191) are dropped when
they reach the front, and counted, with the same bound as the heap's.

The queue also decides how often TIME-WAIT ends. `next_deadline` reports its first record's
deadline rounded up to the next multiple of a *tick* (1/64 of that record's 2*MSL, at most
0.25 s), and `pop_due` ends the records due by then, at most TIME_WAIT_BATCH (64) at a time:
more are left for the runtime's next loop iteration, after the packets that came meanwhile.
Without ticks, an `ab` burst of 2,000 connections a second woke `ustack serve` 2,000 times a
second 60 s later, each wake-up a round of the runtime to end one record (cProfile of serve while
11,200 records ended: 1,636 wake-ups before, 11 with ticks alone, 189 with ticks and batches).
TIME-WAIT then lasts from 2*MSL to 2*MSL plus a tick, never less, as RFC 9293 3.4.2 requires; a record's own deadline (`ss -o`, snapshots) stays exact, and `on_timer(now)` at or
past it always ends it. Linux does the same with coarser steps: its timer wheel rounds each
timer up to the granularity of the wheel's level, which at HZ=1000 is 4.096 s for a timer 32 to
262 s away (kernel/time/timer.c), so a Linux TIME-WAIT ends 60 to 64 s after it began; and its
older TIME-WAIT reaper (the "death row", inet_timewait_sock.h) ended at most 100 sockets per run
and left the rest for later, for the same reason as our batch.

Sans-IO: no clock, no I/O; the Stack passes `now` and its connection table.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from typing import TYPE_CHECKING, Iterator

from .tcp.time_wait import TimeWait

if TYPE_CHECKING:
    from .tcp import Connection

# (deadline, is IPv6, 4-tuple): the family flag orders equal deadlines of the two families, whose
# addresses (int and bytes) do not compare.
TimerEntry = tuple[float, bool, tuple]

_heappush = heapq.heappush

# Stale entries tolerated beyond half as many as there are live ones before a rebuild.
HEAP_SLACK = 64

# TIME-WAIT ends on ticks of this fraction of its own length, 2*MSL, and at most a quarter of a
# second apart (the module docstring)...
TIME_WAIT_TICKS = 64
TIME_WAIT_LONGEST_TICK = 0.25
# ... and at most this many records at a time (pop_due), so that a tick that ends thousands
# never holds up the packets waiting meanwhile (ending one costs serve ~2-5 us of Python).
TIME_WAIT_BATCH = 64


def time_wait_tick(msl: float) -> float:
    """The step on which TIME-WAIT records of this MSL end (0: each at its own deadline)."""
    return min(2 * msl / TIME_WAIT_TICKS, TIME_WAIT_LONGEST_TICK)


class TimerHeap:
    """The deadlines of a Stack's connections (the module docstring says how stale entries go)."""

    __slots__ = ("heap", "entries", "stale", "time_wait_queue", "queued", "queue_stale")

    def __init__(self) -> None:
        self.heap: list[TimerEntry] = []
        self.entries: dict[Connection, TimerEntry] = {}  # each armed connection's live entry
        self.stale = 0  # entries in `heap` that are no connection's live entry
        # TIME-WAIT records in deadline order (the module docstring), and each queued record's
        # live entry; a record has a live entry in `queued` or in `entries`, never in both.
        self.time_wait_queue: deque[TimerEntry] = deque()
        self.queued: dict[TimeWait, TimerEntry] = {}
        self.queue_stale = 0  # entries in the queue that are no record's live entry

    def arm(self, connection: Connection, deadline: float | None) -> None:
        """Keep `connection`'s entry at or before `deadline` (None: no timer). Most rounds leave
        the deadline where it was (a delayed ACK already armed, a TIME-WAIT running) or move it
        later: then nothing is pushed (the module docstring says why that is exact). The entry
        names the connection by `connection.key`, the very tuple that keys it in the Stack's
        table (no second copy of the 4-tuple)."""
        # The stack calls this after every transmit of every connection it touched (about a
        # dozen times in a connection's life): the push and _entry_went_stale are written out here.
        if connection.__class__ is TimeWait and self._queue_time_wait(connection, deadline):
            return
        entries = self.entries
        entry = entries.get(connection)
        if entry is None:
            if deadline is not None:
                key = connection.key
                # key[0] is our address: 16 bytes over IPv6, an int over IPv4
                entry = entries[connection] = (deadline, type(key[0]) is bytes, key)
                _heappush(self.heap, entry)
            return
        if deadline is None:
            del entries[connection]
        elif deadline < entry[0]:
            new_entry = entries[connection] = (deadline, entry[1], entry[2])  # the same family and 4-tuple
            _heappush(self.heap, new_entry)
        else:
            return
        self.stale += 1  # the entry before went stale
        if self.stale > HEAP_SLACK:
            self._compact_if_stale()

    def _queue_time_wait(self, record: TimeWait, deadline: float | None) -> bool:
        """File a TIME-WAIT record at the back of the queue, where its deadline comes last (the
        module docstring); filed again, its entry before goes stale. False if the heap is to
        keep it instead: no deadline left, or one that would not come last in the queue."""
        queued = self.queued
        entry = queued.get(record)
        if entry is not None:
            if deadline == entry[0]:
                return True  # the common answer: the stack arms every record it touched
            del queued[record]
            self._queue_entry_went_stale()
        queue = self.time_wait_queue
        if deadline is None or (queue and deadline < queue[-1][0]):
            return False
        if record in self.entries:
            self.disarm(record)  # the heap had it (filed out of order once); the queue has it now
        key = record.key
        entry = queued[record] = (deadline, type(key[0]) is bytes, key)
        queue.append(entry)
        return True

    def _queue_entry_went_stale(self) -> None:
        self.queue_stale += 1
        if self.queue_stale > (len(self.queued) >> 1) + HEAP_SLACK:
            # Rebuilt from the live entries, in deadline order (the same bound as the heap's).
            self.time_wait_queue = deque(sorted(self.queued.values()))
            self.queue_stale = 0

    def _entry_went_stale(self) -> None:
        """One more entry in the heap is no connection's live entry (the bound may break)."""
        self.stale += 1
        if self.stale > HEAP_SLACK:
            self._compact_if_stale()

    def _compact_if_stale(self) -> None:
        """Rebuild once stale entries number more than half the live ones plus HEAP_SLACK (the
        callers ask only when there are more than HEAP_SLACK, a test without a call)."""
        if self.stale > (len(self.entries) >> 1) + HEAP_SLACK:
            self._rebuild()

    def disarm(self, connection: Connection) -> None:
        if self.entries.pop(connection, None) is not None:
            self._entry_went_stale()
        if self.queued and self.queued.pop(connection, None) is not None:
            self._queue_entry_went_stale()

    def next_deadline(self, connections: dict) -> float | None:
        """The earliest live deadline (the queue's first rounded up to its tick); stale entries
        in front are dropped on the way, and a live one whose connection's deadline moved since
        is filed again."""
        deadline = self._heap_deadline(connections)
        if self.time_wait_queue:
            time_wait_deadline = self._queue_deadline(connections)
            if time_wait_deadline is not None and (deadline is None or time_wait_deadline < deadline):
                return time_wait_deadline
        return deadline

    def _queue_deadline(self, connections: dict) -> float | None:
        """When the first live record of the queue ends: its deadline rounded up to the next
        multiple of its tick, so that the records due within one tick end in one wake-up."""
        queue, queued = self.time_wait_queue, self.queued
        while queue:
            entry = queue[0]
            record = connections.get(entry[2])
            if record is not None and queued.get(record) is entry:
                deadline = entry[0]
                tick = time_wait_tick(record.config.msl)
                if tick <= 0:
                    return deadline
                # (max: a deadline on a multiple of the tick may round a hair below itself)
                return max(deadline, math.ceil(deadline / tick) * tick)
            queue.popleft()  # stale: the record went, or was filed again further back
            self.queue_stale -= 1
        return None

    def _heap_deadline(self, connections: dict) -> float | None:
        heap, entries = self.heap, self.entries
        while heap:
            entry = heap[0]
            connection = connections.get(entry[2])
            if connection is not None and entries.get(connection) is entry:
                deadline = connection.timers.next_deadline()
                if deadline == entry[0]:
                    return deadline
                filed = self._refile(connection, entry, deadline)
                heap = self.heap  # a rebuild may have replaced it
                if filed is not None and heap[0] is filed:
                    # Filed anew and still on top: live, and the connection's deadline itself, so
                    # the answer without asking it again. An echo's answer restarts its timers
                    # later at every round trip, and the runtime asks once per round trip.
                    return deadline
            else:
                heapq.heappop(heap)  # stale: the connection went away or was disarmed
                self.stale -= 1
        return None

    def pop_due(self, now: float, connections: dict) -> Iterator[Connection]:
        """The connections and TIME-WAIT records whose deadline has come, each disarmed as it is
        handed out."""
        yield from self._pop_due_from_heap(now, connections)
        queue, queued = self.time_wait_queue, self.queued
        budget = TIME_WAIT_BATCH
        while budget and queue and queue[0][0] <= now:
            entry = queue.popleft()
            record = connections.get(entry[2])
            if record is None or queued.get(record) is not entry:
                self.queue_stale -= 1
                continue
            del queued[record]
            deadline = record.timers.next_deadline()
            if deadline is not None and deadline > now:
                self.arm(record, deadline)  # filed again since, without being armed
                queue = self.time_wait_queue
                continue
            budget -= 1
            yield record

    def _pop_due_from_heap(self, now: float, connections: dict) -> Iterator[Connection]:
        heap, entries = self.heap, self.entries
        while heap and heap[0][0] <= now:
            entry = heap[0]
            connection = connections.get(entry[2])
            if connection is None or entries.get(connection) is not entry:
                heapq.heappop(heap)
                self.stale -= 1
                continue
            deadline = connection.timers.next_deadline()
            if deadline is None or deadline > now:
                self._refile(connection, entry, deadline)  # its deadline moved later since
                heap = self.heap  # a push may have rebuilt it
                continue
            heapq.heappop(heap)
            del entries[connection]
            if self.stale > HEAP_SLACK:
                self._compact_if_stale()  # one live entry fewer
                heap = self.heap
            yield connection

    def _refile(self, connection: Connection, entry: TimerEntry, deadline: float | None) -> TimerEntry | None:
        """The live `entry` on top of the heap no longer says when `connection` is due: it goes,
        and the connection's entry is `deadline` now (none if None); that new entry, or None."""
        if deadline is None:
            heapq.heappop(self.heap)
            del self.entries[connection]
            if self.stale > HEAP_SLACK:
                self._compact_if_stale()  # one live entry fewer
            return None
        # The same family flag and 4-tuple.
        new_entry = self.entries[connection] = (deadline, entry[1], entry[2])
        heap = self.heap
        size = len(heap)
        if (size < 2 or deadline < heap[1][0]) and (size < 3 or deadline < heap[2][0]):
            # Still before both children of the top: the new entry takes the top's place as it
            # is. The commonest refile, an echo's timers restarted a little later at every round
            # trip while the records of thousands of connections wait out TIME-WAIT's 60 s below
            # it; heapreplace would carry it down to a leaf and back up again, ~2 log2(n) steps
            # (pure Python on PyPy: with 12,000 entries ~2 us, ~12 us with them out of the cache).
            heap[0] = new_entry
        else:
            heapq.heapreplace(heap, new_entry)  # one sift takes the top out and the new entry in
        return new_entry

    def _rebuild(self) -> None:
        """Rebuild the heap from the live entries: every stale entry goes at once."""
        self.heap = list(self.entries.values())
        heapq.heapify(self.heap)
        self.stale = 0
