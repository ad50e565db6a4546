"""Pacing: spread a window's segments over the round trip instead of sending them in a burst.

A window-based sender sends when ACKs arrive. ustack reads ACKs in batches and sends after each
batch, so a batch's worth of segments leaves at once; a router's queue or a policer's bucket
(the rate limiter of scripts/bench_recovery.py holds 64 KB) then drops the end of the burst,
though the average rate fits the path. Linux, when it paces CUBIC or Reno (the fq qdisc, or TCP's
internal pacing), sends at

    pacing_rate = ratio * cwnd / SRTT    (bytes per second; ratio 2 in slow start while cwnd is
                                          below ssthresh / 2, 1.2 after: tcp_pacing_ss_ratio and
                                          tcp_pacing_ca_ratio, tcp_update_pacing_rate)

so that a window leaves within about one round trip, and in slow start can still double.

How it is done here, without a clock (the core is sans-IO): a token bucket in bytes, filled at
pacing_rate by the `now` each transmit() is given and emptied by every byte sent. It holds at
most BURST_SECONDS (5 ms) of the rate (at least MIN_BURST_SEGMENTS, 4, segments): a sender idle for a
while gets no credit beyond that, which is the restart after idle. When the bucket stops new
data the connection arms its pacing timer (Timer.PACING) for when QUANTUM_SECONDS worth has
accumulated again. One timer therefore sends about a millisecond of data, as Linux's TSO
autosizing makes each packet about 1 ms at the pacing rate (tcp_tso_autosize, sk_pacing_shift 10):
timers fire roughly 1,000 times a second on a paced path whatever its speed, never once per
segment. On a fast local path (a TUN device, SRTT under about 6 ms) BURST_SECONDS of the rate is
more than cwnd itself: the whole window is due within one burst, and the pacer lets everything
go and counts nothing: the bulk path pays a few float operations per transmit() and no timer.

Before the first RTT sample there is no rate (Linux's rate is unbounded then too): the handshake
and the initial window go as before.

What is paced: new data (and data sent again after a retransmission timeout, which follows the
same path). Retransmissions in recovery, tail loss probes and pure ACKs go at once but are
charged to the bucket, so the data after them waits its turn: PRR (prr.py) already clocks
recovery to what each ACK delivered, so a repair cannot burst, and it is never held back by a
timer tick. (Linux's internal pacing also holds its SACK retransmissions, tcp_xmit_retransmit_queue;
it sends ACKs and the RTO's retransmission at once, as here.)
"""

from __future__ import annotations

# Linux's net.ipv4.tcp_pacing_ss_ratio and tcp_pacing_ca_ratio (percent), as factors.
SLOW_START_RATIO = 2.0
CONGESTION_AVOIDANCE_RATIO = 1.2
# What one pacing timer lets out: about 1 ms of data (Linux's sk_pacing_shift = 10, 1/1024 s).
QUANTUM_SECONDS = 0.001
# The most the bucket holds: 5 ms of the rate, at least 4 segments. A timer or a batch of ACKs
# that comes late (asyncio's timers wait in whole milliseconds, and a loaded machine adds more)
# then loses nothing of the rate (2 ms and 2 segments, tried first, are one late wake-up at
# 20 Mbit/s). 5 ms at 20 Mbit/s is 12.5 KB, a fifth of the policer's bucket in
# scripts/bench_recovery.py: far from the bursts that bucket punishes.
BURST_SECONDS = 0.005
MIN_BURST_SEGMENTS = 4
TIMER_MARGIN = 1e-6


def pacing_rate(cwnd: int, ssthresh: int, srtt: float | None) -> float | None:
    """Bytes per second, as Linux's tcp_update_pacing_rate; None before an RTT is known."""
    if srtt is None or srtt <= 0:
        return None
    ratio = SLOW_START_RATIO if cwnd < ssthresh // 2 else CONGESTION_AVOIDANCE_RATIO
    return ratio * cwnd / srtt


class Pacer:
    """The token bucket of one paced connection (made by output.py when TcpConfig.pacing is on)."""

    __slots__ = ("rate", "tokens", "filled_at", "paced_sends", "unpaced_limit")

    def __init__(self) -> None:
        self.rate: float | None = None  # bytes per second, as last worked out (ss -i's pacing_rate)
        self.tokens = 0.0  # bytes that may leave now; below 0 after retransmissions were charged
        self.filled_at: float | None = None  # when tokens were last brought up to date
        self.paced_sends = 0  # times pacing held data back (a statistic)
        self.unpaced_limit = 0  # the FlightSize limit before pacing, in the transmit() under way

    def allowance(self, now: float, cwnd: int, ssthresh: int, srtt: float | None, mss: int) -> float | None:
        """How many bytes may leave at `now`; None: no limit (no RTT yet)."""
        rate = self.rate = pacing_rate(cwnd, ssthresh, srtt)
        if rate is None:
            self.filled_at = None
            return None
        burst = rate * BURST_SECONDS
        if burst >= cwnd:
            # The whole window is due within one burst (SRTT under about 6 ms: a local or TUN
            # path): nothing to spread at the timers' granularity, and nothing is counted.
            self.filled_at = None
            return None
        floor = MIN_BURST_SEGMENTS * mss
        if burst < floor:
            burst = floor
        filled_at = self.filled_at
        tokens = burst if filled_at is None else self.tokens + (now - filled_at) * rate
        if tokens > burst:
            tokens = burst  # idle time earns no more than one burst (restart after idle)
        self.tokens = tokens
        self.filled_at = now
        return tokens

    def sent(self, length: int) -> None:
        """`length` bytes went out (new data, a retransmission, a probe)."""
        if self.filled_at is not None:
            self.tokens -= length

    def next_send_time(self, now: float, mss: int) -> float:
        """When a quantum (at least one segment) will have accumulated: the pacing timer."""
        rate = self.rate
        quantum = rate * QUANTUM_SECONDS
        if quantum < mss:
            quantum = mss
        self.paced_sends += 1
        # A microsecond beyond the exact time: rounding must not leave the bucket a hair short
        # of the segment when the timer fires (and the timer armed again for the same instant).
        return now + (quantum - self.tokens) / rate + TIMER_MARGIN

    def __repr__(self) -> str:
        rate = "-" if self.rate is None else f"{self.rate:.0f}"
        return f"Pacer(rate={rate} B/s tokens={self.tokens:.0f})"
