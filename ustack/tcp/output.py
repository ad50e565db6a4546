"""What a connection sends, and when (RFC 9293 3.7, 3.8.6).

`transmit(now)` returns every segment due now, in this order: resets decided earlier, our SYN or
SYN-ACK, a fast retransmission, a zero-window or keepalive probe, new (or gone-back) data and our
FIN, a Limited Transmit segment (RFC 3042), and finally a bare ACK if one is owed and nothing else carried it. Every segment but a SYN
of an active open carries an ACK of RCV.NXT and our window, so sending anything pays off an
owed ACK.

Policies, each with its RFC:
- segmentation to the effective send MSS; PSH on the segment that empties the send buffer, i.e.
  the last segment of the last write (RFC 9293 3.9.1 leaves the PSH policy to us);
- sender silly-window avoidance (RFC 9293 3.8.6.2.1) and Nagle (3.7.4);
- loss recovery: fast retransmit (RFC 5681 3.2), Limited Transmit (RFC 3042) and, with SACK,
  what to resend and how much to send in recovery (RFC 6675 NextSeg and pipe);
- when an ACK is owed: delayed ACKs (RFC 9293 3.8.6.3), challenge ACKs at most
  challenge_ack_limit a second (RFC 5961 7), ACKs for unacceptable segments rate-limited;
- receiver silly-window avoidance when advertising the window (3.8.6.2.2, receive_side.py);
- the window is scaled down by our shift (RFC 7323 2.3), never on a SYN;
- SACK blocks, the most recent first (RFC 2018 4), behind a D-SACK block that reports a
  duplicate arrival once, in the first segment sent after it (RFC 2883 4).
"""

from __future__ import annotations

from ustack.tcp.acknowledgement import DUPLICATE_ACK_THRESHOLD
from ustack.tcp.options import TIMESTAMP_MASK, syn_options
from ustack.tcp.ratelimit import challenge_ack_allowed, unacceptable_ack_allowed
from ustack.tcp.seq import SEQ_HALF, SEQ_MASK, seq_add, seq_diff, seq_gt, seq_lt, seq_max
from ustack.tcp.state import (
    CAN_RECEIVE, CLOSE_WAIT, CLOSED, CLOSING, ESTABLISHED, FIN_WAIT_1, LAST_ACK, LISTEN, SYN_RECEIVED, SYN_SENT,
    TIME_WAIT,
)
from ustack.tcp.send_side import (
    FAST_RETRANSMIT, FORCE_SEND, KEEPALIVE_PROBE, LIMITED_TRANSMIT, LOSS_PROBE, SEND_SYN, WINDOW_PROBE,
)
from ustack.tcp.congestion.pacing import Pacer
from ustack.tcp.timer_set import DELAYED_ACK_TIMER, NOT_ARMED, PACING_TIMER, PERSIST_TIMER, RETRANSMIT_TIMER
from ustack.wire.tcp import ACK, CWR, ECE, FIN, NO_OPTIONS, PSH, RST, SYN, URG, TcpOptions, TcpSegment

# The segments and options this module makes for every transmit() are built as plain tuples of
# all their fields, in order: a NamedTuple's own __new__ is a Python function, twice as slow
# (wire/codec.py makes the segments it parses the same way).
_new_tuple = tuple.__new__

# States in which data and our FIN may be (re)transmitted once our SYN is acknowledged.
_SENDING_STATES = frozenset({ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, CLOSING, LAST_ACK})


