"""SEGMENT ARRIVES (RFC 9293 3.10.7): what a connection does with each incoming segment.

`receive` first tries the fast path (header prediction): in ESTABLISHED, the next in-order data
segment or a plain ACK of new data, with nothing unusual about it. Everything else takes the
full processing of RFC 9293, one method per group of states:

- CLOSED        3.10.7.1  answer with a reset
- LISTEN        3.10.7.2  a SYN synchronizes the receive side
- SYN-SENT      3.10.7.3  the SYN-ACK (or a simultaneous SYN, or a refusing RST)
- the others    3.10.7.4  eight checks in order: sequence number, RST, (security), SYN, ACK,
                          URG, segment text, FIN
"""

from __future__ import annotations

from ustack.tcp.events import DataReadable, EndOfStream, UrgentDataArrived, segment_summary
from ustack.tcp.errors import TcpError
from ustack.tcp.options import Negotiated
from ustack.tcp.receive_buffer import ReceiveBuffer
from ustack.tcp.reset import reset_for_unmatched
from ustack.tcp.seq import seq_add, seq_diff, seq_gt, seq_in_window, seq_le, seq_lt
from ustack.tcp.state import (
    CAN_RECEIVE,
    CLOSE_WAIT,
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
)
from ustack.wire.tcp import ACK, FIN, PSH, RST, SYN, URG, TcpSegment

_ACK_OR_ACK_PSH = (ACK, ACK | PSH)
_SYN_FIN = SYN | FIN


