"""Congestion control: how much unacknowledged data the network may hold (RFC 5681).

The receiver's window protects the receiver; the congestion window (cwnd) protects the network.
A sender keeps at most min(cwnd, receive window) bytes in flight. An algorithm grows cwnd while
ACKs come back and shrinks it when it sees loss.

The contract between the connection and an algorithm
------------------------------------------------------
The connection detects events; the algorithm only does arithmetic on cwnd and ssthresh. Everything
is in bytes. `bytes_in_flight` is always FlightSize in RFC 5681 terms: SND.NXT - SND.UNA
(sent and not yet cumulatively acknowledged) measured BEFORE the event being reported, and `now`
is the connection's clock in seconds. The connection calls:

- `on_ack(acked_bytes, bytes_in_flight, now)` for an ACK that acknowledges new data while not in
  recovery (acked_bytes = how far SND.UNA moved, counted in data bytes).
- `on_enter_fast_recovery(bytes_in_flight, now, limited_transmit_bytes=0)` on the third duplicate
  ACK (RFC 5681 3.2 step 2); the connection then retransmits the first unacknowledged segment
  (step 3). `limited_transmit_bytes` of the flight were sent beyond cwnd by Limited Transmit
  (RFC 3042) and MUST NOT count when ssthresh is set (RFC 5681 3.2 step 2).
- `on_duplicate_ack_in_recovery()` for each further duplicate ACK (step 4).
- `on_recovery_ack(acked_bytes, bytes_in_flight, now) -> bool` for an ACK of new data during
  recovery. True: recovery is over (`in_recovery` is now False). False: a partial ACK, the
  algorithm stays in recovery and the connection retransmits the first unacknowledged segment
  (RFC 6582 3.2, partial acknowledgments). Reno always returns True.
- `on_retransmit_timeout(bytes_in_flight, now)` when the retransmission timer expires.
- `on_idle_restart(now)` before sending after an idle period longer than one RTO (RFC 5681 4.1).
- `set_mss(mss)` once the sender MSS is known (after the handshake).

The connection keeps RFC 6582's "recover" (SND.MAX when fast recovery began or the last timeout
fired) and, for an algorithm whose `careful_recovery` is True, starts no new fast retransmit on
duplicate ACKs that do not cover it (RFC 6582 3.2 step 2, 4.1): after a timeout, the peer's
duplicate ACKs for segments sent twice would otherwise halve cwnd again for no new loss.

An algorithm may keep any state of its own (NewReno below: how much of the flight at the start
of recovery is still unacknowledged, counted from `bytes_in_flight` at entry and the `acked_bytes`
of each recovery ACK; CUBIC, RFC 9438: the time of the last reduction, from `now`). A new
algorithm is a subclass registered in `CONGESTION_CONTROLS`; the connection only ever sees the
methods above, so adding CUBIC needs no change to the connection. SACK-based loss recovery
(RFC 6675) is the connection's too (scoreboard.py decides WHAT to resend): it takes ssthresh
from the algorithm as the window during recovery (RFC 6675 5 step 4.2: cwnd = ssthresh) and
counts the bytes still in the network itself ("pipe"), so it works with every algorithm.

Registered: "reno" (RFC 5681) and "newreno" (RFC 6582, the default: see TcpConfig).
"""

# ssthresh starts "arbitrarily high" (RFC 5681 3.1): above any window we will ever reach.
INITIAL_SSTHRESH = (1 << 31) - 1


