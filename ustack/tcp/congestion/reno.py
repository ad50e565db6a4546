"""Reno (RFC 5681) and NewReno (RFC 6582)."""

from __future__ import annotations

from ustack.tcp.congestion.base import CongestionControl


class Reno(CongestionControl):
    """Slow start, congestion avoidance, fast retransmit and fast recovery of RFC 5681.

    Growth uses byte counting (RFC 3465): slow start adds min(acked, 2*MSS) per ACK (RFC 3465 2.2,
    L = 2 MSS), and congestion avoidance adds one MSS each time a full cwnd of
    bytes has been acknowledged, which is "about one MSS per RTT" however the receiver delays its
    ACKs (RFC 5681 3.1, the alternative to equation 3 it recommends). cwnd stays an integer, and a
    whole number of segments after a loss (base._threshold_after_loss).
    """

    name = "reno"

    # RFC 3465 2.2: at most L = 2*MSS of one ACK counts in slow start. RFC 5681 equation 2's
    # 1*MSS makes slow start grow by only 1.5x per round trip against a receiver that ACKs every
    # second segment (RFC 9293 3.8.6.3, Linux and ustack both do): 10, 15, 22, 33 segments instead
    # of 10, 20, 40, 80. L = 2 restores doubling, as FreeBSD (net.inet.tcp.abc_l_var=2) and Linux
    # (tcp_slow_start adds every segment acknowledged) do.
    SLOW_START_LIMIT_SEGMENTS = 2

    __slots__ = ("_bytes_acked_in_avoidance", "_timed_out_since_last_ack")

    def __init__(self, mss: int, initial_window_segments: int = 10):
        super().__init__(mss, initial_window_segments)
        self._bytes_acked_in_avoidance = 0  # RFC 3465 "bytes_acked" in congestion avoidance
        self._timed_out_since_last_ack = False

    def on_ack(self, acked_bytes: int, bytes_in_flight: int, now: float, acks: int = 1) -> None:
        if acked_bytes <= 0:
            return
        self._acked_anything = True
        self._timed_out_since_last_ack = False
        if not self.cwnd_limited(bytes_in_flight):
            return  # RFC 7661: an ACK of a flight cwnd did not limit says nothing about cwnd
        if self.cwnd < self.ssthresh:
            # Slow start (RFC 5681 3.1, equation 2): roughly doubles cwnd every round trip.
            # `acks` > 1: the ACK stands for that many of a run the link read together (L for each).
            limit = self.SLOW_START_LIMIT_SEGMENTS * self.mss
            growth = min(acked_bytes, limit * acks)
            if acks > 1:
                growth = self._slow_start_growth_of_run(growth, bytes_in_flight, limit)
            self.cwnd += growth
            return
        # Congestion avoidance (RFC 5681 3.1; byte counting per RFC 3465 2.1): one MSS for every
        # cwnd's worth of acknowledged bytes, i.e. about one MSS per round trip.
        self._bytes_acked_in_avoidance += acked_bytes
        if self._bytes_acked_in_avoidance >= self.cwnd:
            self._bytes_acked_in_avoidance -= self.cwnd
            self.cwnd += self.mss

    def _congestion_event(self, flight_size: int, now: float) -> int:
        """The new ssthresh after a loss: half the flight in whole segments, at least two (RFC
        5681 3.1 equation 4; base._threshold_after_loss). CUBIC reduces by its beta instead and
        remembers where the loss happened."""
        return self._threshold_after_loss(flight_size // 2)

    def on_enter_fast_recovery(self, bytes_in_flight: int, now: float, limited_transmit_bytes: int = 0) -> None:
        # RFC 5681 3.2 step 2: halve the flight (without what Limited Transmit sent beyond cwnd),
        # but keep at least two segments. FlightSize is the flight as last sent
        # (flight_after_send, as cwnd validation judges it, base.py) if that is larger: ACKs read
        # in one batch each take their segments out of the flight with no chance to send between
        # them, and the loss found by the last of them would otherwise halve a flight the batch
        # itself emptied (ssthresh 13 segments instead of 20 for a window of 40 in `ustack lab
        # congestion`). Linux reduces from cwnd, which comes to the same when cwnd is used.
        flight = max(bytes_in_flight, self.flight_after_send)
        self.ssthresh = self._congestion_event(flight - limited_transmit_bytes, now)
        # Step 3: the three duplicate ACKs mean three segments have left the network, so the
        # window is "inflated" by them.
        self.cwnd = self.ssthresh + 3 * self.mss
        self._bytes_acked_in_avoidance = 0
        self.in_recovery = True

    def on_duplicate_ack_in_recovery(self) -> None:
        # RFC 5681 3.2 step 4: each further duplicate ACK means another segment has left the
        # network; inflate cwnd so that a new segment may be sent in its place.
        if self.in_recovery:
            self.cwnd += self.mss

    def on_partial_ack_in_sack_recovery(self, acked_bytes: int) -> None:
        """An ACK of new data below RFC 6675's RecoveryPoint: SACK recovery goes on, whatever the
        algorithm (RFC 6675 5: it ends only when RecoveryPoint is acknowledged; Linux's "reno"
        module also leaves the extent of recovery to the loss recovery). The window is deflated
        as by a NewReno partial ACK (RFC 6582 3.2); what is sent meanwhile is PRR's or
        pipe's (output.py), not cwnd's."""
        self._acked_anything = True
        self._timed_out_since_last_ack = False
        self._deflate_on_partial_ack(acked_bytes)

    def _deflate_on_partial_ack(self, acked_bytes: int) -> None:
        # RFC 6582 3.2, partial acknowledgment: deflate cwnd by the data it acknowledged, then add
        # back one MSS if it acknowledged at least that much, so that about ssthresh bytes stay
        # in flight once recovery ends.
        self.cwnd = max(self.cwnd - acked_bytes, self.mss)
        if acked_bytes >= self.mss:
            self.cwnd += self.mss

    def on_recovery_ack(self, acked_bytes: int, bytes_in_flight: int, now: float) -> bool:
        # RFC 5681 3.2 step 6: the first ACK of new data "deflates" the window to ssthresh and
        # ends recovery. (NewReno, RFC 6582, would stay in recovery on a partial ACK.)
        self._acked_anything = True
        self._timed_out_since_last_ack = False
        self.cwnd = self.ssthresh
        self._bytes_acked_in_avoidance = 0
        self.in_recovery = False
        return True

    def on_retransmit_timeout(self, bytes_in_flight: int, now: float) -> None:
        # RFC 5681 3.1 equation 4. When the retransmission timer expires again before any new
        # ACK, the same segment is being retransmitted again and ssthresh is held constant
        # (RFC 5681 3.1, the paragraph after equation 4), else repeated timeouts would drive it
        # down to 2*MSS for no new reason.
        if not self._timed_out_since_last_ack:
            self.ssthresh = self._congestion_event(bytes_in_flight, now)
        # The loss window is one segment (RFC 5681 3.1): restart with slow start.
        self.cwnd = self.mss
        self._bytes_acked_in_avoidance = 0
        self.in_recovery = False
        self._timed_out_since_last_ack = True


class NewReno(Reno):
    """Reno whose fast recovery survives several losses in one window (RFC 6582).

    With Reno, the first ACK of new data ends recovery even when it is a "partial ACK" that stops
    short of everything sent before the loss was detected: a second hole in the same window then
    usually costs a retransmission timeout. NewReno stays in recovery until the whole flight that
    was outstanding at its start is acknowledged, and has the connection retransmit the next hole
    on each partial ACK (on_recovery_ack returns False).

    The "recover" point of RFC 6582 (SND.NXT at entry) is tracked in bytes: the flight at entry
    minus what recovery ACKs have acknowledged since. The other use of "recover", no new fast
    retransmit on duplicate ACKs for data sent before the last recovery or timeout (RFC 6582 3.2
    step 2), needs sequence numbers and is the connection's (careful_recovery below).
    """

    name = "newreno"
    careful_recovery = True

    __slots__ = ("_unacknowledged_at_recovery",)

    def __init__(self, mss: int, initial_window_segments: int = 10):
        super().__init__(mss, initial_window_segments)
        self._unacknowledged_at_recovery = 0  # bytes of the entry flight not yet acknowledged

    def on_enter_fast_recovery(self, bytes_in_flight: int, now: float, limited_transmit_bytes: int = 0) -> None:
        # RFC 6582 3.2, entering fast retransmit: the same ssthresh and inflated cwnd as Reno,
        # plus "recover": the whole flight, Limited Transmit's segments included.
        super().on_enter_fast_recovery(bytes_in_flight, now, limited_transmit_bytes)
        self._unacknowledged_at_recovery = bytes_in_flight

    def on_recovery_ack(self, acked_bytes: int, bytes_in_flight: int, now: float) -> bool:
        self._acked_anything = True
        self._timed_out_since_last_ack = False
        self._unacknowledged_at_recovery -= acked_bytes
        if self._unacknowledged_at_recovery > 0:
            self._deflate_on_partial_ack(acked_bytes)  # RFC 6582 3.2, partial acknowledgment
            return False
        # RFC 6582 3.2, full acknowledgment, option (1): cwnd = min(ssthresh, max(FlightSize, MSS) + MSS)
        # where FlightSize is what remains in flight after this ACK; this avoids a burst when
        # little is left in flight.
        flight_after = max(bytes_in_flight - acked_bytes, 0)
        self.cwnd = min(self.ssthresh, max(flight_after, self.mss) + self.mss)
        self._bytes_acked_in_avoidance = 0
        self.in_recovery = False
        return True

    def on_partial_ack_in_sack_recovery(self, acked_bytes: int) -> None:
        super().on_partial_ack_in_sack_recovery(acked_bytes)
        self._unacknowledged_at_recovery -= acked_bytes

    def on_retransmit_timeout(self, bytes_in_flight: int, now: float) -> None:
        super().on_retransmit_timeout(bytes_in_flight, now)
        self._unacknowledged_at_recovery = 0
