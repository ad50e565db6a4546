"""Proportional Rate Reduction (RFC 6937) on the RFC's example and its two bounds."""

from __future__ import annotations

import math

from ustack.tcp.congestion.prr import ProportionalRateReduction

MSS = 1000


def recovery(prr: ProportionalRateReduction, pipe: int, ssthresh: int, acks: int, lost_each_ack: int = 0) -> list[int]:
    """Duplicate ACKs each delivering one segment; whatever sndcnt allows is sent at once.
    Returns the segments sent on each ACK. pipe falls by one segment per ACK (and by
    `lost_each_ack` more: segments found lost) and rises by what is sent."""
    pattern = []
    for _ in range(acks):
        pipe -= MSS + lost_each_ack * MSS
        sndcnt = prr.on_ack(MSS, pipe, ssthresh, MSS)
        segments = sndcnt // MSS
        prr.on_sent(segments * MSS)
        pipe += segments * MSS
        pattern.append(segments)
    return pattern


def test_the_rfc_example_sends_one_segment_for_every_two_delivered():
    """RFC 6937's example (section 3, and Figure 1 of its appendix): 20 segments in flight, one
    lost, Reno's ssthresh of 10. Each of the 19 duplicate ACKs delivers a segment; PRR sends on
    every other one, starting with the retransmission on the first."""
    prr = ProportionalRateReduction(20 * MSS)
    # RFC 6675 pipe leaves the lost segment out: 19 segments.
    pattern = recovery(prr, pipe=19 * MSS, ssthresh=10 * MSS, acks=19)
    # While pipe > ssthresh: one segment for every two delivered, the retransmission first.
    assert pattern[:16] == [1, 0] * 8
    # Then pipe has come down to ssthresh, and PRR-SSRB holds it there: one for one.
    assert pattern[16:] == [0, 1, 1]
    assert sum(pattern) == 10  # ssthresh sent in the round trip of recovery, never a burst
    assert prr.sent_out == 10 * MSS
    assert math.ceil(16 * 10 / 20) == 8 == sum(pattern[:16])  # CEIL(prr_delivered * ssthresh / RecoverFS)
    assert prr.delivered == 19 * MSS


def test_with_cubic_beta_seven_segments_go_for_every_ten_delivered():
    prr = ProportionalRateReduction(20 * MSS)
    pattern = recovery(prr, pipe=19 * MSS, ssthresh=14 * MSS, acks=19)
    assert sum(pattern) == 14  # by the end of the round trip, ssthresh has been sent
    assert max(pattern) == 1  # and never a burst


def test_the_slow_start_reduction_bound_when_losses_exceed_the_reduction():
    """Pipe far below ssthresh (many segments lost): PRR-SSRB sends at most one segment more than
    was delivered, like slow start, until pipe is back to ssthresh."""
    prr = ProportionalRateReduction(20 * MSS)
    pipe = 4 * MSS
    sndcnt = prr.on_ack(MSS, pipe, 10 * MSS, MSS)
    # limit = MAX(prr_delivered - prr_out, DeliveredData) + MSS = 1 + 1 segments
    assert sndcnt == 2 * MSS
    prr.on_sent(2 * MSS)
    assert prr.sendable == 0
    sndcnt = prr.on_ack(MSS, pipe + MSS, 10 * MSS, MSS)
    assert sndcnt == 2 * MSS  # MAX(2 - 2, 1) + 1
    # And never past ssthresh: with pipe one segment short of it, one segment.
    assert prr.on_ack(5 * MSS, 9 * MSS, 10 * MSS, MSS) == MSS


def test_nothing_is_owed_for_an_ack_that_delivered_nothing_new():
    prr = ProportionalRateReduction(20 * MSS)
    assert prr.on_ack(MSS, 19 * MSS, 10 * MSS, MSS) == MSS
    prr.on_sent(MSS)
    assert prr.on_ack(0, 19 * MSS, 10 * MSS, MSS) == 0


def sack_recovery_pattern(**changes) -> list[int]:
    """8 segments in flight, the first lost; the peer SACKs the others one ACK at a time (then
    the two Limited Transmit sent, and what recovery sends). Segments sent per ACK."""
    from test_sack_recovery import ack, eight_segments_in_flight, segments

    script = eight_segments_in_flight(congestion_control="newreno", **changes)
    connection = script.connection
    pattern = []
    for last in range(1, 12):
        script.receive(ack(0, segments(1, last)))
        pattern.append(len(connection.transmit(script.now)))
    assert connection.congestion.in_recovery
    return pattern


def test_a_connection_in_sack_recovery_sends_what_prr_allows():
    with_prr = sack_recovery_pattern()
    without = sack_recovery_pattern(proportional_rate_reduction=False)
    # Two Limited Transmit segments, then the third SACK starts recovery and the retransmission
    # goes. NewReno's ssthresh is 4 segments of the 10 in flight (RecoverFS). RFC 6675 alone
    # sends nothing until pipe is below ssthresh, three ACKs later; PRR sends in proportion from
    # the start, one segment at a time; both have sent the same by the end.
    assert without == [1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1]
    assert with_prr == [1, 1, 1, 0, 1, 0, 0, 1, 1, 1, 1]


def test_with_prr_a_lost_retransmission_is_still_resent_without_a_timeout():
    from test_sack_recovery import ack, eight_segments_in_flight, segment, segments

    script = eight_segments_in_flight(congestion_control="newreno")
    connection = script.connection
    resent = 0
    for last in range(1, 15):
        script.receive(ack(0, segments(1, last)))
        resent += script.connection.transmit(script.now).count(segment(0))
    assert resent == 2  # the fast retransmission, and again once later segments were SACKed
    assert connection.retransmissions == 2
    assert connection.congestion.in_recovery  # no timeout came into it
