"""SEGMENT ARRIVES (RFC 9293 3.10.7): what a connection does with each incoming segment.

`receive` first tries the fast path (header prediction): in ESTABLISHED or FIN-WAIT-2, the next
in-order data segment, a plain ACK of new data, either with the peer's FIN; in FIN-WAIT-1, CLOSING
and LAST-ACK, the bare ACK of our FIN. The rest takes the full processing, one method per group:

- CLOSED        3.10.7.1  answer with a reset
- LISTEN        3.10.7.2  a SYN synchronizes the receive side
- SYN-SENT      3.10.7.3  the SYN-ACK (or a simultaneous SYN, or a refusing RST)
- the others    3.10.7.4  eight checks in order: sequence number, RST, (security), SYN, ACK,
                          URG, segment text, FIN
- TIME-WAIT     3.10.7.4  the same checks, done by the connection's TimeWait record (time_wait.py)
"""

from __future__ import annotations

from ustack.tcp.events import DataReadable, EndOfStream, UrgentDataArrived, segment_summary
from ustack.tcp.errors import TcpError
from ustack.tcp.listen_screen import listen_screen, syn_fin_dropped
from ustack.tcp.options import Negotiated
from ustack.tcp.reset import reset_for_unmatched
from ustack.tcp.seq import SEQ_HALF, SEQ_MASK, segment_acceptable, seq_add, seq_gt, seq_le, seq_lt
from ustack.tcp.state import (
    CAN_RECEIVE,
    CLOSED,
    CLOSING,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    LISTEN,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
    AFTER_ACK_OF_FIN,
    AFTER_FIN,
    EVENTS_OFF,
    State,
)
from ustack.tcp.send_side import SEND_SYN
from ustack.tcp.timer_set import CONNECT_TIMER, KEEPALIVE_TIMER, NOT_ARMED, RETRANSMIT_TIMER
from ustack.wire.tcp import ACK, ECE, FIN, PSH, RST, SYN, URG, TcpSegment

# The flags the fast path takes: an ACK, with or without PSH, with or without the peer's FIN.
_FAST_PATH_FLAGS = frozenset({ACK, ACK | PSH, ACK | FIN, ACK | PSH | FIN})
_SYN_FIN = SYN | FIN

