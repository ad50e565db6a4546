"""The eleven TCP states and the one table of transitions between them (RFC 9293 3.3.2).

Every state change of a connection or a listener goes through `StateMachine._set_state`, which
checks that the change is in `TRANSITIONS` (DESIGN.md rule 3). The table is
the single place that says what the code allows: the tests check it against Figure 5 of RFC 9293
and the documentation draws it. The tables below it say where the closing events of Figure 5
lead (CLOSE, rcv FIN, rcv ACK of FIN), so the code looks the next state up instead of writing
the figure out again, and what a state keeps running (keepalive).
"""

from __future__ import annotations


import enum
from dataclasses import dataclass

from ustack.compat import DATACLASS_SLOTS

from ustack.tcp.summary import segment_summary
from ustack.wire.tcp import TcpSegment


class State(enum.Enum):
    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"

    def __str__(self) -> str:
        return self.value

    # Hash by identity (each state is one object), in C: Enum's own __hash__ is a Python function
    # (hash of the name), and the core asks "state in SOME_STATES" and looks up (old, new) in
    # TRANSITIONS several times per segment. Equality is identity already (Enum defines no __eq__).
    __hash__ = object.__hash__


CLOSED = State.CLOSED
LISTEN = State.LISTEN
SYN_SENT = State.SYN_SENT
SYN_RECEIVED = State.SYN_RECEIVED
ESTABLISHED = State.ESTABLISHED
FIN_WAIT_1 = State.FIN_WAIT_1
FIN_WAIT_2 = State.FIN_WAIT_2
CLOSE_WAIT = State.CLOSE_WAIT
CLOSING = State.CLOSING
LAST_ACK = State.LAST_ACK
TIME_WAIT = State.TIME_WAIT

# RFC 9293 3.3.2: "synchronized" states, where both sequence spaces are known.
SYNCHRONIZED = frozenset(
    {ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT, CLOSING, LAST_ACK, TIME_WAIT}
)
# States in which the application may still queue data (RFC 9293 3.10.2).
CAN_SEND = frozenset({SYN_SENT, SYN_RECEIVED, ESTABLISHED, CLOSE_WAIT})
# States in which arriving data is accepted into the receive buffer (RFC 9293 3.10.7.4, seventh).
CAN_RECEIVE = frozenset({ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2})
# States in which we have sent (or queued) our FIN.
FIN_QUEUED_STATES = frozenset({FIN_WAIT_1, FIN_WAIT_2, CLOSING, LAST_ACK, TIME_WAIT})


# (old, new) -> what makes the change, in the words of Figure 5 where the figure has the arrow.
# The first block is Figure 5 itself plus the notes under it; the second block is the arrows
# the figure leaves out for legibility (note 3): resets, aborts and timeouts.
FIGURE_5 = {
    (CLOSED, LISTEN): "passive OPEN / create TCB",
    (CLOSED, SYN_SENT): "active OPEN / create TCB, snd SYN",
    (LISTEN, CLOSED): "CLOSE / delete TCB",
    (LISTEN, SYN_RECEIVED): "rcv SYN / snd SYN,ACK",
    (LISTEN, SYN_SENT): "SEND / snd SYN",
    (SYN_SENT, CLOSED): "CLOSE / delete TCB",
    (SYN_SENT, SYN_RECEIVED): "rcv SYN / snd SYN,ACK (simultaneous open)",
    (SYN_SENT, ESTABLISHED): "rcv SYN,ACK / snd ACK",
    (SYN_RECEIVED, LISTEN): "rcv RST (note 1: after a passive OPEN)",
    (SYN_RECEIVED, ESTABLISHED): "rcv ACK of SYN",
    (SYN_RECEIVED, FIN_WAIT_1): "CLOSE / snd FIN",
    (ESTABLISHED, FIN_WAIT_1): "CLOSE / snd FIN",
    (ESTABLISHED, CLOSE_WAIT): "rcv FIN / snd ACK",
    (FIN_WAIT_1, FIN_WAIT_2): "rcv ACK of FIN",
    (FIN_WAIT_1, CLOSING): "rcv FIN / snd ACK",
    (FIN_WAIT_1, TIME_WAIT): "rcv FIN and ACK of FIN / snd ACK (note 2)",
    (FIN_WAIT_2, TIME_WAIT): "rcv FIN / snd ACK",
    (CLOSE_WAIT, LAST_ACK): "CLOSE / snd FIN",
    (CLOSING, TIME_WAIT): "rcv ACK of FIN",
    (LAST_ACK, CLOSED): "rcv ACK of FIN",
    (TIME_WAIT, CLOSED): "Timeout=2MSL / delete TCB",
}

