"""What every congestion control algorithm shares: the initial window, the starting ssthresh
and the interface (the contract is in __init__.py)."""

from __future__ import annotations

import functools

from ustack.tcp.congestion.prr import ProportionalRateReduction

# ssthresh starts "arbitrarily high" (RFC 5681 3.1): above any window we will ever reach.
INITIAL_SSTHRESH = (1 << 31) - 1


@functools.lru_cache(maxsize=64)
def initial_window(mss: int, segments: int = 10) -> int:
    """The initial congestion window in bytes.

    RFC 6928 section 2 with 10 segments: min(10*MSS, max(2*MSS, 14600)). The same shape is used for
    other segment counts: at most `segments` full segments and a byte budget of `segments * 1460`,
    but never less than 2 segments (nor less than 1 if 1 is asked for).

    Cached: the connections of a host share a few MSS values, and so one int object for their
    cwnd until it first grows (a new int each would cost 32 bytes per idle connection).
    """
    if mss <= 0:
        raise ValueError(f"MSS must be positive, got {mss}")
    if segments <= 0:
        raise ValueError(f"the initial window needs at least one segment, got {segments}")
    return min(segments * mss, max(min(2, segments) * mss, segments * 1460))


class CongestionControl:
    """The interface every algorithm implements (see the module docstring for the contract).

    The base class holds the state every algorithm shares and implements nothing that decides
    behaviour; subclasses fill in the event methods.
    """

    name = "abstract"
    # RFC 6582 3.2 step 2: no fast retransmit for duplicate ACKs not above "recover".
    careful_recovery = False

    __slots__ = (
        "initial_window_segments", "mss", "cwnd", "ssthresh", "in_recovery", "_acked_anything", "prr",
        "flight_after_send", "pacer",
    )

    def __init__(self, mss: int, initial_window_segments: int = 10):
        self.initial_window_segments = initial_window_segments
        self.mss = mss
        self.cwnd = initial_window(mss, initial_window_segments)
        self.ssthresh = INITIAL_SSTHRESH
        self.in_recovery = False
        self._acked_anything = False
        # RFC 6937: how much may be sent during SACK recovery; made when a recovery starts.
        self.prr: ProportionalRateReduction | None = None
        # FlightSize when the connection last had the chance to send (set by output.transmit).
        self.flight_after_send = 0
        # The pacing bucket (pacing.py), made by output.py on a connection with TcpConfig.pacing.
        self.pacer = None

    def cwnd_limited(self, bytes_in_flight: int) -> bool:
        """Whether the flight an ACK answers was limited by cwnd, i.e. whether that ACK says
        anything about a larger window (RFC 7661 4, RFC 5681 3.1 "cwnd ... SHOULD NOT be
        increased" when not fully used). In slow start, as Linux (tcp_is_cwnd_limited), the
        window may still double while the flight is at least half of it; in congestion
        avoidance the flight must have filled cwnd to within one segment. A download limited by
        the receiver's window, or an application that writes little, thus leaves cwnd alone
        instead of growing it without bound.

        The flight that counts is the one the sender left after it last sent (like Linux's
        max_packets_out, measured at send time), or the one before this ACK if larger. Not the
        one before this ACK alone: ACKs read in one batch are processed one after another with
        no sending in between, so the flight before each falls by what the ACKs before it took
        away, and the second half of a batch of a flight that filled cwnd would look
        application-limited (growth in slow start was cut by half in `ustack lab congestion`)."""
        flight = self.flight_after_send
        if bytes_in_flight > flight:
            flight = bytes_in_flight
        if self.cwnd < self.ssthresh:
            return 2 * flight > self.cwnd
        return flight + self.mss > self.cwnd

    def _slow_start_growth_of_run(self, growth: int, bytes_in_flight: int, per_ack_limit: int) -> int:
        """Slow start's growth for one ACK standing for several (an AckRunSegment: the link
        absorbed the ACKs between a run's first and last, csrc/segment.c), as close as one sum can
        come to growing for each in turn: one by one, each ACK adds at most `per_ack_limit` (RFC
        3465 2.2's L*SMSS; the caller has already allowed L for every ACK of the run), and only
        while cwnd_limited holds, i.e. while cwnd is below twice the flight (RFC 7661), so cwnd
        stops within one ACK's growth past that. The sum is cut to the same bound."""
        flight = self.flight_after_send
        if bytes_in_flight > flight:
            flight = bytes_in_flight
        room = 2 * flight - self.cwnd + per_ack_limit
        return growth if growth < room else max(room, 0)

    def _threshold_after_loss(self, reduced_flight: int) -> int:
        """ssthresh after a congestion event, from the flight the algorithm reduced (half of it
        for Reno, beta_cubic of it for CUBIC): rounded DOWN to whole segments, and at least two
        (RFC 5681 3.1 equation 4 sets at most FlightSize / 2, so rounding down keeps within it).

        Whole segments, because a sender only ever sends whole segments while data waits (the
        sender's SWS avoidance, RFC 9293 3.8.6.2.1, holds a tail of less than one MSS back): of
        a cwnd of 12.5 segments only 12 are used, so each round trip acknowledges 12 while RFC
        3465's byte counting waits for 12.5 before adding one MSS, and every few round trips
        one passes without growth. After each loss from a flight of an odd number of segments,
        Reno then ran half a segment below the window it held and grew late (bench_recovery's
        b/a for Reno: the same losses as Linux's sender at the same places, and 5-8 % less
        goodput). Linux counts cwnd in packets and so rounds down too (tcp_reno_ssthresh)."""
        mss = self.mss
        return max(reduced_flight - reduced_flight % mss, 2 * mss)

    def start_proportional_rate_reduction(self, recover_fs: int) -> None:
        """RFC 6937 3: a recovery begins with RecoverFS = FlightSize; ssthresh is already set."""
        self.prr = ProportionalRateReduction(recover_fs)

    def end_proportional_rate_reduction(self) -> None:
        """A SACK recovery sized by PRR is over (RFC 6937 3, "on exiting recovery"): cwnd =
        ssthresh, as Linux does (tcp_end_cwnd_reduction). PRR has kept the flight near ssthresh,
        so this sends no burst; NewReno's min(ssthresh, FlightSize + MSS) would instead leave a
        flight that PRR kept small (few segments delivered during recovery) to slow start back
        up to ssthresh, and start CUBIC's epoch late."""
        if self.prr is not None:
            self.prr = None
            self.cwnd = self.ssthresh

    def take_over(self, previous: CongestionControl) -> None:
        """This algorithm replaces `previous` on an open connection (TCP_CONGESTION, Linux's
        tcp_reinit_congestion_control): the window and threshold carry over. A recovery under
        way ends here, with cwnd = ssthresh, as at its normal end (RFC 5681 3.2 step 6)."""
        self.mss = previous.mss
        self._acked_anything = previous._acked_anything
        self.ssthresh = previous.ssthresh
        self.flight_after_send = previous.flight_after_send
        self.pacer = previous.pacer
        self.cwnd = previous.ssthresh if previous.in_recovery else previous.cwnd

    # --- events (see the module docstring) ---
    def on_ack(self, acked_bytes: int, bytes_in_flight: int, now: float, acks: int = 1) -> None:
        raise NotImplementedError

    def on_enter_fast_recovery(self, bytes_in_flight: int, now: float, limited_transmit_bytes: int = 0) -> None:
        raise NotImplementedError

    def on_duplicate_ack_in_recovery(self) -> None:
        raise NotImplementedError

    def on_recovery_ack(self, acked_bytes: int, bytes_in_flight: int, now: float) -> bool:
        raise NotImplementedError

    def on_retransmit_timeout(self, bytes_in_flight: int, now: float) -> None:
        raise NotImplementedError

    def on_rtt_sample(self, sample: float, smoothed_rtt: float | None, now: float, samples: int = 1) -> None:
        """A new RTT measurement (rtt.py took it too); CUBIC and HyStart++ use it. `samples`: how
        many ACKs it stands for (an AckRunSegment's, each of whose samples was at least this one)."""

    def on_idle_restart(self, now: float) -> None:
        # RFC 5681 4.1: after an idle period the sender restarts from
        # RW = min(IW, cwnd) rather than bursting a stale, large window into the network.
        self.cwnd = min(self.cwnd, initial_window(self.mss, self.initial_window_segments))

    def set_mss(self, mss: int) -> None:
        """The sender MSS changed (usually once, when the handshake settles it). Until any data
        has been acknowledged the window is still the initial window, recomputed for this MSS."""
        if mss <= 0:
            raise ValueError(f"MSS must be positive, got {mss}")
        self.mss = mss
        if not self._acked_anything:
            self.cwnd = initial_window(mss, self.initial_window_segments)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(cwnd={self.cwnd} ssthresh={self.ssthresh} "
            f"mss={self.mss} in_recovery={self.in_recovery})"
        )
