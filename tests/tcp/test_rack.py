"""RACK-TLP (RFC 8985) in the connection, segment by segment on virtual time.

The path's round trip is RTT = 125 ms (the SYN-ACK arrives 125 ms after the SYN, and each ACK
below 125 ms after what it acknowledges), so SRTT = 0.125, RTTVAR = 0.0625 and RTO = 0.375 s
(binary fractions, so that virtual times add up exactly).
"""

from __future__ import annotations

import dataclasses

import pytest

from tcp_script import *  # noqa: F403
from ustack.tcp import Connection
from ustack.tcp.rack import PROBE_TIMEOUT_FLOOR, RackState

MSS = 1460
RTT = 0.125
RTO = RTT + 4 * RTT / 2
PEER_WINDOW_WIDE = 60000


def config(**changes):
    return dataclasses.replace(CONFIG, sack=True, initial_window_segments=8, send_buffer_size=65536, **changes)


def established(**changes) -> Script:
    """SACK negotiated after one RTT (t = RTT), nothing written yet."""
    connection = Connection.open_active(config(**changes), LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
    script = Script(connection)
    script.expect(outgoing(local(0), 0, SYN, options=TcpOptions(mss=MSS, sack_permitted=True)))
    script.advance(RTT)
    script.receive(
        incoming(remote(0), local(1), SYN | ACK, window=PEER_WINDOW_WIDE, options=TcpOptions(mss=MSS, sack_permitted=True))
    )
    script.expect(outgoing(local(1), remote(1)))
    return script


def in_flight(segments_written: int, **changes) -> tuple[Script, bytes]:
    """SACK negotiated after one RTT, `segments_written` written; the first 8 (at most) sent at
    t = RTT."""
    data = (bytes(range(256)) * 400)[: segments_written * MSS]
    script = established(**changes)
    connection = script.connection
    if data:
        assert connection.send(data, script.now) == len(data)
    script.expect(*[segment(data, n) for n in range(min(8, segments_written))])
    return script, data


def segment(data: bytes, n: int) -> TcpSegment:
    """Our n-th data segment (PSH on the last one, which empties the send buffer)."""
    start = n * MSS
    flags = ACK | PSH if start + MSS >= len(data) else ACK
    return outgoing(local(1 + start), remote(1), flags, payload=data[start : start + MSS])


def segments(first: int, last: int) -> tuple[int, int]:
    return local(1 + first * MSS), local(1 + (last + 1) * MSS)


def ack(acked_segments: int, *blocks) -> TcpSegment:
    return incoming(remote(1), local(1 + acked_segments * MSS), window=PEER_WINDOW_WIDE, options=TcpOptions(sack_blocks=blocks))


# ---------------------------------------------------------------------- tail loss probe (RFC 8985 7)
def test_a_lost_tail_is_repaired_by_a_probe_and_rack_in_two_round_trips_without_a_timeout():
    script, data = in_flight(8)
    connection = script.connection
    # Segments 0-4 arrive, 5-7 (the tail) are lost: one ACK, no duplicate ACKs will ever come.
    script.advance(RTT)
    script.receive(ack(5))
    script.expect_nothing()
    # RFC 8985 7.2: PTO = 2 * SRTT (several segments in flight) and Linux's 2 ms floor, before
    # the RTO (0.375 s).
    assert connection.timers_armed()["tlp"] == pytest.approx(script.now + 2 * RTT + PROBE_TIMEOUT_FLOOR)
    probe_time = script.advance_to_next_timer()
    assert probe_time == pytest.approx(2 * RTT + 2 * RTT + PROBE_TIMEOUT_FLOOR)
    # Nothing new to send: the last segment goes again (7.3).
    script.expect(segment(data, 7))
    # The peer SACKs the probe: RACK sees 5 and 6, sent a round trip before the probe, still
    # missing, so they are lost (6.2); fast recovery resends them at once.
    script.advance(RTT)
    script.receive(ack(5, segments(7, 7)))
    assert connection.congestion.in_recovery
    script.expect(segment(data, 5), segment(data, 6))
    script.advance(RTT)
    script.receive(ack(8))
    assert connection.snd.una == connection.snd.max
    assert connection.retransmission_timeouts == 0
    # From the loss to the repair: the PTO (2 RTT + floor) and one RTT each for the probe and
    # the resend.
    assert script.now == pytest.approx(RTT + RTT + 2 * RTT + PROBE_TIMEOUT_FLOOR + RTT + RTT)


def test_the_same_lost_tail_waits_for_the_retransmission_timer_with_dupack_loss_detection():
    script, data = in_flight(8, loss_detection="dupack")
    connection = script.connection
    script.advance(RTT)
    script.receive(ack(5))
    script.expect_nothing()
    assert "tlp" not in connection.timers_armed()
    script.advance_to_next_timer()
    assert connection.retransmission_timeouts == 1


def test_the_probe_is_new_data_when_there_is_some():
    script, data = in_flight(30)
    # No ACK at all after the flight: at PTO = 2 * SRTT + floor after the flight (before the RTO), one
    # new segment beyond cwnd (7.3: cwnd does not limit a probe).
    assert script.advance_to_next_timer() == pytest.approx(RTT + 2 * RTT + PROBE_TIMEOUT_FLOOR)
    script.expect(segment(data, 8))
    assert script.connection.rack.tlp_end_seq == local(1 + 9 * MSS)
    assert script.connection.rack.probes_sent == 1
    # Only one probe at a time: the next expiry is the retransmission timer, restarted by the probe.
    assert script.connection.timers_armed().keys() == {"retransmit"}
    assert script.connection.timers_armed()["retransmit"] == pytest.approx(script.now + RTO)


def test_a_probe_due_when_the_ack_of_everything_is_read_is_withdrawn_and_the_next_write_goes_once():
    # Issue 12: the runtime fires a due timer before it reads the packets waiting on the link.
    # The probe timer expires with the flight out, then the ACK of all of it is read, then the
    # application writes the short end of its answer. RFC 8985 7.2: an ACK of new data re-arms
    # the probe timer, so the expiry that came before it asks for nothing: the end of the answer
    # goes out once (it went twice, the second a "probe" the peer answered with a D-SACK).
    script, data = in_flight(8)
    connection = script.connection
    script.advance_to_next_timer()  # the PTO, 2 * SRTT after the flight
    script.receive(ack(8))
    tail = b"t" * 224
    assert connection.send(tail, script.now) == len(tail)
    script.expect(outgoing(local(1 + len(data)), remote(1), ACK | PSH, payload=tail))
    assert connection.retransmissions == 0
    assert connection.rack.probes_sent == 0
    # The probe timer watches the new flight (one segment: 7.2's delayed-ACK allowance).
    assert "tlp" in connection.timers_armed()


def test_a_probe_due_when_an_ack_of_part_of_the_flight_is_read_waits_a_new_pto():
    script, data = in_flight(8)
    connection = script.connection
    script.advance_to_next_timer()
    script.receive(ack(5))  # new data acknowledged: the probe timer starts again (RFC 8985 7.2)
    script.expect_nothing()
    assert connection.retransmissions == 0
    assert connection.timers_armed()["tlp"] == pytest.approx(script.now + 2 * connection.rtt.srtt + PROBE_TIMEOUT_FLOOR)


def test_the_probe_timeout_has_a_floor_of_2_ms_with_a_sub_millisecond_srtt():
    # A TUN link: SRTT 0.3 ms. RFC 8985 7.2's 2 * SRTT alone is 0.6 ms, shorter than the time to
    # read the ACKs already waiting; Linux (tcp_schedule_loss_probe) adds TCP_TIMEOUT_MIN, 2 ms,
    # when several segments are out, and ustack does the same.
    srtt = 0.0003
    rack = RackState()
    assert rack.probe_timeout(srtt, 8 * MSS, MSS) == pytest.approx(2 * srtt + 0.002)
    # One segment out: the delayed-ACK allowance (200 ms, Linux's TCP_RTO_MIN) is the floor.
    assert rack.probe_timeout(srtt, MSS, MSS) == pytest.approx(2 * srtt + 0.2)
    # In a connection: the flight goes out, the ACK of part of it comes 0.3 ms later.
    script, data = in_flight(8)
    connection = script.connection
    connection.rtt.srtt = srtt
    script.advance(srtt)
    script.receive(ack(5))
    deadline = connection.timers_armed()["tlp"]
    assert deadline - script.now >= 0.002
    script.advance(0.0025)  # 2 * SRTT + 1.9 ms: no probe yet (it came at 0.6 ms before)
    script.expect_nothing()
    assert connection.rack.probes_sent == 0
    assert script.advance_to_next_timer() == pytest.approx(deadline)
    script.expect(segment(data, 7))  # the probe: the last segment again
    assert connection.rack.probes_sent == 1


def test_with_one_segment_in_flight_the_probe_allows_for_a_delayed_ack_but_never_waits_past_the_rto():
    script, data = in_flight(1)
    # 7.2: PTO = 2 * SRTT + 200 ms (WCDelAckT) = 0.45 s, later than the RTO (0.375 s): the
    # probe goes at the RTO's time and takes its place.
    assert script.connection.timers_armed()["tlp"] == pytest.approx(RTT + RTO)
    script.advance_to_next_timer()
    script.expect(segment(data, 0))
    assert script.connection.retransmission_timeouts == 0


def probe_of_the_last_segment() -> tuple[Script, bytes, int]:
    """Eight segments in flight, all but the last acknowledged, the probe resends the last:
    (script, data, cwnd before the probe)."""
    script, data = in_flight(8)
    script.advance(RTT)
    script.receive(ack(7))
    cwnd_before = script.connection.congestion.cwnd
    script.advance_to_next_timer()
    script.expect(segment(data, 7))
    assert script.connection.rack.tlp_end_seq == local(1 + 8 * MSS)
    return script, data, cwnd_before


def test_a_probe_that_repaired_a_loss_reduces_cwnd_once_data_sent_after_it_is_acknowledged():
    script, data, cwnd_before = probe_of_the_last_segment()
    connection = script.connection
    script.advance(RTT)
    # The ACK of the probe's end, with no D-SACK: the original was lost, or this ACKs the
    # original and the probe's D-SACK comes next. RFC 8985 7.4 (and Linux) wait: no response yet.
    script.receive(ack(8))
    assert connection.congestion.cwnd >= cwnd_before
    assert connection.rack.tlp_end_seq is not None
    more = bytes(MSS)
    connection.send(more, script.now)
    assert len(connection.transmit(script.now)) == 1
    script.advance(RTT)
    # An ACK beyond the probe with no D-SACK before it: the probe repaired a loss (7.4.2).
    script.receive(incoming(remote(1), local(1 + 9 * MSS), window=PEER_WINDOW_WIDE))
    assert connection.congestion.cwnd < cwnd_before
    assert connection.congestion.ssthresh < 1 << 30
    assert not connection.congestion.in_recovery
    assert connection.rack.tlp_end_seq is None
    assert connection.retransmission_timeouts == 0


@pytest.mark.parametrize("answer", ["d-sack", "duplicate ack"])
def test_a_probe_whose_original_got_through_costs_no_reduction(answer):
    # RFC 8985 7.4.1, Linux's tlp_high_seq: the original arrived (its ACK first), then the probe,
    # which the peer reports as a duplicate: with a D-SACK block, or (no SACK) a plain duplicate ACK.
    script, data, cwnd_before = probe_of_the_last_segment()
    connection = script.connection
    script.advance(RTT)
    script.receive(ack(8))
    if answer == "d-sack":
        script.receive(ack(8, segments(7, 7)))
    else:
        script.receive(ack(8))
    assert connection.rack.tlp_end_seq is None  # settled: another probe may go out later
    assert connection.congestion.cwnd >= cwnd_before
    assert connection.congestion.ssthresh >= 1 << 30
    assert connection.retransmission_timeouts == 0


# ---------------------------------------------------------------------- RACK (RFC 8985 6)
def test_a_segment_passed_by_a_later_one_is_lost_only_after_the_reordering_window():
    script, data = in_flight(8)
    connection = script.connection
    script.advance(RTT)
    script.receive(ack(2))  # RACK.rtt = min_RTT = 125 ms
    script.receive(ack(2, segments(3, 3)))  # segment 2 is missing, only one segment above it
    # Sent at the same moment as segment 3, before it in sequence: lost if still missing
    # RACK.rtt + reo_wnd after it was sent, reo_wnd = min_RTT / 4 (6.2 step 4).
    script.expect_nothing()
    assert not connection.congestion.in_recovery
    assert connection.timers_armed()["reorder"] == pytest.approx(RTT + RTT + RTT / 4)
    assert script.advance_to_next_timer() == pytest.approx(2 * RTT + RTT / 4)
    assert connection.congestion.in_recovery
    assert connection.rack.losses_detected == 1
    sent = connection.transmit(script.now)
    assert sent[0] == segment(data, 2)


def test_reordering_that_resolves_inside_the_window_costs_no_retransmission():
    script, data = in_flight(8)
    connection = script.connection
    script.advance(RTT)
    script.receive(ack(2))
    script.receive(ack(2, segments(3, 3)))
    script.advance(RTT / 8)  # segment 2 arrives late, inside the window
    script.receive(ack(4))
    script.expect_nothing()
    assert "reorder" not in connection.timers_armed()
    assert connection.rack.reordering_seen
    assert not connection.congestion.in_recovery
    assert connection.retransmissions == 0


def test_before_any_reordering_three_sacked_segments_mean_a_zero_window():
    rack = RackState()
    rack.min_rtt = RTT
    assert rack.reordering_window(in_recovery=False, sacked_segments=1, srtt=RTT) == pytest.approx(RTT / 4)
    assert rack.reordering_window(in_recovery=False, sacked_segments=3, srtt=RTT) == 0
    assert rack.reordering_window(in_recovery=True, sacked_segments=0, srtt=RTT) == 0
    rack.reordering_seen = True
    assert rack.reordering_window(in_recovery=True, sacked_segments=3, srtt=RTT) == pytest.approx(RTT / 4)


def test_dsack_widens_the_window_once_per_round_trip_up_to_srtt_and_it_shrinks_after_16_recoveries():
    rack = RackState()
    rack.min_rtt = RTT
    rack.on_dsack(snd_una=100, snd_nxt=1000)
    assert rack.reo_wnd_mult == 2
    rack.on_dsack(snd_una=500, snd_nxt=2000)  # the same round trip (SND.UNA below 1000)
    assert rack.reo_wnd_mult == 2
    rack.on_dsack(snd_una=1000, snd_nxt=3000)  # the next one
    assert rack.reo_wnd_mult == 3
    assert rack.reordering_window(in_recovery=True, sacked_segments=5, srtt=RTT) == pytest.approx(3 * RTT / 4)
    for _ in range(3):
        rack.on_dsack(snd_una=rack.dsack_round, snd_nxt=rack.dsack_round + 1000)
    assert rack.reo_wnd_mult == 6
    assert rack.reordering_window(in_recovery=True, sacked_segments=5, srtt=RTT) == pytest.approx(RTT)  # capped
    for _ in range(15):
        rack.on_recovery_ended()
    assert rack.reo_wnd_mult == 6
    rack.on_recovery_ended()
    assert rack.reo_wnd_mult == 1


def test_a_dsack_from_the_peer_widens_the_connections_reordering_window():
    script, data = in_flight(8)
    connection = script.connection
    script.advance(RTT)
    script.receive(ack(8))
    # The peer reports segment 0 twice (a D-SACK below SND.UNA, RFC 2883).
    script.receive(ack(8, segments(0, 0)))
    assert connection.rack.reo_wnd_mult == 2
    assert connection.rack.reordering_seen


def test_sent_times_are_kept_only_for_unacknowledged_segments():
    script, data = in_flight(8)
    connection = script.connection
    assert len(connection.snd.sent_times) == 8
    script.advance(RTT)
    script.receive(ack(5))
    assert [entry[0] for entry in connection.snd.sent_times] == [local(1 + n * MSS) for n in (5, 6, 7)]


def test_dupack_loss_detection_keeps_no_rack_state():
    script, data = in_flight(8, loss_detection="dupack")
    assert script.connection.rack is None
    assert script.connection.snd.sent_times is None


def test_an_unknown_loss_detection_is_refused():
    with pytest.raises(ValueError, match="loss_detection"):
        config(loss_detection="fack")


def test_an_idle_connection_keeps_no_rack_books_until_data_is_written():
    script, data = in_flight(0)
    connection = script.connection
    assert connection.sack_permitted
    assert connection.rack is None and connection.snd.sent_times is None
    connection.send(b"x", script.now)
    assert connection.rack is not None and connection.snd.sent_times == []


# ---------------------------------------------------------------------- probes with TSO
def test_with_tso_the_probe_resends_the_last_mss_of_the_last_super_segment_and_rack_finds_the_rest():
    # config.offload_segments = 4: the flight of 8 segments goes as two super-segments of 4 MSS,
    # which the link cuts every MSS. The ACK of the first comes, the second is lost whole.
    # RFC 8985 7.3 resends "the last segment": the last wire segment, [7 MSS, 8 MSS), ending at
    # SND.NXT (as Linux). Its SACK then shows segments 4-6, sent a round trip before, missing.
    # (ustack resent the FIRST MSS of the super-segment, segment 4, and stamped all four as sent
    # again, so that the SACK of it told RACK nothing about 5-7.)
    data = (bytes(range(256)) * 400)[: 8 * MSS]
    script = established(offload_segments=4)
    connection = script.connection
    assert connection.send(data, script.now) == len(data)
    script.expect(
        outgoing(local(1), remote(1), ACK, payload=data[: 4 * MSS]),
        outgoing(local(1 + 4 * MSS), remote(1), ACK | PSH, payload=data[4 * MSS :]),
    )
    flight_sent_at = script.now
    script.advance(RTT)
    script.receive(ack(4))
    script.expect_nothing()
    script.advance_to_next_timer()
    script.expect(segment(data, 7))
    assert connection.rack.tlp_end_seq == local(1 + 8 * MSS)
    # RACK's records: segments 4-6 keep their send time; only segment 7 was sent again.
    start, end = segments(4, 6)
    times = [entry[:3] for entry in connection.snd.sent_times]
    assert times == [[start, end, flight_sent_at], [end, local(1 + 8 * MSS), script.now]]
    # The peer SACKs the probe: 4-6 are lost (6.2), fast recovery resends them from segment 4.
    script.advance(RTT)
    script.receive(ack(4, segments(7, 7)))
    assert connection.congestion.in_recovery
    resent = connection.transmit(script.now)
    assert resent[0] == segment(data, 4)
    assert connection.retransmission_timeouts == 0
