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
- receiver silly-window avoidance when advertising the window (3.8.6.2.2);
- the window is scaled down by our shift (RFC 7323 2.3), never on a SYN;
- SACK blocks, the most recent first (RFC 2018 4), behind a D-SACK block that reports a
  duplicate arrival once, in the first segment sent after it (RFC 2883 4).
"""

from __future__ import annotations

from ustack.tcp.acknowledgement import DUPLICATE_ACK_THRESHOLD
from ustack.tcp.options import TIMESTAMP_MASK, syn_options
from ustack.tcp.seq import seq_add, seq_diff, seq_gt, seq_lt, seq_max
from ustack.tcp.state import CAN_RECEIVE, CLOSE_WAIT, CLOSED, CLOSING, ESTABLISHED, FIN_WAIT_1, LAST_ACK, LISTEN, SYN_SENT
from ustack.wire.tcp import ACK, FIN, NO_OPTIONS, PSH, RST, SYN, URG, TcpOptions, TcpSegment

# States in which data and our FIN may be (re)transmitted once our SYN is acknowledged.
_SENDING_STATES = frozenset({ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, CLOSING, LAST_ACK})


class SegmentOutput:
    """The send half of Connection (see connection.py for the variables)."""

    def transmit(self, now: float) -> list[TcpSegment]:
        """Every segment due now (the connection's side of DESIGN.md's `transmit(now)`)."""
        out = self._control_segments
        if out:
            self._control_segments = []
        else:
            out = []
        state = self.state
        if state is CLOSED or state is LISTEN:
            return out  # only resets go out from here (RFC 9293 3.10.7.1-2)
        # ACK, window and options are the same for every segment of one transmit() call: they
        # are worked out once, by the first segment that needs them (see _build_segment).
        self._header = None
        if self._send_syn:
            self._emit_syn(now, out)
        elif state in _SENDING_STATES and self.syn_acknowledged:
            if self._fast_retransmit:
                self._retransmit_first(now, out)
            if self._window_probe:
                self._emit_window_probe(now, out)
            if self.send_buffer.length or self._fin_queued:
                congestion = self.congestion
                if congestion.in_recovery and self.scoreboard and self.snd_nxt == self.snd_max:
                    self._emit_data(now, out, self._sack_recovery_output(now, out))
                else:
                    self._emit_data(now, out, congestion.cwnd)
            if self._limited_transmit:
                self._emit_limited_transmit(now, out)
        if self._keepalive_probe:
            # RFC 1122 4.2.3.6: a segment the peer must acknowledge: SEQ = SND.NXT - 1, no data.
            self._keepalive_probe = False
            out.append(self._build_segment(now, seq_add(self.snd_una, -1), ACK, b""))
        if self._ack_now and state is not SYN_SENT and self.irs is not None:
            # A bare ACK carries SND.MAX, not SND.NXT: after going back to retransmit, SND.NXT
            # lies before what the peer has already received, and a sequence number it finds
            # old would make it drop the ACK and answer with one of its own (as BSD does).
            out.append(self._build_segment(now, self.snd_max, ACK, b""))
        return out

    # ------------------------------------------------------------------ SYN and SYN-ACK
    def _emit_syn(self, now: float, out: list) -> None:
        """Our SYN (active open) or SYN-ACK (passive or simultaneous open), first or again."""
        self._send_syn = False
        config = self.config
        iss = self.iss
        if self.irs is None:
            flags, ack = SYN, 0
            limit = config.syn_retries_with_options
            if limit is not None and self.retransmit_count >= limit:
                self.syn_offers_options = False  # only the MSS from now on
            offer = self.syn_offers_options
            options = syn_options(
                config, now, window_scale=config.window_scaling and offer, sack=config.sack and offer,
                timestamps=config.timestamps and offer, ts_recent=0,
            )
            window = min(config.receive_buffer_size, 0xFFFF)
        else:
            flags, ack = SYN | ACK, self.rcv_nxt
            options = syn_options(
                config, now, window_scale=self.window_scaling_enabled, sack=self.sack_permitted,
                timestamps=self.timestamps_enabled, ts_recent=self.ts_recent,
            )
            # RFC 7323 2.2: the window of a SYN is not scaled.
            window = min(self.receive_buffer.free_space, 0xFFFF)
            edge = seq_add(ack, window)
            if seq_gt(edge, self.rcv_adv):
                self.rcv_adv = edge
            self.last_ack_sent = ack
            self._ack_now = False
        out.append(TcpSegment(self.local_port, self.remote_port, iss, ack, flags, window, 0, options, b""))
        if self.snd_max == iss:
            self.snd_nxt = self.snd_max = seq_add(iss, 1)
            self._timed_seq, self._timed_at = iss, now  # time the handshake (RFC 6298 3)
        else:
            self.retransmissions += 1
            self._syn_retransmitted = True
            self._timed_seq = None  # Karn
        if self.retransmit_deadline is None:
            self.retransmit_deadline = now + self.rtt.rto

    # ------------------------------------------------------------------ data and FIN
    def _emit_data(self, now: float, out: list, cwnd: int) -> None:
        """Send what the windows allow from SND.NXT on, then the FIN if it is queued. `cwnd`
        limits FlightSize: the congestion window, or in SACK recovery what pipe leaves room for."""
        send_buffer = self.send_buffer
        end = send_buffer.end_seq
        mss = self._payload_room()
        nagle = self.config.nagle
        if (
            self.snd_nxt == self.snd_una
            and now - self._last_send_time > self.rtt.rto
            and seq_gt(end, self.snd_nxt)
        ):
            # RFC 5681 4.1: after an idle period, do not burst a stale congestion window.
            self.congestion.on_idle_restart(now)
            cwnd = self.congestion.cwnd
        while True:
            snd_nxt = self.snd_nxt
            unsent = seq_diff(end, snd_nxt)
            if unsent <= 0:
                if unsent == 0 and self._fin_queued:
                    self._send_at(now, out, snd_nxt, ACK | FIN, b"")
                break
            in_flight = seq_diff(snd_nxt, self.snd_una)
            window = self.snd_wnd
            if cwnd < window:
                window = cwnd
            length = window - in_flight
            if length > mss:
                length = mss
            if length > unsent:
                length = unsent
            if length <= 0:
                break
            if length < mss:
                if self._force_send:
                    self._force_send = False  # the persist timer overrides SWS avoidance
                elif length < unsent:
                    # RFC 9293 3.8.6.2.1: a window-limited small segment waits unless it is at
                    # least half the largest window the peer has offered; but not the oldest
                    # unacknowledged data sent again after a timeout, which goes at once (RFC
                    # 6298 5.4, RFC 9293 3.8.6.2.1 SHLD-16's exception for retransmissions).
                    if length < (self.max_snd_wnd >> 1) and not (
                        snd_nxt == self.snd_una and seq_lt(snd_nxt, self.snd_max)
                    ):
                        break
                elif nagle and in_flight:
                    # RFC 9293 3.7.4 (Nagle): at most one small segment unacknowledged.
                    break
            if length == unsent:
                flags = ACK | PSH | FIN if self._fin_queued else ACK | PSH
            else:
                flags = ACK
            self._send_at(now, out, snd_nxt, flags, send_buffer.peek(snd_nxt, length))
            if mss != self.send_mss:
                mss = self._payload_room()  # a D-SACK block went out on the first segment only
        if (
            self.snd_nxt == self.snd_una
            and seq_gt(end, self.snd_nxt)
            and self.persist_deadline is None
            and self.retransmit_deadline is None
        ):
            # Data waits, nothing is in flight, so no ACK will come to open the window: probe
            # it (RFC 9293 3.8.6.1).
            self._arm_persist(now)

    def _send_at(self, now: float, out: list, seq: int, flags: int, payload: bytes) -> None:
        """Send data and/or FIN starting at `seq` (SND.NXT) and advance SND.NXT over it."""
        out.append(self._build_segment(now, seq, flags, payload))
        self._last_send_time = now
        end = seq_add(seq, len(payload) + 1 if flags & FIN else len(payload))
        self.snd_nxt = end
        if seq_lt(seq, self.snd_max):
            # Sent before: we went back after a timeout (RFC 6298 5.4).
            self.retransmissions += 1
            self._timed_seq = None  # Karn's rule (RFC 6298 3)
            if seq_gt(end, self.snd_max):
                self.snd_max = end
        else:
            self.snd_max = end
            self.bytes_sent += len(payload)
            if self._timed_seq is None and not self.timestamps_enabled:
                self._timed_seq, self._timed_at = seq, now
        if self.retransmit_deadline is None:
            self.retransmit_deadline = now + self.rtt.rto  # RFC 6298 5.1
        if self.persist_deadline is not None:
            self.persist_deadline = None

    def _emit_limited_transmit(self, now: float, out: list) -> None:
        """RFC 3042 2 (Limited Transmit): on the first and second duplicate ACK, one segment of
        new data if the peer's window allows it and FlightSize stays at most cwnd + 2*SMSS; cwnd
        itself does not change. The segment keeps the ACK clock going, so that a loss in a small
        flight still draws the third duplicate ACK instead of a retransmission timeout."""
        self._limited_transmit = False
        if self.congestion.in_recovery or not 0 < self.duplicate_acks < DUPLICATE_ACK_THRESHOLD:
            return  # a new ACK or fast retransmit came first
        seq = self.snd_nxt
        if seq != self.snd_max:
            return  # going back after a timeout: what follows SND.NXT is not new data
        unsent = seq_diff(self.send_buffer.end_seq, seq)
        mss = self._payload_room()
        length = mss if mss < unsent else unsent
        if length <= 0:
            return
        in_flight = seq_diff(seq, self.snd_una)
        cwnd = self.congestion.cwnd
        if in_flight + length > self.snd_wnd or in_flight + length > cwnd + 2 * self.send_mss:
            return
        if length < mss and self.config.nagle:
            return  # Nagle (RFC 9293 3.7.4): no small segment while data is unacknowledged
        if length == unsent:
            flags = ACK | PSH | FIN if self._fin_queued else ACK | PSH
        else:
            flags = ACK
        self._send_at(now, out, seq, flags, self.send_buffer.peek(seq, length))
        # What went beyond cwnd stays out of FlightSize when ssthresh is set (RFC 5681 3.2 step 2).
        self._limited_transmit_bytes += min(length, max(in_flight + length - cwnd, 0))

    def _retransmit_first(self, now: float, out: list) -> None:
        """Fast retransmit (RFC 5681 3.2 step 3): the segment at SND.UNA, SND.NXT unchanged."""
        self._fast_retransmit = False
        seq = self.snd_una
        after = self._retransmit_at(now, out, seq, self._payload_room())
        if after != seq:
            self._recovery_retransmissions.append([seq, after, self.snd_nxt])

    def _retransmit_at(self, now: float, out: list, seq: int, most: int) -> int:
        """Send again up to `most` bytes of what was sent from `seq` on (with our FIN if it
        was sent and fits); SND.NXT does not move. Returns the sequence number after it."""
        end = self.send_buffer.end_seq
        fin_sent = self._fin_queued and seq_gt(self.snd_max, end)
        length = min(most, seq_diff(end, seq))
        if length > 0:
            flags = ACK
            if seq_add(seq, length) == end:
                flags = ACK | PSH | FIN if fin_sent else ACK | PSH
            payload = self.send_buffer.peek(seq, length)
        elif fin_sent:
            flags, payload, length = ACK | FIN, b"", 0
        else:
            return seq
        out.append(self._build_segment(now, seq, flags, payload))
        self.retransmissions += 1
        self._timed_seq = None  # Karn's rule (RFC 6298 3)
        after = seq_add(seq, length + 1 if flags & FIN else length)
        if seq_gt(after, self._high_retransmitted):
            self._high_retransmitted = after
        return after

    def _sack_recovery_output(self, now: float, out: list) -> int:
        """RFC 6675 5 step (C), in SACK loss recovery: while ssthresh - pipe leaves room for a
        segment (cwnd = ssthresh in recovery, 5 step 4.2), NextSeg() picks what to send: a lost
        hole not yet retransmitted (rule 1), else new data (rule 2, done by _emit_data within
        the limit returned here), else a hole below the highest SACKed byte (rule 3)."""
        scoreboard = self.scoreboard
        snd_una = self.snd_una
        snd_nxt = self.snd_nxt
        smss = self.send_mss
        in_flight = seq_diff(snd_nxt, snd_una)
        room = self.congestion.ssthresh - scoreboard.pipe(snd_una, snd_nxt, self._high_retransmitted, smss)
        new_data_can_go = seq_gt(self.send_buffer.end_seq, snd_nxt) and in_flight < self.snd_wnd
        holes_end = scoreboard.highest_sacked()  # rules 1 and 3
        if holes_end is None:
            holes_end = snd_una  # SND.UNA has passed every block (pipe() forgot them): no hole
        elif new_data_can_go:
            holes_end = scoreboard.lost_below(snd_una, smss)  # rule 1 only
        most = self._payload_room()
        if room >= smss:
            room = self._resend_lost_retransmissions(now, out, room)
        retransmissions = self._recovery_retransmissions
        while room >= smss:
            hole = scoreboard.next_hole(seq_max(self._high_retransmitted, snd_una), holes_end)
            if hole is None:
                break
            start, end = hole
            after = self._retransmit_at(now, out, start, min(most, seq_diff(end, start)))
            if after == start:
                break
            retransmissions.append([start, after, snd_nxt])
            room -= seq_diff(after, start)
        # Whatever room is left goes to new data: _emit_data keeps FlightSize under this.
        return in_flight + room

    def _resend_lost_retransmissions(self, now: float, out: list, room: int) -> int:
        """A retransmission can be lost too. RFC 6675 leaves that to the retransmission timer;
        like Linux, we take it as lost when IsLost() holds for data first sent AFTER it (more
        than (DupThresh - 1) * SMSS of it SACKed while the hole is still open): the path
        delivered later segments and not this one. It is sent once more, at no further
        reduction of cwnd (the same loss episode). Returns the room left."""
        snd_una = self.snd_una
        scoreboard = self.scoreboard
        smss = self.send_mss
        kept = []
        for entry in self._recovery_retransmissions:
            start, end, sent_before = entry
            if not seq_gt(end, snd_una):
                continue  # acknowledged since
            kept.append(entry)
            if room >= smss and scoreboard.is_lost(sent_before, smss) and not scoreboard.is_sacked(start):
                start = seq_max(start, snd_una)
                after = self._retransmit_at(now, out, start, min(self._payload_room(), seq_diff(end, start)))
                room -= seq_diff(after, start)
                entry[0], entry[2] = start, self.snd_nxt
        self._recovery_retransmissions = kept
        return room

    def _emit_window_probe(self, now: float, out: list) -> None:
        """RFC 9293 3.8.6.1: one byte past a zero window. SND.NXT and SND.MAX do not move, so the
        byte is sent again as ordinary data once the window opens; `_probe_end` lets an ACK of
        the probe byte be acceptable."""
        self._window_probe = False
        seq = self.snd_nxt
        if seq_diff(self.send_buffer.end_seq, seq) <= 0:
            return
        out.append(self._build_segment(now, seq, ACK, self.send_buffer.peek(seq, 1)))
        self._probe_end = seq_add(seq, 1)

    def _payload_room(self) -> int:
        """How much data fits in the next segment. send_mss already leaves room for timestamps;
        SACK blocks take option space too (RFC 2018 3: 2 + 8 bytes a block, led by two NOPs for
        alignment), so a segment that will carry blocks carries that much less data. Without
        this, a segment with SACK blocks would exceed the MTU."""
        if not self.sack_permitted:
            return self.send_mss
        most = 3 if self.timestamps_enabled else 4  # what the 40 bytes of option space hold
        blocks = len(self.receive_buffer.sack_blocks(most)) if self.receive_buffer.has_out_of_order else 0
        if self._dsack_block is not None:
            blocks = min(most, blocks + 1)  # RFC 2883: the D-SACK block rides in front, once
        return self.send_mss - (4 + 8 * blocks) if blocks else self.send_mss

    # ------------------------------------------------------------------ building segments
    def _build_segment(self, now: float, seq: int, flags: int, payload: bytes) -> TcpSegment:
        """A segment carrying ACK = RCV.NXT and our window: it pays off any ACK we owe."""
        header = self._header
        if header is None:
            header = self._acknowledgement_fields(now)  # also sets self._header
        rcv_nxt, window, options = header
        urgent_pointer = 0
        snd_up = self.snd_up
        if snd_up is not None and seq_lt(seq, snd_up):
            # RFC 6093 / RFC 9293 3.8.5: the offset from this segment's SEQ to the byte after the
            # urgent data, on every segment sent while urgent data is ahead.
            flags |= URG
            urgent_pointer = min(seq_diff(snd_up, seq), 0xFFFF)
        self._ack_now = False
        return TcpSegment(
            self.local_port, self.remote_port, seq, rcv_nxt, flags, window, urgent_pointer, options, payload
        )

    def _acknowledgement_fields(self, now: float) -> tuple:
        """(ACK, window field, options) for the segments of this transmit() call. Sending them
        pays off any ACK we owe, so the delayed-ACK bookkeeping is settled here."""
        rcv_nxt = self.rcv_nxt
        dsack = self._dsack_block
        if self.timestamps_enabled:
            blocks = self._sack_blocks(3) if self.sack_permitted else ()
            # RFC 7323 3.2: TSval is our clock, TSecr echoes TS.Recent.
            options = TcpOptions(None, None, False, blocks, (int(now * 1000) & TIMESTAMP_MASK, self.ts_recent))
        elif self.sack_permitted and (self.receive_buffer.has_out_of_order or dsack is not None):
            options = TcpOptions(None, None, False, self._sack_blocks(4), None)
        else:
            options = NO_OPTIONS
        self.last_ack_sent = rcv_nxt
        self._segments_since_ack = 0
        self.delayed_ack_deadline = None
        fields = rcv_nxt, self._window_field(), options
        # A D-SACK block reports one arrival in one segment (RFC 2883 4): the next segment of
        # this transmit() works its fields out again, without it.
        self._header = fields if dsack is None else None
        return fields

    def _sack_blocks(self, max_blocks: int) -> tuple:
        """The SACK blocks of RFC 2018 4, the most recent first, behind a D-SACK block if one is
        waiting (RFC 2883 4: the duplicate range goes first; the block that holds it, if it lies
        above RCV.NXT, is the most recently touched one and so comes second by itself)."""
        buffer = self.receive_buffer
        dsack = self._dsack_block
        if dsack is not None:
            self._dsack_block = None
            return (dsack,) + buffer.sack_blocks(max_blocks - 1)
        return buffer.sack_blocks(max_blocks) if buffer.has_out_of_order else ()

    def _build_reset(self, seq: int, ack: int | None = None) -> TcpSegment:
        """<SEQ=seq><CTL=RST>, or <SEQ=seq><ACK=ack><CTL=RST,ACK> when ack is given."""
        if ack is None:
            return TcpSegment(self.local_port, self.remote_port, seq, 0, RST, 0)
        return TcpSegment(self.local_port, self.remote_port, seq, ack, RST | ACK, 0)

    def _window_field(self) -> int:
        """The 16-bit window to advertise, with receiver SWS avoidance (RFC 9293 3.8.6.2.2): the
        right edge moves only in steps of min(buffer/2, MSS), and never moves left."""
        rcv_nxt = self.rcv_nxt
        free = self.receive_buffer.free_space
        advertised = seq_diff(self.rcv_adv, rcv_nxt)
        config = self.config
        if config.window_advertisement == "free_space":
            # BSD's policy (TcpConfig.window_advertisement): all the free space, but a sliver
            # smaller than min(buffer/4, MSS) counts as none; the edge still never moves left.
            window = free
            if window < (config.receive_buffer_size >> 2) and window < config.mss:
                window = 0
            if window < advertised:
                window = advertised
        elif free - advertised >= min(config.receive_buffer_size >> 1, config.mss):
            window = free
        else:
            window = advertised if advertised > 0 else 0
        field = window >> self.receive_shift
        if field > 0xFFFF:
            field = 0xFFFF
        edge = seq_add(rcv_nxt, field << self.receive_shift)
        if seq_gt(edge, self.rcv_adv):
            self.rcv_adv = edge
        return field

    def _window_may_have_opened(self) -> None:
        """After the application read: is the window worth an update segment of its own?

        Only if it grew by the receiver-SWS step, min(buffer/2, MSS) (RFC 9293 3.8.6.2.2), and
        the growth matters to the sender: it at least doubles the window the sender knows
        (a sender at or near a zero window is stalled until told), or it is half the buffer.
        Smaller growth rides on the next segment we send anyway."""
        if self.state not in CAN_RECEIVE:
            return
        config = self.config
        advertised = seq_diff(self.rcv_adv, self.rcv_nxt)
        if config.window_advertisement == "free_space":
            self._ack_now = self._ack_now or self._bsd_window_update_due(advertised)
            return
        growth = self.receive_buffer.free_space - advertised
        if growth >= min(config.receive_buffer_size >> 1, config.mss) and (
            growth >= advertised or growth >= config.receive_buffer_size >> 1
        ):
            self._ack_now = True

    def _bsd_window_update_due(self, advertised: int) -> bool:
        """The window-update rule of BSD's tcp_output, for window_advertisement="free_space":
        an update of its own is worth sending when the window could grow by at least two
        segments and that growth is a quarter of the buffer (or the window is nearly closed, or
        the buffer is small), or when it grows by half the buffer. A growth that would not
        change the scaled 16-bit field is never worth a segment."""
        shift = self.receive_shift
        capacity = self.receive_buffer.capacity
        largest = 0xFFFF << shift
        window = min(self.receive_buffer.free_space, largest)
        growth = window - advertised
        if growth <= 0 or (advertised >> shift) >= (window >> shift):
            return False
        two_segments = 2 * self.config.mss  # the largest segments the peer may send us
        if growth >= two_segments and (
            growth >= capacity >> 2 or window <= capacity >> 3 or capacity <= 4 * two_segments or growth >= largest
        ):
            return True
        return 2 * growth >= capacity
