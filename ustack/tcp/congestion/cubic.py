"""CUBIC (RFC 9438), Linux's default congestion control, with HyStart++ (RFC 9406) slow start.

Reno grows cwnd by one segment per round trip, so on a long fat path it takes thousands of round
trips to refill a window halved by one loss. CUBIC grows it as a cubic function of the TIME since
the last reduction, independent of the RTT:

    W_cubic(t) = C * (t - K)**3 + W_max           (RFC 9438 4.2, Figure 1; in segments)
    K = cbrt((W_max - cwnd_epoch) / C)            (Figure 2)

W_max is the window where the last loss happened. The curve rises fast just after a reduction,
flattens around W_max (the concave region: probing carefully where the last loss was) and
rises fast again beyond it (the convex region: the path has more room). A loss reduces cwnd by
beta_cubic = 0.7 rather than 0.5.

Where Reno would be faster (short RTTs, small windows), CUBIC follows an estimate of what Reno
would have reached, W_est (the Reno-friendly region, RFC 9438 4.3), so it is never less fair
than Reno. Fast convergence (4.7): a loss below the previous W_max means a new flow is taking
its share, so W_max is lowered further to make room.

Loss detection and recovery are NewReno's (RFC 6582), which this class extends: only the
reduction (ssthresh = beta * FlightSize) and the growth in congestion avoidance differ.
"""

from __future__ import annotations

from ustack.tcp.congestion.base import INITIAL_SSTHRESH
from ustack.tcp.congestion.hystart import DONE, SLOW_START_LIMIT_SEGMENTS, HyStartPlusPlus
from ustack.tcp.congestion.reno import NewReno

C = 0.4  # RFC 9438 4.1: the scaling constant, segments / second**3
# RFC 9438 4.1: the multiplicative decrease factor, 0.7 (kept as a fraction: ssthresh in whole bytes).
BETA_NUMERATOR, BETA_DENOMINATOR = 7, 10
BETA = BETA_NUMERATOR / BETA_DENOMINATOR
# RFC 9438 4.3: the additive increase factor that makes W_est match Reno's average rate with beta.
ALPHA = 3 * (1 - BETA) / (1 + BETA)


def cubic_window(t: float, w_max: float, k: float) -> float:
    """W_cubic(t) of RFC 9438 4.2, Figure 1, in segments."""
    return C * (t - k) ** 3 + w_max


def cubic_k(w_max: float, cwnd_epoch: float) -> float:
    """K of RFC 9438 4.2, Figure 2: the time the curve takes to climb back to W_max."""
    if w_max <= cwnd_epoch:
        return 0.0
    return ((w_max - cwnd_epoch) / C) ** (1 / 3)


