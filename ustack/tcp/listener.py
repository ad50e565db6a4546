"""A listening socket: passive opens with a SYN queue and an accept queue.

RFC 9293 describes LISTEN as the state of one TCB that a SYN turns into a connection. A server
wants more: many connections on one port. The Listener keeps that LISTEN TCB's job and, for each
SYN, makes a fresh Connection by a passive OPEN and hands it the SYN (so that connection's story
starts CLOSED -> LISTEN -> SYN-RECEIVED like any other). Handshakes in progress sit in the SYN
queue; completed ones wait in the accept queue until the application accepts them. Both queues
are bounded; a SYN beyond the SYN queue, or one arriving while the accept queue is full, is
dropped and counted (the client will retry), as Linux does without SYN cookies.

Replies the listener itself owes (an RST for a stray ACK, RFC 9293 3.10.7.2) come out of
`transmit(now)` as (remote_address, segment) pairs; the stack may equally answer segments for
ports nobody listens on with `reset_for_unmatched`.
"""

from __future__ import annotations

from collections import Counter, deque

from ustack.tcp.config import TcpConfig
from ustack.tcp.connection import Connection
from ustack.tcp.events import StateChanged
from ustack.tcp.isn import IsnGenerator
from ustack.tcp.reset import reset_for_unmatched
from ustack.tcp.state import CLOSED, LISTEN, SYN_RECEIVED, State, check_transition
from ustack.wire.tcp import ACK, FIN, RST, SYN, TcpSegment


class Listener:
    def __init__(
        self,
        config: TcpConfig,
        local_address: int,
        local_port: int,
        backlog: int = 128,
        syn_queue_size: int = 128,
        isn_generator: IsnGenerator | None = None,
    ):
        if backlog < 1 or syn_queue_size < 1:
            raise ValueError("backlog and syn_queue_size must be at least 1")
        self.config = config
        self.local_address = local_address
        self.local_port = local_port
        self.backlog = backlog
        self.syn_queue_size = syn_queue_size
        self.isn_generator = isn_generator or IsnGenerator()
        self.syn_queue: list[Connection] = []  # handshakes in progress (SYN-RECEIVED)
        self.accept_queue: deque[Connection] = deque()  # established, not yet accepted
        self.state = CLOSED
        self.drops: Counter[str] = Counter()
        self._events: list = []
        self._replies: list[tuple[int, TcpSegment]] = []
        self._set_state(LISTEN, "passive OPEN")

    def _set_state(self, new: State, cause: str) -> None:
        check_transition(self.state, new)
        self._events.append(StateChanged(self.state, new, cause))
        self.state = new

    def receive(
        self, remote_address: int, segment: TcpSegment, now: float, *, local_address: int | None = None,
        config: TcpConfig | None = None,
    ) -> Connection | None:
        """LISTEN processing (RFC 9293 3.10.7.2) of a segment for no existing connection.

        Returns the new SYN-RECEIVED connection for a SYN (the stack registers it under its
        4-tuple and sends what its transmit() returns), else None. A listener bound to every
        address of a host (RFC 9293 3.9.1.1: local socket unspecified) is told which one the SYN
        came to (`local_address`) and the configuration fitted to that path (`config`: its MSS
        depends on the IP header of the family); the defaults are its own."""
        flags = segment.flags
        if self.state is not LISTEN:
            self.drops["listener_closed"] += 1
            reply = reset_for_unmatched(segment)
            if reply is not None:
                self._replies.append((remote_address, reply))
            return None
        if flags & SYN and flags & FIN and self.config.drop_syn_fin:
            self.drops["syn_and_fin"] += 1  # TcpConfig.drop_syn_fin
            return None
        if flags & RST:
            self.drops["rst_in_listen"] += 1
            return None
        if flags & ACK:
            self.drops["ack_in_listen"] += 1
            self._replies.append((remote_address, reset_for_unmatched(segment)))
            return None
        if not flags & SYN:
            self.drops["no_syn_in_listen"] += 1
            return None
        if len(self.syn_queue) >= self.syn_queue_size:
            self.drops["syn_queue_full"] += 1
            return None
        if len(self.accept_queue) >= self.backlog:
            self.drops["accept_queue_full"] += 1
            return None
        if local_address is None:
            local_address = self.local_address
        iss = self.isn_generator.generate(local_address, self.local_port, remote_address, segment.src_port, now)
        child = Connection.open_passive(
            config or self.config, local_address, self.local_port, iss, now,
            remote_address=remote_address, remote_port=segment.src_port, listener=self,
        )
        child.receive(segment, now)
        if child.state is not SYN_RECEIVED:
            return None
        self.syn_queue.append(child)
        return child

    def accept(self) -> Connection | None:
        """The oldest established connection not yet accepted, or None."""
        if self.accept_queue:
            child = self.accept_queue.popleft()
            child._listener = None  # accepted: the listener no longer tracks it
            return child
        return None

    def transmit(self, now: float) -> list[tuple[int, TcpSegment]]:
        replies, self._replies = self._replies, []
        return replies

    def next_deadline(self) -> float | None:
        return None  # the children carry their own timers

    def events(self) -> list:
        events, self._events = self._events, []
        return events

    def close(self, now: float) -> None:
        """CLOSE in LISTEN (RFC 9293 3.10.4): stop listening; connections not yet accepted are
        aborted (their resets come out of their own transmit())."""
        if self.state is CLOSED:
            return
        self._set_state(CLOSED, "CLOSE")
        for child in list(self.syn_queue) + list(self.accept_queue):
            child.abort(now)
        self.syn_queue.clear()
        self.accept_queue.clear()

    # --- called by the children (connection.py / arrival.py) ---
    def _child_established(self, child: Connection) -> bool:
        """A child's handshake completed; False when the accept queue has no room for it."""
        if len(self.accept_queue) >= self.backlog:
            return False
        if child in self.syn_queue:
            self.syn_queue.remove(child)
        self.accept_queue.append(child)
        return True

    def _child_closed(self, child: Connection) -> None:
        if child in self.syn_queue:
            self.syn_queue.remove(child)

    def __repr__(self) -> str:
        return (
            f"<Listener port {self.local_port} {self.state.value} syn_queue={len(self.syn_queue)}"
            f"/{self.syn_queue_size} accept_queue={len(self.accept_queue)}/{self.backlog}>"
        )


