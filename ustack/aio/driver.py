"""Driver: the sans-IO Stack driven by an asyncio event loop (the machinery under AsyncStack).

The whole runtime is two callbacks and one rule (DESIGN.md rules 2 and 6):

- `loop.add_reader(link.fileno(), ...)`: the link has packets. Take a batch (one packet only,
  without the read that finds the queue empty, while the peers send one at a time:
  _receive_on_wake_up), feed each packet to the stack, then run one *round*.
- ONE `loop.call_at` timer, armed for the earliest deadline of the stack and of the link. When it
  fires: `stack.on_timer(now)`, `link.on_timer(now)`, collect any packets the link released, run
  one round.
- A round: `stack.transmit(now)` goes out through the link, and every connection the stack
  reports active (`stack.drain_active()`) has its transport brought up to date (data to the
  protocol, pending writes into the send buffer, end of stream, errors), repeated while that
  produced more to send; finally the timer is re-armed for the new earliest deadline.
  After packets came in, the transports come first; when every connection they touched handed
  data to an application that does not answer at once (a woken reader, or a handler just
  started with its request already in: its task runs in the next iteration), the transmit is
  left to the round queued behind those tasks, which sends each answer with the ACK on it (one
  connection touched by anything else, a handshake's SYN-ACK or an ACK due now, and all are
  transmitted at once). After user calls, the transmit comes first, so that what they wrote
  leaves before anything else is looked at.

User calls on a transport (write, close, resume_reading, ...) happen outside a round: they
`poke` the stack and ask for a round with `loop.call_soon`, once, however many calls there are in
one loop iteration. A round that handed data to a protocol asks for the next round itself, at its
end: asyncio runs the application's reply (a task woken by that data) in the next loop iteration,
and the round queued behind it sends the reply in that same iteration, instead of one iteration
later (an echo or an HTTP answer: one loop pass less per request, one transmit per request:
`ustack serve` handles an echo with the kernel's count of loop iterations, two). Nothing else runs: with no
packets and no deadline, the loop sleeps and the stack costs no CPU at all, however many
connections have come and gone.

`now` is always `loop.time()` (the monotonic clock asyncio itself uses). runtime.AsyncStack adds
the asyncio API (create_connection, start_server, ...) and the life cycle on top of this class.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any, Callable

from ..link.base import Link, LinkClosed
from ..link.predicates import tcp_with_data
from ..stack import Stack
from .transport import TcpTransport

logger = logging.getLogger("ustack.aio")

MAX_BATCH = 64  # packets taken from the link per readable event
MAX_ROUNDS = 16  # transmit/update passes in one round before yielding to the loop
# The most wake-ups in a row that read one packet and stop, without the read that would find the
# queue empty, after reads to the end found one packet each (_receive_on_wake_up).
MAX_SINGLE_READS = 8

# An observer is called as observer(now, kind, item):
#   kind "<": item is a packet (bytes) received from the link
#   kind ">": item is a packet (bytes) sent to the link
#   kind "event": item is a ustack.stack.StackEvent (connection, event), e.g. StateChanged
Observer = Callable[[float, str, Any], None]


# A TCP segment with data in it (a request, an answer), not a pure ACK nor anything else: the
# link predicates' one test of it, made once.
_carries_data = tcp_with_data()


class Driver:
    """Rounds, the one timer and the link's reader for one Stack on the running loop; what
    transports and servers call (transport.Runtime). Not used alone: AsyncStack is the one."""

    def __init__(self, stack: Stack, link: Any, max_batch: int) -> None:
        self.stack = stack
        # Only observers read the stack's events (_report_events): none, none made (stack.py).
        stack.events_wanted = False
        self.link = link
        # A link that never holds packets back or batches them (the base class's answers): the
        # driver does not ask it, twice a round (a memory link; a TunLink has a deadline of None
        # but may batch sends, so it is flushed).
        self._link_has_deadlines = type(link).next_deadline is not Link.next_deadline
        self._link_flushes = type(link).flush is not Link.flush
        self.max_batch = max_batch
        self.loop: asyncio.AbstractEventLoop | None = None
        self._transports: dict[Any, TcpTransport] = {}  # core Connection -> its transport
        self._servers: list = []  # server.Server, accepting in every round
        self._dirty: dict[TcpTransport, None] = {}  # transports to update in the next round
        self._observers: list[Observer] = []
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None
        self._round_scheduled = False
        # The context rounds run in: their own, made once (call_soon would copy the caller's,
        # an application task's, at every request).
        self._round_context = contextvars.copy_context()
        self._in_round = False
        self._poked = False  # a user call touched a connection during this round
        self._delivered = False  # a transport handed data to its protocol during this round
        self._closed = False
        self._fd = -1
        # Wake-ups left that read one packet without a second read to find the queue empty, and
        # how many in a row a read to the end found exactly one (_receive_on_wake_up).
        self._single_reads_left = 0
        self._single_streak = 0
        self.counters: dict[str, int] = {"rounds": 0, "transmits": 0, "timer_fired": 0, "batches": 0}

    @property
    def timer_armed(self) -> bool:
        """True while the one timer is set (false when the stack is idle: nothing is due)."""
        return self._timer is not None


    def poke(self, connection: Any) -> None:
        """A user call touched `connection`: transmit what it produced in the next round."""
        self.stack.poke(connection)
        self._poked = True
        if not (self._in_round or self._round_scheduled):  # (request_round's test, in line: a write pokes)
            self.request_round()

    def poke_later(self, connection: Any) -> None:
        """Like poke, for what may wait for the round that follows a delivery (a window update
        after the application took data): this round makes no second pass for it."""
        self.stack.poke(connection)
        self._delivered = True
        if not self._in_round:
            self.request_round()

    def mark_dirty(self, transport: TcpTransport) -> None:
        """Bring `transport` up to date in the next round (e.g. after resume_reading)."""
        self._dirty[transport] = None
        self.request_round()

    def forget(self, transport: TcpTransport) -> None:
        if self._transports.get(transport._connection) is transport:
            del self._transports[transport._connection]
        self._dirty.pop(transport, None)

    def register(self, transport: TcpTransport) -> None:
        self._transports[transport._connection] = transport


    def request_round(self) -> None:
        """Run a round soon: once per loop iteration however many calls ask (batched flush)."""
        if self._in_round or self._round_scheduled or self._closed or self.loop is None:
            return
        self._round_scheduled = True
        self.loop.call_soon(self._scheduled_round, context=self._round_context)

    # ------------------------------------------------------------------------------------------
    # The driver
    # ------------------------------------------------------------------------------------------
    def _on_readable(self) -> None:
        now = self.loop.time()
        self._receive_on_wake_up(now)
        self._round(now, packets_in=True, may_wait_for_answer=True)

    def _receive_on_wake_up(self, now: float) -> None:
        """Read a batch, or one packet only while the peers send one at a time.

        A read to the end of the queue costs a last read that finds it empty (EAGAIN): one system
        call of five per echo. epoll is level-triggered, so a packet left unread is not lost: the
        fd stays readable and the loop's next poll (one that does not wait when a round is queued,
        as after data handed to an application) wakes us again at once. Batches still matter
        under bulk (one ACK decision per batch and connection, joined runs), so the rule adapts:
        every wake-up reads to the end, unless the last read to the end found exactly one packet
        with data in it (a request; a lone pure ACK, a download's, keeps reads to the end, where
        software GRO thins runs of them: tun.py); then up to min(that streak, MAX_SINGLE_READS)
        wake-ups read one packet each, and the next reads to the end again and decides anew. A
        burst costs at most MAX_SINGLE_READS wake-ups of one packet before batching resumes;
        sequential echoes skip the empty read at MAX_SINGLE_READS of every MAX_SINGLE_READS + 1."""
        if self._single_reads_left:
            self._single_reads_left -= 1
            self._receive_from_link(now, 1)
            return
        batch = self._receive_from_link(now, self.max_batch)
        if len(batch) == 1 and _carries_data(batch[0]):
            streak = self._single_streak = self._single_streak + 1
            self._single_reads_left = streak if streak < MAX_SINGLE_READS else MAX_SINGLE_READS
        else:
            self._single_streak = 0

    def _on_timer(self) -> None:
        deadline = self._timer_deadline
        self._timer = None
        self._timer_deadline = None
        self.counters["timer_fired"] += 1
        # asyncio may run a timer up to one clock tick early; never let the stack see a time
        # before the deadline it asked for, or the timer would fire again for nothing.
        now = max(self.loop.time(), deadline or 0.0)
        # The packets already waiting on the link first (a non-blocking batch; with them those a
        # middleware held back and releases now), then the stack's due timers: a timer acts on
        # the state those packets made. Fired first, a probe timer due as the ACK of the whole
        # flight waited unread asked for a probe that ACK made needless (issue 12), and a
        # retransmission timer could resend what an ACK waiting there had acknowledged.
        self.link.on_timer(now)
        self._receive_from_link(now, self.max_batch)
        self.stack.on_timer(now)
        self._report_events(now)
        self._round(now, packets_in=True)

    def _scheduled_round(self) -> None:
        self._round_scheduled = False
        if not self._closed:
            self._round(self.loop.time())

    def _receive_from_link(self, now: float, max_packets: int) -> list:
        """Feed the link's waiting packets (at most max_packets) to the stack; the packets."""
        try:
            batch = self.link.receive_batch(now, max_packets)
        except LinkClosed as error:
            logger.warning("ustack: %s; no more packets will arrive", error)
            self.loop.remove_reader(self._fd)
            return []
        self.counters["batches"] += 1
        for packet in batch:  # a Tracer in the link starts this packet's line as the loop reaches it
            if self._observers:
                self._notify(now, "<", packet)
            try:
                self.stack.receive(packet, now)
            except Exception:
                # A bug below us must not take every other connection down with it.
                self.counters["packets_failed"] = self.counters.get("packets_failed", 0) + 1
                logger.exception("ustack: the stack failed on a packet of %d bytes; it was dropped", len(packet))
            if self._observers:  # nobody else reads events: with none, the stack records none
                self._report_events(now)  # state changes land on the line of the packet that caused them
        return batch

    def _round(self, now: float, packets_in: bool = False, may_wait_for_answer: bool = False) -> None:
        """Transmit and bring transports up to date until neither has anything new. A round
        after packets came in hands their data to the applications first, then transmits; one
        for user calls (a write, a close) transmits first: what they produced leaves at once.
        `may_wait_for_answer`: the packets' ACKs may wait for the answers (see below)."""
        if self._closed:
            return
        counters = self.counters
        counters["rounds"] += 1
        self._in_round = True
        try:
            for pass_number in range(MAX_ROUNDS):
                self._poked = False
                if self._observers:
                    self._report_events(now)  # changes made by user calls (connect, close, ...)
                if packets_in:
                    # (what the applications write at once leaves in this pass)
                    all_handed_data = self._update_transports(now)
                    if (may_wait_for_answer and pass_number == 0 and all_handed_data
                            and not (self._poked or self._dirty)):
                        # Every connection the packets touched had data for an application that
                        # did not answer at once (an echo, a request; with one touched by
                        # anything else, a SYN-ACK or an ACK due now, all are transmitted now): a
                        # stream reader's task wakes in the next loop iteration and writes then.
                        # Transmitting now would only arm the delayed-ACK timers its answer
                        # cancels; the round queued behind those tasks (below) transmits once,
                        # the ACK riding on the answer, and acknowledges data nobody answers as
                        # RFC 9293 3.8.6.3's delayed ACK decided on arrival, one iteration later.
                        break
                packets = self.stack.transmit(now)
                counters["transmits"] += 1
                if self._observers:
                    self._report_events(now)
                if packets:
                    self._send(packets, now)
                if not packets_in:
                    self._update_transports(now)
                if not (self._poked or self._dirty):
                    break  # nothing new to transmit, nobody left to update
            else:
                # Still busy after MAX_ROUNDS passes: let other callbacks run, then go on.
                if not self._round_scheduled:
                    self._round_scheduled = True
                    self.loop.call_soon(self._scheduled_round, context=self._round_context)
        finally:
            self._in_round = False
        if self._delivered:
            # Queued behind the callbacks that data woke (call_soon keeps order): the reply they
            # write goes out in the same loop iteration.
            self._delivered = False
            self.request_round()
        if self._link_flushes:
            self.link.flush()
        if not self._round_scheduled:
            # A round already queued re-arms it, before the loop sleeps again (a queued callback
            # makes asyncio poll without waiting): once per loop iteration is enough. An echo or
            # an HTTP answer is two rounds (the data in, the reply out), and computing the
            # earliest deadline is a fair part of a round's own cost.
            self._rearm_timer()
        if self._waiters:
            self._check_waiters()

    def _update_transports(self, now: float) -> bool:
        """New connections to their servers, then the transport of every connection the stack
        reports active brought up to date (data to the protocol, end of stream, errors).
        Level-triggered: those a transmit touches are looked at in the next round's pass.
        True if there was one at least and each one handed its protocol data (_round)."""
        for server in self._servers:
            listener = server.listener
            if listener is not None and listener.accept_queue:  # rare: a handshake completed
                self._accept_new_connections(server, now)
        transports = self._transports
        dirty = self._dirty
        all_handed_data = True
        for connection in self.stack.drain_active():
            transport = transports.get(connection)
            if transport is not None:
                dirty[transport] = None
            else:
                all_handed_data = False  # a handshake in progress, a TIME-WAIT record, ...
        self._dirty = {}
        if not dirty:
            return False
        for transport in dirty:
            if transport._update(now):
                # Handed data: its task runs next and may answer; a round follows it (_round).
                self._delivered = True
            else:
                all_handed_data = False
        return all_handed_data

    def _send(self, packets: list[bytes], now: float) -> None:
        if self._observers:
            for packet in packets:
                self._notify(now, ">", packet)
        self.link.send_batch(packets, now)

    def _notify(self, now: float, kind: str, item: Any) -> None:
        for observer in list(self._observers):
            try:
                observer(now, kind, item)
            except Exception as error:
                self.loop.call_exception_handler({"message": f"ustack observer {observer!r} failed", "exception": error})

    def _accept_new_connections(self, server: Any, now: float) -> None:
        """The connections whose handshake completed, to `server` (its listener's accept queue)."""
        while server.is_serving() and server.wants_connection():
            connection = server.listener.accept()
            if connection is None:
                break
            server._accept(connection, now)

    def _report_events(self, now: float) -> None:
        events = self.stack.events()
        if not events:
            return
        if self._observers:
            for item in events:
                self._notify(now, "event", item)

    def _rearm_timer(self) -> None:
        """Keep the one timer at or before the earliest deadline. A deadline that moved later
        (the retransmission timer restarted by an ACK, as on nearly every round of a busy
        connection) leaves the armed timer alone: it fires early, finds nothing due and is armed
        again then. Moving it each time made a TimerHandle and left a cancelled one in asyncio's
        heap per round. The deadline is worked out every round, though skipping that while the
        timer heap's top (a lower bound: tests/stack/test_timer_heap.py) is not before the armed
        timer saves ~28 Python calls per echo: that work runs after the reply is sent, and with
        serve and the echo client on two CPUs it keeps serve's CPU awake until the next request
        comes; without it the request more often finds that CPU halted, and waking a halted
        virtual CPU costs more than the work did (scripts/bench_placement.py says why). In
        bench.py, in turn (issue 12): the skip's echo p50 read 123/150/120 us on two CPUs
        against 104/105/107, and 81/83/79 on one CPU against 85/84/84; a 20 us busy wait in its
        place read 95 on two CPUs and 104 on one. Timer firings and rounds per echo did not move."""
        deadline = self.stack.next_deadline()
        if self._link_has_deadlines:
            link_deadline = self.link.next_deadline()
            if link_deadline is not None and (deadline is None or link_deadline < deadline):
                deadline = link_deadline
        armed = self._timer_deadline
        if deadline == armed or (deadline is not None and armed is not None and deadline > armed):
            return
        self._cancel_timer()
        if deadline is not None:
            self._timer_deadline = deadline
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_deadline = None

    def _check_waiters(self) -> None:
        for predicate, future in list(self._waiters):
            if future.done():
                continue
            try:
                if predicate():
                    future.set_result(None)
            except Exception as error:  # a broken predicate fails its waiter, not the runtime
                future.set_exception(error)
