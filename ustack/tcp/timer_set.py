"""The connection's timers: one deadline per kind of timer, kept in one place.

A timer is a deadline in virtual seconds, or None when it is not armed. There is no clock here
(DESIGN.md rules 1 and 6): the connection arms and cancels, `next_deadline()` tells the stack
when to call `Connection.on_timer(now)`, and `due(kind, now)` says which timers have expired.
What each expiry does is the connection's business (timers.py); this object only keeps time.

The kinds, each with the rule that arms it:

- RETRANSMIT   RFC 6298 5: our SYN, SYN-ACK, data or FIN went unacknowledged for one RTO
- DELAYED_ACK  RFC 9293 3.8.6.3: an ACK we held back in the hope of piggybacking it
- PERSIST      RFC 9293 3.8.6.1: probe a zero window (or force out a small segment)
- KEEPALIVE    RFC 1122 4.2.3.6: an idle connection checks the peer is still there
- TIME_WAIT    RFC 9293 3.4.2: 2*MSL in TIME-WAIT before the connection is forgotten (kept by
               the TimeWait record, time_wait.py, which names it by this kind's label)
- CONNECT      RFC 1122 4.2.3.5: an active open abandoned after TcpConfig.connect_timeout
- FIN_WAIT_2   after close(), stop waiting for a peer's FIN that never comes (as Linux does)
- REORDER      RFC 8985 6.3: RACK's reordering window runs out for a segment not yet SACKed
- TLP          RFC 8985 7.2: the probe timeout; send a tail loss probe
- PACING       the pacing bucket (congestion/pacing.py) holds enough for the next burst of data
"""

from __future__ import annotations

import enum


class Timer(enum.IntEnum):
    """The kinds of timer, numbered so that each indexes one slot of a TimerSet."""

    RETRANSMIT = 0
    DELAYED_ACK = 1
    PERSIST = 2
    KEEPALIVE = 3
    TIME_WAIT = 4
    CONNECT = 5
    FIN_WAIT_2 = 6
    REORDER = 7
    TLP = 8
    PACING = 9

    @property
    def label(self) -> str:
        """The timer's name in snapshots and `ss -i`-style output: "retransmit", "time_wait"..."""
        return self.name.lower()


# The kinds as module constants, for the connection's hot paths: reading a global is an order of
# magnitude cheaper than an enum member lookup (Timer.RETRANSMIT) in CPython 3.11.
RETRANSMIT_TIMER = Timer.RETRANSMIT
DELAYED_ACK_TIMER = Timer.DELAYED_ACK
PERSIST_TIMER = Timer.PERSIST
KEEPALIVE_TIMER = Timer.KEEPALIVE
TIME_WAIT_TIMER = Timer.TIME_WAIT
CONNECT_TIMER = Timer.CONNECT
FIN_WAIT_2_TIMER = Timer.FIN_WAIT_2
REORDER_TIMER = Timer.REORDER
TLP_TIMER = Timer.TLP
PACING_TIMER = Timer.PACING

_KINDS = tuple(Timer)
_COUNT = len(_KINDS)
_LABELS = tuple(kind.label for kind in _KINDS)
# A slot whose timer is not armed holds infinity, not None: the earliest deadline is then min()
# of the list, one C call, where skipping Nones took a Python loop over every slot (the stack
# asks after each transmit() of every connection it touched).
NOT_ARMED = float("inf")


class TimerSet:
    """Every timer of one connection. The only place a deadline is stored or changed.

    The deadlines live in one list indexed by Timer (NOT_ARMED in a slot whose timer is not
    running), created when a timer is armed and dropped when next_deadline() finds none armed
    (cancel_all drops it at once): an idle established connection without keepalive has none
    armed and pays for no list.

    `deadlines` is read outside this class only to save a call on the paths that run for
    nearly every segment, in two forms: `deadlines is not None and deadlines[kind] !=
    NOT_ARMED`, which is `is_armed(kind)` in line, before a cancel() (cancel of a timer not
    armed does nothing: the delayed-ACK, persist and connect timers, output.py,
    acknowledgement.py, arrival.py); and `deadlines[kind]` as `deadline(kind)` with NOT_ARMED
    for None, where infinity compares as "not armed" should (RACK's probe timer, rack.py).
    Nothing outside this class writes it."""

    __slots__ = ("deadlines",)

    def __init__(self) -> None:
        self.deadlines: list[float] | None = None

    def deadline(self, kind: Timer) -> float | None:
        """When `kind` expires, or None when it is not armed."""
        deadlines = self.deadlines
        if deadlines is None:
            return None
        deadline = deadlines[kind]
        return None if deadline == NOT_ARMED else deadline

    def is_armed(self, kind: Timer) -> bool:
        deadlines = self.deadlines
        return deadlines is not None and deadlines[kind] != NOT_ARMED

    def due(self, kind: Timer, now: float) -> bool:
        """`kind` is armed and its deadline is at or before `now`."""
        deadlines = self.deadlines
        return deadlines is not None and now >= deadlines[kind]  # never for NOT_ARMED

    def arm(self, kind: Timer, deadline: float) -> None:
        """Set (or move) the deadline of `kind`."""
        deadlines = self.deadlines
        if deadlines is None:
            deadlines = self.deadlines = [NOT_ARMED] * _COUNT
        deadlines[kind] = deadline

    def arm_unless_armed(self, kind: Timer, deadline: float) -> None:
        """Start `kind` if it is not running (RFC 6298 5.1: a running retransmission timer is
        not restarted by sending more)."""
        deadlines = self.deadlines
        if deadlines is None:
            deadlines = self.deadlines = [NOT_ARMED] * _COUNT
        if deadlines[kind] == NOT_ARMED:
            deadlines[kind] = deadline

    def cancel(self, kind: Timer) -> bool:
        """Stop `kind`; True if it was armed. A list left with nothing armed goes at the next
        next_deadline(), which finds that out anyway (the stack asks it after every transmit),
        not here: a connection cancels a dozen timers in its life."""
        deadlines = self.deadlines
        if deadlines is None or deadlines[kind] == NOT_ARMED:
            return False
        deadlines[kind] = NOT_ARMED
        return True

    def cancel_loss_timers(self) -> None:
        """Stop the timers that resend or probe what is in flight: retransmission, tail loss
        probe and reordering (cancel() of each; one call where a connection's FIN is
        acknowledged, at every close, and at a retransmission timeout)."""
        deadlines = self.deadlines
        if deadlines is not None:
            deadlines[RETRANSMIT_TIMER] = deadlines[TLP_TIMER] = deadlines[REORDER_TIMER] = NOT_ARMED

    def cancel_all(self) -> None:
        self.deadlines = None

    def next_deadline(self) -> float | None:
        """The earliest armed deadline, or None when nothing will happen without input."""
        deadlines = self.deadlines
        if deadlines is None:
            return None
        earliest = min(deadlines)
        if earliest == NOT_ARMED:
            self.deadlines = None  # nothing armed: an idle connection keeps no list
            return None
        return earliest

    def armed(self) -> dict[str, float]:
        """The armed timers by label, with their deadlines (for snapshots)."""
        deadlines = self.deadlines
        if deadlines is None:
            return {}
        return {label: deadline for label, deadline in zip(_LABELS, deadlines) if deadline != NOT_ARMED}
