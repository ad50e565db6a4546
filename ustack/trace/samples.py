"""The congestion-control variables of one connection over time, for the second panel of
`ustack serve --plot`: cwnd, ssthresh, smoothed RTT and RTO (RFC 5681, RFC 6298), read from the
connection's own snapshot (`Connection.snapshot()`, RFC 9293 3.10.6 STATUS) each time it
reports an event, so every change the stack makes is seen.

Bounded: at most `limit` samples are kept. When full, every other one is dropped and only one
report in two (then four, ...) is sampled from then on, so a long connection keeps an even
coverage of its whole life in constant memory.
"""

from __future__ import annotations

from typing import NamedTuple

SAMPLE_LIMIT = 4096


class Sample(NamedTuple):
    time: float  # as the stack's clock gave it
    cwnd: int  # bytes
    ssthresh: int  # bytes
    srtt: float | None  # seconds; None before the first measurement
    rto: float  # seconds


class Samples:
    def __init__(self, limit: int = SAMPLE_LIMIT) -> None:
        self.limit = max(limit, 2)
        self.samples: list[Sample] = []
        self.stride = 1  # sample one report in `stride`
        self._seen = 0

    def add(self, now: float, snapshot) -> None:
        self._seen += 1
        if (self._seen - 1) % self.stride:
            return
        self.samples.append(Sample(now, snapshot.cwnd, snapshot.ssthresh, snapshot.srtt, snapshot.rto))
        if len(self.samples) >= self.limit:
            self.samples = self.samples[::2]
            self.stride *= 2
