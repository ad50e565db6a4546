"""The ACK field of an arriving segment (RFC 9293 3.10.7.4 fifth check) and everything it drives:
SND.UNA and the send buffer, the send window, RTT samples (RFC 6298, RFC 7323 4), the
retransmission timer (RFC 6298 5), duplicate ACKs, Limited Transmit (RFC 3042), fast retransmit
(RFC 5681 3.2, with NewReno's "recover", RFC 6582) and, with SACK, the scoreboard that tells a
lost segment without waiting for three duplicate ACKs (RFC 6675).

An ACK may stand for several (an AckRunSegment, `segment.acks` > 1): software GRO on a link without
offloads hands up, of a run of pure ACKs read in one batch, the first as it came and the last
standing for the others, each of which acknowledged new data beyond the one before
(csrc/segment.c says which may be absorbed: no duplicate ACK, no SACK block, no flag but ACK,
timestamps that do not go back, a window no larger than what the core sees). Cumulative ACKs
(RFC 9293 3.4) make the last one carry everything the absorbed ones did: SND.UNA, the send buffer,
the send window and its update rule (3.10.7.4), TS.Recent, the retransmission timer (RFC 6298
5.3: restarted for the newest ACK) and RACK's newest delivered segment (RFC 8985) end where they
would have. What counts per ACK counts each: slow start allows RFC 3465's L*SMSS for every ACK of
the run, and stops within one ACK's growth past twice the flight as it would one by one (RFC
7661; congestion/base.py); HyStart++ (RFC 9406) counts a sample for each, the run's smallest being
the last's. One thing changes: the RTT estimator (RFC 6298, rtt.py) takes one sample per run
instead of one per ACK, the run's smallest; RFC 6298 asks for at least one per round trip, and
RFC 7323 appendix G notes that many samples per round trip make RTTVAR forget too fast. The
sender decides what to send once per batch in any case (the runtime transmits after the batch)."""

from __future__ import annotations

from ustack.tcp.events import SendSpaceAvailable
from ustack.tcp.options import TIMESTAMP_MASK
from ustack.tcp.seq import SEQ_HALF, SEQ_MASK, seq_add, seq_diff, seq_gt, seq_le, seq_lt
from ustack.tcp.state import EVENTS_OFF
from ustack.tcp.send_side import FAST_RETRANSMIT, LIMITED_TRANSMIT
from ustack.tcp.timer_set import NOT_ARMED, PERSIST_TIMER, RETRANSMIT_TIMER
from ustack.wire.tcp import CWR, ECE, FIN, SYN, AckRunSegment, TcpSegment

