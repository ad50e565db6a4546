"""The ACK field of an arriving segment (RFC 9293 3.10.7.4 fifth check) and everything it drives:
SND.UNA and the send buffer, the send window, RTT samples (RFC 6298, RFC 7323 4), the
retransmission timer (RFC 6298 5), duplicate ACKs, Limited Transmit (RFC 3042), fast retransmit
(RFC 5681 3.2, with NewReno's "recover", RFC 6582) and, with SACK, the scoreboard that tells a
lost segment without waiting for three duplicate ACKs (RFC 6675)."""

from __future__ import annotations

from ustack.tcp.events import SendSpaceAvailable
from ustack.tcp.options import TIMESTAMP_MASK, timestamp_value
from ustack.tcp.seq import seq_add, seq_diff, seq_gt, seq_le, seq_lt
from ustack.tcp.timer_set import Timer
from ustack.wire.tcp import FIN, SYN, TcpSegment

DUPLICATE_ACK_THRESHOLD = 3  # RFC 5681 3.2


def _without_dsack(blocks: tuple, ack: int) -> tuple:
    """The peer's SACK blocks minus a leading D-SACK block (RFC 2883 4, RFC 3708 2: the first
    block reports duplicate data if it starts below SEG.ACK or lies inside the second block).
    A D-SACK tells of data the peer received twice, not of new data it holds, so it neither
    makes an ACK a duplicate ACK (RFC 6675 2) nor belongs among the SACKed ranges."""
    left, right = blocks[0]
    if seq_lt(left, ack) or (
        len(blocks) > 1 and seq_le(blocks[1][0], left) and seq_le(right, blocks[1][1])
    ):
        return blocks[1:]
    return blocks


