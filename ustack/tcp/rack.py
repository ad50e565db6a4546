"""RACK-TLP (RFC 8985): loss detection by time, and tail loss probes.

RFC 6675 takes a segment as lost once DupThresh segments above it are SACKed: it counts
segments. RACK ("recent acknowledgement") reasons in time instead: if a segment sent at time T
has been delivered (acknowledged or SACKed), any segment sent before T - reo_wnd that is still
not delivered after one more RTT is lost (RFC 8985 6.2). That works the same for a lost
retransmission and for a loss with only one segment after it, where the duplicate ACKs RFC 6675
needs never come. The reordering window reo_wnd is min_RTT/4 once reordering has been seen, 0
before (RFC 8985 6.2 step 4), and it grows with every round trip that brings a D-SACK, i.e.
evidence that a retransmission was spurious (6.2, "RACK_update_reo_wnd").

TLP (RFC 8985 7) repairs a lost tail: when nothing more would draw an ACK, one segment (new data
if there is some, else the last segment again) goes out after a probe timeout PTO of about two
round trips, so that the peer's SACK of it lets RACK find the segments lost before it, in about
2 RTTs rather than an RTO of at least 200 ms after a backed-off timer.

Who keeps what:
- each segment's transmission time and whether it was sent again: SendSide.sent_times
  (send_side.py), beside the rest of the retransmission bookkeeping;
- the segments found lost: the scoreboard's `rack_lost_end` (scoreboard.py), which RFC 6675's
  pipe and NextSeg already read through `lost_below`;
- the reorder timer (Timer.REORDER) and the probe timer (Timer.TLP): the TimerSet;
- everything else RACK and TLP remember: this module's `RackState`, made when a connection
  with SACK is first given data to send (`Connection.rack`).
"""

from __future__ import annotations

from ustack.tcp.ecn import reduce_once
from ustack.tcp.seq import SEQ_HALF, SEQ_MASK, seq_add, seq_diff, seq_gt, seq_lt

from ustack.tcp.send_side import LOSS_PROBE, SACKED as DELIVERED, SENT_AGAIN as RETRANSMITTED
from ustack.tcp.timer_set import NOT_ARMED, REORDER_TIMER, RETRANSMIT_TIMER, TLP_TIMER
from ustack.wire.tcp import ACK, FIN, PSH

# RFC 8985 7.2: the worst-case delayed-ACK time, added to the PTO when only one segment is in
# flight (its ACK may be held back by the peer's delayed-ACK timer).
WORST_CASE_DELAYED_ACK = 0.2
# The PTO's floor when more than one segment is in flight: 2 ms, as Linux's TCP_TIMEOUT_MIN
# (2 jiffies) in tcp_schedule_loss_probe, added to RFC 8985 7.2's 2*SRTT. The cost of the floor is
# a tail repaired 2 ms later; the cost of a probe that comes too early is a spurious resend (and a
# D-SACK that widens RACK's reordering window). With a sub-millisecond SRTT (a TUN link), 2*SRTT alone
# is shorter than the time it takes to read and process the ACKs already waiting, so the timer
# fired over and over during bulk transfers and now and then resent data the peer had.
PROBE_TIMEOUT_FLOOR = 0.002
# RFC 8985 7.2: the PTO before any RTT was measured.
INITIAL_PTO = 1.0
# RFC 8985 6.2: how many recoveries a reordering window widened by D-SACK lasts.
REO_WND_PERSIST = 16
DUPLICATE_THRESHOLD = 3  # RFC 8985 6.2 step 4 (the DupThresh fallback before reordering is seen)


def seq_span(start: int, end: int) -> int:
    """How many sequence numbers lie in [start, end)."""
    return seq_diff(end, start)


