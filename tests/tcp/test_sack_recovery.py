"""SACK-based loss recovery (RFC 6675) in the connection, segment by segment.

With SACK the sender knows which segments got through, so it can tell a loss without counting
duplicate ACKs (some of which may be lost themselves), resend every lost segment of a window in
one round trip, keep new data flowing during recovery as far as "pipe" allows, and notice that
a retransmission was lost too.
"""

from __future__ import annotations

import dataclasses

from tcp_script import *  # noqa: F403
from ustack.tcp import Connection
from ustack.tcp.seq import seq_add

MSS = 1460
PEER_WINDOW_WIDE = 60000
DATA = (bytes(range(256)) * 200)[: 30 * MSS]


def config(**changes):
    # RFC 6675's own loss detection (RACK-TLP, the default, has tests/tcp/test_rack.py).
    changes.setdefault("loss_detection", "dupack")
    return dataclasses.replace(
        CONFIG, sack=True, initial_window_segments=8, send_buffer_size=65536, **changes
    )


def eight_segments_in_flight(**changes) -> Script:
    """SACK negotiated, the peer's window wide, 30 segments written, the first 8 (the initial
    window) sent."""
    connection = Connection.open_active(
        config(**changes), LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0
    )
    script = Script(connection)
    script.expect(outgoing(local(0), 0, SYN, options=TcpOptions(mss=MSS, sack_permitted=True)))
    script.receive(
        incoming(remote(0), local(1), SYN | ACK, window=PEER_WINDOW_WIDE, options=TcpOptions(mss=MSS, sack_permitted=True))
    )
    script.expect(outgoing(local(1), remote(1)))
    assert connection.sack_permitted
    assert connection.send(DATA, script.now) == len(DATA)
    script.expect(*[segment(n) for n in range(8)])
    return script


def segment(n: int) -> TcpSegment:
    """Our n-th data segment."""
    start = n * MSS
    return outgoing(local(1 + start), remote(1), payload=DATA[start : start + MSS])


def segments(first: int, last: int) -> tuple[int, int]:
    """A SACK block covering our segments first..last."""
    return local(1 + first * MSS), local(1 + (last + 1) * MSS)


def ack(acked_segments: int, *blocks) -> TcpSegment:
    """The peer's ACK of our first `acked_segments` segments, with SACK blocks."""
    return incoming(
        remote(1), local(1 + acked_segments * MSS), window=PEER_WINDOW_WIDE, options=TcpOptions(sack_blocks=blocks)
    )


def test_one_ack_reporting_three_segments_is_enough_when_the_duplicate_acks_before_it_were_lost():
    script = eight_segments_in_flight()
    connection = script.connection
    # Segment 0 is lost and so are the duplicate ACKs of segments 1 and 2: the first one to
    # arrive already SACKs three segments. RFC 6675 5 step (2): IsLost(SND.UNA) holds.
    script.receive(ack(0, segments(1, 3)))
    assert connection.snd.duplicate_acks == 1
    assert connection.congestion.in_recovery
    script.expect(segment(0))
    # ssthresh = FlightSize / 2 = 4 segments; pipe = 8 - 3 SACKed - 1 lost + 1 resent = 5.
    assert connection.congestion.ssthresh == 4 * MSS
    script.expect_nothing()


def test_without_sack_recovery_one_duplicate_ack_only_draws_limited_transmit():
    script = eight_segments_in_flight(sack_recovery=False)
    script.receive(ack(0, segments(1, 3)))
    assert not script.connection.congestion.in_recovery
    script.expect(segment(8))  # RFC 3042 for the first duplicate ACK