class SegmentArrival:
    """The receive half of Connection (see connection.py for the variables)."""

    __slots__ = ()  # the variables are Connection's (connection.py)

    def receive(self, segment: TcpSegment, now: float) -> None:
        """Process one arriving segment (already matched to this connection by its 4-tuple)."""
        if self.config.keepalive and self.timers.is_armed(KEEPALIVE_TIMER):  # armed only if on
            self._keepalive_heard_from_peer(now)
        state = self.state
        if (state is ESTABLISHED or state is FIN_WAIT_2) and self._fast_path(segment, now):
            return
        if (state is FIN_WAIT_1 or state is LAST_ACK or state is CLOSING) and self._ack_of_fin_fast_path(segment, now):
            return
        if state is LISTEN:
            self._listen_arrives(segment, now)  # its checks include the SYN+FIN one (listen_screen)
            return
        if state is TIME_WAIT:
            self.time_wait.receive(segment, now)  # the TIME-WAIT record (time_wait.py)
            return
        if segment.flags & _SYN_FIN == _SYN_FIN and syn_fin_dropped(segment, self.config):
            # (The flags tested here first: this runs for every segment, and almost none has both.)
            # TcpConfig.drop_syn_fin (FreeBSD's drop_synfin, which its TIME-WAIT code never sees).
            self.drops["syn_and_fin"] += 1
            return
        if state is CLOSED:
            self._closed_arrives(segment)
        elif state is SYN_SENT:
            self._syn_sent_arrives(segment, now)
        else:
            self._synchronized_arrives(segment, now)

    # ------------------------------------------------------------------ header prediction
    def _fast_path(self, segment: TcpSegment, now: float) -> bool:
        """The common cases, done with the fewest checks (the "header prediction" of Van
        Jacobson, BSD's tcp_input): the next in-order data segment, a plain ACK of new data, or
        (as Linux's tcp_rcv_established also takes) the next in-order data segment that
        acknowledges new data too, the request/response case where every segment carries both.
        Any of these may carry the peer's FIN, which counts at once (RFC 9293 3.10.7.4 eighth:
        an HTTP answer and its FIN; the FIN a server in FIN-WAIT-2 waits for; either state).
        Returns False, having changed nothing, when the segment needs the full processing of
        RFC 9293 3.10.7.4; what it does is what that processing would do for such a segment."""
        rcv = self.rcv  # rcv and snd read once: this runs for nearly every segment
        rcv_nxt = rcv.nxt
        flags = segment.flags
        if flags not in _FAST_PATH_FLAGS or segment.seq != rcv_nxt:
            return False
        options = segment.options
        if options.sack_blocks:
            return False
        timestamps = None
        if self.timestamps_enabled:
            timestamps = options.timestamps
            # RFC 7323 5.3: an older timestamp needs the PAWS check of the slow path.
            if timestamps is None or (timestamps[0] != rcv.ts_recent and seq_lt(timestamps[0], rcv.ts_recent)):
                return False
        payload = segment.payload
        fin = flags & FIN
        ack = segment.ack
        snd = self.snd
        if ack == snd.una:
            # Acknowledges nothing new: only data or a FIN makes it ours (a bare ACK is a
            # duplicate ACK or a window update). Not in recovery (the slow path feeds PRR even a
            # zero delivery, RFC 6937 3) nor with a tail loss probe out (RACK looks at every ACK
            # then, rack.py).
            if not (payload or fin) or self.congestion.in_recovery or (self.rack is not None and self.rack.tlp_end_seq is not None):
                return False
            new_ack = False
        elif (
            # SND.UNA < SEG.ACK =< SND.MAX as one range test on the distances from SND.UNA, which
            # (unlike seq_lt and seq_le) is false for an ACK half the sequence space away.
            not 0 < (ack - snd.una) & SEQ_MASK <= (snd.max - snd.una) & SEQ_MASK
            or snd.duplicate_acks
            or self.congestion.in_recovery
        ):
            return False  # not an ACK of new data outside loss recovery
        else:
            new_ack = True
        if payload:
            # In-order data with room for it and no hole to fill; and no D-SACK block waiting,
            # which this arrival replaces (RFC 2883 4: a D-SACK reports the most recent packet
            # only, _note_duplicate). In FIN-WAIT-2 after close() nobody will read it: the slow
            # path answers it with a reset (_urgent_text_and_fin).
            buffer = rcv.buffer or rcv.data_buffer()
            if (
                buffer.has_out_of_order
                or rcv.peer_fin_seq is not None
                or rcv.dsack_block is not None
                or len(payload) > ((rcv.adv - rcv_nxt + SEQ_HALF) & SEQ_MASK) - SEQ_HALF  # seq_diff, inline
                or self._closed_fully
            ):
                return False

        # The segment is ours to process. RFC 7323 4.3: it covers Last.ACK.sent, so its
        # timestamp becomes TS.Recent.
        # seq_le(RCV.NXT, Last.ACK.sent), inline (seq.py): once per segment with timestamps.
        last_ack_sent = rcv.last_ack_sent
        if timestamps is not None and (rcv_nxt == last_ack_sent or ((rcv_nxt - last_ack_sent) & SEQ_MASK) >= SEQ_HALF):
            rcv.take_timestamp(timestamps[0])
        self._update_send_window(segment)
        if new_ack:
            # The fifth step for an ACK of new data (acknowledgement.py), then RACK-TLP (rack.py).
            self._new_ack(segment, ack, now)
            if self.rack is not None:
                self._rack_on_ack(ack, False, False, now)
        if payload:
            # The seventh step in its simplest form: append to the in-order data.
            was_empty = not buffer.readable
            rcv.store(rcv_nxt, payload)
            if was_empty and self._events is not EVENTS_OFF:  # no event object when nobody reads them
                self._emit(DataReadable(buffer.readable))
            self._delay_ack(now)
        if fin:
            # The eighth step: every byte before the FIN is in, so it counts (ESTABLISHED ->
            # CLOSE-WAIT, FIN-WAIT-2 -> TIME-WAIT), acknowledged at once.
            self._accept_fin(segment, now)
        return True

    def _ack_of_fin_fast_path(self, segment: TcpSegment, now: float) -> bool:
        """FIN-WAIT-1, CLOSING, LAST-ACK: the bare ACK at RCV.NXT of all we sent, our FIN included
        (most connections' last segment, at each end), in RFC 9293 3.10.7.4's order: PAWS (RFC
        7323 5.3) and SEG.SEQ = RCV.NXT; no RST, no SYN; the ACK of our FIN (its one owner,
        _ack_of_our_fin_arrives) and TS.Recent; no URG, no text; then on to AFTER_ACK_OF_FIN,
        or in FIN-WAIT-1 with the peer's FIN too, to TIME-WAIT (Figure 5 note 2: an HTTP client
        that closes on reading the answer). False, having changed nothing, for anything else."""
        rcv = self.rcv
        flags = segment.flags
        if (flags != ACK and (flags != ACK | FIN or self.state is not FIN_WAIT_1)) or segment.seq != rcv.nxt \
                or segment.payload or not self.snd.syn_acknowledged:  # fmt: skip
            return False
        if self.timestamps_enabled:
            timestamps = segment.options.timestamps
            if timestamps is None or (timestamps[0] != rcv.ts_recent and seq_lt(timestamps[0], rcv.ts_recent)):
                return False  # PAWS, or a missing timestamp: the full checks
        if not self._ack_of_our_fin_arrives(segment, now):
            return False
        if self.timestamps_enabled:
            rcv.remember_timestamp(segment)
        if flags & FIN:
            self._accept_fin(segment, now)  # the eighth step: FIN-WAIT-1 -> TIME-WAIT
        else:
            self._move_to(AFTER_ACK_OF_FIN[self.state], segment, now)
        return True

    # ------------------------------------------------------------------ CLOSED, LISTEN, SYN-SENT
    def _closed_arrives(self, segment: TcpSegment) -> None:
        # RFC 9293 3.10.7.1: everything except a RST draws a RST.
        reply = reset_for_unmatched(segment)
        self.drops["closed"] += 1
        if reply is not None:
            self._queue_control(reply)

    def _listen_arrives(self, segment: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.2: first, second and fourth in listen_screen (shared with Listener)."""
        refused = listen_screen(segment, self.config)
        if refused is not None:
            reason, reply = refused
            self.drops[reason] += 1
            if reply is not None:
                self._queue_control(reply)
            return
        self._syn_arrives_in_listen(segment)

    def _syn_arrives_in_listen(self, segment: TcpSegment) -> None:
        """RFC 9293 3.10.7.2 third: a SYN that passed listen_screen (here, or in the Listener
        that made this connection for it). (The security compartment check has no meaning for us.)"""
        if self.remote_port is None:
            self.remote_port = segment.src_port
        self._synchronize_receive_side(segment)
        self.snd.take_window_from_syn(segment)
        self.passive_open = True
        if segment.payload and self.fast_open is not None and self.fast_open.accept_data:
            self._accept_syn_data(segment)  # RFC 7413 4.2: a valid Fast Open cookie
        elif segment.payload:
            # Data on a SYN is legal but we do not keep it before the handshake completes; the
            # peer will retransmit it (RFC 9293 3.10.7.2 allows queuing or dropping).
            self.drops["data_on_syn"] += 1
        self.snd.request(SEND_SYN)  # the SYN-ACK: <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>
        self._set_state(SYN_RECEIVED, segment)

    def _syn_sent_arrives(self, segment: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.3."""
        flags = segment.flags
        ack = segment.ack
        # first: the ACK must acknowledge our SYN and nothing beyond it.
        if flags & ACK and (seq_le(ack, self.snd.iss) or seq_gt(ack, self.snd.max)):
            self.drops["bad_ack_in_syn_sent"] += 1
            if not flags & RST:
                self._queue_reset(ack)
            return
        # second: RST. Acceptable only with an acceptable ACK (RFC 5961 3.2, RFC 9293 3.10.7.3).
        if flags & RST:
            if flags & ACK:
                self._fail(TcpError.REFUSED, segment)
            else:
                self.drops["rst_without_ack_in_syn_sent"] += 1
            return
        # fourth: SYN.
        if not flags & SYN:
            self.drops["no_syn_in_syn_sent"] += 1  # fifth: neither SYN nor RST
            return
        self._synchronize_receive_side(segment)
        self.rcv.note_arrival(now)  # (quick-ACK mode, output._delay_ack)
        if flags & ACK:
            # Our SYN is acknowledged: ESTABLISHED, and ACK their SYN.
            self._record_ack_of_syn(segment, now)
            if self.fast_open is not None:
                self.fast_open.synack(self, segment)  # RFC 7413 4.1.3, 4.2.2 (fastopen.py)
            self.rcv.owe_ack()
            self._set_state(ESTABLISHED, segment)
            self._after_established(now)
            # "continue processing at the sixth step" (URG, text, FIN) of 3.10.7.4.
            self._urgent_text_and_fin(segment, now)
            return
        # Simultaneous open (RFC 9293 3.5 figure 8): answer <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>.
        self.snd.take_window_from_syn(segment)
        if segment.payload:
            # "queue them for processing after the ESTABLISHED state has been reached" (RFC 9293
            # 3.10.7.3): the text waits, unacknowledged, in _syn_text. A FIN on the SYN is not
            # kept; the peer sends it again, since we never acknowledge it.
            self.rcv.hold_syn_text(segment.payload)
        self.snd.request(SEND_SYN)
        self._set_state(SYN_RECEIVED, segment)

    def _synchronize_receive_side(self, syn: TcpSegment) -> None:
        """The peer's SYN tells us IRS and its options (RFC 9293 3.10.7.2-3)."""
        buffer_size = self.config.receive_buffer_size
        # Our SYN, if we sent one, advertised a window (unscaled, RFC 7323 2.2); it starts at
        # RCV.NXT now. Otherwise nothing is advertised yet: the SYN-ACK will.
        self.rcv.synchronize(
            syn.seq, buffer_size, min(buffer_size, 0xFFFF) if self.state is SYN_SENT else 0,
            max_blocks=self.config.out_of_order_max_blocks,
        )
        negotiated = Negotiated(self.config, syn.options, self.syn_offers_options)
        self.send_mss = negotiated.send_mss
        self.send_shift = negotiated.send_shift
        self.receive_shift = negotiated.receive_shift
        self.window_scaling_enabled = negotiated.window_scaling
        self.sack_permitted = negotiated.sack
        self.timestamps_enabled = negotiated.timestamps
        if self.snd.buffer is not None:
            self._rack_start()  # data written before the handshake; RFC 8985 needs SACK
        if syn.flags & ECE:
            self._ecn_negotiate(syn)  # RFC 3168 6.1.1 (ecn.py)
        if negotiated.timestamps:
            self.rcv.take_timestamp(syn.options.timestamps[0])
        self.congestion.set_mss(self.send_mss)

    def _record_ack_of_syn(self, segment: TcpSegment, now: float) -> None:
        """The ACK of our SYN arrived (in SYN-SENT, SYN-RECEIVED, or FIN-WAIT-1 after a CLOSE in
        SYN-RECEIVED)."""
        self._take_rtt_sample(segment, segment.ack, now)
        self.snd.syn_acknowledged_by(segment, self.send_shift)
        self.timers.cancel(RETRANSMIT_TIMER)
        if self.snd.syn_retransmitted:
            self.rtt.reinitialize_after_syn_timeout()  # RFC 6298 5.7

    def _after_established(self, now: float) -> None:
        # is_armed, in line (timer_set.py): only an active open with a connect_timeout has it.
        deadlines = self.timers.deadlines
        if deadlines is not None and deadlines[CONNECT_TIMER] != NOT_ARMED:
            self.timers.cancel(CONNECT_TIMER)
        if self.config.keepalive and self.state is ESTABLISHED:
            self.timers.arm(KEEPALIVE_TIMER, now + self.config.keepalive_idle)
        if self._shutdown_after_open:
            self.snd.queue_fin()
            self._set_state(FIN_WAIT_1, "CLOSE queued during SYN-SENT")

    # ------------------------------------------------------------------ synchronized states
    def _synchronized_arrives(self, segment: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.4 for SYN-RECEIVED and the synchronized states."""
        flags = segment.flags
        state = self.state
        # RFC 7323 5.3: PAWS rejects a segment whose timestamp is older than TS.Recent.
        if self.timestamps_enabled and not flags & RST:
            timestamps = segment.options.timestamps
            ts_recent = self.rcv.ts_recent
            if timestamps is not None and timestamps[0] != ts_recent and seq_lt(timestamps[0], ts_recent):
                self.drops["paws_old_timestamp"] += 1
                self._ack_for_unacceptable(segment, now)
                return
            if timestamps is None and not self.config.tolerate_missing_timestamps:
                self.drops["missing_timestamp"] += 1  # RFC 7323 3.2: silently
                return

        # first: is the sequence number acceptable? The segment expected next passes each of the
        # four cases (RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND, or SEG.SEQ = RCV.NXT for a zero
        # window), so only another needs the window worked out.
        if segment.seq != self.rcv.nxt and not self._sequence_acceptable(segment):
            self._unacceptable_segment(segment, now)
            return

        # second: RST (RFC 5961 3.2: only an exact match resets; in window draws a challenge).
        if flags & RST:
            self._reset_arrives(segment, now)
            return
        # third: security and precedence have no meaning here (RFC 9293 3.10.7.4 notes they
        # are obsolete); nothing to check.

        # fourth: SYN in a synchronized state (RFC 5961 4.2: a challenge ACK, never a reset).
        if flags & SYN:
            if state is SYN_RECEIVED and self.passive_open:
                self._back_to_listen(segment)
                return
            if not self.config.rfc5961_syn_check:
                # RFC 793 3.9 (before RFC 5961): a SYN in the window is an error: reset, CLOSED.
                # One left of it (the segment reached into the window with what follows it) is
                # old: acknowledge, as the first check would have.
                if seq_lt(segment.seq, self.rcv.nxt):
                    self.drops["old_syn"] += 1
                    self._ack_for_unacceptable(segment, now)
                    return
                self._queue_control(self._build_reset(self.snd.max, self.rcv.nxt))
                self._fail(TcpError.RESET, "SYN in window (RFC 793): " + segment_summary(segment))
                return
            self.drops["syn_in_synchronized_state"] += 1
            self._challenge_ack(now)
            return

        # fifth: ACK.
        if not flags & ACK:
            self.drops["no_ack"] += 1
            return
        if not self.snd.syn_acknowledged:
            # Our SYN is not acknowledged yet: SYN-RECEIVED, or FIN-WAIT-1 after a CLOSE there
            # (RFC 9293 3.10.4).
            if not self._ack_of_syn_arrives(segment, now):
                return
            state = self.state
        elif not (
            (state is FIN_WAIT_1 or state is CLOSING or state is LAST_ACK) and self._ack_of_our_fin_arrives(segment, now)
        ) and not self._ack_arrives(segment, now):
            return  # (an ACK of everything we sent, our FIN included, is the teardown's: connection.py)
        if self.timestamps_enabled:
            # RFC 7323 5.3 with RFC 5961 5 (as Linux does): TS.Recent moves only for a segment
            # that passed the sequence AND the ACK checks. Earlier, a forged segment overlapping
            # RCV.NXT with a bad ACK and a far-future TSval would make every genuine one fail PAWS.
            self.rcv.remember_timestamp(segment)
        # Only in these three states does the ACK of our FIN move us (asked only there: a property
        # that follows the send buffer to its end).
        fin_acknowledged = (state is FIN_WAIT_1 or state is CLOSING or state is LAST_ACK) and self.snd.fin_acknowledged
        if fin_acknowledged and (state is CLOSING or state is LAST_ACK):
            # CLOSING -> TIME-WAIT, LAST-ACK -> CLOSED (state.AFTER_ACK_OF_FIN).
            self._move_to(AFTER_ACK_OF_FIN[state], segment, now)
            return

        self._urgent_text_and_fin(segment, now)
        if fin_acknowledged and self.state is FIN_WAIT_1:
            # Decided after the text and FIN: a FIN this segment carries, if it counts, has taken
            # us straight to TIME-WAIT (Figure 5 note 2); one beyond the window did not count.
            self._move_to(AFTER_ACK_OF_FIN[FIN_WAIT_1], segment, now)

    def _sequence_acceptable(self, segment: TcpSegment) -> bool:
        """The four cases of RFC 9293 3.10.7.4 "first", with RCV.WND = what we advertised."""
        # A zero window admits only the segment at RCV.NXT: its ACK, URG and RST are still
        # processed though its data cannot be stored (this is how zero-window probes get their ACK).
        return segment_acceptable(segment.seq, segment.sequence_length, self.rcv.nxt, self._receive_window())

    def _receive_window(self) -> int:
        """RCV.WND for the acceptability test (ReceiveSide.acceptance_window). FreeBSD keeps no
        socket buffer in a passive SYN-RECEIVED (its SYN cache) nor in TIME-WAIT: there the
        advertised window is all there is (TIME-WAIT: time_wait.py)."""
        advertised_only = self.state is SYN_RECEIVED and self.passive_open
        return self.rcv.acceptance_window(self.config, advertised_only)

    def _unacceptable_segment(self, segment: TcpSegment, now: float) -> None:
        flags = segment.flags
        if flags & RST:
            self.drops["rst_out_of_window"] += 1  # never answer an RST
            return
        if not self.snd.syn_acknowledged and flags & SYN and segment.seq == self.rcv.irs:
            if flags & ACK and seq_lt(self.snd.una, segment.ack) and seq_le(segment.ack, self.snd.max):
                # Simultaneous open: the peer's SYN-ACK repeats its SYN but acknowledges ours.
                self._ack_of_syn_arrives(segment, now)
                return
            # The peer did not get our SYN-ACK and repeats its SYN: repeat the SYN-ACK.
            self.drops["retransmitted_syn"] += 1
            self.snd.request(SEND_SYN)
            return
        if segment.payload and self.sack_permitted and self.config.dsack:
            self.rcv.note_duplicate(segment.seq, len(segment.payload))  # an old duplicate
        self.drops["unacceptable_sequence"] += 1
        self._ack_for_unacceptable(segment, now)

    def _reset_arrives(self, segment: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.4 second, with RFC 5961 3.2."""
        state = self.state
        if segment.seq != self.rcv.nxt and self.config.rfc5961_rst_check:
            self.drops["rst_not_exact"] += 1
            self._challenge_ack(now)
            return
        cause = segment
        if state is SYN_RECEIVED:
            if self.passive_open:
                self._back_to_listen(segment)
            else:
                self._fail(TcpError.REFUSED, cause)  # simultaneous open refused
        else:
            # ESTABLISHED, FIN-WAIT-1/2, CLOSE-WAIT: the "reset" responses of 3.10.7.4. In CLOSING
            # and LAST-ACK RFC 9293 just closes, but our FIN is unacknowledged there, so the
            # application still hears of the reset (ECONNRESET, as Linux and FreeBSD report it).
            self._fail(TcpError.RESET, cause)

    def _back_to_listen(self, segment: TcpSegment) -> None:
        """RFC 9293 3.10.7.4 note 1: a passive open reset in SYN-RECEIVED returns to LISTEN. A
        connection made by a Listener is one TCB per SYN, so it closes instead and its listener
        keeps listening."""
        cause = segment
        if self.fast_open is not None and self.fast_open.accept_data:
            self._fail(TcpError.RESET, cause)  # RFC 7413 4.2: the application may hold it already
            return
        if self._listener is not None:
            self._set_state(CLOSED, cause)
            return
        self.rcv.forget_peer()
        self.timers.cancel(RETRANSMIT_TIMER)
        # As the passive OPEN left it: the foreign socket unspecified again if it was, and no
        # trace of the SYN-ACK's retransmissions in the next handshake's count and RTO.
        self.snd.restart_from_iss()
        self.remote_address, self.remote_port = self._foreign_socket_at_open
        self.rtt = self._new_rtt_estimator()
        self._set_state(LISTEN, cause)

    def _ack_of_syn_arrives(self, segment: TcpSegment, now: float) -> bool:
        """SYN-RECEIVED, fifth check: an ACK of our SYN establishes the connection (or, after a
        CLOSE in SYN-RECEIVED, completes the open in FIN-WAIT-1)."""
        ack = segment.ack
        if not (seq_lt(self.snd.una, ack) and seq_le(ack, self.snd.max)):
            self.drops["bad_ack_in_syn_received"] += 1
            self._queue_reset(ack)  # <SEQ=SEG.ACK><CTL=RST>
            return False
        if self._listener is not None and not self._listener._child_established(self):
            # The accept queue is full: ignore the ACK (as Linux does); the peer's next segment
            # or our SYN-ACK retransmission tries again.
            self.drops["accept_queue_full"] += 1
            return False
        self._record_ack_of_syn(segment, now)
        if self.state is SYN_RECEIVED:
            self._set_state(ESTABLISHED, segment)
        self._after_established(now)
        if self.rcv.syn_text:
            self._accept_syn_text(now)
        return True

    def _accept_syn_data(self, segment: TcpSegment) -> None:
        """Fast Open data on the SYN, taken at once (RFC 7413 4.2): RCV.NXT moves past it, so
        the SYN-ACK acknowledges it, and the application may read it."""
        rcv = self.rcv
        if rcv.store(seq_add(segment.seq, 1), segment.payload):
            self._emit(DataReadable(rcv.buffer.readable))

    def _accept_syn_text(self, now: float) -> None:
        """The text that came on the peer's SYN during a simultaneous open, now that the
        connection is ESTABLISHED (RFC 9293 3.10.7.3): it starts at IRS + 1."""
        rcv = self.rcv
        text = rcv.take_syn_text()
        buffer = rcv.buffer or rcv.data_buffer()
        was_empty = not buffer.readable
        if rcv.store(seq_add(rcv.irs, 1), text):
            if was_empty:
                self._emit(DataReadable(buffer.readable))
            self._delay_ack(now)

    # ------------------------------------------------------------------ URG, text, FIN
    def _urgent_text_and_fin(self, segment: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.4 sixth, seventh and eighth."""
        state = self.state
        if segment.flags & URG and state in CAN_RECEIVE:
            self._urgent_arrives(segment)
        if segment.payload:
            if state in CAN_RECEIVE:
                if self._closed_fully and seq_gt(
                    seq_add(segment.seq, len(segment.payload)), self.rcv.nxt
                ):
                    # New data after close(): nobody will read it; tell the peer (RFC 1122
                    # 4.2.2.13, as Linux does).
                    self._queue_reset(self.snd.max)
                    self._set_state(CLOSED, "data after CLOSE: " + segment_summary(segment))
                    return
                self._accept_data(segment, now)
            else:
                # CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: the peer's FIN came first.
                self.drops["data_after_fin"] += 1
        if segment.flags & FIN:
            self._fin_arrives(segment, now)

    def _urgent_arrives(self, segment: TcpSegment) -> None:
        """RFC 9293 3.10.7.4 sixth and RFC 6093: the pointer is the sequence number after the
        urgent data; the data itself stays inline."""
        # RCV.UP <- max(RCV.UP, SEG.UP); a pointer the application has already read past is
        # not kept (recv() forgets RCV.UP once it is read past, too).
        distance = self.rcv.urgent_pointer(seq_add(segment.seq, segment.urgent_pointer))
        if distance is not None:
            self._emit(UrgentDataArrived(distance))

    def _accept_data(self, segment: TcpSegment, now: float) -> None:
        """Seventh: store the data, move RCV.NXT, and decide when to acknowledge."""
        rcv = self.rcv
        buffer = rcv.buffer or rcv.data_buffer()
        was_empty = not buffer.readable
        had_hole = buffer.has_out_of_order
        held_out_of_order = buffer.out_of_order_bytes
        refused, pruned = buffer.refused_arrivals, buffer.pruned_blocks  # the out-of-order limit
        seq = segment.seq
        if segment.flags & SYN:
            seq = seq_add(seq, 1)  # the data of a SYN-ACK starts after the SYN
        if self.sack_permitted and self.config.dsack:
            rcv.note_duplicate(seq, len(segment.payload))
        stored = rcv.store(seq, segment.payload)
        if buffer.pruned_blocks != pruned:
            self.drops["out_of_order_pruned"] += buffer.pruned_blocks - pruned
        if stored:
            if was_empty and self._events is not EVENTS_OFF:
                self._emit(DataReadable(buffer.readable))
            if had_hole or rcv.dsack_block is not None:
                # RFC 5681 4.2: ACK at once when a gap is filled; and at once when part of the
                # segment was a duplicate, while the D-SACK block describes this arrival.
                self.rcv.owe_ack()
            else:
                self._delay_ack(now)
            if rcv.peer_fin_seq is not None and rcv.peer_fin_seq == rcv.nxt:
                self._accept_fin("queued FIN reached by " + segment_summary(segment), now)
        elif buffer.refused_arrivals != refused:
            # The out-of-order queue is at its limit and this would be its furthest block:
            # dropped without an ACK, as Linux does (tcp_data_queue_ofo), so a peer flooding
            # tiny segments gets nothing back for them.
            self.drops["out_of_order_queue_full"] += 1
        else:
            # Out of order, duplicate, or no room: ACK at once (RFC 5681 4.2, RFC 9293 3.10.7.4),
            # so the sender learns what we hold (and, with SACK, what lies beyond).
            self.rcv.owe_ack()
            if buffer.out_of_order_bytes == held_out_of_order:
                self.drops["duplicate_or_beyond_window"] += 1  # nothing new was kept

    def _fin_arrives(self, segment: TcpSegment, now: float) -> None:
        """Eighth: the FIN counts once every byte before it has arrived."""
        fin_seq = seq_add(segment.seq, len(segment.payload) + (1 if segment.flags & SYN else 0))
        if self.rcv.fin_received:
            self.rcv.owe_ack()  # a repeated FIN: acknowledge again
            return
        if fin_seq != self.rcv.nxt:
            # Data in front of the FIN is missing: remember where the FIN is (no need for the peer
            # to send it again) and ACK what we have.
            if seq_gt(fin_seq, self.rcv.nxt):
                self.rcv.fin_ahead(fin_seq)
            self.rcv.owe_ack()
            return
        self._accept_fin(segment, now)

    def _accept_fin(self, cause: str | TcpSegment, now: float) -> None:
        self.rcv.accept_fin()
        self.rcv.owe_ack()  # a FIN is acknowledged at once
        if self._events is not EVENTS_OFF:
            self._emit(EndOfStream())
        state = self.state
        if state is FIN_WAIT_1 and self.snd.fin_acknowledged:
            self._move_to(TIME_WAIT, cause, now)  # note 2 of Figure 5: FIN and ACK of our FIN
        elif state in AFTER_FIN:
            # ESTABLISHED -> CLOSE-WAIT, FIN-WAIT-1 -> CLOSING, FIN-WAIT-2 -> TIME-WAIT.
            self._move_to(AFTER_FIN[state], cause, now)

    def _move_to(self, new: State, cause: str | TcpSegment, now: float) -> None:
        """A state change that starts a timer: TIME-WAIT waits 2*MSL (RFC 9293 3.4.2,
        3.10.7.4); FIN-WAIT-2 after close() waits for the peer's FIN at most
        TcpConfig.fin_wait_2_timeout (timers._arm_fin_wait_2)."""
        self._set_state(new, cause)
        if new is TIME_WAIT:
            self._enter_time_wait(now)  # connection.py: a TimeWait record takes over
        elif new is FIN_WAIT_2:
            self._arm_fin_wait_2(now)