class RackState:
    """RACK's and TLP's variables for one connection (RFC 8985 5.2, 5.3)."""

    __slots__ = (
        "xmit_ts", "end_seq", "rtt", "min_rtt", "fack", "reordering_seen",
        "reo_wnd_mult", "reo_wnd_persist", "dsack_round", "tlp_end_seq", "tlp_is_retrans", "tlp_flight",
        "probes_sent", "losses_detected",
    )  # fmt: skip

    def __init__(self) -> None:
        self.xmit_ts: float | None = None  # RACK.xmit_ts: sent time of the newest delivered segment
        self.end_seq: int | None = None  # RACK.end_seq: its end
        self.rtt = 0.0  # RACK.rtt: the RTT measured on that segment
        self.min_rtt: float | None = None  # RACK.min_RTT
        self.fack: int | None = None  # the highest end SACKed or acknowledged (reordering test)
        self.reordering_seen = False  # RACK.reordering_seen
        self.reo_wnd_mult = 1  # RACK.reo_wnd_mult
        self.reo_wnd_persist = REO_WND_PERSIST  # RACK.reo_wnd_persist
        self.dsack_round: int | None = None  # RACK.dsack_round
        self.tlp_end_seq: int | None = None  # TLP.end_seq: SND.NXT after the outstanding probe
        self.tlp_is_retrans = False  # TLP.is_retrans
        self.tlp_flight = 0  # FlightSize when the probe went out (for 7.4's response)
        # Statistics.
        self.probes_sent = 0
        self.losses_detected = 0

    # ------------------------------------------------------------------ RFC 8985 6.2 steps 1-3
    def on_delivered(self, snd, sacked, now: float) -> None:
        """Steps 1-3 for one ACK: take note of the segments it delivers (acknowledged up to
        SND.UNA, or SACKed as `sacked(start, end)` tells; None: nothing is SACKed), update
        RACK.xmit_ts/end_seq/rtt, see reordering, and drop the acknowledged entries from
        SendSide.sent_times."""
        una = snd.una
        times = snd.sent_times
        acknowledged = 0
        flags_seen = 0  # the flags of the acknowledged entries, OR-ed
        newest_sent = None  # the latest send time among them
        for entry in times:
            end = entry[1]
            if not (end == una or ((end - una) & SEQ_MASK) >= SEQ_HALF):  # not seq_le(end, una), inline (seq.py)
                break
            acknowledged += 1
            flags_seen |= entry[3]
            if newest_sent is None or entry[2] > newest_sent:
                newest_sent = entry[2]
            if end == una:
                break  # the usual end of the scan: an ACK at a segment's end (the entries rise)
        if not acknowledged and sacked is None:
            return  # nothing delivered: a window update, a duplicate ACK
        if sacked is None and not flags_seen and times[acknowledged - 1][2] == newest_sent:
            # The common case, an ACK of segments each sent once, in order, none SACKed: the loop
            # below would let each in turn become RACK's newest delivered segment, so the last
            # one decides xmit_ts, end_seq and rtt, and its RTT (the shortest) min_RTT; the
            # first one (the lowest end) is the one to test for reordering (step 3).
            self._delivered_in_order(times[0][1], times[acknowledged - 1], now)
            snd.forget_first_sent_times(acknowledged)
            return
        delivered_newly = [entry for entry in times[:acknowledged] if not entry[3] & DELIVERED]
        if sacked is not None:
            for index in range(acknowledged, len(times)):
                entry = times[index]
                if not entry[3] & DELIVERED and sacked(entry[0], entry[1]):
                    delivered_newly.append(list(entry))
                    snd.sent_time_delivered(index)
        for start, end, sent_at, flags in delivered_newly:
            rtt = now - sent_at
            if flags & RETRANSMITTED and self.min_rtt is not None and rtt < self.min_rtt:
                # Step 2: this ACK may answer the first transmission, not the retransmission:
                # it tells nothing about when the retransmission arrived.
                continue
            if self.fack is not None and seq_lt(end, self.fack) and not flags & RETRANSMITTED:
                # Step 3 (RFC 8985 6.2): delivered below a segment delivered earlier, and never
                # sent again: the path reordered them.
                self.reordering_seen = True
            if self.fack is None or seq_gt(end, self.fack):
                self.fack = end
            if self.xmit_ts is None or sent_at > self.xmit_ts or (
                sent_at == self.xmit_ts and seq_gt(end, self.end_seq)
            ):
                self.xmit_ts, self.end_seq = sent_at, end
                if not flags & RETRANSMITTED:
                    self.rtt = rtt
                    if self.min_rtt is None or rtt < self.min_rtt:
                        self.min_rtt = rtt
        snd.forget_first_sent_times(acknowledged)  # the entries counted above, not scanned again

    def _delivered_in_order(self, first_end: int, last: list, now: float) -> None:
        """Steps 1-3 of on_delivered for acknowledged segments that were each sent once, in
        sequence order (`last` sent last): the same outcome as taking them one by one. (Once per
        ACK of new data: seq_lt and seq_gt, inline, in the forms seq.py gives.)"""
        fack = self.fack
        if fack is not None and ((first_end - fack) & SEQ_MASK) >= SEQ_HALF:  # seq_lt(first_end, fack)
            self.reordering_seen = True  # step 3: delivered below a segment delivered earlier
        _, end, sent_at, _ = last
        if fack is None or ((fack - end) & SEQ_MASK) >= SEQ_HALF:  # seq_gt(end, fack)
            self.fack = end
        xmit_ts = self.xmit_ts
        if xmit_ts is None or sent_at > xmit_ts or (
            sent_at == xmit_ts and ((self.end_seq - end) & SEQ_MASK) >= SEQ_HALF  # seq_gt(end, RACK.end_seq)
        ):
            self.xmit_ts, self.end_seq = sent_at, end
            rtt = now - sent_at
            self.rtt = rtt
            if self.min_rtt is None or rtt < self.min_rtt:
                self.min_rtt = rtt

    def on_dsack(self, snd_una: int, snd_nxt: int) -> None:
        """RFC 8985 6.2 step 4: a D-SACK says a retransmission was spurious: widen the reordering
        window by min_RTT/4, at most once per round trip, for the next 16 recoveries."""
        if self.dsack_round is not None and not seq_lt(snd_una, self.dsack_round):
            self.dsack_round = None  # the round trip of the last widening is over
        if self.dsack_round is None:
            self.dsack_round = snd_nxt
            self.reo_wnd_mult += 1
            self.reo_wnd_persist = REO_WND_PERSIST
            self.reordering_seen = True  # a D-SACK is reordering seen after the fact (RFC 8985 6.2)

    def on_recovery_ended(self) -> None:
        """RFC 8985 6.2 step 4: a widened window shrinks back after 16 recoveries."""
        self.reo_wnd_persist -= 1
        if self.reo_wnd_persist <= 0:
            self.reo_wnd_mult = 1
            self.reo_wnd_persist = REO_WND_PERSIST

    def reordering_window(self, in_recovery: bool, sacked_segments: int, srtt: float | None) -> float:
        """RACK.reo_wnd (RFC 8985 6.2 step 4): 0 until reordering is seen once in recovery or
        once DupThresh segments are SACKed (then the classic rule is right on time); else
        reo_wnd_mult * min_RTT / 4, never more than SRTT."""
        if not self.reordering_seen and (in_recovery or sacked_segments >= DUPLICATE_THRESHOLD):
            return 0.0
        if self.min_rtt is None:
            return 0.0
        window = self.reo_wnd_mult * self.min_rtt / 4
        return window if srtt is None or window < srtt else srtt

    # ------------------------------------------------------------------ RFC 8985 6.2 step 5
    def detect_losses(self, snd, reo_wnd: float, now: float) -> tuple[int | None, float | None]:
        """RACK_detect_loss(): every segment not delivered and sent before RACK.xmit_ts is lost
        once RACK.rtt + reo_wnd has passed since it was sent. Returns (the end of the highest
        segment found lost or None, the time left before the next one would be: the reorder
        timeout, or None)."""
        if self.xmit_ts is None:
            return None, None
        lost_end = None
        timeout = None
        xmit_ts, rack_end = self.xmit_ts, self.end_seq
        for start, end, sent_at, flags in snd.sent_times:
            if flags & DELIVERED:
                continue
            if sent_at > xmit_ts or (sent_at == xmit_ts and not seq_lt(end, rack_end)):
                continue  # sent after the newest delivered segment: too early to tell
            remaining = sent_at + self.rtt + reo_wnd - now
            if remaining <= 0:
                if lost_end is None or seq_gt(end, lost_end):
                    lost_end = end
            elif timeout is None or remaining < timeout:
                timeout = remaining
        if lost_end is not None:
            self.losses_detected += 1
        return lost_end, timeout

    # ------------------------------------------------------------------ RFC 8985 7
    def probe_timeout(self, srtt: float | None, in_flight: int, mss: int) -> float:
        """TLP_calc_PTO() (RFC 8985 7.2): two round trips, plus the peer's delayed-ACK time when a
        single segment is in flight, else plus PROBE_TIMEOUT_FLOOR (as Linux); one second before
        any RTT sample."""
        if srtt is None:
            return INITIAL_PTO
        pto = 2 * srtt
        if in_flight <= mss:
            pto += WORST_CASE_DELAYED_ACK
        else:
            pto += PROBE_TIMEOUT_FLOOR
        return pto

    def probe_sent(self, snd_nxt: int, retransmission: bool, flight: int) -> None:
        self.tlp_flight = flight
        self.tlp_end_seq = snd_nxt
        self.tlp_is_retrans = retransmission
        self.probes_sent += 1

    def probe_answered(self, ack: int, dsack: bool, una_advanced: bool) -> bool:
        """RFC 8985 7.4, on an ACK while a probe is outstanding: True if the probe repaired a
        loss, which calls for a congestion response. Decided as Linux does (tcp_process_tlp_ack):

        - an ACK below the probe's end says nothing yet; a probe of new data repaired nothing;
        - a D-SACK: the original and the probe both arrived: no loss, no response (7.4.1);
        - an ACK beyond the probe's end (data sent after the probe is acknowledged) with no
          D-SACK before it: the original was lost and the probe repaired it (7.4.2);
        - an ACK exactly at the probe's end that moved SND.UNA: not yet known. When the original
          got through, this is its ACK and the D-SACK for the probe comes with the next one;
          reducing now would need undoing then (Linux waits in the same way);
        - a pure duplicate ACK at the probe's end: the probe arrived after the original: no loss.

        Another probe may go out once this one is settled (tlp_end_seq is None)."""
        end = self.tlp_end_seq
        if end is None or seq_lt(ack, end):
            return False
        if not self.tlp_is_retrans or dsack:
            self.probe_forgotten()
            return False
        if seq_gt(ack, end):
            self.probe_forgotten()
            return True
        if not una_advanced:
            self.probe_forgotten()
        return False

    def probe_forgotten(self) -> None:
        """A retransmission timeout: the probe, if any, is part of that recovery now."""
        self.tlp_end_seq = None
        self.tlp_is_retrans = False