def test_every_lost_segment_of_a_window_is_resent_before_any_partial_ack():
    script = eight_segments_in_flight()
    connection = script.connection
    # Segments 0 and 2 are lost. Duplicate ACKs 1 and 2 draw Limited Transmit (RFC 3042).
    script.receive(ack(0, segments(1, 1)))
    script.expect(segment(8))
    script.receive(ack(0, segments(3, 3), segments(1, 1)))
    script.expect(segment(9))
    # The third: fast retransmit of segment 0; ssthresh = (10 - 2 sent by Limited Transmit) / 2.
    script.receive(ack(0, segments(3, 4), segments(1, 1)))
    script.expect(segment(0))
    assert connection.congestion.ssthresh == 4 * MSS
    # pipe = 10 in flight - 4 SACKed - 1 lost (0) + 1 resent (0) = 6, then 5: over ssthresh.
    script.receive(ack(0, segments(3, 5), segments(1, 1)))
    script.expect_nothing()
    script.receive(ack(0, segments(3, 6), segments(1, 1)))
    script.expect_nothing()
    # Now 3..7 are SACKed: segment 2 is lost too (more than two segments above it). pipe =
    # 10 - 6 - 2 + 1 = 3 leaves room for one: segment 2, without waiting for the partial ACK
    # that NewReno alone would need.
    script.receive(ack(0, segments(3, 7), segments(1, 1)))
    script.expect(segment(2))
    # Then new data as pipe falls: 10 - 7 - 2 + 2 = 3, room for one.
    script.receive(ack(0, segments(3, 8), segments(1, 1)))
    script.expect(segment(10))
    # The retransmission of 0 arrives: a partial ACK up to the hole at 2, which was resent
    # already, so it is not resent again (RFC 6582 3.2 step 3 would, without SACK).
    script.receive(ack(2, segments(3, 8)))
    assert connection.congestion.in_recovery
    script.expect(segment(11))
    # The retransmission of 2 arrives: everything up to 9 ("recover") is acknowledged.
    script.receive(ack(10))
    assert not connection.congestion.in_recovery
    assert connection.retransmissions == 2


def test_newreno_without_sack_waits_for_the_partial_ack_to_resend_the_second_hole():
    script = eight_segments_in_flight(sack_recovery=False)
    script.receive(ack(0, segments(1, 1)))
    script.expect(segment(8))
    script.receive(ack(0, segments(3, 3), segments(1, 1)))
    script.expect(segment(9))
    script.receive(ack(0, segments(3, 4), segments(1, 1)))
    script.expect(segment(0))
    for last in (5, 6, 7, 8):
        script.receive(ack(0, segments(3, last), segments(1, 1)))
    # Inflated cwnd (RFC 5681 3.2 step 4): 4 + 3 + 4 = 11 segments over a flight of 10.
    script.expect(segment(10))
    script.receive(ack(2, segments(3, 8)))
    # Only now, on the partial ACK, segment 2 (and one new one: cwnd deflated to 10 segments
    # over a flight of 9, RFC 6582 3.2 step 3).
    script.expect(segment(2), segment(11))


def test_a_lost_retransmission_is_resent_once_later_data_is_sacked():
    # RFC 6675's own sending pattern (pipe against ssthresh); PRR's is in test_prr.py.
    script = eight_segments_in_flight(proportional_rate_reduction=False)
    connection = script.connection
    script.receive(ack(0, segments(1, 1)))
    script.expect(segment(8))
    script.receive(ack(0, segments(1, 2)))
    script.expect(segment(9))
    script.receive(ack(0, segments(1, 3)))
    script.expect(segment(0))  # sent when segments up to 9 were out
    for last in (4, 5, 6):
        script.receive(ack(0, segments(1, last)))
        script.expect_nothing()
    for last, new in ((7, 10), (8, 11), (9, 12), (10, 13), (11, 14)):
        script.receive(ack(0, segments(1, last)))
        script.expect(segment(new))
    # The retransmission of 0 is lost as well. Segments 10, 11 and 12, all sent after it, are
    # SACKed now while 0 is still missing: the retransmission is lost (more than two segments
    # sent after it got through), so 0 goes out once more rather than after a timeout.
    script.receive(ack(0, segments(1, 12)))
    script.expect(segment(0))
    assert connection.retransmissions == 2
    assert connection.congestion.ssthresh == 4 * MSS  # the same loss episode: no second halving


def test_a_timeout_keeps_the_scoreboard():
    script = eight_segments_in_flight()
    connection = script.connection
    script.receive(ack(0, segments(2, 2)))
    script.expect(segment(8))
    assert connection.snd.scoreboard.blocks == [segments(2, 2)]
    script.advance_to_next_timer()
    script.expect(segment(0))
    # As Linux (tcp_timeout_mark_lost), RFC 6675 5.1: the SACKed marks stay (segment 0 is not
    # SACKed, so the peer has not reneged); tests/tcp/test_sack_after_timeout.py has the rest.
    assert connection.snd.scoreboard.blocks == [segments(2, 2)]
    assert connection.snd.recover == seq_add(local(1), 9 * MSS)