NOT_IN_FIGURE = {
    (SYN_SENT, CLOSED): "rcv RST with acceptable ACK (refused), ABORT, or SYN retries exhausted",
    (SYN_RECEIVED, CLOSED): "rcv RST, ABORT, SYN-ACK retries exhausted, or a listener's child reset",
    (ESTABLISHED, CLOSED): "rcv RST, ABORT, close with unread data, or retransmissions exhausted",
    (FIN_WAIT_1, CLOSED): "rcv RST, ABORT, or retransmissions exhausted",
    (FIN_WAIT_2, CLOSED): "rcv RST, ABORT, data after a full close, or the FIN-WAIT-2 timer",
    (CLOSE_WAIT, CLOSED): "rcv RST, ABORT, or retransmissions exhausted",
    (CLOSING, CLOSED): "rcv RST, ABORT, or retransmissions exhausted",
    (LAST_ACK, CLOSED): "rcv RST, ABORT, or retransmissions exhausted",
    (TIME_WAIT, CLOSED): "rcv RST (unless RFC 1337 protection is on), ABORT",
}

# The single table `_set_state` checks. Where both blocks name an arrow, the figure's words win
# and the other causes are listed in NOT_IN_FIGURE.
TRANSITIONS: dict[tuple[State, State], str] = {**NOT_IN_FIGURE, **FIGURE_5}


# Where the events of Figure 5 that close a connection lead, by the state they arrive in. The
# code looks the next state up here (connection.py, arrival.py); a state not listed has no arrow
# for that event. Each entry is an arrow of TRANSITIONS (tests/tcp/test_transitions.py).
AFTER_CLOSE = {  # CLOSE / snd FIN (RFC 9293 3.10.4)
    SYN_RECEIVED: FIN_WAIT_1,
    ESTABLISHED: FIN_WAIT_1,
    CLOSE_WAIT: LAST_ACK,
}
AFTER_FIN = {  # rcv FIN / snd ACK (RFC 9293 3.10.7.4 eighth)
    ESTABLISHED: CLOSE_WAIT,
    FIN_WAIT_1: CLOSING,  # or TIME-WAIT when the segment also acknowledged our FIN (note 2)
    FIN_WAIT_2: TIME_WAIT,
}
AFTER_ACK_OF_FIN = {  # rcv ACK of FIN (RFC 9293 3.10.7.4 fifth)
    FIN_WAIT_1: FIN_WAIT_2,
    CLOSING: TIME_WAIT,
    LAST_ACK: CLOSED,
}
# States in which an idle connection is watched by keepalive probes (RFC 1122 4.2.3.6).
KEEPALIVE_STATES = frozenset({ESTABLISHED, CLOSE_WAIT})
# States that keep nothing running but, in TIME-WAIT, the 2*MSL timer (DESIGN.md rule 6).
RELEASE_ALL_STATES = frozenset({CLOSED, TIME_WAIT})


@dataclass(frozen=True, **DATACLASS_SLOTS)
class StateChanged:
    """The event every state change emits (ustack.tcp.events re-exports it)."""

    old: State
    new: State
    cause: str  # the segment (tcpdump-style), the user call or the timer that made the change


class IllegalTransition(AssertionError):
    """A state change that is not in TRANSITIONS: always a bug in the core, never bad input."""


def check_transition(old: State, new: State) -> None:
    """Refuse a change that is not in TRANSITIONS (what _set_state does, in line: it runs a dozen
    times in every connection's life, and a call costs more than the set lookup)."""
    if (old, new) not in TRANSITIONS:
        _refuse(old, new)


def _refuse(old: State, new: State) -> None:
    raise IllegalTransition(f"{old.value} -> {new.value} is not in ustack.tcp.state.TRANSITIONS")


# A machine's `_events` while nobody reads its events (StateMachine.record_events): falsy, like
# the None of "no events yet", so that events() finds nothing to drain.
EVENTS_OFF = ()


class StateMachine:
    """The one state setter, shared by Connection and Listener: each has a `state` and an
    `_events` list (or None before the first event, or EVENTS_OFF), and may react to entering a
    state in `_entered`."""

    __slots__ = ()

    def _set_state(self, new: State, cause: str | TcpSegment) -> None:
        """Change state: check the table, record the event, then let the owner react (release
        what the new state no longer needs). The only assignment to `state` after creation.
        `cause` is words, or the segment that made the change, described tcpdump-style
        (segment_summary) only when the event is recorded."""
        old = self.state
        if (old, new) not in TRANSITIONS:  # check_transition, in line
            _refuse(old, new)
        self.state = new
        if self._events is not EVENTS_OFF:
            self._emit(StateChanged(old, new, cause if type(cause) is str else segment_summary(cause)))
        self._entered(old, new)

    def _emit(self, event) -> None:
        """Record an event for the next events() call; the list is made by the first one."""
        events = self._events
        if events is None:
            self._events = [event]
        elif events is not EVENTS_OFF:
            events.append(event)

    def record_events(self, on: bool) -> None:
        """Whether this machine records events for events() (on when made). Off when nobody
        will read them (Stack.events_wanted): none is made, those not yet drained are dropped,
        and no state change's cause is described."""
        if not on:
            self._events = EVENTS_OFF
        elif self._events is EVENTS_OFF:
            self._events = None

    def _entered(self, old: State, new: State) -> None:
        """What entering `new` releases or starts; nothing by default."""