class SegmentArrival:
    """The receive half of Connection (see connection.py for the variables)."""

    def receive(self, segment: TcpSegment, now: float) -> None:
        """Process one arriving segment (already matched to this connection by its 4-tuple)."""
        if self.keepalive_deadline is not None:
            self._keepalive_heard_from_peer(now)
        state = self.state
        if state is ESTABLISHED and self._fast_path(segment, now):
            return
        if segment.flags & _SYN_FIN == _SYN_FIN and self.config.drop_syn_fin and state is not TIME_WAIT:
            # TcpConfig.drop_syn_fin (FreeBSD's drop_synfin, which its TIME-WAIT code never sees).
            self.drops["syn_and_fin"] += 1
            return
        if state is CLOSED:
            self._closed_arrives(segment)
        elif state is LISTEN:
            self._listen_arrives(segment, now)
        elif state is SYN_SENT:
            self._syn_sent_arrives(segment, now)
        else:
            self._synchronized_arrives(segment, now)

    # ------------------------------------------------------------------ header prediction
    def _fast_path(self, segment: TcpSegment, now: float) -> bool:
        """The common cases of a bulk transfer, done with the fewest checks (the classic "header
        prediction" of Van Jacobson and BSD): the next in-order data segment, or a plain ACK of
        new data. Returns False, having changed nothing, when the segment needs the full
        processing of RFC 9293 3.10.7.4."""
        rcv_nxt = self.rcv_nxt
        if segment.flags not in _ACK_OR_ACK_PSH or segment.seq != rcv_nxt:
            return False
        options = segment.options
        if options.sack_blocks:
            return False
        timestamps = None
        if self.timestamps_enabled:
            timestamps = options.timestamps
            # RFC 7323 5.3: an older timestamp needs the PAWS check of the slow path.
            if timestamps is None or seq_lt(timestamps[0], self.ts_recent):
                return False
        payload = segment.payload
        ack = segment.ack
        if payload:
            # In-order data that acknowledges nothing new, with room for it and no hole to fill;
            # and no D-SACK block waiting, which this arrival replaces (RFC 2883 4: a D-SACK
            # reports the most recent packet only, _note_duplicate).
            buffer = self.receive_buffer
            if (
                ack != self.snd_una
                or buffer.has_out_of_order
                or self._peer_fin_seq is not None
                or self._dsack_block is not None
                or len(payload) > seq_diff(self.rcv_adv, rcv_nxt)
            ):
                return False
        elif (
            not seq_lt(self.snd_una, ack)
            or not seq_le(ack, self.snd_max)
            or self.duplicate_acks
            or self.congestion.in_recovery
        ):
            return False  # not a plain ACK of new data outside loss recovery

        # The segment is ours to process. RFC 7323 4.3: it covers Last.ACK.sent, so its
        # timestamp becomes TS.Recent.
        if timestamps is not None and seq_le(rcv_nxt, self.last_ack_sent):
            self.ts_recent = timestamps[0]
        self._update_send_window(segment)
        if not payload:
            self._new_ack(segment, ack, now)
            return True
        # The seventh step in its simplest form: append to the in-order data.
        was_empty = not buffer.readable
        advanced = buffer.insert(rcv_nxt, payload)
        self.rcv_nxt = seq_add(rcv_nxt, advanced)
        self.bytes_received += advanced
        if was_empty:
            self._events.append(DataReadable(buffer.readable))
        self._delay_ack(now)
        return True

    # ------------------------------------------------------------------ CLOSED, LISTEN, SYN-SENT
    def _closed_arrives(self, segment: TcpSegment) -> None:
        # RFC 9293 3.10.7.1: everything except a RST draws a RST.
        reply = reset_for_unmatched(segment)
        self.drops["closed"] += 1
        if reply is not None:
            self._control_segments.append(reply)

    def _listen_arrives(self, segment: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.2."""
        flags = segment.flags
        if flags & RST:
            self.drops["rst_in_listen"] += 1  # first: ignore an RST
            return
        if flags & ACK:
            # second: nothing has been sent yet, so any ACK is bad: <SEQ=SEG.ACK><CTL=RST>.
            self.drops["ack_in_listen"] += 1
            self._control_segments.append(reset_for_unmatched(segment))
            return
        if not flags & SYN:
            self.drops["no_syn_in_listen"] += 1  # fourth: other text or control
            return
        # third: a SYN. (The security compartment check has no meaning for us.)
        if self.remote_port is None:
            self.remote_port = segment.src_port
        self._synchronize_receive_side(segment)
        self.snd_wnd = segment.window  # RFC 7323 2.2: the window of a SYN is never scaled
        self.max_snd_wnd = segment.window
        self.snd_wl1 = segment.seq
        self.passive_open = True
        if segment.payload:
            # Data on a SYN is legal but we do not keep it before the handshake completes; the
            # peer will retransmit it (RFC 9293 3.10.7.2 allows queuing or dropping).
            self.drops["data_on_syn"] += 1
        self._send_syn = True  # the SYN-ACK: <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>
        self._set_state(SYN_RECEIVED, segment_summary(segment))

    def _syn_sent_arrives(self, segment: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.3."""
        flags = segment.flags
        ack = segment.ack
        # first: the ACK must acknowledge our SYN and nothing beyond it.
        if flags & ACK and (seq_le(ack, self.iss) or seq_gt(ack, self.snd_max)):
            self.drops["bad_ack_in_syn_sent"] += 1
            if not flags & RST:
                self._queue_reset(ack)
            return
        # second: RST. Acceptable only with an acceptable ACK (RFC 5961 3.2, RFC 9293 3.10.7.3).
        if flags & RST:
            if flags & ACK:
                self._fail(TcpError.REFUSED, segment_summary(segment))
            else:
                self.drops["rst_without_ack_in_syn_sent"] += 1
            return
        # fourth: SYN.
        if not flags & SYN:
            self.drops["no_syn_in_syn_sent"] += 1  # fifth: neither SYN nor RST
            return
        self._synchronize_receive_side(segment)
        if flags & ACK:
            # Our SYN is acknowledged: ESTABLISHED, and ACK their SYN.
            self._record_ack_of_syn(segment, now)
            self._ack_now = True
            self._set_state(ESTABLISHED, segment_summary(segment))
            self._after_established(now)
            # "continue processing at the sixth step" (URG, text, FIN) of 3.10.7.4.
            self._urgent_text_and_fin(segment, now)
            return
        # Simultaneous open (RFC 9293 3.5 figure 8): answer <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>.
        self.snd_wnd = segment.window
        self.max_snd_wnd = segment.window
        self.snd_wl1 = segment.seq
        if segment.payload:
            # "queue them for processing after the ESTABLISHED state has been reached" (RFC 9293
            # 3.10.7.3): the text waits, unacknowledged, in _syn_text. A FIN on the SYN is not
            # kept; the peer sends it again, since we never acknowledge it.
            self._syn_text = segment.payload
        self._send_syn = True
        self._set_state(SYN_RECEIVED, segment_summary(segment))

    def _synchronize_receive_side(self, syn: TcpSegment) -> None:
        """The peer's SYN tells us IRS and its options (RFC 9293 3.10.7.2-3)."""
        self.irs = syn.seq
        self.rcv_nxt = seq_add(syn.seq, 1)
        self._read_seq = self.rcv_nxt
        self.receive_buffer = ReceiveBuffer(
            self.config.receive_buffer_size, self.rcv_nxt, max_blocks=self.config.out_of_order_max_blocks, drops=self.drops
        )
        if self.state is SYN_SENT:
            # Our SYN advertised a window (unscaled, RFC 7323 2.2); it starts at RCV.NXT now.
            self.rcv_adv = seq_add(self.rcv_nxt, min(self.config.receive_buffer_size, 0xFFFF))
        else:
            self.rcv_adv = self.rcv_nxt  # nothing advertised yet: the SYN-ACK will
        negotiated = Negotiated(self.config, syn.options, self.syn_offers_options)
        self.send_mss = negotiated.send_mss
        self.send_shift = negotiated.send_shift
        self.receive_shift = negotiated.receive_shift
        self.window_scaling_enabled = negotiated.window_scaling
        self.sack_permitted = negotiated.sack
        self.timestamps_enabled = negotiated.timestamps
        if negotiated.timestamps:
            self.ts_recent = syn.options.timestamps[0]
        self.congestion.set_mss(self.send_mss)

    def _record_ack_of_syn(self, segment: TcpSegment, now: float) -> None:
        """The ACK of our SYN arrived (in SYN-SENT, SYN-RECEIVED, or FIN-WAIT-1 after a CLOSE in
        SYN-RECEIVED)."""
        self._take_rtt_sample(segment, segment.ack, now)
        self.snd_una = segment.ack
        self.syn_acknowledged = True
        self.retransmit_deadline = None
        self.retransmit_count = 0
        if self._syn_retransmitted:
            self.rtt.reinitialize_after_syn_timeout()  # RFC 6298 5.7
        # The window of the segment that carries SYN is not scaled (RFC 7323 2.2).
        window = segment.window if segment.flags & SYN else segment.window << self.send_shift
        self.snd_wnd = window
        self.max_snd_wnd = max(self.max_snd_wnd, window)
        self.snd_wl1 = segment.seq
        self.snd_wl2 = segment.ack

    def _after_established(self, now: float) -> None:
        self.connect_deadline = None
        if self.config.keepalive and self.state is ESTABLISHED:
            self.keepalive_deadline = now + self.config.keepalive_idle
        if self._shutdown_after_open:
            self._fin_queued = True
            self._set_state(FIN_WAIT_1, "CLOSE queued during SYN-SENT")

    # ------------------------------------------------------------------ synchronized states
    def _synchronized_arrives(self, segment: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.4 for SYN-RECEIVED and the synchronized states."""
        flags = segment.flags
        state = self.state
        # RFC 7323 5.3: PAWS rejects a segment whose timestamp is older than TS.Recent.
        if self.timestamps_enabled and not flags & RST:
            timestamps = segment.options.timestamps
            if timestamps is not None and seq_lt(timestamps[0], self.ts_recent):
                self.drops["paws_old_timestamp"] += 1
                self._ack_for_unacceptable(segment, now)
                return
            if timestamps is None and not self.config.tolerate_missing_timestamps:
                self.drops["missing_timestamp"] += 1  # RFC 7323 3.2: silently
                return

        if state is TIME_WAIT and flags & (SYN | ACK | RST) == SYN and self._new_syn_may_reopen(segment):
            return

        # first: is the sequence number acceptable?
        if not self._sequence_acceptable(segment):
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
                if seq_lt(segment.seq, self.rcv_nxt):
                    self.drops["old_syn"] += 1
                    self._ack_for_unacceptable(segment, now)
                    return
                self._control_segments.append(self._build_reset(self.snd_max, self.rcv_nxt))
                self._fail(TcpError.RESET, "SYN in window (RFC 793): " + segment_summary(segment))
                return
            self.drops["syn_in_synchronized_state"] += 1
            self._challenge_ack(now)
            return

        # fifth: ACK.
        if not flags & ACK:
            self.drops["no_ack"] += 1
            return
        if not self.syn_acknowledged:
            # Our SYN is not acknowledged yet: SYN-RECEIVED, or FIN-WAIT-1 after a CLOSE there
            # (RFC 9293 3.10.4).
            if not self._ack_of_syn_arrives(segment, now):
                return
            state = self.state
        elif not self._ack_arrives(segment, now):
            return
        if self.timestamps_enabled:
            # RFC 7323 5.3 with RFC 5961 5 (as Linux does): TS.Recent moves only for a segment
            # that passed the sequence AND the ACK checks. Earlier, a forged segment overlapping
            # RCV.NXT with a bad ACK and a far-future TSval would make every genuine one fail PAWS.
            self._remember_timestamp(segment)
        fin_acknowledged = self._fin_queued and self.snd_una == seq_add(self.send_buffer.end_seq, 1)
        if fin_acknowledged:
            if state is CLOSING:
                self._enter_time_wait(segment_summary(segment), now)
                return
            if state is LAST_ACK:
                self._set_state(CLOSED, segment_summary(segment))
                return

        self._urgent_text_and_fin(segment, now)
        if fin_acknowledged and self.state is FIN_WAIT_1:
            # Decided after the text and FIN: a FIN this segment carries, if it counts, has taken
            # us straight to TIME-WAIT (Figure 5 note 2); one beyond the window did not count.
            self._set_state(FIN_WAIT_2, segment_summary(segment))
            self._arm_fin_wait_2(now)

    def _new_syn_may_reopen(self, syn: TcpSegment) -> bool:
        """RFC 1122 4.2.2.13 and RFC 6191: a new SYN beyond everything of the old incarnation
        (higher sequence number, and a newer timestamp when both sides use them) may reopen the
        4-tuple straight from TIME-WAIT. This connection closes and keeps the SYN in
        `reopening_syn` for the stack to hand to its listener (if it does not, the peer's SYN
        retransmission finds the 4-tuple free a second later)."""
        timestamps = syn.options.timestamps
        if self.timestamps_enabled:
            # RFC 6191 2: when the old incarnation used timestamps, a newer timestamp is enough,
            # whatever the sequence number (the new incarnation's ISN need not be higher).
            if timestamps is None or not seq_gt(timestamps[0], self.ts_recent):
                return False
        elif not seq_gt(syn.seq, self.rcv_nxt):
            return False
        elif not self.config.time_wait_reopen_without_timestamps:
            return False  # RFC 9293 3.10.7.4: only "if the Timestamp Option is used"
        self.reopening_syn = syn
        self._set_state(CLOSED, "new SYN reopens the 4-tuple (RFC 6191): " + segment_summary(syn))
        return True

    def _sequence_acceptable(self, segment: TcpSegment) -> bool:
        """The four cases of RFC 9293 3.10.7.4 "first", with RCV.WND = what we advertised."""
        window = self._receive_window()
        seq = segment.seq
        length = segment.sequence_length
        if window <= 0:
            # A zero window admits only the segment at RCV.NXT, whose ACK, URG and RST we still
            # process even though its data cannot be stored (the 3.10.7.4 "special allowance";
            # this is how zero-window probes get their ACK).
            return seq == self.rcv_nxt
        if length == 0:
            return seq_in_window(seq, self.rcv_nxt, window)
        return seq_in_window(seq, self.rcv_nxt, window) or seq_in_window(
            seq_add(seq, length - 1), self.rcv_nxt, window
        )

    def _receive_window(self) -> int:
        """RCV.WND: what we advertised, RCV.ADV - RCV.NXT.

        With BSD's window policy (TcpConfig.window_advertisement "free_space") it is all the free
        space, even beyond what the 16-bit field could say (FreeBSD: rcv_wnd = max(sbspace,
        rcv_adv - rcv_nxt)); but only where FreeBSD has a socket buffer: not in a passive
        SYN-RECEIVED (its SYN cache) nor in TIME-WAIT, where the advertised window is all there is."""
        window = seq_diff(self.rcv_adv, self.rcv_nxt)
        if self.config.window_advertisement == "free_space":
            state = self.state
            if state is not TIME_WAIT and not (state is SYN_RECEIVED and self.passive_open):
                free = self.receive_buffer.free_space
                if free > window:
                    window = free
        return window

    def _unacceptable_segment(self, segment: TcpSegment, now: float) -> None:
        flags = segment.flags
        if flags & RST:
            self.drops["rst_out_of_window"] += 1  # never answer an RST
            return
        if not self.syn_acknowledged and flags & SYN and segment.seq == self.irs:
            if flags & ACK and seq_lt(self.snd_una, segment.ack) and seq_le(segment.ack, self.snd_max):
                # Simultaneous open: the peer's SYN-ACK repeats its SYN but acknowledges ours.
                self._ack_of_syn_arrives(segment, now)
                return
            # The peer did not get our SYN-ACK and repeats its SYN: repeat the SYN-ACK.
            self.drops["retransmitted_syn"] += 1
            self._send_syn = True
            return
        if (
            self.state is TIME_WAIT
            and flags & FIN
            and seq_add(segment.seq, len(segment.payload) + 1) == self.rcv_nxt
        ):
            # RFC 9293 3.10.7.4 eighth: a retransmitted FIN in TIME-WAIT is acknowledged again
            # and restarts the 2 MSL wait. Only the FIN we acknowledged can be repeated, so only
            # a FIN at exactly its sequence number counts: forged FINs with guessed sequence
            # numbers must not hold the 4-tuple for ever (issue 9).
            self.time_wait_deadline = now + 2 * self.config.msl
        if segment.payload and self.sack_permitted and self.config.dsack:
            self._note_duplicate(segment.seq, len(segment.payload))  # an old duplicate
        self.drops["unacceptable_sequence"] += 1
        self._ack_for_unacceptable(segment, now)

    def _reset_arrives(self, segment: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.4 second, with RFC 5961 3.2."""
        state = self.state
        if state is TIME_WAIT and self.config.rfc1337:
            # RFC 1337 section 4 (TIME-WAIT assassination, fix F1): ignore every RST while
            # waiting, without even a challenge ACK.
            self.drops["rst_in_time_wait_rfc1337"] += 1
            return
        if segment.seq != self.rcv_nxt and self.config.rfc5961_rst_check:
            self.drops["rst_not_exact"] += 1
            self._challenge_ack(now)
            return
        cause = segment_summary(segment)
        if state is SYN_RECEIVED:
            if self.passive_open:
                self._back_to_listen(segment)
            else:
                self._fail(TcpError.REFUSED, cause)  # simultaneous open refused
        elif state is TIME_WAIT:
            self._set_state(CLOSED, cause)  # everything was acknowledged both ways
        else:
            # ESTABLISHED, FIN-WAIT-1/2, CLOSE-WAIT: the "reset" responses of 3.10.7.4. In CLOSING
            # and LAST-ACK RFC 9293 just closes, but our FIN is unacknowledged there, so the
            # application still hears of the reset (ECONNRESET, as Linux and FreeBSD report it).
            self._fail(TcpError.RESET, cause)

    def _back_to_listen(self, segment: TcpSegment) -> None:
        """RFC 9293 3.10.7.4 note 1: a passive open reset in SYN-RECEIVED returns to LISTEN. A
        connection made by a Listener is one TCB per SYN, so it closes instead and its listener
        keeps listening."""
        cause = segment_summary(segment)
        if self._listener is not None:
            self._set_state(CLOSED, cause)
            return
        self.irs = None
        self.receive_buffer = None
        self.retransmit_deadline = None
        self._send_syn = False
        self.snd_nxt = self.snd_max = self.snd_una = self.iss
        # As the passive OPEN left it: the foreign socket unspecified again if it was, and no
        # trace of the SYN-ACK's retransmissions in the next handshake's count and RTO.
        self.remote_address, self.remote_port = self._foreign_socket_at_open
        self.retransmit_count = 0
        self._syn_retransmitted = False
        self._timed_seq = None
        self.rtt = self._new_rtt_estimator()
        self._set_state(LISTEN, cause)

    def _ack_of_syn_arrives(self, segment: TcpSegment, now: float) -> bool:
        """SYN-RECEIVED, fifth check: an ACK of our SYN establishes the connection (or, after a
        CLOSE in SYN-RECEIVED, completes the open in FIN-WAIT-1)."""
        ack = segment.ack
        if not (seq_lt(self.snd_una, ack) and seq_le(ack, self.snd_max)):
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
            self._set_state(ESTABLISHED, segment_summary(segment))
        self._after_established(now)
        if self._syn_text:
            self._accept_syn_text(now)
        return True

    def _accept_syn_text(self, now: float) -> None:
        """The text that came on the peer's SYN during a simultaneous open, now that the
        connection is ESTABLISHED (RFC 9293 3.10.7.3): it starts at IRS + 1."""
        text, self._syn_text = self._syn_text, b""
        buffer = self.receive_buffer
        was_empty = not buffer.readable
        advanced = buffer.insert(seq_add(self.irs, 1), text)
        if advanced:
            self.rcv_nxt = seq_add(self.rcv_nxt, advanced)
            self.bytes_received += advanced
            if was_empty:
                self._events.append(DataReadable(buffer.readable))
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
                    seq_add(segment.seq, len(segment.payload)), self.rcv_nxt
                ):
                    # New data after close(): nobody will read it; tell the peer (RFC 1122
                    # 4.2.2.13, as Linux does).
                    self._queue_reset(self.snd_max)
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
        pointer = seq_add(segment.seq, segment.urgent_pointer)
        distance = seq_diff(pointer, self._read_seq)
        # RCV.UP <- max(RCV.UP, SEG.UP); a pointer the application has already read past is
        # not kept (recv() forgets RCV.UP once it is read past, too).
        if distance > 0 and (self.rcv_up is None or seq_gt(pointer, self.rcv_up)):
            self.rcv_up = pointer
            self._events.append(UrgentDataArrived(distance))

    def _accept_data(self, segment: TcpSegment, now: float) -> None:
        """Seventh: store the data, move RCV.NXT, and decide when to acknowledge."""
        buffer = self.receive_buffer
        was_empty = not buffer.readable
        had_hole = buffer.has_out_of_order
        held_out_of_order = buffer.out_of_order_bytes
        refused = self.drops["out_of_order_queue_full"]  # counted by the buffer itself
        seq = segment.seq
        if segment.flags & SYN:
            seq = seq_add(seq, 1)  # the data of a SYN-ACK starts after the SYN
        if self.sack_permitted and self.config.dsack:
            self._note_duplicate(seq, len(segment.payload))
        advanced = buffer.insert(seq, segment.payload)
        if advanced:
            self.rcv_nxt = seq_add(self.rcv_nxt, advanced)
            self.bytes_received += advanced
            if was_empty:
                self._events.append(DataReadable(buffer.readable))
            if had_hole or self._dsack_block is not None:
                # RFC 5681 4.2: ACK at once when a gap is filled; and at once when part of the
                # segment was a duplicate, while the D-SACK block describes this arrival.
                self._ack_now = True
            else:
                self._delay_ack(now)
            if self._peer_fin_seq is not None and self._peer_fin_seq == self.rcv_nxt:
                self._accept_fin("queued FIN reached by " + segment_summary(segment), now)
        elif refused != self.drops["out_of_order_queue_full"]:
            # The out-of-order queue is at its limit and this would be its furthest block (the
            # buffer counted it): dropped without an ACK, as Linux does (tcp_data_queue_ofo), so
            # a peer flooding tiny segments gets nothing back for them.
            pass
        else:
            # Out of order, duplicate, or no room: ACK at once (RFC 5681 4.2, RFC 9293 3.10.7.4),
            # so the sender learns what we hold (and, with SACK, what lies beyond).
            self._ack_now = True
            if buffer.out_of_order_bytes == held_out_of_order:
                self.drops["duplicate_or_beyond_window"] += 1  # nothing new was kept

    def _fin_arrives(self, segment: TcpSegment, now: float) -> None:
        """Eighth: the FIN counts once every byte before it has arrived."""
        fin_seq = seq_add(segment.seq, len(segment.payload) + (1 if segment.flags & SYN else 0))
        if self.fin_received:
            self._ack_now = True  # a repeated FIN: acknowledge again
            if self.state is TIME_WAIT:
                self.time_wait_deadline = now + 2 * self.config.msl
            return
        if fin_seq != self.rcv_nxt:
            # Data in front of the FIN is missing: remember where the FIN is (no need for the peer
            # to send it again) and ACK what we have.
            if seq_gt(fin_seq, self.rcv_nxt):
                self._peer_fin_seq = fin_seq
            self._ack_now = True
            return
        self._accept_fin(segment_summary(segment), now)

    def _accept_fin(self, cause: str, now: float) -> None:
        self.rcv_nxt = seq_add(self.rcv_nxt, 1)
        self.fin_received = True
        self._peer_fin_seq = None
        self._ack_now = True  # a FIN is acknowledged at once
        self._events.append(EndOfStream())
        state = self.state
        if state is ESTABLISHED:
            self._set_state(CLOSE_WAIT, cause)
        elif state is FIN_WAIT_1:
            if self.snd_una == seq_add(self.send_buffer.end_seq, 1):
                self._enter_time_wait(cause, now)  # note 2 of Figure 5
            else:
                self._set_state(CLOSING, cause)
        elif state is FIN_WAIT_2:
            self._enter_time_wait(cause, now)

    def _enter_time_wait(self, cause: str, now: float) -> None:
        self._set_state(TIME_WAIT, cause)
        self.time_wait_deadline = now + 2 * self.config.msl  # RFC 9293 3.4.2 / 3.10.7.4

    # ------------------------------------------------------------------ helpers
    def _delay_ack(self, now: float) -> None:
        """RFC 9293 3.8.6.3: delay the ACK of in-order data, but ACK at least every second
        segment (ack_every_segments) and never later than delayed_ack_timeout."""
        self._segments_since_ack += 1
        if self._segments_since_ack >= self.config.ack_every_segments:
            self._ack_now = True
        elif self.delayed_ack_deadline is None:
            self.delayed_ack_deadline = now + self.config.delayed_ack_timeout

    def _note_duplicate(self, seq: int, length: int) -> None:
        """RFC 2883 4: remember the first range of these data bytes that we already hold, for a
        D-SACK block in our next ACK (or forget an older one: a D-SACK block reports the most
        recent arrival only). Bytes before RCV.NXT count as held even when the segment is too
        old to be acceptable (RFC 2883 4.1.1: the ACK of a segment was lost and the sender
        repeated it)."""
        self._dsack_block = self.receive_buffer.first_duplicate(seq, length)

    def _remember_timestamp(self, segment: TcpSegment) -> None:
        """RFC 7323 4.3: TS.Recent follows the segment that covers Last.ACK.sent."""
        timestamps = segment.options.timestamps
        if timestamps is not None and seq_le(segment.seq, self.last_ack_sent):
            tsval = timestamps[0]
            if seq_le(self.ts_recent, tsval):
                self.ts_recent = tsval

    def _challenge_ack(self, now: float) -> None:
        """RFC 5961 7: at most challenge_ack_limit challenge ACKs in any one second."""
        if not self._challenge_limit.allow(now):
            self.drops["challenge_ack_rate_limited"] += 1
            return
        self._ack_now = True

    def _ack_for_unacceptable(self, segment: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.4 first check: an unacceptable segment (out of window, an old
        duplicate, a PAWS failure) is answered with an ACK. A blind attacker's guesses are such
        segments, so answer at most unacceptable_ack_limit of them per second on the stack and,
        like Linux (tcp_invalid_ratelimit), at most one per unacceptable_ack_interval on this
        connection. As in Linux, segments carrying data (without SYN) are spared the interval:
        they cannot be part of an ACK loop, and a peer repeating data whose ACK was lost must
        hear of it, with a D-SACK block for each copy (RFC 2883 4)."""
        per_connection = not segment.payload or segment.flags & SYN
        if (
            per_connection and now - self._last_unacceptable_ack < self.config.unacceptable_ack_interval
        ) or not self.unacceptable_ack_budget.allow(now):
            self.drops["ack_for_unacceptable_rate_limited"] += 1
            return
        if per_connection:
            self._last_unacceptable_ack = now
        self._ack_now = True
