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
heap counts its stale entries as they come and go (`stale`, always len(heap) + len(in_order) - len(entries)), so
that the bound is checked only where it can break: when an entry turns stale or a live one
leaves, and then with a len() only once there are more than HEAP_SLACK of them (where it took two
len() calls at every push: several times in every connection's life). (One
entry per connection would need a heap with decrease-key, which heapq lacks; weak references
would tie Connection to __weakref__.) Issue 12 measured ~60,000 finished connections pinned by
stale entries at 1,000 lifecycles per second (scripts/bench_lifecycles.py).

Deadlines that come in order wait in a FIFO beside the heap (`in_order`): an entry goes there
when its deadline is at or after the last one queued, or, with the FIFO empty, when its
connection says its deadlines come in order (`deadlines_in_order`: a TIME-WAIT record, whose
2*MSL is the same for every connection of a config, so each new one is due after all before it).
A busy server holds far more TIME-WAIT records than live connections (~150,000 at 2,500
connections per second with a 60 s TIME-WAIT): queued, each costs an append and a popleft
instead of a push and a pop through a heap of them, and the heap holds only the live
connections' few. The earliest deadline is the earlier of the two heads. (Linux keeps TIME-WAIT
sockets on a timer wheel of their own for the same reason.)

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
from collections import deque
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from .tcp import Connection

# (deadline, is IPv6, 4-tuple): the family flag orders equal deadlines of the two families, whose
# addresses (int and bytes) do not compare.
TimerEntry = tuple[float, bool, tuple]

# Stale entries tolerated beyond half as many as there are live ones before a rebuild.
HEAP_SLACK = 64


class TimerHeap:
    """The deadlines of a Stack's connections (the module docstring says how stale entries go)."""

    __slots__ = ("heap", "in_order", "entries", "stale")

    def __init__(self) -> None:
        self.heap: list[TimerEntry] = []
        self.in_order: deque[TimerEntry] = deque()  # entries whose deadlines came in order (FIFO)
        self.entries: dict[Connection, TimerEntry] = {}  # each armed connection's live entry
        self.stale = 0  # entries in `heap` and `in_order` that are no connection's live entry

    def __len__(self) -> int:
        """Entries held, live and stale."""
        return len(self.heap) + len(self.in_order)

    def arm(self, connection: Connection, deadline: float | None) -> None:
        """Keep `connection`'s entry at or before `deadline` (None: no timer). Most rounds leave
        the deadline where it was (a delayed ACK already armed, a TIME-WAIT running) or move it
        later: then nothing is pushed (the module docstring says why that is exact). The entry
        names the connection by `connection.key`, the very tuple that keys it in the Stack's
        table (no second copy of the 4-tuple)."""
        entries = self.entries
        entry = entries.get(connection)
        if entry is None:
            if deadline is not None:
                self._push(connection, deadline, connection.key)
        elif deadline is None:
            del entries[connection]
            self._entry_went_stale()
        elif deadline < entry[0]:
            self._push(connection, deadline, entry[2])
            self._entry_went_stale()  # the entry before

    def _push(self, connection: Connection, deadline: float, key: tuple) -> None:
        # key[0] is our address: 16 bytes over IPv6, an int over IPv4
        entry = self.entries[connection] = (deadline, type(key[0]) is bytes, key)
        in_order = self.in_order
        if in_order:
            if deadline >= in_order[-1][0]:
                in_order.append(entry)
                return
        elif getattr(connection, "deadlines_in_order", False):
            in_order.append(entry)
            return
        heapq.heappush(self.heap, entry)

    def _first(self) -> TimerEntry | None:
        """The entry due first: the earlier of the heap's top and the FIFO's head."""
        heap, in_order = self.heap, self.in_order
        if in_order and (not heap or in_order[0][0] <= heap[0][0]):
            return in_order[0]
        return heap[0] if heap else None

    def _pop_first(self, entry: TimerEntry) -> None:
        """Remove `entry`, which _first() returned."""
        in_order = self.in_order
        if in_order and in_order[0] is entry:
            in_order.popleft()
        else:
            heapq.heappop(self.heap)

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
        a lower bound as any (the module docstring). A `new` whose deadlines come in order (a
        TIME-WAIT record) gets an entry of its own deadline instead, queued in the FIFO: the
        entry it would inherit sits in the heap at an earlier deadline (the retransmission
        timer's, say), which would have to surface and be filed again, through the heap."""
        entries = self.entries
        entry = entries.pop(old, None)
        if entry is None:
            return
        if entries.get(new) is not None:
            self.stale += 1  # `new`'s own entry, replaced
        if getattr(new, "deadlines_in_order", False):
            deadline = new.timers.next_deadline()
            if deadline is None:
                entries.pop(new, None)
            else:
                self._push(new, deadline, entry[2])
            self._entry_went_stale()  # `old`'s entry
            return
        entries[new] = entry

    def next_deadline(self, connections: dict) -> float | None:
        """The earliest live deadline; stale entries on top are dropped on the way, and a live
        one whose connection's deadline moved since is filed again."""
        entries = self.entries
        while True:
            entry = self._first()
            if entry is None:
                return None
            connection = connections.get(entry[2])
            if connection is not None and entries.get(connection) is entry:
                deadline = connection.timers.next_deadline()
                if deadline == entry[0]:
                    return deadline
                self._refile(connection, entry, deadline)
            else:
                self._pop_first(entry)  # stale: the connection went away or was disarmed
                self.stale -= 1

    def pop_due(self, now: float, connections: dict) -> Iterator[Connection]:
        """The connections whose deadline has come, each disarmed as it is handed out."""
        entries = self.entries
        while True:
            entry = self._first()
            if entry is None or entry[0] > now:
                return
            connection = connections.get(entry[2])
            if connection is None or entries.get(connection) is not entry:
                self._pop_first(entry)
                self.stale -= 1
                continue
            deadline = connection.timers.next_deadline()
            if deadline is None or deadline > now:
                self._refile(connection, entry, deadline)  # its deadline moved later since
                continue
            self._pop_first(entry)
            del entries[connection]
            if self.stale > HEAP_SLACK:
                self._compact_if_stale()  # one live entry fewer
            yield connection

    def _refile(self, connection: Connection, entry: TimerEntry, deadline: float | None) -> None:
        """The live `entry` on top of the heap no longer says when `connection` is due: it goes,
        and the connection's entry is `deadline` now (none if None)."""
        self._pop_first(entry)
        if deadline is None:
            del self.entries[connection]
            if self.stale > HEAP_SLACK:
                self._compact_if_stale()  # one live entry fewer
        else:
            self._push(connection, deadline, entry[2])  # in place of the one popped

    def _rebuild(self) -> None:
        """Rebuild from the live entries: every stale entry goes at once. The FIFO keeps its live
        entries in their order; the heap is made of the rest."""
        live = set(map(id, self.entries.values()))
        self.in_order = deque(entry for entry in self.in_order if id(entry) in live)
        queued = set(map(id, self.in_order))
        self.heap = [entry for entry in self.entries.values() if id(entry) not in queued]
        heapq.heapify(self.heap)
        self.stale = 0
