"""TIME-WAIT (RFC 9293 3.3.2, 3.6.1, 3.10.7.4): the one owner of what a connection does there.

Once both FINs are in and acknowledged, nothing can be sent or received any more: the connection
waits 2*MSL so that a lost last ACK can be sent again when the peer repeats its FIN, and so that
old duplicates of this incarnation die before the 4-tuple is used again. That needs a handful of
numbers, not a whole TCB: `TimeWait` keeps only them, and a Connection entering TIME-WAIT hands
every segment, timer and ABORT to its record from then on (connection._enter_time_wait). The
Stack goes further: it keeps the record alone in its table and lets the full Connection go (its
buffers, congestion control, RTT estimator, RACK, timers...), as Linux swaps a socket for an
inet_timewait_sock (scripts/bench_lifecycles.py: a busy server holds more TIME-WAIT endpoints
than live ones).

What the record keeps, and why:
- the 4-tuple (`key`, the very tuple of the stack's table), for the replies and `ss`;
- SND.NXT and RCV.NXT, the window we last advertised (the ACK's window field, and RCV.WND for
  the acceptability test: FreeBSD too keeps no socket buffer in TIME-WAIT), and the oldest ACK
  still acceptable (RFC 5961 5.2: SND.UNA - MAX.SND.WND);
- TS.Recent when timestamps are on (RFC 7323 5.3 PAWS; RFC 6191: a new SYN with a newer timestamp
  may reopen the 4-tuple);
- the 2*MSL deadline, restarted by a repeated FIN (RFC 9293 3.10.7.4 eighth);
- the config it shares with its listener or stack (msl, rfc1337, the RFC 5961 switches...), the
  rate limits of its ACKs (ratelimit.py), its drop counters and events.

Every ACK it sends is a bare one: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, with timestamps when they
are on and no SACK blocks (nothing is out of order once the FIN is in; Linux's TIME-WAIT socket
sends none either, not even D-SACK).

The Connection it came from, if the application still holds it, is told when TIME-WAIT ends
(its state becomes CLOSED, with the event): through a weak reference, so that the record never
keeps the full TCB alive. Its events are then that Connection's, so an observer sees one
connection from SYN to CLOSED.
"""

from __future__ import annotations

import weakref
from collections import Counter

from ustack.tcp.errors import TcpError
from ustack.tcp.events import ConnectionFailed, ConnectionSnapshot
from ustack.tcp.options import TIMESTAMP_MASK
from ustack.tcp.ratelimit import challenge_ack_allowed, unacceptable_ack_allowed
from ustack.tcp.reset import reset_for_unmatched
from ustack.tcp.seq import segment_acceptable, seq_add, seq_gt, seq_le, seq_lt
from ustack.tcp.state import CLOSED, TIME_WAIT, EVENTS_OFF, StateMachine
from ustack.tcp.summary import segment_summary
from ustack.tcp.timer_set import TIME_WAIT_TIMER
from ustack.wire.tcp import ACK, FIN, NO_OPTIONS, RST, SYN, TcpOptions, TcpSegment

_NEVER = float("-inf")
_new_tuple = tuple.__new__
_SYN_ACK_RST = SYN | ACK | RST
# How snapshots and `ss -o` name the one timer TIME-WAIT runs: "time_wait".
TIME_WAIT_TIMER_LABEL = TIME_WAIT_TIMER.label


