"""A listening socket: passive opens with a SYN queue and an accept queue.

RFC 9293 describes LISTEN as the state of one TCB that a SYN turns into a connection. A server
wants more: many connections on one port. The Listener keeps that LISTEN TCB's job and, for each
SYN, makes a fresh Connection by a passive OPEN and hands it the SYN (so that connection's story
starts CLOSED -> LISTEN -> SYN-RECEIVED like any other). Handshakes in progress sit in the SYN
queue; completed ones wait in the accept queue until the application accepts them. Both queues
are bounded. A SYN arriving while the accept queue is full is dropped and counted (the client will
retry). One beyond a full SYN queue is answered with a SYN cookie (RFC 4987 3.6, syn_cookies.py)
and the listener keeps nothing for it, or, with TcpConfig.syncookies "off", dropped and counted
as Linux does without cookies; "always" answers every SYN with a cookie.

Replies the listener itself owes (an RST for a stray ACK, RFC 9293 3.10.7.2) come out of
`transmit(now)` as (remote_address, segment) pairs; the stack may equally answer segments for
ports nobody listens on with `reset_for_unmatched`.
"""

from __future__ import annotations

from collections import Counter, deque

from ustack.tcp.config import TcpConfig
from ustack.tcp.listen_screen import listen_screen
from ustack.tcp.connection import Connection
from ustack.tcp.fastopen import answer_syn
from ustack.tcp.isn import IsnGenerator
from ustack.tcp.options import Negotiated
from ustack.tcp.reset import reset_for_unmatched
from ustack.tcp.seq import seq_add
from ustack.tcp.state import CLOSED, LISTEN, StateMachine
from ustack.tcp.syn_cookies import MAX_AGE_SLOTS, SLOT_SECONDS, SynCookies, cookie_syn_ack, rebuilt_syn
from ustack.wire.tcp import ACK, RST, SYN, TcpSegment


