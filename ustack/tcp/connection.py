"""One TCP connection: its variables, the user calls and the one place its state changes.

The connection is a sans-IO object (DESIGN.md rule 2). Feed it segments with `receive`, user
calls (`send`, `recv`, `shutdown`, `close`, `abort`) and timer expiries with `on_timer`; collect
what it wants to send with `transmit`, when it next needs the clock with `next_deadline`, and what
happened with `events`. Nothing here reads a clock or touches a socket: `now` is always passed in.

Its variables (RFC 9293 3.3.1) live in parts, each the one owner of its fields (the README of
this package has the table):

- self.snd     send_side.py     SND.*, ISS, the send buffer, retransmission and recovery books
- self.rcv     receive_side.py  RCV.*, IRS, the receive buffer, TS.Recent, the ACK owed
- self.timers  timer_set.py     every deadline, keyed by Timer
- self.rtt, self.congestion     rtt.py (RFC 6298), congestion/ (RFC 5681, 6582, 9438)

and its processing in one file per responsibility:

- arrival.py          SEGMENT ARRIVES (RFC 9293 3.10.7) in every state, with a fast path
- acknowledgement.py  the ACK field: send window, RTT samples, congestion control, dup ACKs
- output.py           what to send: SYNs, data segmentation, FIN, ACKs
- timers.py           what each timer's expiry does

This file holds the user calls (RFC 9293 3.10.1-3.10.6), ICMP, and what entering a state
releases (`_entered`, called by state.StateMachine._set_state, through which every state change
goes: DESIGN.md rule 3).
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from ustack.tcp.acknowledgement import AcknowledgementProcessing
from ustack.tcp.arrival import SegmentArrival
from ustack.tcp.config import LIVE_SETTINGS, TcpConfig
from ustack.tcp.congestion import create_congestion_control
from ustack.tcp.errors import TcpError, call_error
from ustack.tcp.events import ConnectionFailed, ConnectionSnapshot, Event, SendSpaceAvailable
from ustack.tcp.options import MIN_PEER_MSS, TIMESTAMP_OPTION_SPACE
from ustack.tcp.output import SegmentOutput
from ustack.tcp.ecn import EcnProcessing
from ustack.tcp.rack import RackProcessing
from ustack.tcp.ratelimit import PerSecondLimit
from ustack.tcp.receive_side import ReceiveSide
from ustack.tcp.rtt import RttEstimator
from ustack.tcp.send_side import SEND_SYN, SendSide
from ustack.tcp.seq import SEQ_MASK, seq_diff, seq_le, seq_lt
from ustack.tcp.state import (
    CAN_SEND,
    CLOSE_WAIT,
    CLOSED,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LISTEN,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
    AFTER_CLOSE,
    EVENTS_OFF,
    KEEPALIVE_STATES,
    RELEASE_ALL_STATES,
    State,
    StateMachine,
)
from ustack.tcp.timer_set import CONNECT_TIMER, KEEPALIVE_TIMER, RETRANSMIT_TIMER, TimerSet
from ustack.tcp.time_wait import TimeWait
from ustack.tcp.timers import Timers

_NEVER = float("-inf")

# States in which ABORT sends a reset (RFC 9293 3.10.5).
_ABORT_SENDS_RESET = frozenset({SYN_RECEIVED, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT})


class Connection(SegmentArrival, AcknowledgementProcessing, RackProcessing, EcnProcessing, SegmentOutput, Timers, StateMachine):
    """A transmission control block (RFC 9293 3.3.1) and the machine that drives it."""

    # Slots, not a __dict__: a server holds many idle connections (scripts/bench_memory.py).
    __slots__ = (
        "config", "local_address", "local_port", "remote_address", "remote_port",
        "_foreign_socket_at_open", "state", "error", "_events", "_listener", "passive_open",
        "snd", "rcv", "timers", "rtt", "congestion", "rack", "ecn",
        "_shutdown_after_open", "_closed_fully",
        "send_mss", "send_shift", "receive_shift", "window_scaling_enabled", "syn_offers_options",
        "sack_permitted", "timestamps_enabled",
        "time_wait", "soft_error", "_keepalive_probes_sent", "_control_segments", "_header",
        "_challenge_limit", "unacceptable_ack_budget", "_last_unacceptable_ack",
        "retransmission_timeouts", "_drops", "fast_open", "key",
        "__weakref__",  # a TimeWait record tells the connection when TIME-WAIT ends (time_wait.py)
    )  # fmt: skip
    # The slots above that hold a collections.Counter (or None until the first count), so that
    # stack.counter_attributes, asked for every connection that ends, reads only these.
    COUNTER_SLOTS = ("_drops",)

    # ------------------------------------------------------------------ creation (OPEN, 3.10.1)
    def __init__(
        self,
        config: TcpConfig,
        local_address: int,
        local_port: int,
        remote_address: int | None,
        remote_port: int | None,
        iss: int,
        listener=None,
        record_events: bool = True,
    ):
        self.config = config
        self.local_address = local_address
        self.local_port = local_port
        self.remote_address = remote_address
        self.remote_port = remote_port
        # The 4-tuple (local address, local port, remote address, remote port) that keys us in a
        # Stack's table, set by the Stack (stack.py; None outside one): its timer heap entry and
        # our TimeWait record share that tuple rather than build their own.
        self.key: tuple | None = None
        # The foreign socket as a passive OPEN gave it (None: unspecified), for a return to
        # LISTEN (set by open_passive: only a passive open returns there).
        self._foreign_socket_at_open: tuple | None = None
        self.state = CLOSED
        self.error: TcpError | None = None
        # Made by the first event (StateMachine._emit), or EVENTS_OFF from the start when nobody
        # will read them (Stack.events_wanted): then not even the first state change is described.
        self._events: list[Event] | None = None if record_events else EVENTS_OFF
        self._listener = listener  # the Listener that made us, told when we establish or die
        self.passive_open = False  # reached SYN-RECEIVED from LISTEN (RFC 9293 3.10.7.4 note 1)

        # Send sequence variables, send buffer, retransmission bookkeeping (send_side.py).
        self.snd = SendSide(iss, config.send_buffer_size)
        self._shutdown_after_open = False  # shutdown() called in SYN-SENT
        self._closed_fully = False  # close() rather than shutdown(): we read no more data

        # Receive sequence variables, receive buffer, the ACK we owe (receive_side.py).
        self.rcv = ReceiveSide()

        # Negotiated on the SYNs (options.py); the defaults hold until then.
        self.send_mss = min(config.mss, 536)
        self.send_shift = 0
        self.receive_shift = 0
        self.window_scaling_enabled = False
        self.syn_offers_options = True  # False once our SYN offers only the MSS (syn_retries_with_options)
        self.sack_permitted = False
        self.timestamps_enabled = False
        # In TIME-WAIT and after: the record that does what TIME-WAIT does (time_wait.py).
        self.time_wait: TimeWait | None = None
        # The last ICMP error that did not end the connection (RFC 9293 3.9.2.2), as
        # (ICMP type, code): destination unreachable is type 3, time exceeded 11.
        self.soft_error: tuple[int, int] | None = None

        # Retransmission and congestion state (_new_rtt_estimator, written out: one call fewer).
        self.rtt = RttEstimator(config.initial_rto, config.min_rto, config.max_rto, slop=config.rto_slop)
        self.congestion = create_congestion_control(
            config.congestion_control, self.send_mss, config.initial_window_segments
        )
        self.rack = None  # RACK-TLP's state (rack.py), made by the first data with SACK
        self.ecn = None  # ECN's state (ecn.py), made when the SYNs negotiate it (RFC 3168)
        # Timers: every deadline is kept by the TimerSet (timer_set.py); their expiries are
        # handled in timers.py.
        self.timers = TimerSet()
        self._keepalive_probes_sent = 0

        # Requests to the output path (output.py); what to send is in SendSide.requests.
        self._control_segments: list | None = None  # resets, built when decided
        self._header: tuple | None = None  # (ACK, window, options) of the current transmit()

        # RFC 5961 7: challenge ACKs per second. ACKs for unacceptable segments: at most one per
        # TcpConfig.unacceptable_ack_interval, and a per-second budget that a Stack shares
        # among all its connections (it sets this one). Both are made at their first use
        # (arrival.py) when nobody gave them: most connections never need them.
        self._challenge_limit: PerSecondLimit | None = None
        self.unacceptable_ack_budget: PerSecondLimit | None = None
        self._last_unacceptable_ack = _NEVER

        # Statistics (STATUS, RFC 9293 3.10.6) and drops by named reason (DESIGN.md rule 8).
        self.retransmission_timeouts = 0  # expiries of the retransmission timer (timers.py)
        self._drops: Counter[str] | None = None  # made at the first drop (see `drops`)
        # TCP Fast Open (RFC 7413): a ServerFastOpen or ClientFastOpen (fastopen.py), or None.
        self.fast_open = None

    @classmethod
    def open_active(
        cls,
        config: TcpConfig,
        local_address: int,
        local_port: int,
        remote_address: int,
        remote_port: int,
        iss: int,
        now: float,
        record_events: bool = True,
    ) -> Connection:
        """Active OPEN (RFC 9293 3.10.1): SYN-SENT; the SYN comes out of transmit(now).
        `record_events` as for record_events(), from the start."""
        connection = cls(config, local_address, local_port, remote_address, remote_port, iss,
                         record_events=record_events)
        connection.snd.request(SEND_SYN)
        connection._set_state(SYN_SENT, "active OPEN")
        if config.connect_timeout is not None:
            connection.timers.arm(CONNECT_TIMER, now + config.connect_timeout)
        return connection

    @classmethod
    def open_passive(
        cls,
        config: TcpConfig,
        local_address: int,
        local_port: int,
        iss: int,
        now: float,
        remote_address: int | None = None,
        remote_port: int | None = None,
        listener=None,
        record_events: bool = True,
    ) -> Connection:
        """Passive OPEN (RFC 9293 3.10.1): a LISTEN connection waiting for one SYN.

        A remote left as None is unspecified (the first SYN fills in its port; the stack that
        delivered it fills in remote_address). A socket-style listener with queues is
        `ustack.tcp.Listener`, which makes one of these per SYN. `record_events` as for
        record_events(), from the start.
        """
        connection = cls(config, local_address, local_port, remote_address, remote_port, iss, listener, record_events)
        if listener is None:
            connection._foreign_socket_at_open = (remote_address, remote_port)
        elif not record_events:
            # A Listener's child is in LISTEN only until the next line of Listener.receive hands
            # it its SYN; entering LISTEN releases nothing (_entered), and nobody reads the
            # StateChanged: so it is made in LISTEN, part of its creation (two calls fewer).
            connection.state = LISTEN
            return connection
        connection._set_state(LISTEN, "passive OPEN")
        return connection

    @classmethod
    def open_from_cookie(
        cls, config: TcpConfig, local_address: int, local_port: int, remote_address: int, syn, iss: int, now: float,
        listener=None, record_events: bool = True,
    ) -> Connection:
        """A passive open whose SYN was answered with a SYN cookie (RFC 4987 3.6; syn_cookies.py),
        rebuilt when the cookie came back: the SYN as the cookie remembered it takes a passive
        OPEN to SYN-RECEIVED, and our SYN-ACK with ISN `iss` counts as sent. The caller then hands
        it the ACK that returned the cookie, which completes the handshake as for any other."""
        connection = cls.open_passive(config, local_address, local_port, iss, now, remote_address=remote_address,
                                      remote_port=syn.src_port, listener=listener,
                                      record_events=record_events)
        connection.receive(syn, now)
        connection.transmit(now)  # the SYN-ACK: already sent, with the cookie, by the listener
        connection.snd.forget_timing()  # that SYN-ACK was not sent at `now`: no RTT sample from it
        return connection

    def _new_rtt_estimator(self) -> RttEstimator:
        """A fresh RTT estimator (RFC 6298 2.1), as __init__ makes one."""
        config = self.config
        return RttEstimator(config.initial_rto, config.min_rto, config.max_rto, slop=config.rto_slop)

    # ------------------------------------------------------------------ the one state setter
    def _entered(self, old: State, new: State) -> None:
        """After every state change (StateMachine._set_state, state.py, the one state setter):
        release what the new state no longer needs."""
        if new in RELEASE_ALL_STATES:
            # Leave nothing behind (DESIGN.md rule 6): only the TIME-WAIT timer survives, armed by
            # the caller that knows `now`.
            self.timers.cancel_all()
            if new is TIME_WAIT:
                # Both FINs are in and acknowledged: no data can arrive or need resending, so the
                # loss-recovery books and an empty receive buffer go. A busy server holds more
                # TIME-WAIT connections than live ones (scripts/bench_lifecycles.py).
                self.rack = None
                self.snd.forget_loss_recovery()
                self.rcv.release_empty_buffer()
        elif self.config.keepalive and new not in KEEPALIVE_STATES:
            # Keepalive probes only in ESTABLISHED and CLOSE-WAIT (timers._keepalive_timeout): an
            # idle FIN-WAIT-2 must not wake up for nothing (DESIGN.md rule 6). (Armed only while
            # the config has keepalive on: reconfigure cancels it when it goes off.)
            self.timers.cancel(KEEPALIVE_TIMER)
        if new is CLOSED and self._listener is not None:
            self._listener._child_closed(self)

    def _ack_of_our_fin_arrives(self, segment, now: float) -> bool:
        """The fifth check (RFC 9293 3.10.7.4) for an ACK, in FIN-WAIT-1, CLOSING or LAST-ACK,
        of everything we sent, our FIN included; False, having done nothing, for any other ACK
        (acknowledgement.py takes it). Nothing will ever be sent again: LAST-ACK deletes the TCB,
        CLOSING goes to TIME-WAIT, and FIN-WAIT-1 to FIN-WAIT-2, where only ACKs leave. So what an
        ACK of new data feeds (the RTT estimator, congestion control, RACK-TLP, duplicate-ACK
        and SACK books) would never be read: the send buffer is released, SND.UNA moves, the
        timers that resend or probe stop, the window is taken, and that is all (about 35 calls
        fewer for each side's last ACK of a connection's life: scripts/bench_lifecycles.py)."""
        ack = segment.ack
        snd = self.snd
        # seq_add(end_seq, 1), inline (seq.py): our FIN's ACK is one past the data.
        if ack != snd.max or ack == snd.una or not snd.fin_queued or ack != ((snd.end_seq + 1) & SEQ_MASK):
            return False  # not (only) our FIN's ACK: more in flight, or the FIN not sent yet
        released = snd.acknowledge(ack)  # SND.UNA = SND.MAX, the send buffer emptied
        if snd.duplicate_acks:
            snd.duplicate_acks_ended()
        if self.state is FIN_WAIT_1:
            # On to FIN-WAIT-2, which may last: the timers that resend or probe stop (RFC 6298
            # 5.2: all outstanding data acknowledged), and RACK-TLP's books, the SACK scoreboard
            # and the send times go. (CLOSING and LAST-ACK go on to TIME-WAIT or CLOSED, which
            # stop every timer and release those: _entered.)
            self.timers.cancel_loss_timers()
            self.rack = None
            snd.forget_loss_recovery()
        self._update_send_window(segment)
        if released and snd.blocked:
            snd.space_reported()
            if self._events is not EVENTS_OFF:
                self._emit(SendSpaceAvailable(snd.free_space))
        return True

    def _enter_time_wait(self, now: float) -> None:
        """Both FINs are in and acknowledged (RFC 9293 3.10.7.4): from now on a TimeWait record
        answers every segment, runs the 2*MSL timer and takes ABORT (time_wait.py, the one owner
        of TIME-WAIT). A Stack keeps the record alone and lets this connection go."""
        self.time_wait = TimeWait(self, now)

    def _time_wait_ended(self, cause, error: TcpError | None) -> None:
        """The record closed (2*MSL over, a RST, a new SYN, ABORT): so does this connection."""
        if error is TcpError.RESET:
            self._fail(error, cause)
            return
        if error is not None:
            self.error = error
        self._set_state(CLOSED, cause)

    def _fail(self, error: TcpError, cause) -> None:
        """End the connection with an error the application will see (RFC 9293 3.10); `cause`
        as for _set_state (words or the segment)."""
        self.error = error
        self._emit(ConnectionFailed(error))
        self._set_state(CLOSED, cause)

    def _queue_reset(self, seq: int) -> None:
        """<SEQ=seq><CTL=RST>, sent by the next transmit()."""
        self._queue_control(self._build_reset(seq))

    def _queue_control(self, segment) -> None:
        """A reset (or a reset's answer) decided now, sent first by the next transmit()."""
        if self._control_segments is None:
            self._control_segments = [segment]
        else:
            self._control_segments.append(segment)

    # ------------------------------------------------------------------ user calls
    def send(self, data: bytes, now: float, urgent: bool = False) -> int:
        """SEND (RFC 9293 3.10.2): queue data; returns how many bytes fit in the send buffer.

        urgent=True marks the end of this data as the urgent pointer (RFC 6093: the pointer
        names the byte after the last urgent byte)."""
        state = self.state
        if state is LISTEN:
            if self.remote_address is None or self.remote_port is None:
                raise call_error("foreign_socket_unspecified")
            # RFC 9293 3.10.2: SEND in LISTEN turns the passive open into an active one.
            self.snd.request(SEND_SYN)
            self._set_state(SYN_SENT, "SEND in LISTEN")
            state = SYN_SENT
        if state not in CAN_SEND or self.snd.fin_queued or self._shutdown_after_open:
            if self.error is not None:
                raise call_error("", self.error)
            if state is CLOSED:
                raise call_error("connection_does_not_exist")
            raise call_error("connection_closing")
        accepted = self.snd.write(data, urgent)
        if self.rack is None and self.sack_permitted:
            self._rack_start()  # RACK-TLP's books are made by the first data (rack.py)
        return accepted

    def recv(self, max_bytes: int, now: float) -> bytes:
        """RECEIVE (RFC 9293 3.10.3): up to max_bytes of in-order data.

        Returns b"" only at the end of the stream (the peer's FIN has been read up to). With
        nothing to read yet it raises TcpCallError("would_block"); a failed connection raises
        its error once the buffered data is gone."""
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        buffer = self.rcv.buffer
        if buffer is not None and buffer.readable:
            data = self.rcv.read(max_bytes)
            self._window_may_have_opened()
            return data
        if self.rcv.fin_received:
            return b""
        if self.error is not None:
            raise call_error("", self.error)
        if self.state is CLOSED:
            raise call_error("connection_does_not_exist")
        raise call_error("would_block")

    def recv_chunks(self, max_bytes: int, now: float) -> list:
        """recv(), the data as the pieces the receive buffer held it in, none copied (bytes-like
        objects: bytes, read-only views of received packets, a short bytearray); [] at the end
        of the stream (ReceiveBuffer.read_chunks)."""
        buffer = self.rcv.buffer
        if max_bytes > 0 and buffer is not None and buffer.readable:
            chunks = self.rcv.read_chunks(max_bytes)
            self._window_may_have_opened()
            return chunks
        data = self.recv(max_bytes, now)  # the end of the stream, or why there is nothing
        return [data] if data else []

    def shutdown(self, now: float, cause: str = "CLOSE (shutdown: half-close)") -> None:
        """Half-close: no more sends; our FIN follows the queued data (RFC 9293 3.10.4, 3.6)."""
        state = self.state
        if state is CLOSED:
            if self.error is not None:
                raise call_error("", self.error)
            raise call_error("connection_does_not_exist")
        if state is LISTEN:
            self._set_state(CLOSED, cause)
        elif state is SYN_SENT:
            # RFC 9293 3.10.4 deletes the TCB here; a half-close is kept for after the handshake.
            self._shutdown_after_open = True
        elif state in AFTER_CLOSE:
            # SYN-RECEIVED, ESTABLISHED -> FIN-WAIT-1; CLOSE-WAIT -> LAST-ACK (state.py).
            self.snd.queue_fin()
            self._set_state(AFTER_CLOSE[state], cause)
        # FIN-WAIT-1/2, CLOSING, LAST-ACK, TIME-WAIT: our FIN is already on its way.

    def close(self, now: float) -> None:
        """CLOSE (RFC 9293 3.10.4): shutdown, and the application will read nothing more.

        With unread data in the receive buffer the close is abortive: RST, CLOSED
        (RFC 1122 4.2.2.13), since the peer could otherwise believe the data was consumed."""
        state = self.state
        if state is CLOSED:
            return
        if state is SYN_SENT or state is LISTEN:
            self._set_state(CLOSED, "CLOSE")
            return
        buffer = self.rcv.buffer
        if buffer is not None and buffer.readable and state in _ABORT_SENDS_RESET:
            self._queue_reset(self.snd.max)
            self.error = TcpError.ABORTED
            self._set_state(CLOSED, "CLOSE with unread data: RST (RFC 1122 4.2.2.13)")
            return
        self._closed_fully = True
        self.shutdown(now, "CLOSE")
        self._arm_fin_wait_2(now)  # closed after a shutdown whose FIN is already acknowledged

    def reconfigure(self, now: float, **changes) -> None:
        """Change LIVE_SETTINGS (config.py) of this connection alone, like a socket option set
        after connect(): the connection takes a copy of its TcpConfig with the changes."""
        fixed = set(changes) - LIVE_SETTINGS
        if fixed:
            raise ValueError(f"cannot change {', '.join(sorted(fixed))} on an open connection")
        previous_algorithm = self.config.congestion_control
        self.config = config = dataclasses.replace(self.config, **changes)
        if config.congestion_control != previous_algorithm:
            # TCP_CONGESTION: the new algorithm takes over cwnd and ssthresh (congestion/base.py).
            algorithm = create_congestion_control(config.congestion_control, self.send_mss, config.initial_window_segments)
            algorithm.take_over(self.congestion)
            self.congestion = algorithm
        if "send_buffer_size" in changes:  # SO_SNDBUF
            self.snd.resize(config.send_buffer_size)
        keepalive_changed = any(name.startswith("keepalive") for name in changes)
        if keepalive_changed and (self.state is ESTABLISHED or self.state is CLOSE_WAIT):
            # Keepalive switched on, off or retimed: start the idle period again (RFC 1122 4.2.3.6).
            self._keepalive_probes_sent = 0
            if config.keepalive:
                self.timers.arm(KEEPALIVE_TIMER, now + config.keepalive_idle)
            else:
                self.timers.cancel(KEEPALIVE_TIMER)

    def abort(self, now: float) -> None:
        """ABORT (RFC 9293 3.10.5): RST where the peer has a synchronized TCB, then CLOSED."""
        state = self.state
        if state is CLOSED:
            return
        if state is TIME_WAIT:
            self.time_wait.abort(now)  # no reset (RFC 9293 3.10.5): time_wait.py
            return
        if state in _ABORT_SENDS_RESET:
            self._queue_reset(self.snd.max)
        self.error = TcpError.ABORTED
        self._set_state(CLOSED, "ABORT")

    # ------------------------------------------------------------------ ICMP (from the stack)
    def on_icmp_unreachable(
        self, code: int, next_hop_mtu: int | None, quoted_seq: int, now: float, ip_header_length: int = 20
    ) -> None:
        """An ICMP Destination Unreachable quoting one of our segments (RFC 1122 4.2.3.9,
        RFC 5927, RFC 1191).

        - The quoted sequence number must lie in [SND.UNA, SND.MAX): anything else is stale or
          forged and is ignored (RFC 5927 4.1).
        - Code 4, fragmentation needed: path MTU discovery (RFC 1191) lowers our MSS to fit
          the next hop (never below TcpConfig.min_path_mtu) and sends the segment again at
          once (not before our SYN is acknowledged: a SYN never needs fragmenting).
        - The codes of TcpConfig.icmp_hard_error_codes (by default 2 and 3, protocol or port
          unreachable) while connecting: refused, as Linux reports it. On an established
          connection they are only remembered as a soft error (RFC 5461 advises against aborting).
        - Other codes (network, host unreachable): a soft error; the retransmission timer decides.

        The codes are ICMP's (IPv4); the host translates ICMPv6's to them, and says how long its
        IP header is (`ip_header_length`, 40 for IPv6), which the new MSS leaves room for.
        """
        if not (seq_le(self.snd.una, quoted_seq) and seq_lt(quoted_seq, self.snd.max)):
            self.drops["icmp_sequence_not_in_flight"] += 1
            return
        self.soft_error = (3, code)
        if code == 4:
            if next_hop_mtu is None or next_hop_mtu < 68:
                self.drops["icmp_bad_next_hop_mtu"] += 1
                return
            if not self.snd.syn_acknowledged:
                # The quoted segment is our SYN or SYN-ACK: at most 60 bytes, below every legal
                # MTU, so the message is bogus. Going back over the SYN would also leave nothing
                # to send and no timer to send it (the MSS is settled by the handshake anyway).
                self.drops["icmp_fragmentation_needed_in_handshake"] += 1
                return
            path_mtu = next_hop_mtu
            if path_mtu < self.config.min_path_mtu:
                # RFC 5927 7.2 and RFC 1191: a forged message with a tiny MTU would cut every
                # later segment to a few bytes; like Linux (min_pmtu) never go below the floor.
                self.drops["icmp_next_hop_mtu_below_minimum"] += 1
                path_mtu = self.config.min_path_mtu
            options_space = TIMESTAMP_OPTION_SPACE if self.timestamps_enabled else 0
            # The same floor as for a peer's tiny MSS option (options.MIN_PEER_MSS).
            mss = max(path_mtu - ip_header_length - 20, MIN_PEER_MSS) - options_space
            if mss < self.send_mss:
                self.send_mss = mss
                self.congestion.set_mss(mss)
                self.snd.go_back()  # send what was too big again, in smaller pieces
                self.timers.cancel(RETRANSMIT_TIMER)
            return
        if code in self.config.icmp_hard_error_codes and self.state is SYN_SENT:
            self._fail(TcpError.REFUSED, f"ICMP destination unreachable, code {code}")

    def on_icmp_soft_error(self, icmp_type: int, code: int, quoted_seq: int, now: float) -> None:
        """ICMP Time Exceeded (type 11) or Parameter Problem (type 12) quoting one of our
        segments. RFC 9293 3.9.2.2: both are soft errors, on which TCP MUST NOT abort (MUST-56);
        it makes them available to the application (SHLD-25) and lets the retransmission timer
        decide the connection's fate. As for unreachables,
        only a quoted sequence number that is in flight is believed (RFC 5927 4.1)."""
        if not (seq_le(self.snd.una, quoted_seq) and seq_lt(quoted_seq, self.snd.max)):
            self.drops["icmp_sequence_not_in_flight"] += 1
            return
        self.soft_error = (icmp_type, code)

    # ------------------------------------------------------------------ observing
    def events(self) -> list[Event]:
        """Drain what happened since the last call."""
        events = self._events
        if not events:
            return []  # none yet, or not recorded (StateMachine.record_events)
        self._events = None
        return events

    @property
    def drops(self) -> Counter[str]:
        """Segments dropped, by named reason (DESIGN.md rule 8)."""
        drops = self._drops
        if drops is None:
            drops = self._drops = Counter()
        return drops

    def _accepted(self) -> None:
        """The application accepted this connection: its listener no longer tracks it."""
        self._listener = None

    # Read-only views of the send side (send_side.py owns them), under their RFC 9293 names.
    @property
    def iss(self) -> int:
        return self.snd.iss

    @property
    def snd_una(self) -> int:
        return self.snd.una

    @property
    def snd_nxt(self) -> int:
        return self.snd.nxt

    @property
    def snd_max(self) -> int:
        return self.snd.max

    @property
    def snd_wnd(self) -> int:
        return self.snd.wnd

    @property
    def send_buffer(self):
        return self.snd.buffer

    @property
    def retransmissions(self) -> int:
        return self.snd.retransmissions

    @property
    def bytes_sent(self) -> int:
        return self.snd.bytes_sent

    # Read-only views of the receive side (receive_side.py owns them).
    @property
    def irs(self) -> int | None:
        return self.rcv.irs

    @property
    def rcv_nxt(self) -> int:
        return self.rcv.nxt

    @property
    def receive_buffer(self):
        return self.rcv.buffer

    @property
    def fin_received(self) -> bool:
        return self.rcv.fin_received

    @property
    def bytes_received(self) -> int:
        return self.rcv.bytes_received

    @property
    def readable(self) -> int:
        return 0 if self.rcv.buffer is None else self.rcv.buffer.readable

    @property
    def send_space(self) -> int:
        return self.snd.free_space

    @property
    def at_eof(self) -> bool:
        """The peer's FIN has arrived and everything before it has been read."""
        return self.rcv.fin_received and not self.readable

    @property
    def urgent_mark(self) -> int | None:
        """Bytes still to read before the end of the urgent data, or None (RFC 6093)."""
        if self.rcv.up is None:
            return None
        distance = seq_diff(self.rcv.up, self.rcv.read_seq)
        return distance if distance > 0 else None

    @property
    def is_finished(self) -> bool:
        """CLOSED with nothing left to transmit: the stack may forget this connection."""
        return self.state is CLOSED and not self._control_segments

    def status(self) -> ConnectionSnapshot:
        """STATUS (RFC 9293 3.10.6), by its RFC name."""
        return self.snapshot()

    def snapshot(self) -> ConnectionSnapshot:
        """STATUS (RFC 9293 3.10.6): the variables at this instant, as one frozen record."""
        return ConnectionSnapshot(
            state=self.state,
            local=(self.local_address, self.local_port),
            remote=(self.remote_address, self.remote_port),
            snd_una=self.snd.una,
            snd_nxt=self.snd.nxt,
            snd_wnd=self.snd.wnd,
            rcv_nxt=self.rcv.nxt,
            rcv_wnd=self.rcv.advertised,
            cwnd=self.congestion.cwnd,
            ssthresh=self.congestion.ssthresh,
            congestion_control=self.congestion.name,
            window_scale=(self.send_shift, self.receive_shift) if self.window_scaling_enabled else None,
            srtt=self.rtt.srtt,
            rttvar=self.rtt.rttvar,
            rto=self.rtt.rto,
            retransmissions=self.snd.retransmissions,
            bytes_sent=self.snd.bytes_sent,
            bytes_received=self.rcv.bytes_received,
            send_queue=self.snd.queued,
            receive_queue=self.readable,
            timers=self.timers_armed(),
            error=self.error,
            ecn=self.ecn is not None,
            mss=self.send_mss,
            pacing_rate=self.congestion.pacer.rate if self.congestion.pacer is not None else None,
        )

    def __repr__(self) -> str:
        return (
            f"<Connection {self.local_port}->{self.remote_port} {self.state.value} "
            f"snd.una={self.snd.una} snd.nxt={self.snd.nxt} rcv.nxt={self.rcv.nxt}>"
        )

