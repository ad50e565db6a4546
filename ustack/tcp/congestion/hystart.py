"""HyStart++ (RFC 9406): leave slow start when the round-trip time starts to rise.

Slow start doubles cwnd every round trip until a loss, and the last doubling usually overshoots
the path by a whole window: a burst of losses at the end of slow start. HyStart++ watches the
smallest RTT of each round (of at least N_RTT_SAMPLE samples): when it rises by more than
RttThresh over the previous round's, queues are building, and slow start gives way to
Conservative Slow Start (CSS), which grows four times more slowly. If the RTT falls back below
the baseline during CSS, the rise was jitter and slow start resumes; after CSS_ROUNDS rounds of
CSS, slow start ends (ssthresh = cwnd) and congestion avoidance takes over.

Rounds are counted in bytes: a round begins with the first ACK beyond everything that had been
sent when the last one began (RFC 9406 4.2 "windowEnd = SND.NXT"). The ACK exactly at windowEnd
still belongs to the old round: a sender with nothing more in flight at that moment would
otherwise begin a round of one ACK. Used for the first slow start only, as
Linux does; slow start after a timeout is the standard one.
"""

from __future__ import annotations

# RFC 9406 4.3, the recommended constants.
MIN_RTT_THRESH = 0.004  # seconds
MAX_RTT_THRESH = 0.016
MIN_RTT_DIVISOR = 8
N_RTT_SAMPLE = 8
CSS_GROWTH_DIVISOR = 4
CSS_ROUNDS = 5
# RFC 9406 4.2: at most L*SMSS of one ACK counts for growth; L = 8 for a sender without pacing.
SLOW_START_LIMIT_SEGMENTS = 8

# "No RTT yet" (RFC 9406 4.2 initialises the round minimums to infinity). One float for every
# connection: float("inf") in __init__ would make three new ones per connection (scripts/bench_memory.py).
NO_RTT = float("inf")

SLOW_START = "slow start"
CONSERVATIVE = "conservative slow start"
DONE = "done"


class HyStartPlusPlus:
    """The variables of RFC 9406 4.2, and which phase slow start is in."""

    __slots__ = (
        "phase", "acknowledged", "window_end", "last_round_min_rtt", "current_round_min_rtt",
        "rtt_sample_count", "css_baseline_min_rtt", "css_round_count",
    )

    def __init__(self):
        self.phase = SLOW_START
        self.acknowledged = 0  # bytes acknowledged so far: SND.UNA counted from the start
        self.window_end = 0  # `acknowledged` at which the current round ends
        self.last_round_min_rtt = NO_RTT
        self.current_round_min_rtt = NO_RTT
        self.rtt_sample_count = 0
        self.css_baseline_min_rtt = NO_RTT
        self.css_round_count = 0

    def on_rtt_sample(self, rtt: float, samples: int = 1) -> None:
        """RFC 9406 4.2: each RTT sample of the round lowers currentRoundMinRTT. `samples` > 1:
        the sample of an ACK that stands for that many (AckRunSegment), each of whose own samples
        was at least this one (the link keeps TSecr from going back within a run): the round's
        minimum and its count of samples come out as for the ACKs one by one."""
        if self.phase is DONE:
            return
        if rtt < self.current_round_min_rtt:
            self.current_round_min_rtt = rtt
        self.rtt_sample_count += samples

    def on_ack(self, acked_bytes: int, bytes_in_flight: int, mss: int, acks: int = 1) -> int:
        """An ACK in slow start (cwnd < ssthresh). Returns how many bytes cwnd grows by, or -1
        when slow start is over (the caller sets ssthresh = cwnd). `acks`: how many ACKs it
        stands for (AckRunSegment), each allowed L*SMSS of growth."""
        if self.phase is DONE:
            return min(acked_bytes, SLOW_START_LIMIT_SEGMENTS * mss * acks)
        self.acknowledged += acked_bytes
        if self.acknowledged > self.window_end:
            if self._round_ended(bytes_in_flight - acked_bytes):
                return -1
        if self.phase is SLOW_START and self._rtt_rose():
            # RFC 9406 4.2: delay increase: enter CSS, remembering the RTT that started it.
            self.phase = CONSERVATIVE
            self.css_baseline_min_rtt = self.current_round_min_rtt
            self.css_round_count = 0
        elif (
            self.phase is CONSERVATIVE
            and self.rtt_sample_count >= N_RTT_SAMPLE
            and self.current_round_min_rtt < self.css_baseline_min_rtt
        ):
            # RFC 9406 4.2: the RTT fell below the baseline: it was jitter, resume slow start.
            self.phase = SLOW_START
            self.css_baseline_min_rtt = NO_RTT
        growth = min(acked_bytes, SLOW_START_LIMIT_SEGMENTS * mss * acks)
        if self.phase is CONSERVATIVE:
            return growth // CSS_GROWTH_DIVISOR
        return growth

    def _round_ended(self, still_in_flight: int) -> bool:
        """A new round begins (windowEnd = SND.NXT). True if CSS has now lasted CSS_ROUNDS."""
        self.window_end = self.acknowledged + max(still_in_flight, 0)
        self.last_round_min_rtt = self.current_round_min_rtt
        self.current_round_min_rtt = NO_RTT
        self.rtt_sample_count = 0
        if self.phase is CONSERVATIVE:
            self.css_round_count += 1
            if self.css_round_count >= CSS_ROUNDS:
                self.phase = DONE  # RFC 9406 4.2: enter congestion avoidance
                return True
        return False

    def _rtt_rose(self) -> bool:
        if self.rtt_sample_count < N_RTT_SAMPLE:
            return False
        last = self.last_round_min_rtt
        current = self.current_round_min_rtt
        if last == NO_RTT or current == NO_RTT:
            return False
        # RttThresh = clamp(lastRoundMinRTT / 8, 4 ms, 16 ms).
        threshold = min(max(last / MIN_RTT_DIVISOR, MIN_RTT_THRESH), MAX_RTT_THRESH)
        return current >= last + threshold

    def stop(self) -> None:
        """A loss or a timeout ends HyStart++ for good (RFC 9406 4.2: it leaves slow start)."""
        self.phase = DONE
