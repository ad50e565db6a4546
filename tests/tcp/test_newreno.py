"""NewReno in the connection (RFC 6582): partial ACKs and the "recover" point.

The arithmetic of the algorithm is in test_congestion.py; here, segment by segment, what the
connection sends: the next hole at SND.UNA on a partial ACK, the end of recovery at the full ACK,
and no new fast retransmit for duplicate ACKs that do not cover "recover" (RFC 6582 3.2 step 2,
the "careful" variant), which after a timeout are likely to answer segments sent twice.
"""

from __future__ import annotations

import dataclasses

from tcp_script import *  # noqa: F403
from ustack.tcp import State, TcpConfig

MSS = 1460
WIDE_WINDOW = 30000
DATA = bytes(range(256)) * 57  # 14592 bytes: ten segments, the last one 1452 bytes


def config(**changes) -> TcpConfig:
    return dataclasses.replace(CONFIG, initial_window_segments=6, limited_transmit=False, **changes)


def segment(n: int, flags=ACK) -> TcpSegment:
    start = n * MSS
    return outgoing(local(1 + start), remote(1), flags, payload=DATA[start : start + MSS])


def ack_of(segments: int) -> TcpSegment:
    """The peer's ACK of our first `segments` data segments."""
    return incoming(remote(1), local(1 + segments * MSS), window=WIDE_WINDOW)


def six_segments_in_flight(**changes) -> Script:
    script = syn_sent(config(**changes))
    script.receive(incoming(remote(0), local(1), SYN | ACK, window=WIDE_WINDOW, options=TcpOptions(mss=MSS)))
    script.expect(outgoing(local(1), remote(1)))
    assert script.state is State.ESTABLISHED
    script.connection.send(DATA, script.now)
    script.expect(*[segment(n) for n in range(6)])
    return script


def test_cubic_is_the_default_and_newreno_and_reno_stay_selectable():
    assert TcpConfig().congestion_control == "cubic"  # RFC 9438, as in Linux (test_cubic.py)
    assert six_segments_in_flight().connection.congestion.name == "newreno"
    assert six_segments_in_flight(congestion_control="reno").connection.congestion.name == "reno"


def test_partial_acks_retransmit_each_hole_at_snd_una_until_the_full_ack():
    script = six_segments_in_flight()
    connection = script.connection
    # Segments 0, 2 and 4 are lost: 1, 3 and 5 draw three duplicate ACKs.
    for _ in range(3):
        script.receive(ack_of(0))
    script.expect(segment(0))  # ssthresh 3, cwnd 3 + 3 = 6 segments: nothing new fits
    assert connection.congestion.in_recovery
    assert connection.snd.recover == local(1 + 6 * MSS)  # SND.MAX at the start (RFC 6582 3.2 step 2)
    # The retransmission fills the first hole: a partial ACK, up to segment 2.
    script.receive(ack_of(2))
    # RFC 6582 3.2 step 3: retransmit the first unacknowledged segment at once; cwnd deflates by
    # the 2 segments acknowledged and grows by one: 5 segments, 4 in flight: one new segment.
    script.expect(segment(2), segment(6))
    assert connection.congestion.in_recovery
    script.receive(ack_of(4))
    script.expect(segment(4), segment(7))
    assert connection.congestion.in_recovery
    # The ACK of everything outstanding at the start ("recover") ends recovery (RFC 6582 3.2
    # step 3, full acknowledgment): cwnd = min(ssthresh, FlightSize + MSS) = 3 segments.
    script.receive(ack_of(6))
    assert not connection.congestion.in_recovery
    assert connection.congestion.cwnd == 3 * MSS and connection.congestion.ssthresh == 3 * MSS
    script.expect(segment(8))
    assert connection.retransmissions == 3


def test_reno_leaves_recovery_at_the_first_partial_ack():
    script = six_segments_in_flight(congestion_control="reno")
    connection = script.connection
    for _ in range(3):
        script.receive(ack_of(0))
    script.expect(segment(0))
    script.receive(ack_of(2))
    # RFC 5681 3.2 step 6: deflate to ssthresh (3 segments) and leave; the hole at segment 2 is
    # not retransmitted now: 4 segments in flight fill cwnd.
    assert not connection.congestion.in_recovery
    script.expect_nothing()


def test_no_fast_retransmit_below_recover_after_a_timeout():
    script = six_segments_in_flight()
    connection = script.connection
    # No ACK comes back: the timer goes off, segment 0 again, SND.NXT back to it.
    script.advance_to_next_timer()
    script.expect(segment(0))
    assert connection.snd.recover == local(1 + 6 * MSS)  # RFC 6582 3.2 step 4
    script.receive(ack_of(1))
    script.expect(segment(1), segment(2))  # slow start: cwnd 2 segments, going back
    # Three duplicate ACKs of segment 1, which does not cover "recover": they may answer the
    # segments that are now sent twice, so no fast retransmit and no second halving.
    ssthresh = connection.congestion.ssthresh
    for _ in range(3):
        script.receive(ack_of(1))
        script.expect_nothing()
    assert not connection.congestion.in_recovery
    assert connection.congestion.ssthresh == ssthresh
    assert connection.snd.duplicate_acks == 3


def test_reno_is_not_careful_and_retransmits_below_recover():
    script = six_segments_in_flight(congestion_control="reno")
    connection = script.connection
    script.advance_to_next_timer()
    script.expect(segment(0))
    script.receive(ack_of(1))
    script.expect(segment(1), segment(2))
    for _ in range(3):
        script.receive(ack_of(1))
    # Fast retransmit after all, and with cwnd = ssthresh + 3 segments the go-back goes on
    # through segments the peer may well hold already.
    assert connection.congestion.in_recovery
    script.expect(segment(1), segment(3), segment(4), segment(5))


def test_duplicate_acks_at_recover_start_a_new_fast_retransmit():
    script = six_segments_in_flight()
    connection = script.connection
    for _ in range(3):
        script.receive(ack_of(0))
    script.expect(segment(0))
    script.receive(ack_of(6))  # the full ACK: recovery over, "recover" = segment 6's start
    assert not connection.congestion.in_recovery
    # Nothing is left in flight: cwnd = min(ssthresh, max(FlightSize, MSS) + MSS) = 2 segments.
    script.expect(segment(6), segment(7))
    # Segment 6 is lost; the duplicate ACKs stand exactly at "recover", which they cover.
    for _ in range(3):
        script.receive(ack_of(6))
    assert connection.congestion.in_recovery
    assert connection.snd.recover == local(1 + 8 * MSS)
    # cwnd = 2 + 3 segments over a flight of 2: segment 8 follows (Nagle holds the short last one).
    script.expect(segment(6), segment(8))