def initial_window(mss: int, segments: int = 10) -> int:
    """The initial congestion window in bytes.

    RFC 6928 section 2 with 10 segments: min(10*MSS, max(2*MSS, 14600)). The same shape is used for
    other segment counts: at most `segments` full segments and a byte budget of `segments * 1460`,
    but never less than 2 segments (nor less than 1 if 1 is asked for).
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

    __slots__ = ("initial_window_segments", "mss", "cwnd", "ssthresh", "in_recovery", "_acked_anything")

    def __init__(self, mss: int, initial_window_segments: int = 10):
        self.initial_window_segments = initial_window_segments
        self.mss = mss
        self.cwnd = initial_window(mss, initial_window_segments)
        self.ssthresh = INITIAL_SSTHRESH
        self.in_recovery = False
        self._acked_anything = False

    # --- events (see the module docstring) ---
    def on_ack(self, acked_bytes: int, bytes_in_flight: int, now: float) -> None:
        raise NotImplementedError

    def on_enter_fast_recovery(self, bytes_in_flight: int, now: float, limited_transmit_bytes: int = 0) -> None:
        raise NotImplementedError

    def on_duplicate_ack_in_recovery(self) -> None:
        raise NotImplementedError

    def on_recovery_ack(self, acked_bytes: int, bytes_in_flight: int, now: float) -> bool:
        raise NotImplementedError

    def on_retransmit_timeout(self, bytes_in_flight: int, now: float) -> None:
        raise NotImplementedError

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


class Reno(CongestionControl):
    """Slow start, congestion avoidance, fast retransmit and fast recovery of RFC 5681.

    Growth uses byte counting (RFC 3465): slow start adds min(acked, 1*MSS) per ACK (RFC 5681 3.1
    equation 2 with L = 1 MSS), and congestion avoidance adds one MSS each time a full cwnd of
    bytes has been acknowledged, which is "about one MSS per RTT" however the receiver delays its
    ACKs (RFC 5681 3.1, the alternative to equation 3 it recommends). cwnd stays an integer.
    """

    name = "reno"

    # RFC 3465 2.2 allows L = 2*MSS in slow start; we keep 1*MSS as RFC 5681 equation 2 does.
    SLOW_START_LIMIT_SEGMENTS = 1

    __slots__ = ("_bytes_acked_in_avoidance", "_timed_out_since_last_ack")

    def __init__(self, mss: int, initial_window_segments: int = 10):
        super().__init__(mss, initial_window_segments)
        self._bytes_acked_in_avoidance = 0  # RFC 3465 "bytes_acked" in congestion avoidance
        self._timed_out_since_last_ack = False

    def on_ack(self, acked_bytes: int, bytes_in_flight: int, now: float) -> None:
        if acked_bytes <= 0:
            return
        self._acked_anything = True
        self._timed_out_since_last_ack = False
        if self.cwnd < self.ssthresh:
            # Slow start (RFC 5681 3.1, equation 2): roughly doubles cwnd every round trip.
            self.cwnd += min(acked_bytes, self.SLOW_START_LIMIT_SEGMENTS * self.mss)
            return
        # Congestion avoidance (RFC 5681 3.1; byte counting per RFC 3465 2.1): one MSS for every
        # cwnd's worth of acknowledged bytes, i.e. about one MSS per round trip.
        self._bytes_acked_in_avoidance += acked_bytes
        if self._bytes_acked_in_avoidance >= self.cwnd:
            self._bytes_acked_in_avoidance -= self.cwnd
            self.cwnd += self.mss

    def on_enter_fast_recovery(self, bytes_in_flight: int, now: float, limited_transmit_bytes: int = 0) -> None:
        # RFC 5681 3.2 step 2: halve the flight (without what Limited Transmit sent beyond cwnd),
        # but keep at least two segments.
        self.ssthresh = max((bytes_in_flight - limited_transmit_bytes) // 2, 2 * self.mss)
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
            self.ssthresh = max(bytes_in_flight // 2, 2 * self.mss)
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
            # RFC 6582 3.2, partial acknowledgment: deflate cwnd by the data it acknowledged, then add
            # back one MSS if it acknowledged at least that much, so that about ssthresh bytes stay
            # in flight once recovery ends.
            self.cwnd = max(self.cwnd - acked_bytes, self.mss)
            if acked_bytes >= self.mss:
                self.cwnd += self.mss
            return False
        # RFC 6582 3.2, full acknowledgment, option (1): cwnd = min(ssthresh, max(FlightSize, MSS) + MSS)
        # where FlightSize is what remains in flight after this ACK; this avoids a burst when
        # little is left in flight.
        flight_after = max(bytes_in_flight - acked_bytes, 0)
        self.cwnd = min(self.ssthresh, max(flight_after, self.mss) + self.mss)
        self._bytes_acked_in_avoidance = 0
        self.in_recovery = False
        return True

    def on_retransmit_timeout(self, bytes_in_flight: int, now: float) -> None:
        super().on_retransmit_timeout(bytes_in_flight, now)
        self._unacknowledged_at_recovery = 0


# Every algorithm by the name TcpConfig.congestion_control uses.
CONGESTION_CONTROLS: dict[str, type[CongestionControl]] = {
    Reno.name: Reno,
    NewReno.name: NewReno,
}


def create_congestion_control(name: str, mss: int, initial_window_segments: int = 10) -> CongestionControl:
    """A new instance of the algorithm called `name` for one connection."""
    try:
        algorithm = CONGESTION_CONTROLS[name]
    except KeyError:
        known = ", ".join(sorted(CONGESTION_CONTROLS))
        raise ValueError(f"unknown congestion control {name!r}; known: {known}") from None
    return algorithm(mss, initial_window_segments)
