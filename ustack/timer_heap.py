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
deadline moves later (the retransmission timer restarted by an ACK, a FIN-WAIT-2 or TIME-WAIT
timer replacing an earlier one: several times in every connection's life), its entry stays where
it is and nothing is pushed. When the entry comes to the top, the connection is asked for its
deadline again and the entry is filed anew if that moved (next_deadline, pop_due), so both still
answer exactly. A deadline that moves earlier, or a first one, is pushed at once.

Sans-IO: no clock, no I/O; the Stack passes `now` and its connection table.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from .tcp import Connection

# (deadline, is IPv6, 4-tuple): the family flag orders equal deadlines of the two families, whose
# addresses (int and bytes) do not compare.
TimerEntry = tuple[float, bool, tuple]

_heappush = heapq.heappush

# Stale entries tolerated beyond half as many as there are live ones before a rebuild.
HEAP_SLACK = 64


class TimerHeap:
    """The deadlines of a Stack's connections (the module docstring says how stale entries go)."""

    __slots__ = ("heap", "entries", "stale")

    def __init__(self) -> None:
        self.heap: list[TimerEntry] = []
        self.entries: dict[Connection, TimerEntry] = {}  # each armed connection's live entry
        self.stale = 0  # entries in `heap` that are no connection's live entry

    def arm(self, connection: Connection, deadline: float | None) -> None:
        """Keep `connection`'s entry at or before `deadline` (None: no timer). Most rounds leave
        the deadline where it was (a delayed ACK already armed, a TIME-WAIT running) or move it
        later: then nothing is pushed (the module docstring says why that is exact). The entry
        names the connection by `connection.key`, the very tuple that keys it in the Stack's
        table (no second copy of the 4-tuple)."""
        # The stack calls this after every transmit of every connection it touched (about a
        # dozen times in a connection's life): the push and _entry_went_stale are written out here.
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

    def hand_over(self, old, new) -> None:
        """`new` takes `old`'s place in the Stack's table under the same 4-tuple (a TIME-WAIT
        record its connection's, stack.py): `old`'s live entry, if it has one, is `new`'s now,
        a lower bound as any (the module docstring)."""
        entries = self.entries
        entry = entries.pop(old, None)
        if entry is None:
            return
        if entries.get(new) is not None:
            self.stale += 1  # `new`'s own entry, replaced
        entries[new] = entry

    def next_deadline(self, connections: dict) -> float | None:
        """The earliest live deadline; stale entries on top are dropped on the way, and a live
        one whose connection's deadline moved since is filed again."""
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
        """The connections whose deadline has come, each disarmed as it is handed out."""
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
        # The same family flag and 4-tuple; one sift takes the top out and the new entry in.
        new_entry = self.entries[connection] = (deadline, entry[1], entry[2])
        heapq.heapreplace(self.heap, new_entry)
        return new_entry

    def _rebuild(self) -> None:
        """Rebuild the heap from the live entries: every stale entry goes at once."""
        self.heap = list(self.entries.values())
        heapq.heapify(self.heap)
        self.stale = 0
