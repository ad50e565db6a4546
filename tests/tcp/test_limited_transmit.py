"""RFC 3042 Limited Transmit: the first and second duplicate ACK each let one new segment out.

A small flight that loses a segment rarely draws three duplicate ACKs on its own: each segment
that Limited Transmit sends draws one more, so fast retransmit (RFC 5681 3.2) can repair the loss
instead of the retransmission timer. cwnd does not change, FlightSize stays at most cwnd + 2*SMSS,
the peer's window is respected, and what was sent this way is left out of FlightSize when
ssthresh is set.
"""

from __future__ import annotations

import dataclasses

from tcp_script import *  # noqa: F403
from ustack.tcp import State

MSS = 1460
WIDE_WINDOW = 30000  # the peer's window: room for more than cwnd + 2 segments
DATA = bytes(range(256)) * 57  # 14592 bytes: ten segments, the last one 1452 bytes


def small_window_config(**changes):
    """An initial window of four segments, so that cwnd (not the peer's window) limits the flight."""
    return dataclasses.replace(CONFIG, initial_window_segments=4, **changes)


def established_with_wide_peer_window(config, peer_window=WIDE_WINDOW) -> Script:
    script = syn_sent(config)
    script.receive(incoming(remote(0), local(1), SYN | ACK, window=peer_window, options=TcpOptions(mss=MSS)))
    script.expect(outgoing(local(1), remote(1)))
    assert script.state is State.ESTABLISHED
    return script


def segment(n: int, flags=ACK) -> TcpSegment:
    """Our n-th data segment (0-based) of DATA."""
    start = n * MSS
    return outgoing(local(1 + start), remote(1), flags, payload=DATA[start : start + MSS])


def duplicate_ack(window=WIDE_WINDOW) -> TcpSegment:
    return incoming(remote(1), local(1), window=window)


def four_segments_in_flight(config=None, peer_window=WIDE_WINDOW) -> Script:
    script = established_with_wide_peer_window(config or small_window_config(), peer_window)
    script.connection.send(DATA, script.now)
    script.expect(segment(0), segment(1), segment(2), segment(3))
    return script


def test_first_and_second_duplicate_ack_each_send_one_new_segment():
    script = four_segments_in_flight()
    connection = script.connection
    # Segment 0 is lost; segment 1 draws the first duplicate ACK.
    script.receive(duplicate_ack())
    script.expect(segment(4))
    assert connection.congestion.cwnd == 4 * MSS  # RFC 3042 2: cwnd MUST NOT change
    script.receive(duplicate_ack())
    script.expect(segment(5))
    assert connection.congestion.cwnd == 4 * MSS
    assert not connection.congestion.in_recovery


def test_third_duplicate_ack_retransmits_and_leaves_limited_transmit_out_of_ssthresh():
    script = four_segments_in_flight()
    connection = script.connection
    script.receive(duplicate_ack())
    script.expect(segment(4))
    script.receive(duplicate_ack())
    script.expect(segment(5))
    script.receive(duplicate_ack())
    # RFC 5681 3.2 step 2: FlightSize is six segments, but the two that Limited Transmit sent
    # do not count: ssthresh = 4 * MSS / 2. cwnd = ssthresh + 3 * MSS is below the flight of six,
    # so only the retransmission goes out.
    script.expect(segment(0))
    assert connection.congestion.in_recovery
    assert connection.congestion.ssthresh == 2 * MSS
    assert connection.congestion.cwnd == 5 * MSS
    script.expect_nothing()


def test_flight_never_exceeds_cwnd_plus_two_segments():
    script = four_segments_in_flight()
    # A duplicate ACK that (being a duplicate) frees nothing, then another after Limited
    # Transmit has used its two segments: the third is fast retransmit, never a third new segment.
    script.receive(duplicate_ack())
    script.expect(segment(4))
    script.receive(duplicate_ack())
    script.expect(segment(5))
    connection = script.connection
    assert connection.snd_nxt == local(1 + 6 * MSS)  # cwnd (4) + 2 segments in flight


def test_the_peer_window_limits_limited_transmit():
    # The peer offers exactly the four segments in flight: no new segment fits (RFC 3042 2, the
    # receiver's advertised window must allow it).
    script = four_segments_in_flight(peer_window=4 * MSS)
    script.receive(duplicate_ack(window=4 * MSS))
    script.expect_nothing()
    script.receive(duplicate_ack(window=4 * MSS))
    script.expect_nothing()
    assert script.connection.snd.duplicate_acks == 2


def test_switched_off_no_segment_goes_out_before_the_third_duplicate_ack():
    script = four_segments_in_flight(small_window_config(limited_transmit=False))
    connection = script.connection
    script.receive(duplicate_ack())
    script.expect_nothing()
    script.receive(duplicate_ack())
    script.expect_nothing()
    script.receive(duplicate_ack())
    # Without Limited Transmit the whole flight of four counts: ssthresh = 2 segments,
    # cwnd = ssthresh + 3 segments = 5, one more than in flight: one new segment follows the
    # retransmission (RFC 5681 3.2 step 5).
    script.expect(segment(0), segment(4))
    assert connection.congestion.ssthresh == 2 * MSS


def test_a_new_ack_between_duplicates_ends_limited_transmit():
    script = four_segments_in_flight()
    connection = script.connection
    script.receive(duplicate_ack())
    script.expect(segment(4))
    # Reordering, not loss: segment 0 arrives late and everything up to segment 2 is ACKed.
    # Slow start (cwnd 4 -> 6 segments: this ACK of three segments adds two, RFC 3465 2.2's
    # L = 2) allows more segments after the three acknowledged: in flight were 5, 3 left, so
    # 6 - 2 = 4 may go out: segments 5, 6, 7 and 8.
    script.receive(incoming(remote(1), local(1 + 3 * MSS), window=WIDE_WINDOW))
    assert connection.snd.duplicate_acks == 0
    assert connection.congestion.cwnd == 6 * MSS
    script.expect(segment(5), segment(6), segment(7), segment(8))
    script.expect_nothing()


def test_no_limited_transmit_while_going_back_after_a_timeout():
    script = four_segments_in_flight()
    connection = script.connection
    script.advance_to_next_timer()  # RTO: segment 0 again, cwnd one segment, SND.NXT went back
    script.expect(segment(0))
    assert connection.snd_nxt != connection.snd_max
    # Duplicate ACKs now answer old segments; what follows SND.NXT is not new data.
    script.receive(duplicate_ack())
    script.expect_nothing()
    script.receive(duplicate_ack())
    script.expect_nothing()


def test_nagle_keeps_a_small_segment_back():
    # Five segments' worth plus a small tail: the tail would be a small segment while data is
    # unacknowledged, which Nagle (RFC 9293 3.7.4) holds back even for Limited Transmit.
    config = dataclasses.replace(CONFIG, initial_window_segments=5)
    script = established_with_wide_peer_window(config)
    data = DATA[: 5 * MSS + 100]
    script.connection.send(data, script.now)
    script.expect(*[segment(n) for n in range(5)])
    script.receive(duplicate_ack())
    script.expect_nothing()
    # With Nagle off the tail goes.
    config = dataclasses.replace(config, nagle=False)
    script = established_with_wide_peer_window(config)
    script.connection.send(data, script.now)
    script.expect(*[segment(n) for n in range(5)])
    script.receive(duplicate_ack())
    script.expect(outgoing(local(1 + 5 * MSS), remote(1), ACK | PSH, payload=data[5 * MSS :]))