class RackProcessing:
    """The connection's side of RACK-TLP (a part of Connection, like acknowledgement.py): what an
    ACK, the reorder timer and the probe timer do. `self.rack` is None when RACK is off (no SACK,
    or TcpConfig.loss_detection == "dupack")."""

    __slots__ = ()  # the variables are Connection's (connection.py)

    def _rack_start(self) -> None:
        """SACK is negotiated and there is data to send: RACK-TLP runs on this connection if the
        configuration says so. Made with the first data, so an idle connection pays nothing."""
        if self.sack_permitted and self.config.loss_detection == "rack" and self.rack is None:
            self.rack = RackState()
            self.snd.record_sent_times()

    def _rack_on_ack(self, ack: int, dsack: bool, was_in_recovery: bool, now: float, una_advanced: bool = True) -> None:
        """RFC 8985 6.2 for one acceptable ACK, after the RFC 5681/6675 processing of it
        (`una_advanced`: it acknowledged new data)."""
        rack = self.rack
        snd = self.snd
        congestion = self.congestion
        if una_advanced and snd.requests & LOSS_PROBE:
            # RFC 8985 7.2: an ACK of new data re-arms the probe timer (_rack_arm_probe below), so
            # a probe the timer asked for before this ACK was read is owed no more. The runtime
            # fires a due timer before it reads the ACKs waiting on the link: kept, the request
            # resent the segment written just after this ACK (issue 12, a D-SACK each time).
            snd.take_request(LOSS_PROBE)
        if dsack:
            rack.on_dsack(snd.una, snd.nxt)
        if was_in_recovery and not congestion.in_recovery:
            rack.on_recovery_ended()
        has_sacked = snd.has_sacked
        if snd.sent_times:
            if not has_sacked:
                rack.on_delivered(snd, None, now)
            else:
                scoreboard = snd.scoreboard
                data_end = snd.end_seq

                def sacked(start: int, end: int) -> bool:
                    # A FIN's sequence number is never SACKed (RFC 2018 covers data only).
                    if seq_gt(end, data_end):
                        end = data_end
                    return seq_lt(start, end) and scoreboard.sacked_between(start, end) >= seq_span(start, end)

                rack.on_delivered(snd, sacked, now)
        if rack.tlp_end_seq is not None and rack.probe_answered(ack, dsack, una_advanced) and (
            not congestion.in_recovery and snd.nxt == snd.max
        ):
            # RFC 8985 7.4.2: the probe repaired a loss, which calls for the congestion response
            # of a fast recovery, begun and ended at once since nothing is left to repair.
            reduce_once(congestion, rack.tlp_flight, now)
        self._rack_detect(now, has_sacked)
        self._rack_arm_probe(now, has_sacked)

    def _rack_detect(self, now: float, has_sacked: bool | None = None) -> None:
        """RACK_detect_loss() and the reorder timer (RFC 8985 6.2 step 5, 6.3). `has_sacked`:
        SendSide.has_sacked, when the caller has it at hand."""
        rack = self.rack
        snd = self.snd
        timers = self.timers
        times = snd.sent_times
        if not times or rack.xmit_ts is None:
            timers.cancel(REORDER_TIMER)
            return
        if has_sacked is None:
            has_sacked = snd.has_sacked
        congestion = self.congestion
        if not has_sacked and not congestion.in_recovery:
            # Nothing SACKed: only a segment sent before the newest delivered one (a segment
            # retransmitted, then acknowledged) can be late. The oldest is the one to look at.
            # This runs for nearly every ACK of a bulk transfer, and the reorder timer is almost
            # never armed then: seq_lt and is_armed, inline (seq.py, timer_set.py), save two
            # calls per ACK.
            _, end, sent_at, _ = times[0]
            xmit_ts = rack.xmit_ts
            if sent_at > xmit_ts or (
                sent_at == xmit_ts and not ((end - rack.end_seq) & SEQ_MASK) >= SEQ_HALF  # not seq_lt(end, RACK.end_seq)
            ):
                deadlines = timers.deadlines
                if deadlines is not None and deadlines[REORDER_TIMER] != NOT_ARMED:
                    timers.cancel(REORDER_TIMER)
                return
        sacked_segments = snd.scoreboard.sacked_bytes() // self.send_mss if snd.has_sacked else 0
        reo_wnd = rack.reordering_window(congestion.in_recovery, sacked_segments, self.rtt.srtt)
        lost_end, timeout = rack.detect_losses(snd, reo_wnd, now)
        if lost_end is not None:
            snd.scoreboard.rack_lost(lost_end)
            if not congestion.in_recovery:
                self._enter_fast_recovery(now)  # RFC 8985 6.2: a loss starts fast recovery
                timers.cancel(TLP_TIMER)
        if timeout is None:
            timers.cancel(REORDER_TIMER)
        else:
            timers.arm(REORDER_TIMER, now + timeout)

    def _reorder_timeout(self, now: float) -> None:
        """RFC 8985 6.3: the reordering window ran out for some segment: look again."""
        self.timers.cancel(REORDER_TIMER)
        if self.rack is not None:
            self._rack_detect(now)

    # ------------------------------------------------------------------ tail loss probes
    def _rack_arm_probe(self, now: float, has_sacked: bool | None = None) -> None:
        """RFC 8985 7.2: after new data went out or new data was acknowledged, (re)arm the probe
        timer, unless in recovery (fast, or after a timeout: SND.NXT below SND.MAX), unless the
        peer has SACKed something (RACK watches that flight) or a probe is still unanswered.
        The probe never comes later than the retransmission timer would. `has_sacked`:
        SendSide.has_sacked, when the caller has it at hand."""
        rack = self.rack
        if rack is None:
            return
        snd = self.snd
        timers = self.timers
        snd_nxt = snd.nxt
        in_flight = ((snd_nxt - snd.una + SEQ_HALF) & SEQ_MASK) - SEQ_HALF  # seq_diff, inline (seq.py)
        if (
            in_flight <= 0
            or self.congestion.in_recovery
            or (snd.has_sacked if has_sacked is None else has_sacked)
            or snd_nxt != snd.max
            or rack.tlp_end_seq is not None
        ):
            timers.cancel(TLP_TIMER)
            return
        deadline = now + rack.probe_timeout(self.rtt.srtt, in_flight, self.send_mss)
        # timers.deadline(RETRANSMIT_TIMER), in line (timer_set.py): a slot not armed holds
        # NOT_ARMED, infinity, which no deadline exceeds.
        deadlines = timers.deadlines
        if deadlines is not None and deadlines[RETRANSMIT_TIMER] < deadline:
            deadline = deadlines[RETRANSMIT_TIMER]  # 7.2: PTO = the time left before the RTO
        timers.arm(TLP_TIMER, deadline)

    def _probe_timeout(self, now: float) -> None:
        """RFC 8985 7.3: the probe timer expired; output.py sends the probe (_emit_loss_probe)."""
        self.timers.cancel(TLP_TIMER)
        snd = self.snd
        if self.rack is None or snd.nxt == snd.una or not snd.syn_acknowledged:
            return
        snd.request(LOSS_PROBE)
        # 7.3: the retransmission timer restarts with the probe; it must not fire with it.
        self.timers.arm(RETRANSMIT_TIMER, now + self.rtt.rto)

    def _emit_loss_probe(self, now: float, out: list) -> None:
        """RFC 8985 7.3: one segment of new data if there is some and the peer's window takes it
        (cwnd does not limit a probe), else the last segment sent, again. Then the
        retransmission timer restarts (7.3 step 3)."""
        snd = self.snd
        rack = self.rack
        seq = snd.nxt
        unsent = seq_span(seq, snd.end_seq)
        mss = self._payload_room()
        length = mss if mss < unsent else unsent
        if length > 0 and seq == snd.max and seq_span(snd.una, seq) + length <= snd.wnd:
            if length == unsent:
                flags = ACK | PSH | FIN if snd.fin_queued else ACK | PSH
            else:
                flags = ACK
            self._send_at(now, out, seq, flags, snd.buffer.peek(seq, length))
            rack.probe_sent(snd.nxt, False, seq_span(snd.una, snd.nxt))
        else:
            # 7.3: the last segment sent. With TSO (config.offload_segments) the last entry may
            # be a super-segment of several MSS, which the link cut every MSS from its start:
            # its last wire segment, the piece ending at SND.NXT, is the one to send again (as
            # Linux's tcp_send_loss_probe, which splits off the skb's last MSS). Its first MSS
            # would tell the peer's SACK nothing about the segments after it.
            times = snd.sent_times
            start = times[-1][0] if times else snd.una
            if seq_lt(start, snd.una):
                start = snd.una
            data_end = snd.end_seq if seq_gt(snd.nxt, snd.end_seq) else snd.nxt  # not the FIN
            span = seq_span(start, data_end)
            if span > mss:
                start = seq_add(start, (span - 1) // mss * mss)
            after = self._retransmit_at(now, out, start, min(mss, seq_span(start, snd.nxt)) or mss)
            if after == start:
                return
            rack.probe_sent(snd.nxt, True, seq_span(snd.una, snd.nxt))
        self.timers.arm(RETRANSMIT_TIMER, now + self.rtt.rto)




