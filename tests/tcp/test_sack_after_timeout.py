"""SACK information across a retransmission timeout, as Linux keeps it (tcp_timeout_mark_lost),
and reneging (RFC 2018 8): what the peer said it holds is not sent again after a timeout,
unless the peer shows it dropped it."""

from __future__ import annotations

import pytest
from tcp_script import *  # noqa: F403
from test_sack_recovery import ack, eight_segments_in_flight, segment, segments
from ustack.tcp.acknowledgement import RENEGING_WAIT


def test_the_go_back_after_a_timeout_skips_what_the_peer_sacked():
    script = eight_segments_in_flight()
    connection = script.connection
    script.receive(ack(0, segments(2, 3)))  # 0 and 1 lost; two SACKed: not yet a loss (RFC 6675)
    script.expect(segment(8))  # Limited Transmit (RFC 3042)
    script.advance_to_next_timer()
    script.expect(segment(0))  # RFC 6298 5.4, cwnd one segment
    assert connection.snd.scoreboard.blocks == [segments(2, 3)]
    # Segment 0 arrives: cwnd 2 segments. Segment 1 goes again; 2 and 3 are held by the peer
    # and skipped, and, being out of the network, leave room for segment 4.
    script.receive(ack(1, segments(2, 3)))
    script.expect(segment(1), segment(4))
    # The peer acknowledges up to 4 (it held 2 and 3) and SACKs 8: cwnd 4 segments, none in
    # flight: 5, 6, 7 again, 8 skipped, and 9, new data.
    script.receive(ack(5, segments(8, 8)))
    script.expect(segment(5), segment(6), segment(7), segment(9))
    # 0, 1, 4 were needed again; 2 and 3 were not sent a second time (before: 0 to 7 all were).
    assert connection.retransmissions == 1 + 2 + 3  # the RTO's, then 1 and 4, then 5 to 7
    assert connection.snd.sack_renegings == 0


def test_no_new_recovery_from_the_sacks_of_the_lost_window_after_a_timeout():
    """RFC 6675 5.1: after a timeout no new recovery begins until its RecoveryPoint is
    acknowledged, for Reno too (NewReno and CUBIC are careful anyway, RFC 6582)."""
    script = eight_segments_in_flight(congestion_control="reno")
    connection = script.connection
    script.receive(ack(0, segments(2, 3)))
    script.expect(segment(8))
    script.advance_to_next_timer()
    script.expect(segment(0))
    ssthresh = connection.congestion.ssthresh
    # The peer reports more of the window it held before the timeout: four segments SACKed
    # above SND.UNA, IsLost(SND.UNA) holds, but these are no news of a new loss.
    script.receive(ack(0, segments(2, 3), segments(5, 6)))
    assert not connection.congestion.in_recovery
    assert connection.congestion.ssthresh == ssthresh


def test_an_ack_into_a_sacked_block_is_reneging_and_times_out_early():
    script = eight_segments_in_flight()
    connection = script.connection
    script.receive(ack(0, segments(2, 3)))
    script.expect(segment(8))
    script.now += 0.1
    # The peer acknowledges 0 to 2 and no longer reports 3, which it SACKed: it dropped it.
    script.receive(ack(3))
    assert connection.snd.scoreboard.blocks == [segments(3, 3)]
    srtt = connection.rtt.srtt
    assert connection.timers_armed()["retransmit"] == pytest.approx(script.now + max(srtt / 2, RENEGING_WAIT))
    assert script.advance_to_next_timer() < script.now + connection.rtt.rto  # before the RTO
    # The timeout finds the segment at SND.UNA SACKed: every SACKed mark goes (RFC 2018 8),
    # segment 3 is sent again and everything after it will be.
    script.expect(segment(3))
    assert not connection.snd.has_sacked
    assert connection.snd.sack_renegings == 1
    script.receive(ack(4))
    script.expect(segment(4), segment(5))


def test_rack_forgets_its_sacked_marks_on_reneging():
    script = eight_segments_in_flight(loss_detection="rack")
    connection = script.connection
    script.receive(ack(0, segments(2, 3)))
    marked = [entry for entry in connection.snd.sent_times if entry[3] & 2]
    assert len(marked) == 2  # segments 2 and 3, SACKed (send_side.SACKED)
    script.now += 0.1
    script.receive(ack(3))
    assert connection.snd.sent_times[0][3] & 2  # segment 3, now at SND.UNA, still marked
    while connection.snd.sack_renegings == 0:
        script.advance_to_next_timer()  # the short reneging timeout
        connection.transmit(script.now)
    assert connection.retransmission_timeouts == 1
    assert not any(entry[3] & 2 for entry in connection.snd.sent_times)
    assert not connection.snd.has_sacked
