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
- `on_partial_ack_in_sack_recovery(acked_bytes)` instead, in SACK recovery (RFC 6675), for an
  ACK of new data below RecoveryPoint: recovery goes on for every algorithm (Reno too), and the
  connection's PRR or pipe decides what is sent; the ACK that reaches RecoveryPoint is an
  `on_recovery_ack` as above.
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

Also `on_rtt_sample(sample, smoothed_rtt, now)` for each RTT measurement (CUBIC's target one RTT
ahead, HyStart++'s delay signal), and, from the base class, `cwnd_limited(bytes_in_flight)`:
cwnd only grows on ACKs of a flight it limited (RFC 7661). During SACK recovery the connection
asks the algorithm's `prr` (prr.py, RFC 6937) how much may go out on each ACK.

Files: base.py (the interface, the initial window), reno.py ("reno", RFC 5681; "newreno", RFC
6582), cubic.py ("cubic", RFC 9438, the default as in Linux: see TcpConfig), hystart.py (RFC 9406
slow start, CUBIC's), prr.py (RFC 6937). This file is the one registry of names.
"""

from __future__ import annotations

from ustack.tcp.congestion.base import INITIAL_SSTHRESH, CongestionControl, initial_window
from ustack.tcp.congestion.cubic import Cubic
from ustack.tcp.congestion.prr import ProportionalRateReduction
from ustack.tcp.congestion.reno import NewReno, Reno

__all__ = [
    "CONGESTION_CONTROLS", "INITIAL_SSTHRESH", "CongestionControl", "Cubic", "NewReno",
    "ProportionalRateReduction", "Reno", "create_congestion_control", "initial_window",
]

# Every algorithm by the name TcpConfig.congestion_control uses.
CONGESTION_CONTROLS: dict[str, type[CongestionControl]] = {
    Reno.name: Reno,
    NewReno.name: NewReno,
    Cubic.name: Cubic,
}


def create_congestion_control(name: str, mss: int, initial_window_segments: int = 10) -> CongestionControl:
    """A new instance of the algorithm called `name` for one connection."""
    try:
        algorithm = CONGESTION_CONTROLS[name]
    except KeyError:
        known = ", ".join(sorted(CONGESTION_CONTROLS))
        raise ValueError(f"unknown congestion control {name!r}; known: {known}") from None
    return algorithm(mss, initial_window_segments)
