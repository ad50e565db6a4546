"""One TCP connection: its variables, the user calls and the one place its state changes.

The connection is a sans-IO object (DESIGN.md rule 2). Feed it segments with `receive`, user
calls (`send`, `recv`, `shutdown`, `close`, `abort`) and timer expiries with `on_timer`; collect
what it wants to send with `transmit`, when it next needs the clock with `next_deadline`, and what
happened with `events`. Nothing here reads a clock or touches a socket: `now` is always passed in.

The class is assembled from parts, one file per responsibility:

- arrival.py        SEGMENT ARRIVES (RFC 9293 3.10.7) in every state, with a fast path
- acknowledgement.py  the ACK field: send window, RTT samples, congestion control, dup ACKs
- output.py         what to send: SYNs, data segmentation, FIN, ACKs, window advertisement
- timers.py         retransmission, delayed ACK, persist, keepalive and TIME-WAIT timers

This file holds the variables (RFC 9293 3.3.1), the user calls (RFC 9293 3.10.1-3.10.6) and
`_set_state`, through which every state change goes (DESIGN.md rule 3).
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from ustack.tcp.acknowledgement import AcknowledgementProcessing
from ustack.tcp.arrival import SegmentArrival
from ustack.tcp.config import LIVE_SETTINGS, TcpConfig
from ustack.tcp.congestion import create_congestion_control
from ustack.tcp.errors import TcpError, call_error
from ustack.tcp.events import ConnectionFailed, ConnectionSnapshot, Event, StateChanged
from ustack.tcp.options import MIN_PEER_MSS, TIMESTAMP_OPTION_SPACE
from ustack.tcp.output import SegmentOutput
from ustack.tcp.ratelimit import PerSecondLimit
from ustack.tcp.rtt import RttEstimator
from ustack.tcp.scoreboard import SackScoreboard
from ustack.tcp.send_buffer import SendBuffer
from ustack.tcp.seq import seq_add, seq_diff, seq_le, seq_lt
from ustack.tcp.state import (
    CAN_SEND,
    CLOSE_WAIT,
    CLOSED,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    LISTEN,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
    State,
    check_transition,
)
from ustack.tcp.timers import Timers

# States in which ABORT sends a reset (RFC 9293 3.10.5).
_ABORT_SENDS_RESET = frozenset({SYN_RECEIVED, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT})


class Connection(SegmentArrival, AcknowledgementProcessing, SegmentOutput, Timers):
    """A transmission control block (RFC 9293 3.3.1) and the machine that drives it."""

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
    ):
        self.config = config
        self.local_address = local_address
        self.local_port = local_port
        self.remote_address = remote_address
        self.remote_port = remote_port
        # The foreign socket as OPEN gave it (None: unspecified), for a return to LISTEN.
        self._foreign_socket_at_open = (remote_address, remote_port)
        self.state = CLOSED
        self.error: TcpError | None = None
        self._events: list[Event] = []
        self._listener = listener  # the Listener that made us, told when we establish or die
        self.passive_open = False  # reached SYN-RECEIVED from LISTEN (RFC 9293 3.10.7.4 note 1)

        # Send sequence variables (RFC 9293 3.3.1). SND.MAX is the highest sequence number sent:
        # after a retransmission timeout SND.NXT goes back to SND.UNA and climbs again.
        self.iss = iss
        self.snd_una = iss
        self.snd_nxt = iss
        self.snd_max = iss
        self.snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = iss
        self.max_snd_wnd = 0  # the largest window the peer offered (RFC 5961 5.2, 3.8.6.2.1)
        self.snd_up: int | None = None  # urgent pointer of data we send (RFC 6093)
        # Our SYN is acknowledged. Not "SND.UNA != ISS": SND.UNA comes round to ISS again after
        # 2**32 - 1 bytes (RFC 9293 3.4: sequence numbers wrap).
        self.syn_acknowledged = False
        self.send_buffer = SendBuffer(config.send_buffer_size, seq_add(iss, 1))
        self._fin_queued = False  # our FIN follows the last byte in the send buffer
        self._shutdown_after_open = False  # shutdown() called in SYN-SENT
        self._closed_fully = False  # close() rather than shutdown(): we read no more data

        # Receive sequence variables. RCV.WND is what we advertised: rcv_adv - rcv_nxt.
        self.irs: int | None = None
        self.rcv_nxt = 0
        self.rcv_adv = 0  # right edge of the window we advertised
        self.rcv_up: int | None = None  # the peer's urgent pointer (RFC 6093)
        self.receive_buffer = None  # created when the peer's SYN tells us its ISN
        self._read_seq = 0  # sequence number of the next byte the application reads
        self.fin_received = False
        self._peer_fin_seq: int | None = None  # a FIN that arrived before all the data in front of it
        self._syn_text = b""  # data on the peer's SYN in a simultaneous open, held until ESTABLISHED

        # Negotiated on the SYNs (options.py); the defaults hold until then.
        self.send_mss = min(config.mss, 536)
        self.send_shift = 0
        self.receive_shift = 0
        self.window_scaling_enabled = False
        self.syn_offers_options = True  # False once our SYN offers only the MSS (syn_retries_with_options)
        self.sack_permitted = False
        self.timestamps_enabled = False
        self.ts_recent = 0  # RFC 7323 4.3
        self.last_ack_sent = 0
        self.peer_sack_blocks: tuple = ()  # the last SACK blocks, D-SACK removed
        self.scoreboard = SackScoreboard()  # all the peer has SACKed above SND.UNA (RFC 6675)
        self._dsack_block: tuple | None = None  # a duplicate range for our next ACK (RFC 2883)
        self.reopening_syn = None  # a SYN that ended TIME-WAIT, for the listener (arrival.py)
        # The last ICMP error that did not end the connection (RFC 9293 3.9.2.2), as
        # (ICMP type, code): destination unreachable is type 3, time exceeded 11.
        self.soft_error: tuple[int, int] | None = None

        # Retransmission and congestion state.
        self.rtt = self._new_rtt_estimator()
        self.congestion = create_congestion_control(
            config.congestion_control, self.send_mss, config.initial_window_segments
        )
        self.duplicate_acks = 0
        # RFC 6582 "recover": SND.MAX when fast recovery began or a retransmission timeout fired.
        self.recover = iss
        self._high_retransmitted = iss  # RFC 6675 HighRxt: the end of the last retransmission in recovery
        # [start, end, SND.NXT when sent] of each retransmission in this recovery (output.py).
        self._recovery_retransmissions: list[list[int]] = []
        self._timed_seq: int | None = None  # Karn's rule: the one segment being timed (RFC 6298 3)
        self._timed_at = 0.0
        self._syn_retransmitted = False
        self._last_send_time = 0.0  # of data or FIN, for the restart after idle (RFC 5681 4.1)

        # Timers: a deadline (virtual seconds) or None when not armed. See timers.py.
        self.retransmit_deadline: float | None = None
        self.retransmit_count = 0  # consecutive expiries without progress
        self.delayed_ack_deadline: float | None = None
        self.persist_deadline: float | None = None
        self._persist_backoff = 0
        self.keepalive_deadline: float | None = None
        self._keepalive_probes_sent = 0
        self.time_wait_deadline: float | None = None
        self.connect_deadline: float | None = None  # TcpConfig.connect_timeout, in SYN-SENT
        self.fin_wait_2_deadline: float | None = None  # TcpConfig.fin_wait_2_timeout, after close()

        # Requests to the output path (output.py).
        self._send_syn = False
        self._ack_now = False
        self._segments_since_ack = 0
        self._fast_retransmit = False
        self._limited_transmit = False  # a duplicate ACK lets one new segment out (RFC 3042)
        self._limited_transmit_bytes = 0  # sent that way beyond cwnd since the first duplicate ACK
        self._window_probe = False
        self._probe_end: int | None = None  # sequence number after an outstanding probe byte
        self._force_send = False  # the persist timer overrides sender SWS avoidance once
        self._keepalive_probe = False
        self._control_segments: list = []  # resets, built when decided
        self._header: tuple | None = None  # (ACK, window, options) of the current transmit()
        self._send_blocked = False  # a send() was cut short: report when space frees up

        # RFC 5961 7: challenge ACKs per second. ACKs for unacceptable segments: at most one per
        # TcpConfig.unacceptable_ack_interval, and a per-second budget that a Stack shares
        # among all its connections (it replaces this one).
        self._challenge_limit = PerSecondLimit(config.challenge_ack_limit)
        self.unacceptable_ack_budget = PerSecondLimit(config.unacceptable_ack_limit)
        self._last_unacceptable_ack = float("-inf")

        # Statistics (STATUS, RFC 9293 3.10.6) and drops by named reason (DESIGN.md rule 8).
        self.retransmissions = 0
        self.retransmission_timeouts = 0  # expiries of the retransmission timer (timers.py)
        self.bytes_sent = 0
        self.bytes_received = 0
        self.drops: Counter[str] = Counter()

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
    ) -> Connection:
        """Active OPEN (RFC 9293 3.10.1): SYN-SENT; the SYN comes out of transmit(now)."""
        connection = cls(config, local_address, local_port, remote_address, remote_port, iss)
        connection._send_syn = True
        connection._set_state(SYN_SENT, "active OPEN")
        if config.connect_timeout is not None:
            connection.connect_deadline = now + config.connect_timeout
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
    ) -> Connection:
        """Passive OPEN (RFC 9293 3.10.1): a LISTEN connection waiting for one SYN.

        A remote left as None is unspecified (the first SYN fills in its port; the stack that
        delivered it fills in remote_address). A socket-style listener with queues is
        `ustack.tcp.Listener`, which makes one of these per SYN.
        """
        connection = cls(config, local_address, local_port, remote_address, remote_port, iss, listener)
        connection._set_state(LISTEN, "passive OPEN")
        return connection

    def _new_rtt_estimator(self) -> RttEstimator:
        config = self.config
        return RttEstimator(config.initial_rto, config.min_rto, config.max_rto, slop=config.rto_slop)

    # ------------------------------------------------------------------ the one state setter
    def _set_state(self, new: State, cause: str) -> None:
        """Change state: check the table (state.py), record the event, release what the new state
        no longer needs. The only assignment to self.state outside __init__."""
        old = self.state
        check_transition(old, new)
        self.state = new
        self._events.append(StateChanged(old, new, cause))
        if new is CLOSED or new is TIME_WAIT:
            # Leave nothing behind (DESIGN.md rule 6): only the TIME-WAIT timer survives, armed by
            # the caller that knows `now`.
            self._cancel_timers()
        elif new is not ESTABLISHED and new is not CLOSE_WAIT:
            # Keepalive probes only in ESTABLISHED and CLOSE-WAIT (timers._keepalive_timeout): an
            # idle FIN-WAIT-2 must not wake up for nothing (DESIGN.md rule 6).
            self.keepalive_deadline = None
        if new is CLOSED and self._listener is not None:
            self._listener._child_closed(self)

    def _fail(self, error: TcpError, cause: str) -> None:
        """End the connection with an error the application will see (RFC 9293 3.10)."""
        self.error = error
        self._events.append(ConnectionFailed(error))
        self._set_state(CLOSED, cause)

    def _queue_reset(self, seq: int) -> None:
        """<SEQ=seq><CTL=RST>, sent by the next transmit()."""
        self._control_segments.append(self._build_reset(seq))

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
            self._send_syn = True
            self._set_state(SYN_SENT, "SEND in LISTEN")
            state = SYN_SENT
        if state not in CAN_SEND or self._fin_queued or self._shutdown_after_open:
            if self.error is not None:
                raise call_error("", self.error)
            if state is CLOSED:
                raise call_error("connection_does_not_exist")
            raise call_error("connection_closing")
        accepted = self.send_buffer.write(data)
        if accepted < len(data):
            self._send_blocked = True
        if urgent and accepted:
            self.snd_up = self.send_buffer.end_seq
        return accepted

    def recv(self, max_bytes: int, now: float) -> bytes:
        """RECEIVE (RFC 9293 3.10.3): up to max_bytes of in-order data.

        Returns b"" only at the end of the stream (the peer's FIN has been read up to). With
        nothing to read yet it raises TcpCallError("would_block"); a failed connection raises
        its error once the buffered data is gone."""
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        buffer = self.receive_buffer
        if buffer is not None and buffer.readable:
            data = buffer.read(max_bytes)
            self._read_seq = seq_add(self._read_seq, len(data))
            if self.rcv_up is not None and seq_le(self.rcv_up, self._read_seq):
                # The urgent data has been read: forget the pointer, which would otherwise seem
                # ahead again (modulo 2**32) after 2 GiB more (RFC 9293 3.8.5, RFC 6093).
                self.rcv_up = None
            self._window_may_have_opened()
            return data
        if self.fin_received:
            return b""
        if self.error is not None:
            raise call_error("", self.error)
        if self.state is CLOSED:
            raise call_error("connection_does_not_exist")
        raise call_error("would_block")

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
        elif state is SYN_RECEIVED or state is ESTABLISHED:
            self._fin_queued = True
            self._set_state(FIN_WAIT_1, cause)
        elif state is CLOSE_WAIT:
            self._fin_queued = True
            self._set_state(LAST_ACK, cause)
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
        buffer = self.receive_buffer
        if buffer is not None and buffer.readable and state in _ABORT_SENDS_RESET:
            self._queue_reset(self.snd_max)
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
        self.config = config = dataclasses.replace(self.config, **changes)
        keepalive_changed = any(name.startswith("keepalive") for name in changes)
        if keepalive_changed and (self.state is ESTABLISHED or self.state is CLOSE_WAIT):
            # Keepalive switched on, off or retimed: start the idle period again (RFC 1122 4.2.3.6).
            self._keepalive_probes_sent = 0
            self.keepalive_deadline = now + config.keepalive_idle if config.keepalive else None

    def abort(self, now: float) -> None:
        """ABORT (RFC 9293 3.10.5): RST where the peer has a synchronized TCB, then CLOSED."""
        state = self.state
        if state is CLOSED:
            return
        if state in _ABORT_SENDS_RESET:
            self._queue_reset(self.snd_max)
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
        if not (seq_le(self.snd_una, quoted_seq) and seq_lt(quoted_seq, self.snd_max)):
            self.drops["icmp_sequence_not_in_flight"] += 1
            return
        self.soft_error = (3, code)
        if code == 4:
            if next_hop_mtu is None or next_hop_mtu < 68:
                self.drops["icmp_bad_next_hop_mtu"] += 1
                return
            if not self.syn_acknowledged:
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
                self.snd_nxt = self.snd_una  # send what was too big again, in smaller pieces
                self.retransmit_deadline = None
            return
        if code in self.config.icmp_hard_error_codes and self.state is SYN_SENT:
            self._fail(TcpError.REFUSED, f"ICMP destination unreachable, code {code}")

    def on_icmp_soft_error(self, icmp_type: int, code: int, quoted_seq: int, now: float) -> None:
        """ICMP Time Exceeded (type 11) or Parameter Problem (type 12) quoting one of our
        segments. RFC 9293 3.9.2.2: both are soft errors, on which TCP MUST NOT abort (MUST-56);
        it makes them available to the application (SHLD-25) and lets the retransmission timer
        decide the connection's fate. As for unreachables,
        only a quoted sequence number that is in flight is believed (RFC 5927 4.1)."""
        if not (seq_le(self.snd_una, quoted_seq) and seq_lt(quoted_seq, self.snd_max)):
            self.drops["icmp_sequence_not_in_flight"] += 1
            return
        self.soft_error = (icmp_type, code)

    # ------------------------------------------------------------------ observing
    def events(self) -> list[Event]:
        """Drain what happened since the last call."""
        events, self._events = self._events, []
        return events

    @property
    def readable(self) -> int:
        return 0 if self.receive_buffer is None else self.receive_buffer.readable

    @property
    def send_space(self) -> int:
        return self.send_buffer.free_space

    @property
    def at_eof(self) -> bool:
        """The peer's FIN has arrived and everything before it has been read."""
        return self.fin_received and not self.readable

    @property
    def urgent_mark(self) -> int | None:
        """Bytes still to read before the end of the urgent data, or None (RFC 6093)."""
        if self.rcv_up is None:
            return None
        distance = seq_diff(self.rcv_up, self._read_seq)
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
            snd_una=self.snd_una,
            snd_nxt=self.snd_nxt,
            snd_wnd=self.snd_wnd,
            rcv_nxt=self.rcv_nxt,
            rcv_wnd=max(0, seq_diff(self.rcv_adv, self.rcv_nxt)),
            cwnd=self.congestion.cwnd,
            ssthresh=self.congestion.ssthresh,
            srtt=self.rtt.srtt,
            rttvar=self.rtt.rttvar,
            rto=self.rtt.rto,
            retransmissions=self.retransmissions,
            bytes_sent=self.bytes_sent,
            bytes_received=self.bytes_received,
            send_queue=self.send_buffer.length,
            receive_queue=self.readable,
            timers=self.timers_armed(),
            error=self.error,
        )

    def __repr__(self) -> str:
        return (
            f"<Connection {self.local_port}->{self.remote_port} {self.state.value} "
            f"snd.una={self.snd_una} snd.nxt={self.snd_nxt} rcv.nxt={self.rcv_nxt}>"
        )

