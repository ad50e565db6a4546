"""Round-trip time estimation and the retransmission timeout (RFC 6298).

The connection measures how long a segment takes to be acknowledged and feeds each measurement
(in seconds) to `RttEstimator.on_sample`. The estimator keeps a smoothed mean (SRTT) and a
smoothed mean deviation (RTTVAR) and derives from them the retransmission timeout, RTO: how long
to wait for an acknowledgement before deciding a segment was lost.

What the estimator does NOT do (the connection's job):
- Karn's algorithm (RFC 6298 section 3): never take a sample from a segment that was
  retransmitted, because the ACK cannot say which transmission it answers. (With TCP timestamps,
  RFC 7323 section 4, the echoed timestamp removes that ambiguity.)
- Running the timer itself (RFC 6298 section 5): the estimator only says how long it should be.
"""

from __future__ import annotations

import functools

# RFC 6298 section 2.3: the smoothing gains recommended by Jacobson (1988).
ALPHA = 1 / 8  # weight of a new sample in SRTT
BETA = 1 / 4  # weight of a new deviation in RTTVAR
K = 4  # RTO = SRTT + K * RTTVAR
# The weights of the old values, worked out once (the same floats as 1 - BETA and 1 - ALPHA).
_KEEP_RTTVAR = 1 - BETA
_KEEP_SRTT = 1 - ALPHA


class RttEstimator:
    """SRTT, RTTVAR and RTO per RFC 6298, in float seconds.

    `rto` is the timeout to arm now. It starts at `initial_rto` (RFC 6298 2.1 says 1 second),
    follows the measurements (2.2, 2.3), stays within [min_rto, max_rto] (2.4, 2.5), and doubles
    on each retransmission timeout (`backoff`, 5.5) until a new measurement arrives.

    `min_rto` defaults to 0.2 s, as Linux does; RFC 6298 2.4 asks for 1 s, a value chosen for the
    coarse clocks of 1988. Pass min_rto=1.0 for the strict RFC behaviour.

    `slop` (0 by default) is BSD's way instead: a fixed margin added on top of every RTO computed
    from a measurement or a backoff (FreeBSD's net.inet.tcp.rexmit_slop, 200 ms). What doubles on
    a backoff is then the RTO before the slop: 1 s, 2.2 s, 4.2 s, ...
    """

    __slots__ = ("_limits", "srtt", "rttvar", "latest_rtt", "sample_count", "backoff_count", "rto", "_unbacked_rto")

    # The four settings (min_rto, max_rto, clock_granularity, slop) are one tuple shared by every
    # estimator made with the same values (_limits_for): they come from the TcpConfig, and a copy of
    # each in every connection would cost 24 bytes per connection (scripts/bench_memory.py).
    min_rto = property(lambda self: self._limits[0])
    max_rto = property(lambda self: self._limits[1])
    clock_granularity = property(lambda self: self._limits[2])  # G in RFC 6298
    slop = property(lambda self: self._limits[3])

    def __init__(
        self,
        initial_rto: float = 1.0,
        min_rto: float = 0.2,
        max_rto: float = 120.0,
        clock_granularity: float = 0.001,
        slop: float = 0.0,
    ):
        if not 0 < min_rto <= max_rto:
            raise ValueError(f"need 0 < min_rto <= max_rto, got min_rto={min_rto} max_rto={max_rto}")
        if initial_rto <= 0:
            raise ValueError(f"initial_rto must be positive, got {initial_rto}")
        self._limits = _limits_for(min_rto, max_rto, clock_granularity, slop)
        self.srtt: float | None = None  # None until the first measurement (RFC 6298 2.1)
        self.rttvar: float | None = None
        self.latest_rtt: float | None = None  # the last raw sample, for snapshots and traces
        self.sample_count = 0
        # How many times in a row the timer has expired and doubled the RTO since the last
        # measurement; the connection compares it with its retry limits.
        self.backoff_count = 0
        # RFC 6298 2.1 sets the initial RTO before any measurement. It is clamped like every
        # other value so that initial_rto > max_rto cannot produce an RTO above the ceiling.
        self.rto = min(max(initial_rto, min_rto), max_rto)
        self._unbacked_rto = initial_rto  # the RTO before backoff and slop (used when slop > 0)

    def on_sample(self, rtt: float) -> None:
        """Take one round-trip measurement, in seconds (never from a retransmitted segment)."""
        if rtt < 0:
            raise ValueError(f"a round-trip time cannot be negative: {rtt}")
        srtt = self.srtt
        rttvar = self.rttvar
        if srtt is None or rttvar is None:
            # RFC 6298 2.2: the first measurement R sets SRTT = R and RTTVAR = R/2.
            srtt = rtt
            rttvar = rtt / 2
        else:
            # RFC 6298 2.3: update RTTVAR first, because it uses the SRTT from before this sample.
            rttvar = _KEEP_RTTVAR * rttvar + BETA * abs(srtt - rtt)
            srtt = _KEEP_SRTT * srtt + ALPHA * rtt
        self.srtt = srtt
        self.rttvar = rttvar
        self.latest_rtt = rtt
        self.sample_count += 1
        # A fresh measurement ends any backoff: the RTO is recomputed from SRTT and RTTVAR instead
        # of keeping the doubled value (RFC 6298 section 5, note after 5.7).
        self.backoff_count = 0
        min_rto, max_rto, clock_granularity, slop = self._limits
        deviation = K * rttvar
        unbacked_rto = self._unbacked_rto = srtt + (deviation if deviation > clock_granularity else clock_granularity)
        # _clamp, inlined (this runs for every ACK): RFC 6298 2.4 and 2.5.
        rto = unbacked_rto + slop
        self.rto = max_rto if rto > max_rto else (min_rto if rto < min_rto else rto)

    def backoff(self) -> None:
        """The retransmission timer expired: double the RTO, up to max_rto (RFC 6298 5.5)."""
        self.backoff_count += 1
        if self.slop:
            # BSD: the measured RTO doubles, the slop comes on top.
            self.rto = self._clamp(self._unbacked_rto * (1 << self.backoff_count) + self.slop)
        else:
            self.rto = min(self.rto * 2, self.max_rto)

    def reinitialize_after_syn_timeout(self, rto: float = 3.0) -> None:
        """RFC 6298 5.7: if the SYN (or SYN-ACK) had to be retransmitted and no measurement came
        out of the handshake, the RTO used once data transmission begins is 3 seconds.
        The connection calls this when the handshake completes after a SYN retransmission."""
        if self.srtt is None:
            self._unbacked_rto = rto
            self.rto = self._clamp(rto + self.slop)
            self.backoff_count = 0

    def _clamp(self, rto: float) -> float:
        # RFC 6298 2.4 (a lower bound) and 2.5 (an upper bound of at least 60 seconds).
        min_rto, max_rto, _, _ = self._limits
        return min(max(rto, min_rto), max_rto)

    def __repr__(self) -> str:
        srtt = "-" if self.srtt is None else f"{self.srtt:.6f}"
        rttvar = "-" if self.rttvar is None else f"{self.rttvar:.6f}"
        return f"RttEstimator(srtt={srtt} rttvar={rttvar} rto={self.rto:.6f} backoffs={self.backoff_count})"


@functools.lru_cache(maxsize=64, typed=True)  # typed: 1 and 1.0 stay what they were given as
def _limits_for(min_rto: float, max_rto: float, clock_granularity: float, slop: float) -> tuple:
    """(min_rto, max_rto, clock_granularity, slop): one tuple for all the estimators that share them."""
    return (min_rto, max_rto, clock_granularity, slop)