class SegmentOutput:
    """The send half of Connection (see connection.py for the variables)."""

    __slots__ = ()  # the variables are Connection's (connection.py)

    def transmit(self, now: float) -> list[TcpSegment]:
        """Every segment due now (the connection's side of DESIGN.md's `transmit(now)`)."""
        out = self._control_segments
        if out is None:
            out = []
        else:
            self._control_segments = None
        state = self.state
        if state is CLOSED or state is LISTEN or state is TIME_WAIT:
            if self.time_wait is not None:
                out.extend(self.time_wait.transmit(now))  # TIME-WAIT's ACKs (time_wait.py)
            return out  # only resets go out from here (RFC 9293 3.10.7.1-2)
        # ACK, window and options are the same for every segment of one transmit() call: they
        # are worked out once, by the first segment that needs them (see _build_segment).
        self._header = None
        snd = self.snd
        sent_up_to = snd.max
        requested = snd.requests  # checked first, so that a bulk transfer asks nothing more
        if requested & SEND_SYN:
            if self.fast_open is None or not self.fast_open.syn_held(self):
                self._emit_syn(now, out)
        elif state in _SENDING_STATES and snd.syn_acknowledged or self._sends_before_handshake(state):
            first_new = paced_from = len(out) if out else 0  # out holds a queued reset, rarely
            if requested & FAST_RETRANSMIT and snd.take_request(FAST_RETRANSMIT):
                self._retransmit_first(now, out)
                first_new = self._count_for_prr(out, first_new)  # before PRR's room is used
            if requested & WINDOW_PROBE and snd.take_request(WINDOW_PROBE):
                self._emit_window_probe(now, out)
            congestion = self.congestion
            pacer = None
            if snd.buffer is not None and snd.buffer.length or snd.fin_queued:
                if congestion.in_recovery and snd.has_sacked and snd.nxt == snd.max:
                    limit = self._sack_recovery_output(now, out)
                elif snd.nxt != snd.max and snd.has_sacked:
                    limit = self._resend_after_timeout(now, out, congestion.cwnd)
                else:
                    limit = congestion.cwnd
                if self.config.pacing:
                    pacer, limit = self._paced_limit(now, out, paced_from, limit)  # congestion/pacing.py
                    paced_from = len(out)
                self._emit_data(now, out, limit)
            if congestion.in_recovery:
                self._count_for_prr(out, first_new)
            if requested & LIMITED_TRANSMIT and snd.take_request(LIMITED_TRANSMIT):
                self._emit_limited_transmit(now, out)
            if requested & LOSS_PROBE and snd.take_request(LOSS_PROBE):
                self._emit_loss_probe(now, out)  # RFC 8985 7.3 (rack.py)
            if snd.max != sent_up_to and self.rack is not None:
                self._rack_arm_probe(now)  # new data went out: RFC 8985 7.2 (rack.py)
            # RFC 7661: whether the next ACKs find cwnd used is judged by this flight (base.py).
            # seq_diff(snd.nxt, snd.una), inline (seq.py): once per transmit of a sending state.
            congestion.flight_after_send = ((snd.nxt - snd.una + SEQ_HALF) & SEQ_MASK) - SEQ_HALF
            if pacer is not None:
                self._paced(now, out, paced_from, pacer)
        if requested & KEEPALIVE_PROBE and snd.take_request(KEEPALIVE_PROBE):
            # RFC 1122 4.2.3.6: a segment the peer must acknowledge: SEQ = SND.NXT - 1, no data.
            out.append(self._build_segment(now, seq_add(snd.una, -1), ACK, b""))
        if self.rcv.ack_owed and state is not SYN_SENT and self.rcv.irs is not None:
            # A bare ACK carries SND.MAX, not SND.NXT: after going back to retransmit, SND.NXT
            # lies before what the peer has already received, and a sequence number it finds
            # old would make it drop the ACK and answer with one of its own (as BSD does).
            out.append(self._build_segment(now, snd.max, ACK, b""))
        self._header = None  # nothing of this call's header is kept between calls
        return out

    def _count_for_prr(self, out: list, first: int) -> int:
        """RFC 6937 3: prr_out counts every byte sent during recovery (here, what out[first:]
        carries). Returns where the next count starts."""
        congestion = self.congestion
        if congestion.in_recovery and congestion.prr is not None and len(out) > first:
            congestion.prr.on_sent(sum(len(segment.payload) for segment in out[first:]))
        return len(out)

    # ------------------------------------------------------------------ SYN and SYN-ACK
    def _emit_syn(self, now: float, out: list) -> None:
        """Our SYN (active open) or SYN-ACK (passive or simultaneous open), first or again."""
        config = self.config
        iss = self.snd.iss
        payload = b""
        if self.rcv.irs is None:
            flags, ack = SYN, 0
            limit = config.syn_retries_with_options
            if limit is not None and self.snd.retransmit_count >= limit:
                self.syn_offers_options = False  # only the MSS from now on
            offer = self.syn_offers_options
            options = syn_options(
                config, now, window_scale=config.window_scaling and offer, sack=config.sack and offer,
                timestamps=config.timestamps and offer, ts_recent=0,
            )
            window = min(config.receive_buffer_size, 0xFFFF)
            if config.ecn == "on" and self.syn_asks_for_ecn():
                flags |= ECE | CWR  # RFC 3168 6.1.1: ask for ECN (ecn.py)
            if self.fast_open is not None:  # RFC 7413 (fastopen.py): a cookie, and data
                options, payload = self.fast_open.syn(self, options, self.snd.max == iss)
        else:
            flags, ack = SYN | ACK, self.rcv.nxt
            if self.ecn is not None:
                flags |= ECE  # RFC 3168 6.1.1: agree
            options = syn_options(
                config, now, window_scale=self.window_scaling_enabled, sack=self.sack_permitted,
                timestamps=self.timestamps_enabled, ts_recent=self.rcv.ts_recent,
            )
            if self.fast_open is not None:
                options = self.fast_open.synack_options(options)  # RFC 7413 4.1.2: a cookie
            # RFC 7323 2.2: the window of a SYN is not scaled.
            window = min(self.rcv.free_space, 0xFFFF)
            self.rcv.advertise(seq_add(ack, window))
            self.rcv.acknowledgement_sent()
        segment = (self.local_port, self.remote_port, iss, ack, flags, window, 0, options, payload)
        out.append(_new_tuple(TcpSegment, segment))
        self.snd.syn_sent(now)  # the first one is timed (RFC 6298 3), a repeat is not (Karn)
        if payload:  # Fast Open data went with the SYN
            self.snd.data_sent(seq_add(iss, 1), seq_add(iss, 1 + len(payload)), len(payload), now, False)
        self.timers.arm_unless_armed(RETRANSMIT_TIMER, now + self.rtt.rto)

    def _sends_before_handshake(self, state) -> bool:
        """A Fast Open server may send data once its SYN-ACK is out, before the client's ACK
        (RFC 7413 4.2, as Linux does)."""
        fast_open = self.fast_open
        return (state is SYN_RECEIVED and fast_open is not None and fast_open.accept_data
                and self.snd.max != self.snd.iss)  # fmt: skip

    # ------------------------------------------------------------------ data and FIN
    def _emit_data(self, now: float, out: list, cwnd: int) -> None:
        """Send what the windows allow from SND.NXT on, then the FIN if it is queued. `cwnd`
        limits FlightSize: the congestion window, or in SACK recovery what pipe leaves room for."""
        snd = self.snd
        send_buffer = snd.buffer
        end = snd.end_seq
        mss = self._payload_room()
        nagle = self.config.nagle
        if snd.nxt == snd.una and now - snd.last_send_time > self.rtt.rto and seq_gt(end, snd.nxt):
            # RFC 5681 4.1: after an idle period, do not burst a stale congestion window.
            self.congestion.on_idle_restart(now)
            cwnd = self.congestion.cwnd
        sent = False
        # SND.NXT, what is left to send and FlightSize, kept up to date below as each segment
        # moves SND.NXT over its data (only this loop sends, and nothing in it moves SND.UNA).
        snd_nxt = snd.nxt
        unsent = ((end - snd_nxt + SEQ_HALF) & SEQ_MASK) - SEQ_HALF  # seq_diff, inline (seq.py)
        in_flight = ((snd_nxt - snd.una + SEQ_HALF) & SEQ_MASK) - SEQ_HALF  # seq_diff
        while True:
            if unsent <= 0:
                if unsent == 0 and snd.fin_queued:
                    self._send_at(now, out, snd_nxt, ACK | FIN, b"")
                break
            window = snd.wnd
            if cwnd < window:
                window = cwnd
            length = window - in_flight
            if length > mss:
                # With TSO (config.offload_segments) several whole segments go as one, which the
                # link cuts again; a short tail is left to the rules below, as without TSO.
                length = min(length, unsent, mss * self.config.offload_segments)
                length -= length % mss if length > mss else 0
            if length > unsent:
                length = unsent
            if length <= 0:
                break
            if length < mss and not snd.take_request(FORCE_SEND):  # the persist timer overrides
                if length < unsent:
                    # RFC 9293 3.8.6.2.1: a window-limited small segment waits unless it is at
                    # least half the largest window the peer has offered; but not the oldest
                    # unacknowledged data sent again after a timeout, which goes at once (RFC
                    # 6298 5.4, RFC 9293 3.8.6.2.1 SHLD-16's exception for retransmissions).
                    if length < (snd.max_wnd >> 1) and not (snd_nxt == snd.una and seq_lt(snd_nxt, snd.max)):
                        break
                elif nagle and in_flight and snd.syn_acknowledged and not seq_lt(snd_nxt, snd.max):
                    # RFC 9293 3.7.4 (Nagle; _nagle_holds says which): at most one small segment
                    # unacknowledged (our SYN-ACK is none: a Fast Open server's first data, RFC
                    # 7413 4.2, goes at once). Nagle holds back new data only (RFC 896): a tail
                    # below SND.MAX was sent once already (SYN data the SYN-ACK did not take, RFC
                    # 7413 4.2.2) and goes again now.
                    if self._nagle_holds():
                        break
                snd.short_segment_sent((snd_nxt + length) & SEQ_MASK)  # seq_add
            if length == unsent:
                flags = ACK | PSH | FIN if snd.fin_queued else ACK | PSH
            else:
                flags = ACK
            # The timers once for the whole burst, below: every segment of it would set the same.
            self._send_at(now, out, snd_nxt, flags, send_buffer.peek(snd_nxt, length), False)
            sent = True
            if flags & FIN:
                break  # everything, and the FIN with it
            snd_nxt = snd.nxt
            unsent -= length
            in_flight += length
            if mss != self.send_mss:
                mss = self._payload_room()  # a D-SACK block went out on the first segment only
        if sent:
            self._data_timers(now)
        if (
            snd.nxt == snd.una
            and seq_gt(end, snd.nxt)
            and not self.timers.is_armed(PERSIST_TIMER)
            and not self.timers.is_armed(RETRANSMIT_TIMER)
        ):
            # Data waits, nothing is in flight, so no ACK will come to open the window: probe
            # it (RFC 9293 3.8.6.1).
            self._arm_persist(now)

    def _nagle_holds(self) -> bool:
        """Whether Nagle's algorithm holds a short segment of new data back, data being in flight.

        RFC 896 (RFC 9293 3.7.4): no short segment while any data is unacknowledged. Minshall's
        variant (RFC 9293 3.7.4's reference [68]; Linux's tcp_nagle_check, and the default here,
        TcpConfig.nagle_minshall): none while an EARLIER SHORT segment is unacknowledged. Either
        way at most one short segment is in flight, which is what Nagle is for (no flood of
        tinygrams), but with Minshall's the short tail of a write that follows full-sized
        segments goes at once instead of waiting for their ACK, which a Linux receiver may delay
        by 40 ms (an MTU 65535 download over the TUN waited so for its last piece)."""
        return not self.config.nagle_minshall or self.snd.short_segment_unacknowledged()

    def _send_at(self, now: float, out: list, seq: int, flags: int, payload: bytes, start_timers: bool = True) -> None:
        """Send data and/or FIN starting at `seq` (SND.NXT) and advance SND.NXT over it.
        `start_timers` False: the caller starts the retransmission timer and stops the persist
        timer itself, once for a burst (_emit_data)."""
        segment = self._build_segment(now, seq, flags, payload)
        if self.ecn is not None and payload and not seq_lt(seq, self.snd.max):
            segment = self._ecn_mark(segment)  # ECT(0), not on retransmissions (RFC 3168 6.1.5)
        out.append(segment)
        length = len(payload)
        # With timestamps every ACK gives an RTT sample (RFC 7323 4); without, one segment is timed.
        end = (seq + (length + 1 if flags & FIN else length)) & SEQ_MASK  # seq_add, inline (seq.py)
        self.snd.data_sent(seq, end, length, now, not self.timestamps_enabled)
        if start_timers:
            self._data_timers(now)

    def _data_timers(self, now: float) -> None:
        """Data went out: the retransmission timer runs (RFC 6298 5.1: started if it is not
        running), and no persist timer is needed while it does."""
        timers = self.timers
        timers.arm_unless_armed(RETRANSMIT_TIMER, now + self.rtt.rto)
        # is_armed, in line (timer_set.py), saves a call into cancel() on nearly every burst:
        # the persist timer is rarely armed (the list exists, the line above armed a timer).
        if timers.deadlines[PERSIST_TIMER] != NOT_ARMED:
            timers.cancel(PERSIST_TIMER)

    def _emit_limited_transmit(self, now: float, out: list) -> None:
        """RFC 3042 2 (Limited Transmit): on the first and second duplicate ACK, one segment of
        new data if the peer's window allows it and FlightSize stays at most cwnd + 2*SMSS; cwnd
        itself does not change. The segment keeps the ACK clock going, so that a loss in a small
        flight still draws the third duplicate ACK instead of a retransmission timeout."""
        if self.congestion.in_recovery or not 0 < self.snd.duplicate_acks < DUPLICATE_ACK_THRESHOLD:
            return  # a new ACK or fast retransmit came first
        seq = self.snd.nxt
        if seq != self.snd.max:
            return  # going back after a timeout: what follows SND.NXT is not new data
        unsent = seq_diff(self.snd.end_seq, seq)
        mss = self._payload_room()
        length = mss if mss < unsent else unsent
        if length <= 0:
            return
        in_flight = seq_diff(seq, self.snd.una)
        cwnd = self.congestion.cwnd
        if in_flight + length > self.snd.wnd or in_flight + length > cwnd + 2 * self.send_mss:
            return
        if length < mss:
            if self.config.nagle and self._nagle_holds():
                return  # Nagle (RFC 9293 3.7.4): no more small segments in flight than it allows
            self.snd.short_segment_sent(seq_add(seq, length))
        if length == unsent:
            flags = ACK | PSH | FIN if self.snd.fin_queued else ACK | PSH
        else:
            flags = ACK
        self._send_at(now, out, seq, flags, self.snd.buffer.peek(seq, length))
        # What went beyond cwnd stays out of FlightSize when ssthresh is set (RFC 5681 3.2 step 2).
        self.snd.limited_transmit_sent(min(length, max(in_flight + length - cwnd, 0)))

    def _retransmit_first(self, now: float, out: list) -> None:
        """Fast retransmit (RFC 5681 3.2 step 3): the segment at SND.UNA, SND.NXT unchanged."""
        seq = self.snd.una
        after = self._retransmit_at(now, out, seq, self._payload_room())
        if after != seq:
            self.snd.recovery_retransmission(seq, after)

    def _retransmit_at(self, now: float, out: list, seq: int, most: int) -> int:
        """Send again up to `most` bytes of what was sent from `seq` on (with our FIN if it
        was sent and fits); SND.NXT does not move. Returns the sequence number after it."""
        end = self.snd.end_seq
        fin_sent = self.snd.fin_queued and seq_gt(self.snd.max, end)
        # Only what was sent, up to SND.MAX: a byte beyond it is new data, which _emit_data sends
        # and SND.MAX then covers. Sent from here, the peer's ACK of it would acknowledge data
        # not yet sent and be dropped each time (RFC 9293 3.10.7.4), and the connection would
        # resend the same range until it timed out (tests/tcp/test_retransmit_bounds.py).
        sent_end = self.snd.max if seq_lt(self.snd.max, end) else end
        length = min(most, seq_diff(sent_end, seq))
        if length > 0:
            flags = ACK
            if seq_add(seq, length) == end:
                flags = ACK | PSH | FIN if fin_sent else ACK | PSH
            payload = self.snd.buffer.peek(seq, length)
        elif fin_sent:
            flags, payload, length = ACK | FIN, b"", 0
        else:
            return seq
        out.append(self._build_segment(now, seq, flags, payload))
        after = seq_add(seq, length + 1 if flags & FIN else length)
        self.snd.retransmitted(after, seq, now)  # Karn's rule (RFC 6298 3); RFC 6675 HighRxt
        if seq == self.snd.una:
            # The oldest segment went again: its ACK cannot come before one round trip from now,
            # so the retransmission timer restarts, as Linux (tcp_xmit_retransmit_queue) and
            # FreeBSD (tcp_input stops it before a fast retransmit) do. Else a timer armed by the
            # last new ACK fires just before the ACK of the fast retransmission arrives whenever
            # the RTO is close to the RTT (the 200 ms minimum on a 200 ms path).
            self.timers.arm(RETRANSMIT_TIMER, now + self.rtt.rto)
        return after

    def _sack_recovery_output(self, now: float, out: list) -> int:
        """RFC 6675 5 step (C), in SACK loss recovery: while the room for this ACK holds a
        segment (RFC 6937 PRR's sndcnt; without PRR, ssthresh - pipe: cwnd = ssthresh in
        recovery, RFC 6675 5 step 4.2), NextSeg() picks what to send: a lost
        hole not yet retransmitted (rule 1), else new data (rule 2, done by _emit_data within
        the limit returned here), else a hole below the highest SACKed byte (rule 3)."""
        scoreboard = self.snd.scoreboard
        snd_una = self.snd.una
        snd_nxt = self.snd.nxt
        smss = self.send_mss
        in_flight = seq_diff(snd_nxt, snd_una)
        prr = self.congestion.prr
        if prr is not None:
            room = prr.sendable  # RFC 6937: sndcnt for the ACKs since the last transmit
        else:
            pipe = scoreboard.pipe(snd_una, self.snd.data_end_sent, self.snd.high_retransmitted, smss)
            room = self.congestion.ssthresh - pipe
        new_data_can_go = seq_gt(self.snd.end_seq, snd_nxt) and in_flight < self.snd.wnd
        holes_end = scoreboard.highest_sacked()  # rules 1 and 3
        if holes_end is None:
            holes_end = snd_una  # SND.UNA has passed every block (pipe() forgot them): no hole
        elif new_data_can_go:
            holes_end = scoreboard.lost_below(snd_una, smss)  # rule 1 only
        most = self._payload_room()
        if room >= smss:
            room = self._resend_lost_retransmissions(now, out, room)
        while room >= smss:
            hole = scoreboard.next_hole(seq_max(self.snd.high_retransmitted, snd_una), holes_end)
            if hole is None:
                break
            start, end = hole
            after = self._retransmit_at(now, out, start, min(most, seq_diff(end, start)))
            if after == start:
                break
            self.snd.recovery_retransmission(start, after)
            room -= seq_diff(after, start)
        # Whatever room is left goes to new data: _emit_data keeps FlightSize under this.
        return in_flight + room

    def _resend_after_timeout(self, now: float, out: list, cwnd: int) -> int:
        """Going back from SND.UNA after a retransmission timeout (RFC 6298 5.4) with the SACK
        scoreboard kept (SendSide.go_back_after_timeout): send the holes again as cwnd allows and
        step over what the peer holds, as Linux resends only what it marked lost
        (tcp_timeout_mark_lost keeps the SACKed marks). The flight that cwnd limits leaves the
        SACKed bytes out: they are not in the network. Returns the limit for _emit_data, which
        sends what lies beyond the highest SACKed byte as before (its flight, SND.NXT -
        SND.UNA, counts the SACKed bytes below SND.NXT: they are added to the limit)."""
        snd = self.snd
        scoreboard = snd.scoreboard
        highest = scoreboard.highest_sacked()
        smss = self.send_mss
        while highest is not None and seq_lt(snd.nxt, highest):
            nxt = scoreboard.sacked_end(snd.nxt)
            if nxt != snd.nxt:
                snd.skip_sacked(nxt)  # the peer holds this range: not sent again
                continue
            hole = scoreboard.next_hole(nxt, highest)
            if hole is None:
                break
            hole_length = seq_diff(hole[1], nxt)
            room = cwnd - seq_diff(nxt, snd.una) + scoreboard.sacked_between(snd.una, nxt)
            if room < smss and room < hole_length:
                break  # _emit_data's silly-window rule decides about a smaller piece
            length = min(room, hole_length, self._payload_room())
            self._send_at(now, out, nxt, ACK, snd.buffer.peek(nxt, length))
        return cwnd + scoreboard.sacked_between(snd.una, snd.nxt)

    # ------------------------------------------------------------------ pacing
    def _paced_limit(self, now: float, out: list, sent_from: int, limit: int) -> tuple:
        """TcpConfig.pacing (congestion/pacing.py): the FlightSize limit for new data, lowered
        to what the pacing bucket allows now. What out[sent_from:] already carries
        (retransmissions) went at once and is charged. Returns (the pacer, or None when it sets
        no limit, and the limit)."""
        congestion = self.congestion
        pacer = congestion.pacer
        if pacer is None:
            pacer = congestion.pacer = Pacer()
        tokens = pacer.allowance(now, congestion.cwnd, congestion.ssthresh, self.rtt.srtt, self.send_mss)
        if tokens is None:
            return None, limit  # no RTT yet, or the window is due at once (pacing.py)
        pacer.unpaced_limit = limit
        for segment in out[sent_from:]:
            tokens -= len(segment.payload)
            pacer.sent(len(segment.payload))
        snd = self.snd
        paced = seq_diff(snd.nxt, snd.una) + (int(tokens) if tokens > 0 else 0)
        return pacer, (paced if paced < limit else limit)

    def _paced(self, now: float, out: list, sent_from: int, pacer) -> None:
        """After sending: charge the bucket, and if pacing (not cwnd, the peer's window or the
        application) holds data back, arm the pacing timer for the next burst. The flight that
        RFC 7661's validation and a loss's reduction look at (flight_after_send, base.py) is
        then what cwnd allowed, not what the bucket let out so far: the pacing rate comes from
        cwnd, and cwnd must neither stop growing nor be halved from a flight only pacing kept
        small (Linux reduces from cwnd, and counts a paced flight as cwnd-limited)."""
        for segment in out[sent_from:]:
            pacer.sent(len(segment.payload))
        snd = self.snd
        in_flight = seq_diff(snd.nxt, snd.una)
        unsent = seq_diff(snd.end_seq, snd.nxt)
        room = min(pacer.unpaced_limit, snd.wnd) - in_flight
        if unsent <= 0 or room < min(self.send_mss, unsent):
            return  # nothing held back by pacing
        congestion = self.congestion
        allowed = in_flight + min(room, unsent)
        if allowed > congestion.flight_after_send:
            congestion.flight_after_send = allowed
        if pacer.tokens < self.send_mss:
            self.timers.arm(PACING_TIMER, pacer.next_send_time(now, self.send_mss))

    def _resend_lost_retransmissions(self, now: float, out: list, room: int) -> int:
        """A retransmission can be lost too. RFC 6675 leaves that to the retransmission timer;
        like Linux, we take it as lost when IsLost() holds for data first sent AFTER it (more
        than (DupThresh - 1) * SMSS of it SACKed while the hole is still open): the path
        delivered later segments and not this one. It is sent once more, at no further
        reduction of cwnd (the same loss episode). Returns the room left."""
        snd_una = self.snd.una
        scoreboard = self.snd.scoreboard
        smss = self.send_mss
        kept = []
        for entry in self.snd.recovery_retransmissions:
            start, end, sent_before = entry
            if not seq_gt(end, snd_una):
                continue  # acknowledged since
            kept.append(entry)
            if room >= smss and scoreboard.is_lost(sent_before, smss) and not scoreboard.is_sacked(start):
                start = seq_max(start, snd_una)
                after = self._retransmit_at(now, out, start, min(self._payload_room(), seq_diff(end, start)))
                room -= seq_diff(after, start)
                self.snd.resent_again(entry, start)
        self.snd.keep_recovery_retransmissions(kept)
        return room

    def _emit_window_probe(self, now: float, out: list) -> None:
        """RFC 9293 3.8.6.1: one byte past a zero window. SND.NXT and SND.MAX do not move, so the
        byte is sent again as ordinary data once the window opens; `_probe_end` lets an ACK of
        the probe byte be acceptable."""
        seq = self.snd.nxt
        if seq_diff(self.snd.end_seq, seq) <= 0:
            return
        out.append(self._build_segment(now, seq, ACK, self.snd.buffer.peek(seq, 1)))
        self.snd.probe_sent(seq_add(seq, 1))

    def _payload_room(self) -> int:
        """How much data fits in the next segment. send_mss already leaves room for timestamps;
        SACK blocks take option space too (RFC 2018 3: 2 + 8 bytes a block, led by two NOPs for
        alignment), so a segment that will carry blocks carries that much less data. Without
        this, a segment with SACK blocks would exceed the MTU."""
        if not self.sack_permitted:
            return self.send_mss
        most = 3 if self.timestamps_enabled else 4  # what the 40 bytes of option space hold
        buffer = self.rcv.buffer  # (ReceiveSide.has_out_of_order, in line: once per burst of data)
        blocks = len(buffer.sack_blocks(most)) if buffer is not None and buffer.has_out_of_order else 0
        if self.rcv.dsack_block is not None:
            blocks = min(most, blocks + 1)  # RFC 2883: the D-SACK block rides in front, once
        return self.send_mss - (4 + 8 * blocks) if blocks else self.send_mss

    # ------------------------------------------------------------------ when to acknowledge
    def _delay_ack(self, now: float) -> None:
        """RFC 9293 3.8.6.3: delay the ACK of in-order data, but ACK at least every second
        segment (ack_every_segments) and never later than delayed_ack_timeout."""
        rcv = self.rcv
        quick = self.config.quick_ack_segments
        if quick and rcv.quick_acks_left != 0 and rcv.quick_ack(
            quick, self.send_mss, now, self.snd.last_send_time if self.snd.bytes_sent else None,
            self.config.delayed_ack_timeout,
        ):
            return
        if rcv.segment_to_acknowledge(self.config.ack_every_segments):
            return
        # seq_diff(RCV.NXT, Last.ACK.sent), inline (seq.py): once per in-order data segment.
        unacknowledged = ((rcv.nxt - rcv.last_ack_sent + SEQ_HALF) & SEQ_MASK) - SEQ_HALF
        if unacknowledged >= self.config.ack_every_segments * self.send_mss:
            # A super-segment the kernel coalesced (TUN offload, issue 12) counts as the
            # full-sized segments it carries, as Linux counts bytes beyond one rcv_mss.
            rcv.owe_ack()
            return
        self.timers.arm_unless_armed(DELAYED_ACK_TIMER, now + self.config.delayed_ack_timeout)

    def _challenge_ack(self, now: float) -> None:
        """RFC 5961 7: at most challenge_ack_limit challenge ACKs in any one second (ratelimit.py)."""
        if challenge_ack_allowed(self, now):
            self.rcv.owe_ack()

    def _ack_for_unacceptable(self, segment: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.4 first check: an unacceptable segment is answered with an ACK, within
        the rate limits of ratelimit.unacceptable_ack_allowed."""
        if unacceptable_ack_allowed(self, segment, now):
            self.rcv.owe_ack()

    # ------------------------------------------------------------------ building segments
    def _build_segment(self, now: float, seq: int, flags: int, payload: bytes) -> TcpSegment:
        """A segment carrying ACK = RCV.NXT and our window: it pays off any ACK we owe."""
        header = self._header
        if header is None:
            header = self._acknowledgement_fields(now)  # also sets self._header
        rcv_nxt, window, options = header
        urgent_pointer = 0
        snd_up = self.snd.up
        if snd_up is not None and seq_lt(seq, snd_up):
            # RFC 6093 / RFC 9293 3.8.5: the offset from this segment's SEQ to the byte after the
            # urgent data, on every segment sent while urgent data is ahead.
            flags |= URG
            urgent_pointer = min(seq_diff(snd_up, seq), 0xFFFF)
        if self.rcv.ack_owed:
            self.rcv.ack_carried()
        if self.ecn is not None and self.ecn.echo_ce:
            flags |= ECE  # RFC 3168 6.1.3: until the peer's CWR
        fields = (self.local_port, self.remote_port, seq, rcv_nxt, flags, window, urgent_pointer, options, payload)
        return _new_tuple(TcpSegment, fields)

    def _acknowledgement_fields(self, now: float) -> tuple:
        """(ACK, window field, options) for the segments of this transmit() call. Sending them
        pays off any ACK we owe, so the delayed-ACK bookkeeping is settled here."""
        rcv = self.rcv
        rcv_nxt = rcv.nxt
        dsack = rcv.dsack_block
        if self.timestamps_enabled:
            # ReceiveSide.sack_blocks is asked only when it has blocks to give (a D-SACK block,
            # or data held out of order): most ACKs carry none.
            buffer = rcv.buffer
            if self.sack_permitted and (dsack is not None or (buffer is not None and buffer.has_out_of_order)):
                blocks = rcv.sack_blocks(3)
            else:
                blocks = ()
            # RFC 7323 3.2: TSval is our clock (timestamp_value, in line), TSecr echoes TS.Recent.
            options = _new_tuple(
                TcpOptions, (None, None, False, blocks, (int(now * 1000) & TIMESTAMP_MASK, rcv.ts_recent), None, False)
            )
        elif self.sack_permitted and (rcv.has_out_of_order or dsack is not None):
            options = TcpOptions(None, None, False, rcv.sack_blocks(4), None)
        else:
            options = NO_OPTIONS
        rcv.acknowledgement_sent()  # Last.ACK.sent = RCV.NXT (RFC 7323 4.3), nothing owed now
        deadlines = self.timers.deadlines
        if deadlines is not None and deadlines[DELAYED_ACK_TIMER] != NOT_ARMED:  # is_armed, in line (timer_set.py)
            self.timers.cancel(DELAYED_ACK_TIMER)
        fields = rcv_nxt, rcv.window_field(self.config, self.receive_shift), options
        # A D-SACK block reports one arrival in one segment (RFC 2883 4): the next segment of
        # this transmit() works its fields out again, without it.
        self._header = fields if dsack is None else None
        return fields

    def _build_reset(self, seq: int, ack: int | None = None) -> TcpSegment:
        """<SEQ=seq><CTL=RST>, or <SEQ=seq><ACK=ack><CTL=RST,ACK> when ack is given."""
        if ack is None:
            return TcpSegment(self.local_port, self.remote_port, seq, 0, RST, 0)
        return TcpSegment(self.local_port, self.remote_port, seq, ack, RST | ACK, 0)

    def _window_may_have_opened(self) -> None:
        """After the application read: a window update of its own is owed if the window grew
        enough to matter to the sender (ReceiveSide.window_update_due, RFC 9293 3.8.6.2.2)."""
        if self.state in CAN_RECEIVE and self.rcv.window_update_due(self.config, self.receive_shift):
            self.rcv.owe_ack()