class Listener(StateMachine):
    def __init__(
        self,
        config: TcpConfig,
        local_address: int,
        local_port: int,
        backlog: int = 128,
        syn_queue_size: int = 128,
        isn_generator: IsnGenerator | None = None,
        syn_cookies: SynCookies | None = None,
        max_connections: int | None = None,
    ):
        if backlog < 1 or syn_queue_size < 1:
            raise ValueError("backlog and syn_queue_size must be at least 1")
        if max_connections is not None and max_connections < 1:
            raise ValueError("max_connections must be at least 1 or None")
        # The most connections born of this listener that may exist at once, in any state (a
        # server's limit on clients); None: only the stack's own limit applies. The stack counts
        # open_connections: it registers each connection and knows when it is gone for good.
        self.max_connections = max_connections
        self.open_connections = 0
        self.config = config
        self.local_address = local_address
        self.local_port = local_port
        # How `ss` shows the address it listens on, set by the host that owns the listener:
        # "*" for every address of both families (Linux's dual-stack `::` socket), "0.0.0.0" or
        # "::" for a family's wildcard, None for the address itself. The core never reads it.
        self.listening_on: str | None = None
        self.backlog = backlog
        self.syn_queue_size = syn_queue_size
        self.isn_generator = isn_generator or IsnGenerator()
        self.syn_queue: list[Connection] = []  # handshakes in progress (SYN-RECEIVED)
        self.accept_queue: deque[Connection] = deque()  # established, not yet accepted
        self.state = CLOSED
        self.drops: Counter[str] = Counter()
        # SYN flood defence (RFC 4987): syn_queue_overflows, syncookies_sent, syncookies_validated,
        # syncookies_failed (each failure is also a drop by its reason).
        self.counters: Counter[str] = Counter()
        self.syn_cookies = syn_cookies or SynCookies()  # the stack's, shared by its listeners
        # TCP Fast Open (RFC 7413, fastopen.py): the queue length the TCP_FASTOPEN socket option
        # set (0: TcpConfig.fast_open_queue), and the children accepted with SYN data.
        self.fast_open_queue = 0
        self.fast_open_pending: list[Connection] = []
        self._last_cookie_sent: float | None = None
        self._events: list = []
        self._replies: list[tuple[int, TcpSegment]] = []
        self._set_state(LISTEN, "passive OPEN")

    def receive(
        self, remote_address: int, segment: TcpSegment, now: float, *, local_address: int | None = None,
        config: TcpConfig | None = None, record_events: bool = True,
    ) -> Connection | None:
        """LISTEN processing (RFC 9293 3.10.7.2) of a segment for no existing connection.

        Returns the new SYN-RECEIVED connection for a SYN (the stack registers it under its
        4-tuple and sends what its transmit() returns), else None. A listener bound to every
        address of a host (RFC 9293 3.9.1.1: local socket unspecified) is told which one the
        segment came to (`local_address`) and the configuration fitted to that path (`config`: its
        MSS depends on the IP header of the family); the defaults are its own. `record_events`:
        whether the new connection records events (Connection.record_events), from its start."""
        local_address = self.local_address if local_address is None else local_address
        config = config or self.config
        if self.state is not LISTEN:
            self.drops["listener_closed"] += 1
            reply = reset_for_unmatched(segment)
            if reply is not None:
                self._replies.append((remote_address, reply))
            return None
        flags = segment.flags
        if flags & ACK and not flags & (SYN | RST) and self._cookies_may_return(now):
            # An ACK may be the third segment of a handshake we answered with a SYN cookie and
            # kept nothing for (RFC 4987 3.6): check it before LISTEN's rule of a reset for an ACK.
            return self._cookie_returns(local_address, config, remote_address, segment, now, record_events)
        refused = listen_screen(segment, self.config)  # the LISTEN checks of RFC 9293 3.10.7.2
        if refused is not None:
            reason, reply = refused
            self.drops[reason] += 1
            if reply is not None:
                self._replies.append((remote_address, reply))
            return None
        if self.max_connections is not None and self.open_connections >= self.max_connections:  # _at_connection_limit
            self.drops["listener_connection_limit"] += 1  # the client will retry its SYN
            return None
        mode = self.config.syncookies
        want_cookie = mode == "always"
        if not want_cookie and len(self.syn_queue) >= self.syn_queue_size:
            self.counters["syn_queue_overflows"] += 1
            if mode == "off":
                self.drops["syn_queue_full"] += 1
                return None
            want_cookie = True
        if len(self.accept_queue) >= self.backlog:
            self.drops["accept_queue_full"] += 1
            return None
        if want_cookie:
            self._answer_with_cookie(local_address, config, remote_address, segment, now)
            return None
        iss = self.isn_generator.generate(local_address, self.local_port, remote_address, segment.src_port, now)
        child = Connection.open_passive(
            config, local_address, self.local_port, iss, now,
            remote_address=remote_address, remote_port=segment.src_port, listener=self, record_events=record_events,
        )
        child.fast_open = answer_syn(self, segment, remote_address, config)  # RFC 7413 (fastopen.py)
        # LISTEN's checks are done (listen_screen above): the child takes the SYN at its third
        # step, to SYN-RECEIVED, without checking it again (what child.receive would do).
        child._syn_arrives_in_listen(segment)
        if child.fast_open is not None and child.fast_open.accept_data:
            # RFC 7413 4.2: the data is the application's now; as Linux does, the connection can
            # be accepted before the handshake completes.
            self.fast_open_pending.append(child)
            self.accept_queue.append(child)
            return child
        self.syn_queue.append(child)
        return child

    def accept(self) -> Connection | None:
        """The oldest established connection not yet accepted, or None."""
        if self.accept_queue:
            child = self.accept_queue.popleft()
            child._accepted()  # the listener no longer tracks it
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

    # --- SYN cookies (RFC 4987 3.6; the cookie itself is syn_cookies.py's) ---
    def _answer_with_cookie(self, local_address: int, config: TcpConfig, remote_address: int, syn: TcpSegment,
                            now: float) -> None:  # fmt: skip
        """A SYN-ACK whose ISN is a cookie, and no state kept for the SYN."""
        if syn.payload:
            self.drops["data_on_syn"] += 1  # not kept, as without cookies; the peer sends it again
        peer_mss = Negotiated(config, syn.options).peer_mss
        cookie = self.syn_cookies.make(local_address, self.local_port, remote_address, syn.src_port,
                                       syn.seq, peer_mss, now)
        self._replies.append((remote_address, cookie_syn_ack(config, syn, cookie, now)))
        self.counters["syncookies_sent"] += 1
        self._last_cookie_sent = now

    def _cookies_may_return(self, now: float) -> bool:
        """Is a returning cookie possible? Only if we sent one no longer ago than a cookie lives
        (Linux likewise checks cookies only after a recent SYN queue overflow): otherwise a stray
        ACK is just that, answered with a reset."""
        if self.config.syncookies == "off" or self._last_cookie_sent is None:
            return False
        return now - self._last_cookie_sent <= (MAX_AGE_SLOTS + 1) * SLOT_SECONDS

    def _cookie_returns(self, local_address: int, config: TcpConfig, remote_address: int, ack: TcpSegment,
                        now: float, record_events: bool = True) -> Connection | None:  # fmt: skip
        """An ACK that may carry a cookie back (SEG.ACK = cookie + 1). Returns the connection
        rebuilt from it, ESTABLISHED; None when the ACK is dropped: with no reply when the accept
        queue is full (the peer retransmits), with a reset, as for any stray ACK in LISTEN (RFC
        9293 3.10.7.2), when it carries no cookie of ours (counted by reason)."""
        cookie, peer_isn = seq_add(ack.ack, -1), seq_add(ack.seq, -1)
        result = self.syn_cookies.check(local_address, self.local_port, remote_address, ack.src_port,
                                        peer_isn, cookie, now)
        syn, failure = None, result.failure
        if not failure:
            syn, failure = rebuilt_syn(config, ack, result.mss)
        if failure:
            self.drops[failure] += 1
            self.counters["syncookies_failed"] += 1
            self._replies.append((remote_address, reset_for_unmatched(ack)))
            return None
        if len(self.accept_queue) >= self.backlog:
            self.drops["accept_queue_full"] += 1
            return None
        if self._at_connection_limit():
            self.drops["listener_connection_limit"] += 1  # no reply: the peer retransmits
            return None
        child = Connection.open_from_cookie(config, local_address, self.local_port, remote_address, syn,
                                            cookie, now, listener=self, record_events=record_events)
        child.receive(ack, now)  # SYN-RECEIVED -> ESTABLISHED, into the accept queue; then its text
        self.counters["syncookies_validated"] += 1
        return child

    def _at_connection_limit(self) -> bool:
        return self.max_connections is not None and self.open_connections >= self.max_connections

    # --- called by the children (connection.py / arrival.py) ---
    def _child_established(self, child: Connection) -> bool:
        """A child's handshake completed; False when the accept queue has no room for it."""
        # Only a Fast Open child can be in the accept queue already (there since its SYN,
        # fastopen.py): the others skip a search through the whole queue, which may be long.
        if child.fast_open is not None and child in self.accept_queue:
            return True
        if len(self.accept_queue) >= self.backlog:
            return False
        try:
            self.syn_queue.remove(child)  # usually the oldest, first in the list
        except ValueError:
            pass  # a child rebuilt from a SYN cookie was never queued
        self.accept_queue.append(child)
        return True

    def _child_closed(self, child: Connection) -> None:
        try:
            self.syn_queue.remove(child)
        except ValueError:
            pass  # established (in the accept queue) or rebuilt from a SYN cookie

    def __repr__(self) -> str:
        return (
            f"<Listener port {self.local_port} {self.state.value} syn_queue={len(self.syn_queue)}"
            f"/{self.syn_queue_size} accept_queue={len(self.accept_queue)}/{self.backlog}>"
        )