class Cubic(NewReno):
    """RFC 9438 on top of NewReno's recovery; slow start is HyStart++ (RFC 9406) the first time."""

    name = "cubic"

    __slots__ = ("w_max", "k", "epoch_start", "cwnd_epoch", "w_est", "smoothed_rtt", "hystart", "_carry")

    def __init__(self, mss: int, initial_window_segments: int = 10):
        super().__init__(mss, initial_window_segments)
        self.w_max = 0.0  # segments; 0 until the first congestion event
        self.k = 0.0
        self.epoch_start: float | None = None  # when the current congestion avoidance began
        self.cwnd_epoch = 0.0
        self.w_est = 0.0
        self.smoothed_rtt: float | None = None
        self.hystart = HyStartPlusPlus()
        self._carry = 0.0  # fractions of a byte of growth not yet added to the integer cwnd

    @property
    def phase(self) -> str:
        """For ss -i: slow start (and HyStart++'s phase), congestion avoidance or recovery."""
        if self.in_recovery:
            return "recovery"
        if self.cwnd < self.ssthresh:
            return self.hystart.phase if self.hystart.phase != "done" else "slow start"
        return "congestion avoidance"

    def on_rtt_sample(self, sample: float, smoothed_rtt: float | None, now: float, samples: int = 1) -> None:
        self.smoothed_rtt = smoothed_rtt
        hystart = self.hystart
        if hystart.phase is not DONE:  # (past slow start, the usual case: no call for nothing)
            hystart.on_rtt_sample(sample, samples)

    def on_ack(self, acked_bytes: int, bytes_in_flight: int, now: float, acks: int = 1) -> None:
        if acked_bytes <= 0:
            return
        self._acked_anything = True
        self._timed_out_since_last_ack = False
        if not self.cwnd_limited(bytes_in_flight):
            return  # RFC 7661 (and RFC 9438 5.8): no growth when cwnd did not limit the sender
        if self.cwnd < self.ssthresh:
            growth = self.hystart.on_ack(acked_bytes, bytes_in_flight, self.mss, acks)
            if growth < 0:
                self.ssthresh = self.cwnd  # RFC 9406 4.2: CSS is over, congestion avoidance
            else:
                if acks > 1:  # an ACK standing for several of a run (base.py)
                    growth = self._slow_start_growth_of_run(growth, bytes_in_flight,
                                                            SLOW_START_LIMIT_SEGMENTS * self.mss)
                self.cwnd += growth
            return
        self._avoid_congestion(acked_bytes, now)

    def _avoid_congestion(self, acked_bytes: int, now: float) -> None:
        """RFC 9438 4.2-4.5: one ACK in congestion avoidance."""
        mss = self.mss
        cwnd = self.cwnd / mss  # the RFC counts in segments
        if self.epoch_start is None:
            # RFC 9438 4.2: the epoch starts with congestion avoidance; with no loss yet (slow
            # start ended by HyStart++), W_max is where we are: the curve starts flat.
            self.epoch_start = now
            self.cwnd_epoch = cwnd
            if self.w_max < cwnd:
                self.w_max = cwnd
            self.k = cubic_k(self.w_max, cwnd)
            self.w_est = cwnd
        t = now - self.epoch_start
        rtt = self.smoothed_rtt or 0.0
        # RFC 9438 4.3: W_est grows like Reno with alpha_cubic, and like Reno itself (alpha 1)
        # once it has passed W_max.
        alpha = 1.0 if self.w_est >= self.w_max else ALPHA
        self.w_est += alpha * (acked_bytes / mss) / cwnd
        if cubic_window(t, self.w_max, self.k) < self.w_est:
            increase = (self.w_est - cwnd) * mss  # the Reno-friendly region: cwnd = W_est
        else:
            # RFC 9438 4.4/4.5: aim at W_cubic one RTT ahead, within [cwnd, 1.5 cwnd], and move
            # (target - cwnd) / cwnd segments per segment acknowledged.
            target = min(max(cubic_window(t + rtt, self.w_max, self.k), cwnd), 1.5 * cwnd)
            increase = (target - cwnd) / cwnd * acked_bytes
        self._carry += max(increase, 0.0)
        whole = int(self._carry)
        self.cwnd += whole
        self._carry -= whole

    def _congestion_event(self, flight_size: int, now: float) -> int:
        """RFC 9438 4.6 and 4.7: remember W_max (lower still under fast convergence), start a new
        epoch at the next congestion avoidance, and reduce by beta_cubic."""
        cwnd = self.cwnd / self.mss
        if cwnd < self.w_max:
            self.w_max = cwnd * (1 + BETA) / 2  # fast convergence: release bandwidth
        else:
            self.w_max = cwnd
        self.epoch_start = None
        self._carry = 0.0
        self.hystart.stop()
        return self._threshold_after_loss(flight_size * BETA_NUMERATOR // BETA_DENOMINATOR)

    def on_retransmit_timeout(self, bytes_in_flight: int, now: float) -> None:
        # RFC 9438 4.8: ssthresh as for any congestion event (held over repeated timeouts, as
        # Reno does), cwnd one segment; the first congestion avoidance after it follows the
        # curve from the cwnd it starts with towards the W_max of this event.
        super().on_retransmit_timeout(bytes_in_flight, now)
        self.epoch_start = None

    def take_over(self, previous) -> None:
        super().take_over(previous)
        if previous.ssthresh < INITIAL_SSTHRESH:
            self.hystart.stop()  # past the first slow start: HyStart++ has no part left
            self.w_max = previous.ssthresh / self.mss  # no record of the last loss: start flat from here

    def on_idle_restart(self, now: float) -> None:
        super().on_idle_restart(now)
        # The curve's clock is the time since the reduction; idle time is no reason to jump
        # along it (Linux shifts its epoch on CA_EVENT_TX_START for the same reason).
        self.epoch_start = None

    def __repr__(self) -> str:
        return (
            f"Cubic(cwnd={self.cwnd} ssthresh={self.ssthresh} W_max={self.w_max:.1f} K={self.k:.3f} "
            f"mss={self.mss} {self.phase})"
        )
