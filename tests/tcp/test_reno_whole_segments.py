"""After a loss, ssthresh (and so cwnd) is a whole number of segments (congestion/base.py,
_threshold_after_loss), and congestion avoidance then grows one MSS every round trip.

A sender sends whole segments only while data waits (SWS avoidance), so of a cwnd of 4.5
segments it uses 4; byte counting (RFC 3465) waited for 4.5 segments' worth of ACKs before
growing, and a round trip of 4 passed without growth. That was issue 13's Reno b/a: the same
losses as Linux's sender at the same places, and 5-8 % less goodput.

Virtual time throughout (tcp_script).
"""

from __future__ import annotations


import pytest

from tcp_script import *  # noqa: F403
from test_recovery_batches import ack, in_flight, segments  # the same set-up and SACK-ACK helpers, MSS and window
from ustack.tcp.congestion import create_congestion_control

MSS = 1460
RTT = 0.04
PEER_WINDOW_WIDE = 60000  # 41 segments: never the limit here
DATA = (bytes(range(256)) * 1200)[: 200 * MSS]


# --- the arithmetic ----------------------------------------------------------------------------


@pytest.mark.parametrize("segments, expected", [(15, 7), (9, 4), (10, 5), (5, 2), (3, 2)])
def test_reno_halves_an_odd_flight_down_to_whole_segments(segments, expected):
    # RFC 5681 3.1 equation 4 sets ssthresh to at most FlightSize / 2, at least 2 * SMSS.
    cc = create_congestion_control("reno", MSS)
    cc.on_enter_fast_recovery(segments * MSS, 0.0)
    assert cc.ssthresh == expected * MSS
    assert cc.cwnd == (expected + 3) * MSS  # RFC 5681 3.2 step 3: inflated by three segments


@pytest.mark.parametrize("name", ["reno", "newreno", "cubic"])
def test_a_timeout_leaves_a_whole_number_of_segments_too(name):
    cc = create_congestion_control(name, MSS)
    cc.on_retransmit_timeout(21 * MSS, 1.0)
    expected = 14 if name == "cubic" else 10  # 21 * 0.7 = 14.7, 21 / 2 = 10.5
    assert cc.ssthresh == expected * MSS and cc.cwnd == MSS


def test_cubic_reduces_by_beta_down_to_whole_segments():
    # RFC 9438 4.6: ssthresh = FlightSize * beta_cubic, at most; 13 * 0.7 = 9.1 segments.
    cc = create_congestion_control("cubic", MSS)
    cc.on_enter_fast_recovery(13 * MSS, 0.0)
    assert cc.ssthresh == 9 * MSS


def test_a_flight_of_small_segments_still_keeps_two_segments():
    cc = create_congestion_control("reno", MSS)
    cc.on_enter_fast_recovery(3 * 100, 0.0)
    assert cc.ssthresh == 2 * MSS


# --- on a connection: recovery from an odd flight, then one MSS per round trip ------------------


def reno_sender(initial_segments: int, name: str = "reno") -> Script:
    """SACK negotiated, DATA written, the initial window of `initial_segments` sent at t = 0.1."""
    return in_flight(DATA, congestion_control=name, initial_window_segments=initial_segments,
                     send_buffer_size=1 << 18, loss_detection="dupack")


def sent_segments(script: Script) -> int:
    connection = script.connection
    return (connection.snd.nxt - local(1)) % (1 << 32) // MSS


def test_after_recovery_from_an_odd_flight_cwnd_grows_one_segment_every_round_trip():
    # Nine segments in flight, the first lost: the peer SACKs the eight after it. ssthresh =
    # half of nine in whole segments = 4. Then every round trip the peer acknowledges all the
    # sender could send; each such round trip of a cwnd-limited flight grows cwnd by one MSS
    # (RFC 5681 3.1). With ssthresh = 4.5 segments the sender used 4 of them, 4 < 4.5 segments
    # were acknowledged in the first round trip, and cwnd did not grow in it.
    script = reno_sender(9)
    connection = script.connection
    congestion = connection.congestion
    script.advance(RTT)
    for last in range(1, 9):
        script.receive(ack(0, segments(1, last)))
        connection.transmit(script.now)  # Limited Transmit, then the fast retransmit and PRR's
    assert congestion.in_recovery
    assert congestion.ssthresh == 4 * MSS
    # The resent first segment arrives: everything sent so far is acknowledged, recovery ends.
    script.advance(RTT)
    script.receive(ack(sent_segments(script)))
    assert not congestion.in_recovery and congestion.cwnd == 4 * MSS
    windows = []
    for _ in range(8):
        connection.transmit(script.now)
        flight = (connection.snd.nxt - connection.snd.una) % (1 << 32)
        windows.append(congestion.cwnd // MSS)
        assert flight == congestion.cwnd, "the sender fills cwnd with whole segments"
        script.advance(RTT)
        first = (connection.snd.una - local(1)) % (1 << 32) // MSS
        last = sent_segments(script)
        # An ACK every second segment, and the odd last one's when the delayed ACK timer fires.
        for acked in sorted({*range(first + 2, last + 1, 2), last}):
            script.receive(ack(acked))
    assert windows == [4, 5, 6, 7, 8, 9, 10, 11]


# --- PRR when the ACK that starts the recovery was read in a batch ------------------------------


@pytest.mark.parametrize("name", ["reno", "cubic"])
def test_a_recovery_found_in_a_batch_of_acks_sends_up_to_ssthresh_at_once(name):
    # Ten segments in flight, the seventh (6) lost. As Linux does, the peer acknowledges 0-5 in
    # one ACK and each out-of-order segment after the hole at once (SACK 7, 7-8, 7-9); the four
    # are read in one batch, with no chance to send between them. Sending after each would have
    # put six new segments out after the first; PRR (RFC 6937 3) counts from there: pipe is 0
    # (the hole is lost, the rest SACKed), far below ssthresh, and the slow-start bound lets
    # DeliveredData + 1 MSS out, so the retransmission and new data fill pipe to ssthresh now.
    # Counting only the last ACK's one SACKed segment, PRR let out the retransmission and one
    # new segment for the whole round trip, and the recovery ended with 2 segments in flight.
    script = reno_sender(10, name)
    connection = script.connection
    congestion = connection.congestion
    script.advance(RTT)
    script.receive(ack(6))
    for last in range(7, 10):
        script.receive(ack(6, segments(7, last)))
    assert congestion.in_recovery
    ssthresh_segments = 5 if name == "reno" else 7  # of the flight as sent, 10 segments
    assert congestion.ssthresh == ssthresh_segments * MSS
    out = connection.transmit(script.now)
    assert out[0].seq == segments(6, 6)[0], "the fast retransmission first"
    assert len(out) == ssthresh_segments
    assert all(len(segment.payload) == MSS for segment in out)