DUPLICATE_ACK_THRESHOLD = 3  # RFC 5681 3.2
RENEGING_WAIT = 0.010  # the least wait before reneging is acted on (Linux's 10 ms)


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

    __slots__ = ()  # the variables are Connection's (connection.py)

    def _ack_arrives(self, segment: TcpSegment, now: float) -> bool:
        """Fifth check in the synchronized states. False means: drop the segment here."""
        ack = segment.ack
        snd = self.snd  # read once: this runs for nearly every segment the fast path leaves
        snd_una_before = snd.una
        # RFC 5961 5.2: acceptable only in [SND.UNA - MAX.SND.WND, SND.MAX]; anything else is
        # answered with a (rate-limited) ACK and dropped. (RFC 9293 3.10.7.4 already says to ACK
        # and drop an ACK of data never sent.)
        if seq_gt(ack, snd.max) and not (snd.probe_end is not None and ack == snd.probe_end):
            self.drops["ack_of_unsent_data"] += 1
            self._challenge_ack(now)
            return False
        if seq_lt(ack, seq_add(snd_una_before, -snd.max_wnd)):
            self.drops["ack_too_old"] += 1
            self._challenge_ack(now)
            return False
        if self.ecn is not None and segment.flags & (ECE | CWR):
            self._ecn_on_segment(segment, now)  # RFC 3168 6.1.2-6.1.3 (ecn.py)
        congestion = self.congestion
        was_in_recovery = congestion.in_recovery
        sacked_before = self._sacked_in_flight() if snd.has_sacked else 0  # for PRR below
        new_sack_information = False
        blocks = ()
        dsack = False
        sack_blocks = segment.options.sack_blocks
        if sack_blocks and self.sack_permitted:
            blocks = _without_dsack(sack_blocks, ack)
            dsack = len(blocks) < len(sack_blocks)
            new_sack_information = snd.record_sack(blocks, self.config.sack_recovery)
        una_advanced = seq_gt(ack, snd_una_before)
        if una_advanced:
            self._new_ack(segment, ack, now)
        elif ack == snd_una_before and self._is_duplicate_ack(segment, new_sack_information):
            self._duplicate_ack(now)
        if (
            blocks
            and snd.has_sacked
            and not congestion.in_recovery
            and snd.scoreboard.is_lost(snd.una, self.send_mss)
        ):
            # RFC 6675 5 step (2): three segments' worth above SND.UNA arrived, so the one at
            # SND.UNA is lost, however few duplicate ACKs got through to say so.
            self._enter_fast_recovery(now)
        rack = self.rack
        if rack is not None and (sack_blocks or una_advanced or rack.tlp_end_seq is not None):
            self._rack_on_ack(ack, dsack, was_in_recovery, now, una_advanced)  # rack.py
        if congestion.in_recovery and congestion.prr is not None and snd.has_sacked:
            # RFC 6937 3: DeliveredData = change in SND.UNA + change in SACKed bytes.
            delivered = seq_diff(snd.una, snd_una_before) + self._sacked_in_flight() - sacked_before
            if not was_in_recovery:
                delivered += self._acknowledged_before_in_batch(snd_una_before)
            self._proportional_rate_reduction(max(delivered, 0))
        self._update_send_window(segment)
        return True

    def _acknowledged_before_in_batch(self, snd_una_before: int) -> int:
        """For the ACK that starts a recovery: what the ACKs read before it in the same batch
        acknowledged since the sender last sent (the flight as then sent, less the flight before
        this ACK). Sending between ACKs would have put that much new data out before the
        recovery began, and PRR would then count from there (RFC 6937 3: RecoverFS is the
        flight at the start, prr_delivered what arrives since). Read in one batch, the ACKs left
        the sender no chance to, and PRR's slow-start bound (at most DeliveredData + 1 MSS per
        ACK) let only the retransmission and one segment out for the whole first round trip
        of the recovery: the peer (Linux acknowledges each out-of-order segment at once)
        acknowledged the data before the hole in one ACK and SACKed the three after it in three
        more, all read together. The flight then ended the recovery far below ssthresh, and
        each loss cost Reno most of a round trip (bench_recovery: 5-8 % of goodput)."""
        flight_before = seq_diff(self.snd.nxt, snd_una_before)
        earlier = self.congestion.flight_after_send - flight_before
        return earlier if earlier > 0 else 0

    def _sacked_in_flight(self) -> int:
        """Bytes above SND.UNA the peer has SACKed (RFC 6675 scoreboard)."""
        snd = self.snd
        if not snd.has_sacked:
            return 0
        return snd.scoreboard.sacked_between(snd.una, snd.max)

    def _proportional_rate_reduction(self, delivered: int) -> None:
        """RFC 6937 3 on an ACK in SACK recovery: how much output.py may send for it."""
        snd = self.snd
        pipe = snd.scoreboard.pipe(snd.una, snd.data_end_sent, snd.high_retransmitted, self.send_mss)
        congestion = self.congestion
        congestion.prr.on_ack(delivered, pipe, congestion.ssthresh, self.send_mss)

    def _is_duplicate_ack(self, segment: TcpSegment, new_sack_information: bool = False) -> bool:
        """RFC 5681 2 "DUPLICATE ACKNOWLEDGMENT": outstanding data, no payload, no SYN/FIN,
        the same ACK number and the same window. With SACK, an ACK that reports newly SACKed data
        counts even if the window moved (RFC 6675 2): Linux receivers grow their window with
        every out-of-order segment, so without this no duplicate ACK from Linux would count."""
        return (
            self.snd.nxt != self.snd.una
            and not segment.payload
            and not segment.flags & (SYN | FIN)
            and ((segment.window << self.send_shift) == self.snd.wnd or new_sack_information)
        )

    def _new_ack(self, segment: TcpSegment, ack: int, now: float) -> None:
        """SND.UNA < SEG.ACK =< SND.MAX: release acknowledged data and let the world know."""
        snd = self.snd
        # seq_diff twice, inline (seq.py): once per ACK of new data.
        snd_una = snd.una
        flight = ((snd.nxt - snd_una + SEQ_HALF) & SEQ_MASK) - SEQ_HALF  # FlightSize before this ACK
        acked = ((ack - snd_una + SEQ_HALF) & SEQ_MASK) - SEQ_HALF
        if acked > flight:
            flight = acked  # data sent before a go-back after a timeout (SND.NXT < SND.MAX)
        self._take_rtt_sample(segment, ack, now)

        released = snd.acknowledge(ack)  # SND.UNA = SEG.ACK, the send buffer released up to it

        congestion = self.congestion
        if congestion.in_recovery:
            if self.sack_permitted and self.config.sack_recovery and seq_lt(ack, snd.recover):
                # RFC 6675 5: SACK recovery lasts until RecoveryPoint is acknowledged, for
                # every algorithm (Reno's "first new ACK ends it" is RFC 5681 without SACK:
                # each further hole of the window would start a recovery and halve again).
                congestion.on_partial_ack_in_sack_recovery(acked)
                partial = True
            else:
                partial = not congestion.on_recovery_ack(acked, flight, now)
                if not partial and self.sack_permitted and self.config.sack_recovery:
                    congestion.end_proportional_rate_reduction()  # RFC 6937 3: cwnd = ssthresh
            if not partial:
                snd.duplicate_acks_ended()
            elif not seq_lt(ack, snd.high_retransmitted):
                # A partial ACK (RFC 6582 3.2 step 3): the hole at SND.UNA was there before
                # recovery began; resend it at once unless it has just been resent.
                snd.request(FAST_RETRANSMIT)
        else:
            # An AckRunSegment stands for several ACKs of a run the link thinned (csrc/segment.c).
            congestion.on_ack(acked, flight, now, segment.acks if segment.__class__ is AckRunSegment else 1)
            if snd.duplicate_acks:
                snd.duplicate_acks_ended()

        # RFC 6298 5.2 and 5.3: stop the timer when everything is acknowledged, else restart it.
        if snd.nxt == ack:
            self.timers.cancel(RETRANSMIT_TIMER)
        elif snd.has_sacked and snd.scoreboard.is_sacked(ack):
            # The peer SACKed the data at the new SND.UNA but does not acknowledge it: it may
            # have dropped it (reneging, RFC 2018 8). Like Linux (tcp_check_sack_reneging), wait
            # half an RTT (at least 10 ms) for ACKs that explain it, then time out, which sends
            # everything again without the SACKed marks (SendSide.go_back_after_timeout).
            srtt = self.rtt.srtt
            self.timers.arm(RETRANSMIT_TIMER, now + max(srtt / 2 if srtt else 0.0, RENEGING_WAIT))
        else:
            self.timers.arm(RETRANSMIT_TIMER, now + self.rtt.rto)
        if released and snd.blocked:
            snd.space_reported()
            if self._events is not EVENTS_OFF:  # no event object when nobody reads them
                self._emit(SendSpaceAvailable(snd.free_space))

    def _take_rtt_sample(self, segment: TcpSegment, ack: int, now: float) -> None:
        """One RTT measurement per ACK of new data, if it is unambiguous; RFC 6298 for the RTO,
        and the congestion control (CUBIC, HyStart++) hears it too."""
        timestamps = segment.options.timestamps if self.timestamps_enabled else None
        if timestamps is not None and timestamps[1]:
            # RFC 7323 4.1/4.2: the echoed timestamp says which transmission is being answered,
            # so retransmitted segments measure correctly too (Karn's rule is not needed).
            elapsed = (int(now * 1000) - timestamps[1]) & TIMESTAMP_MASK  # timestamp_value(now) - TSecr
            if elapsed >= 0x7FFFFFFF:
                return
            sample = elapsed / 1000
            # Each ACK of a thinned run gave a sample, none below this one (AckRunSegment).
            samples = segment.acks if segment.__class__ is AckRunSegment else 1
        else:
            # No timestamps, or a zero TSecr that carries no echo (our clock read 0): the timed
            # segment. Karn's rule (RFC 6298 3): only if it was never retransmitted
            # (retransmitting clears _timed_seq).
            snd = self.snd
            timed = snd.timed_seq
            if timed is None or not seq_gt(ack, timed):
                return
            sample = now - snd.timed_at
            snd.rtt_sample_taken()
            samples = 1  # one timed segment, whichever ACK of a run covered it
        rtt = self.rtt
        rtt.on_sample(sample)
        self.congestion.on_rtt_sample(sample, rtt.srtt, now, samples)

    def _duplicate_ack(self, now: float) -> None:
        """RFC 5681 3.2: the third duplicate ACK starts fast retransmit and fast recovery; the
        first two may each let one new segment out (RFC 3042 Limited Transmit)."""
        duplicate_acks = self.snd.duplicate_ack()
        congestion = self.congestion
        if congestion.in_recovery:
            congestion.on_duplicate_ack_in_recovery()  # step 4: inflate
        elif duplicate_acks == DUPLICATE_ACK_THRESHOLD:
            self._enter_fast_recovery(now)
        elif duplicate_acks < DUPLICATE_ACK_THRESHOLD and self.config.limited_transmit:
            # RFC 3042 2: a duplicate ACK means a segment has left the network; one new segment
            # may take its place, with cwnd unchanged (output._emit_limited_transmit).
            if duplicate_acks == 1:
                self.snd.limited_transmit_started()
            self.snd.request(LIMITED_TRANSMIT)

    def _enter_fast_recovery(self, now: float) -> None:
        """RFC 5681 3.2 steps 2 and 3 (or RFC 6675 5 step 4): halve, and resend at SND.UNA."""
        congestion = self.congestion
        snd = self.snd
        if seq_lt(snd.una, snd.recover) and (
            congestion.careful_recovery
            or (seq_lt(snd.nxt, snd.max) and self.sack_permitted and self.config.sack_recovery)
        ):
            # RFC 6582 3.2 step 2 and 4.1: these duplicate ACKs may answer segments sent twice
            # since the last recovery or timeout, not a new loss. With SACK, after a timeout
            # (SND.NXT gone back below SND.MAX), for every algorithm: RFC 6675 5.1, no new
            # recovery until the RecoveryPoint of the timeout is acknowledged (the SACKs of what
            # the peer held before it would otherwise halve cwnd a second time for one loss).
            return
        # Step 2: ssthresh from FlightSize, which MUST NOT include what Limited Transmit sent.
        congestion.on_enter_fast_recovery(seq_diff(self.snd.nxt, self.snd.una), now, self.snd.limited_transmit_bytes)
        if self.config.proportional_rate_reduction:
            # RecoverFS (RFC 6937 3): the flight as last sent, as for ssthresh (congestion/reno.py),
            # since the ACKs of one batch may have emptied it before this one found the loss.
            recover_fs = seq_diff(self.snd.nxt, self.snd.una)
            if congestion.flight_after_send > recover_fs:
                recover_fs = congestion.flight_after_send
            congestion.start_proportional_rate_reduction(recover_fs)
        # RFC 6582 3.2 step 2: "recover" (RFC 6675 RecoveryPoint) = SND.MAX; step 3: output.py
        # resends the segment at SND.UNA.
        self.snd.enter_recovery()

    def _update_send_window(self, segment: TcpSegment) -> None:
        """RFC 9293 3.10.7.4 fifth: SND.WND from the newest segment (SendSide.update_window)."""
        window = self.snd.update_window(segment, self.send_shift)
        if window:
            # The persist timer is rarely armed: is_armed, in line (timer_set.py), saves a call
            # into cancel() on nearly every ACK.
            deadlines = self.timers.deadlines
            if deadlines is not None and deadlines[PERSIST_TIMER] != NOT_ARMED:
                self.timers.cancel(PERSIST_TIMER)
                self.snd.persist_ended()  # the window opened: probing stops (RFC 9293 3.8.6.1)