class AcknowledgementProcessing:
    """The ACK half of Connection (see connection.py for the variables)."""

    def _ack_arrives(self, segment: TcpSegment, now: float) -> bool:
        """Fifth check in the synchronized states. False means: drop the segment here."""
        ack = segment.ack
        # RFC 5961 5.2: acceptable only in [SND.UNA - MAX.SND.WND, SND.MAX]; anything else is
        # answered with a (rate-limited) ACK and dropped. (RFC 9293 3.10.7.4 already says to ACK
        # and drop an ACK of data never sent.)
        if seq_gt(ack, self.snd_max) and not (self._probe_end is not None and ack == self._probe_end):
            self.drops["ack_of_unsent_data"] += 1
            self._challenge_ack(now)
            return False
        if seq_lt(ack, seq_add(self.snd_una, -self.max_snd_wnd)):
            self.drops["ack_too_old"] += 1
            self._challenge_ack(now)
            return False
        new_sack_information = False
        blocks = ()
        if self.sack_permitted and segment.options.sack_blocks:
            blocks = _without_dsack(segment.options.sack_blocks, ack)
            new_sack_information = bool(blocks) and blocks != self.peer_sack_blocks
            self.peer_sack_blocks = blocks
            if blocks and self.config.sack_recovery:
                self.scoreboard.update(self.snd_una, self.snd_max, blocks)  # RFC 6675 4 Update()
        if seq_gt(ack, self.snd_una):
            self._new_ack(segment, ack, now)
        elif ack == self.snd_una and self._is_duplicate_ack(segment, new_sack_information):
            self._duplicate_ack(now)
        if (
            blocks
            and self.scoreboard
            and not self.congestion.in_recovery
            and self.scoreboard.is_lost(self.snd_una, self.send_mss)
        ):
            # RFC 6675 5 step (2): three segments' worth above SND.UNA arrived, so the one at
            # SND.UNA is lost, however few duplicate ACKs got through to say so.
            self._enter_fast_recovery(now)
        self._update_send_window(segment)
        return True

    def _is_duplicate_ack(self, segment: TcpSegment, new_sack_information: bool = False) -> bool:
        """RFC 5681 2 "DUPLICATE ACKNOWLEDGMENT": outstanding data, no payload, no SYN/FIN,
        the same ACK number and the same window. With SACK, an ACK that reports newly SACKed data
        counts even if the window moved (RFC 6675 2): Linux receivers grow their window with
        every out-of-order segment, so without this no duplicate ACK from Linux would count."""
        return (
            self.snd_nxt != self.snd_una
            and not segment.payload
            and not segment.flags & (SYN | FIN)
            and ((segment.window << self.send_shift) == self.snd_wnd or new_sack_information)
        )

    def _new_ack(self, segment: TcpSegment, ack: int, now: float) -> None:
        """SND.UNA < SEG.ACK =< SND.MAX: release acknowledged data and let the world know."""
        flight = seq_diff(self.snd_nxt, self.snd_una)  # FlightSize before this ACK
        acked = seq_diff(ack, self.snd_una)
        if acked > flight:
            flight = acked  # data sent before a go-back after a timeout (SND.NXT < SND.MAX)
        self._take_rtt_sample(segment, ack, now)

        send_buffer = self.send_buffer
        data_end = send_buffer.end_seq
        released = send_buffer.acknowledge(ack if seq_le(ack, data_end) else data_end)
        self.snd_una = ack
        if seq_lt(self.snd_nxt, ack):
            self.snd_nxt = ack
            if seq_lt(self.snd_max, ack):
                self.snd_max = ack  # the peer took our zero-window probe byte
        self._probe_end = None
        if self.snd_up is not None and seq_le(self.snd_up, ack):
            self.snd_up = None  # all urgent data is acknowledged

        congestion = self.congestion
        if congestion.in_recovery:
            if congestion.on_recovery_ack(acked, flight, now):
                self.duplicate_acks = 0
            elif not seq_lt(ack, self._high_retransmitted):
                # A partial ACK (RFC 6582 3.2 step 3): the hole at SND.UNA was there before
                # recovery began; resend it at once unless it has just been resent.
                self._fast_retransmit = True
        else:
            congestion.on_ack(acked, flight, now)
            self.duplicate_acks = 0

        # RFC 6298 5.2 and 5.3: stop the timer when everything is acknowledged, else restart it.
        self.retransmit_count = 0
        if self.snd_nxt == ack:
            self.timers.cancel(Timer.RETRANSMIT)
        else:
            self.timers.arm(Timer.RETRANSMIT, now + self.rtt.rto)
        if released and self._send_blocked:
            self._send_blocked = False
            self._events.append(SendSpaceAvailable(send_buffer.free_space))

    def _take_rtt_sample(self, segment: TcpSegment, ack: int, now: float) -> None:
        """One RTT measurement per ACK of new data, if it is unambiguous."""
        if self.timestamps_enabled:
            # RFC 7323 4.1/4.2: the echoed timestamp says which transmission is being answered,
            # so retransmitted segments measure correctly too (Karn's rule is not needed).
            timestamps = segment.options.timestamps
            if timestamps is not None and timestamps[1]:
                elapsed = (timestamp_value(now) - timestamps[1]) & TIMESTAMP_MASK
                if elapsed < 0x7FFFFFFF:
                    self.rtt.on_sample(elapsed / 1000)
                return
            # A zero TSecr carries no echo (our clock read 0): fall back to the timed SYN.
        # Karn's rule (RFC 6298 3): only the timed segment, and only if it was never
        # retransmitted (retransmitting clears _timed_seq).
        timed = self._timed_seq
        if timed is not None and seq_gt(ack, timed):
            self.rtt.on_sample(now - self._timed_at)
            self._timed_seq = None

    def _duplicate_ack(self, now: float) -> None:
        """RFC 5681 3.2: the third duplicate ACK starts fast retransmit and fast recovery; the
        first two may each let one new segment out (RFC 3042 Limited Transmit)."""
        duplicate_acks = self.duplicate_acks = self.duplicate_acks + 1
        congestion = self.congestion
        if congestion.in_recovery:
            congestion.on_duplicate_ack_in_recovery()  # step 4: inflate
        elif duplicate_acks == DUPLICATE_ACK_THRESHOLD:
            self._enter_fast_recovery(now)
        elif duplicate_acks < DUPLICATE_ACK_THRESHOLD and self.config.limited_transmit:
            # RFC 3042 2: a duplicate ACK means a segment has left the network; one new segment
            # may take its place, with cwnd unchanged (output._emit_limited_transmit).
            if duplicate_acks == 1:
                self._limited_transmit_bytes = 0
            self._limited_transmit = True

    def _enter_fast_recovery(self, now: float) -> None:
        """RFC 5681 3.2 steps 2 and 3 (or RFC 6675 5 step 4): halve, and resend at SND.UNA."""
        congestion = self.congestion
        if congestion.careful_recovery and seq_lt(self.snd_una, self.recover):
            # RFC 6582 3.2 step 2 and 4.1: these duplicate ACKs may answer segments sent twice
            # since the last recovery or timeout, not a new loss.
            return
        self.recover = self.snd_max  # RFC 6582 3.2 step 2 (RFC 6675 RecoveryPoint)
        # Step 2: ssthresh from FlightSize, which MUST NOT include what Limited Transmit sent.
        congestion.on_enter_fast_recovery(seq_diff(self.snd_nxt, self.snd_una), now, self._limited_transmit_bytes)
        self._limited_transmit_bytes = 0
        self._high_retransmitted = self.snd_una
        self._recovery_retransmissions = []
        self._fast_retransmit = True  # step 3: output.py resends the segment at SND.UNA
        self._timed_seq = None  # Karn

    def _update_send_window(self, segment: TcpSegment) -> None:
        """RFC 9293 3.10.7.4 fifth: take the window from the newest segment only (SND.WL1/WL2
        keep an old, reordered segment from shrinking it)."""
        seq = segment.seq
        wl1 = self.snd_wl1
        if seq_lt(wl1, seq) or (wl1 == seq and seq_le(self.snd_wl2, segment.ack)):
            window = segment.window << self.send_shift
            self.snd_wnd = window
            self.snd_wl1 = seq
            self.snd_wl2 = segment.ack
            if window > self.max_snd_wnd:
                self.max_snd_wnd = window
            if window and self.timers.is_armed(Timer.PERSIST):
                # The window opened: stop probing (RFC 9293 3.8.6.1).
                self.timers.cancel(Timer.PERSIST)
                self._persist_backoff = 0