class TimeWait(StateMachine):
    """A connection in TIME-WAIT, reduced to what RFC 9293, RFC 7323, RFC 5961 and RFC 6191 need."""

    __slots__ = (
        "key", "snd_nxt", "rcv_nxt", "window", "rcv_wnd", "oldest_ack", "ts_recent", "deadline",
        "config", "state", "error", "reopening_syn", "ack_owed", "_control_segments", "_owner", "_events",
        "_drops", "_challenge_limit", "unacceptable_ack_budget", "_last_unacceptable_ack",
    )  # fmt: skip
    COUNTER_SLOTS = ("_drops",)  # for counters.counter_attributes, as Connection's

    def __init__(self, connection, now: float) -> None:
        """The record of `connection`, which has just entered TIME-WAIT at `now` having accepted
        the peer's FIN (whose ACK is owed)."""
        config = connection.config
        rcv, snd = connection.rcv, connection.snd
        # The connection's key in its Stack's table (the same tuple), or made here outside one.
        self.key = connection.key or (connection.local_address, connection.local_port, connection.remote_address,
                                      connection.remote_port)  # fmt: skip
        self.snd_nxt = snd.max
        self.rcv_nxt = rcv.nxt
        # The window field of our ACKs, worked out as the connection would have (receiver SWS
        # avoidance moves the right edge); RCV.NXT moves no more, so it stays the same.
        self.window = rcv.window_field(config, connection.receive_shift)
        self.rcv_wnd = rcv.acceptance_window(config, True)  # what we advertised, no more
        self.oldest_ack = seq_add(snd.una, -snd.max_wnd)  # RFC 5961 5.2
        self.ts_recent = rcv.ts_recent if connection.timestamps_enabled else None
        self.deadline = now + 2 * config.msl  # RFC 9293 3.4.2
        self.config = config
        self.state = TIME_WAIT
        self.error: TcpError | None = None
        self.reopening_syn: TcpSegment | None = None  # a SYN that ended TIME-WAIT, for the listener
        self.ack_owed = rcv.ack_owed  # the ACK of the FIN that brought us here, if it did
        self._control_segments: list | None = None  # a reset (RFC 793's answer to a SYN in window)
        self._owner = weakref.ref(connection)
        self._events = EVENTS_OFF if connection._events is EVENTS_OFF else None
        self._drops: Counter[str] | None = connection._drops
        self._challenge_limit = connection._challenge_limit
        self.unacceptable_ack_budget = connection.unacceptable_ack_budget
        self._last_unacceptable_ack = connection._last_unacceptable_ack

    # ------------------------------------------------------------------ the 4-tuple
    @property
    def local_address(self):
        return self.key[0]

    @property
    def local_port(self) -> int:
        return self.key[1]

    @property
    def remote_address(self):
        return self.key[2]

    @property
    def remote_port(self) -> int:
        return self.key[3]

    @property
    def snd_una(self) -> int:
        return self.snd_nxt  # everything we sent is acknowledged

    @property
    def owner(self):
        """The Connection this record came from, while somebody still holds it (else None)."""
        return self._owner()

    # ------------------------------------------------------------------ SEGMENT ARRIVES
    def receive(self, segment: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.4 in TIME-WAIT, in its order, with PAWS first (RFC 7323 5.3)."""
        if self.state is not TIME_WAIT:
            self._closed_arrives(segment)
            return
        flags = segment.flags
        config = self.config
        ts_recent = self.ts_recent
        if ts_recent is not None and not flags & RST:
            timestamps = segment.options.timestamps
            if timestamps is None:
                if not config.tolerate_missing_timestamps:
                    self.drops["missing_timestamp"] += 1  # RFC 7323 3.2: silently
                    return
            elif seq_lt(timestamps[0], ts_recent):
                self.drops["paws_old_timestamp"] += 1
                self._ack_for_unacceptable(segment, now)
                return
        if flags & _SYN_ACK_RST == SYN and self._new_syn_may_reopen(segment):
            return
        # first: the sequence number.
        seq, rcv_nxt = segment.seq, self.rcv_nxt
        if not segment_acceptable(seq, segment.sequence_length, rcv_nxt, self.rcv_wnd):  # RCV.WND: what we advertised
            if flags & RST:
                self.drops["rst_out_of_window"] += 1  # never answer an RST
                return
            if flags & FIN and seq_add(seq, len(segment.payload) + 1) == rcv_nxt:
                # The eighth check: a retransmitted FIN is acknowledged again and restarts the
                # 2 MSL wait. Only the FIN we acknowledged can be repeated, so only a FIN at exactly
                # its sequence number counts: forged FINs with guessed sequence numbers must not
                # hold the 4-tuple for ever (issue 9).
                self.deadline = now + 2 * config.msl
            self.drops["unacceptable_sequence"] += 1
            self._ack_for_unacceptable(segment, now)
            return
        # second: RST.
        if flags & RST:
            if config.rfc1337:
                # RFC 1337 section 4 (TIME-WAIT assassination, fix F1): ignore every RST while
                # waiting, without even a challenge ACK.
                self.drops["rst_in_time_wait_rfc1337"] += 1
            elif seq != rcv_nxt and config.rfc5961_rst_check:
                self.drops["rst_not_exact"] += 1  # RFC 5961 3.2
                self._challenge_ack(now)
            else:
                self._end(segment)  # everything was acknowledged both ways
            return
        # fourth: SYN (RFC 5961 4.2: a challenge ACK, never a reset).
        if flags & SYN:
            if config.rfc5961_syn_check:
                self.drops["syn_in_synchronized_state"] += 1
                self._challenge_ack(now)
            elif seq_lt(seq, rcv_nxt):
                self.drops["old_syn"] += 1
                self._ack_for_unacceptable(segment, now)
            else:
                # RFC 793 3.9 (before RFC 5961): a SYN in the window is an error: reset, CLOSED.
                self._control_segments = [TcpSegment(self.key[1], self.key[3], self.snd_nxt, rcv_nxt, RST | ACK, 0)]
                self._end("SYN in window (RFC 793): " + segment_summary(segment), TcpError.RESET)
            return
        # fifth: ACK (RFC 5961 5.2: only within [SND.UNA - MAX.SND.WND, SND.NXT]).
        if not flags & ACK:
            self.drops["no_ack"] += 1
            return
        ack = segment.ack
        if seq_gt(ack, self.snd_nxt):
            self.drops["ack_of_unsent_data"] += 1
            self._challenge_ack(now)
            return
        if seq_lt(ack, self.oldest_ack):
            self.drops["ack_too_old"] += 1
            self._challenge_ack(now)
            return
        if ts_recent is not None:
            # RFC 7323 4.3: TS.Recent follows a segment that covers Last.ACK.sent (RCV.NXT here).
            timestamps = segment.options.timestamps
            if timestamps is not None and seq_le(seq, rcv_nxt) and seq_le(ts_recent, timestamps[0]):
                self.ts_recent = timestamps[0]
        # seventh and eighth: text after the FIN cannot be; a FIN again is acknowledged again.
        if segment.payload:
            self.drops["data_after_fin"] += 1
        if flags & FIN:
            self.ack_owed = True
            self.deadline = now + 2 * config.msl

    def _new_syn_may_reopen(self, syn: TcpSegment) -> bool:
        """RFC 1122 4.2.2.13 and RFC 6191: a new SYN beyond everything of the old incarnation
        (higher sequence number, or a newer timestamp when this one used them) may reopen the
        4-tuple straight from TIME-WAIT. The record closes and keeps the SYN in `reopening_syn`
        for the stack to hand to its listener (if it does not, the peer's SYN retransmission
        finds the 4-tuple free a second later)."""
        if self.ts_recent is not None:
            # RFC 6191 2: a newer timestamp is enough, whatever the sequence number (the new
            # incarnation's ISN need not be higher).
            timestamps = syn.options.timestamps
            if timestamps is None or not seq_gt(timestamps[0], self.ts_recent):
                return False
        elif not seq_gt(syn.seq, self.rcv_nxt):
            return False
        elif not self.config.time_wait_reopen_without_timestamps:
            return False  # RFC 9293 3.10.7.4: only "if the Timestamp Option is used"
        self.reopening_syn = syn
        # The SYN described only for somebody who reads the events (as _set_state does).
        reopening = "new SYN reopens the 4-tuple (RFC 6191)"
        self._end(reopening if self._events is EVENTS_OFF else f"{reopening}: {segment_summary(syn)}")
        return True

    def _closed_arrives(self, segment: TcpSegment) -> None:
        # RFC 9293 3.10.7.1: TIME-WAIT is over; everything but a RST draws a RST.
        self.drops["closed"] += 1
        reply = reset_for_unmatched(segment)
        if reply is not None:
            self._control_segments = [reply]

    def _ack_for_unacceptable(self, segment: TcpSegment, now: float) -> None:
        if unacceptable_ack_allowed(self, segment, now):
            self.ack_owed = True

    def _challenge_ack(self, now: float) -> None:
        if challenge_ack_allowed(self, now):
            self.ack_owed = True

    def congestion_experienced(self) -> None:
        """CE on a segment in TIME-WAIT: nothing is sent any more that could slow down."""

    # ------------------------------------------------------------------ output, time, ABORT
    def transmit(self, now: float) -> list[TcpSegment]:
        """A reset decided earlier, then the ACK owed: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>."""
        out = self._control_segments
        if out is None:
            out = []
        else:
            self._control_segments = None
        if self.ack_owed and self.state is TIME_WAIT:
            self.ack_owed = False
            ts_recent = self.ts_recent
            # RFC 7323 3.2: TSval is our clock (the connection's: timestamp_value, in line), TSecr
            # echoes TS.Recent.
            # Every field in order, through tuple.__new__ (a NamedTuple's own __new__ is a Python
            # function): the last ACK of nearly every connection a server closes first is this one.
            options = NO_OPTIONS if ts_recent is None else _new_tuple(
                TcpOptions, (None, None, False, (), (int(now * 1000) & TIMESTAMP_MASK, ts_recent), None, False))
            key = self.key
            out.append(_new_tuple(TcpSegment, (key[1], key[3], self.snd_nxt, self.rcv_nxt, ACK, self.window, 0, options,
                                               b"")))
        return out

    def next_deadline(self) -> float | None:
        return self.deadline if self.state is TIME_WAIT else None

    @property
    def timers(self) -> TimeWait:
        """The record keeps its one deadline itself, and answers the host's timer heap as a
        connection's TimerSet does (`timers.next_deadline()`)."""
        return self

    def on_timer(self, now: float) -> None:
        if self.state is TIME_WAIT and now >= self.deadline:
            self._end("TIME-WAIT timer (2*MSL)")

    def close(self, now: float) -> None:
        """CLOSE (RFC 9293 3.10.4) in TIME-WAIT: our FIN is sent and acknowledged; nothing to do."""

    def shutdown(self, now: float) -> None:
        """As close(): the sending side is closed already."""

    def abort(self, now: float) -> None:
        """ABORT (RFC 9293 3.10.5): in TIME-WAIT the TCB goes without a reset."""
        if self.state is TIME_WAIT:
            self._end("ABORT", TcpError.ABORTED)

    def _end(self, cause, error: TcpError | None = None) -> None:
        """CLOSED: the stack forgets the record at its next transmit(). The Connection, if it
        is still held, is told (its state, its error and its event); otherwise the record
        reports the change itself."""
        owner = self._owner()
        if owner is not None:
            self.state = CLOSED
            self.error = error
            owner._time_wait_ended(cause, error)
            return
        self.error = error
        if error is TcpError.RESET:
            self._emit(ConnectionFailed(error))
        self._set_state(CLOSED, cause)

    @property
    def is_finished(self) -> bool:
        """CLOSED with nothing left to transmit: the stack may forget this record."""
        return self.state is CLOSED and not self._control_segments

    # ------------------------------------------------------------------ ICMP (from the stack)
    def on_icmp_unreachable(self, code, next_hop_mtu, quoted_seq, now, ip_header_length=20) -> None:
        # Everything we sent is acknowledged: no quoted sequence number can be in flight (RFC 5927 4.1).
        self.drops["icmp_sequence_not_in_flight"] += 1

    def on_icmp_soft_error(self, icmp_type, code, quoted_seq, now) -> None:
        self.drops["icmp_sequence_not_in_flight"] += 1

    # ------------------------------------------------------------------ observing
    def events(self) -> list:
        """Drain what happened: the Connection's events while it is held, else the record's."""
        owner = self._owner()
        if owner is not None:
            return owner.events()
        events = self._events
        if not events:
            return []
        self._events = None
        return events

    def record_events(self, on: bool) -> None:
        StateMachine.record_events(self, on)
        owner = self._owner()
        if owner is not None:
            owner.record_events(on)

    @property
    def drops(self) -> Counter[str]:
        """Segments dropped, by named reason (DESIGN.md rule 8); the Connection's, carried over."""
        drops = self._drops
        if drops is None:
            drops = self._drops = Counter()
            owner = self._owner()
            if owner is not None:
                owner._drops = drops  # one counter for both, so that nothing is counted twice
        return drops

    def timers_armed(self) -> dict[str, float]:
        return {TIME_WAIT_TIMER_LABEL: self.deadline} if self.state is TIME_WAIT else {}

    def snapshot(self) -> ConnectionSnapshot:
        """STATUS (RFC 9293 3.10.6): the Connection's own while somebody holds it (an observer
        such as the browser view charts its cwnd and RTT to the end), else what TIME-WAIT keeps:
        nothing queued or in flight, as Linux's ss shows a TIME-WAIT socket."""
        owner = self._owner()
        if owner is not None:
            return owner.snapshot()
        key = self.key
        return ConnectionSnapshot(
            state=self.state, local=(key[0], key[1]), remote=(key[2], key[3]),
            snd_una=self.snd_nxt, snd_nxt=self.snd_nxt, snd_wnd=0, rcv_nxt=self.rcv_nxt, rcv_wnd=self.rcv_wnd,
            cwnd=None, ssthresh=None, srtt=None, rttvar=None, rto=None, retransmissions=0, bytes_sent=0,
            bytes_received=0, send_queue=0, receive_queue=0, timers=self.timers_armed(), error=self.error,
        )

    def status(self) -> ConnectionSnapshot:
        return self.snapshot()

    def __repr__(self) -> str:
        return (f"<TimeWait {self.key[1]}->{self.key[3]} {self.state.value} snd.nxt={self.snd_nxt} "
                f"rcv.nxt={self.rcv_nxt} until {self.deadline}>")
