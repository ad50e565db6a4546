"""Retransmission: RTO (RFC 6298), Karn's rule, backoff, giving up, fast retransmit (RFC 5681)."""

from __future__ import annotations

import errno

import pytest

from tcp_script import *  # noqa: F403
from ustack.tcp.seq import seq_add
from ustack.tcp import State, TcpConfig, TcpError


def slow_established(config=CONFIG, rtt=0.1):
    """Established with a measured handshake RTT, so the RTO is above its floor."""
    script = syn_sent(config)
    script.now = rtt
    script.receive(incoming(remote(0), local(1), SYN | ACK))
    script.expect(outgoing(local(1), remote(1)))
    return script


def test_rto_follows_rfc6298_from_the_handshake_sample():
    script = slow_established(rtt=0.1)
    rtt = script.connection.rtt
    # RFC 6298 2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + 4*RTTVAR.
    assert rtt.srtt == pytest.approx(0.1) and rtt.rttvar == pytest.approx(0.05)
    assert rtt.rto == pytest.approx(0.3)


def test_lost_data_is_retransmitted_with_exponential_backoff():
    script = slow_established()
    script.connection.send(b"hello", script.now)
    segment = outgoing(local(1), remote(1), ACK | PSH, payload=b"hello")
    script.expect(segment)
    start = script.now
    assert script.advance_to_next_timer() == pytest.approx(start + 0.3)
    script.expect(segment)
    assert script.advance_to_next_timer() == pytest.approx(start + 0.3 + 0.6)
    script.expect(segment)
    assert script.connection.retransmissions == 2
    assert script.connection.rtt.rto == pytest.approx(1.2)


def test_karn_ignores_the_ack_of_a_retransmitted_segment():
    script = slow_established()
    script.connection.send(b"hello", script.now)
    script.expect(outgoing(local(1), remote(1), ACK | PSH, payload=b"hello"))
    script.advance_to_next_timer()
    script.expect(outgoing(local(1), remote(1), ACK | PSH, payload=b"hello"))
    script.now += 0.05
    script.receive(incoming(remote(1), local(6)))
    rtt = script.connection.rtt
    assert rtt.sample_count == 1  # only the handshake
    assert rtt.rto == pytest.approx(0.6)  # still backed off until a valid sample (RFC 6298 5.7)
    assert script.connection.timers_armed() == {}


def test_a_fresh_sample_replaces_the_backed_off_rto():
    script = slow_established()
    connection = script.connection
    connection.send(b"a", script.now)
    script.expect(outgoing(local(1), remote(1), ACK | PSH, payload=b"a"))
    script.advance_to_next_timer()
    script.expect(outgoing(local(1), remote(1), ACK | PSH, payload=b"a"))
    script.receive(incoming(remote(1), local(2)))
    connection.send(b"b", script.now)
    script.expect(outgoing(local(2), remote(1), ACK | PSH, payload=b"b"))
    script.now += 0.1
    script.receive(incoming(remote(1), local(3)))
    assert connection.rtt.sample_count == 2
    assert connection.rtt.rto == pytest.approx(0.1 + 4 * 0.0375)


def test_minimum_rto_is_200ms_by_default():
    script = established()  # an RTT of 0
    assert script.connection.rtt.rto == 0.2


def test_retransmissions_exhausted_report_timed_out():
    config = TcpConfig(**{**CONFIG.__dict__, "max_retransmissions": 3})
    script = established(config)
    script.connection.send(b"x", 0.0)
    segment = outgoing(local(1), remote(1), ACK | PSH, payload=b"x")
    script.expect(segment)
    for expected_time in (0.2, 0.6, 1.4):
        assert script.advance_to_next_timer() == pytest.approx(expected_time)
        script.expect(segment)
    assert script.advance_to_next_timer() == pytest.approx(3.0)
    script.expect_nothing()
    connection = script.connection
    assert connection.state is State.CLOSED and connection.error is TcpError.TIMED_OUT
    assert connection.error.errno == errno.ETIMEDOUT
    assert script.state_changes()[-1] == (State.ESTABLISHED, State.CLOSED)


def test_maximum_rto_caps_the_backoff():
    config = TcpConfig(**{**CONFIG.__dict__, "max_rto": 0.5})
    script = established(config)
    script.connection.send(b"x", 0.0)
    script.expect(outgoing(local(1), remote(1), ACK | PSH, payload=b"x"))
    times = []
    for _ in range(4):
        times.append(script.advance_to_next_timer())
        script.expect(outgoing(local(1), remote(1), ACK | PSH, payload=b"x"))
    assert times == pytest.approx([0.2, 0.6, 1.1, 1.6])


def test_timeout_goes_back_to_snd_una_and_restarts_slow_start():
    script = established()
    connection = script.connection
    data = bytes(4 * 1460)
    connection.send(data, 0.0)
    sent = connection.transmit(0.0)
    assert len(sent) == 4
    script.advance_to_next_timer()
    # RFC 5681 3.1: cwnd = one segment, so only the first segment goes again.
    script.expect(outgoing(local(1), remote(1), payload=data[:1460]))
    assert connection.congestion.cwnd == 1460
    assert connection.congestion.ssthresh == 2 * 1460  # max(FlightSize/2, 2*MSS)
    script.receive(incoming(remote(1), local(1461)))
    # slow start: two more segments (cwnd 2920), taken from where we went back to
    script.expect(
        outgoing(local(1461), remote(1), payload=data[1460:2920]),
        outgoing(local(2921), remote(1), payload=data[2920:4380]),
    )


def test_three_duplicate_acks_trigger_fast_retransmit():
    script = established()
    connection = script.connection
    data = bytes(range(256)) * 23  # 5888 bytes: four full segments and a tail
    connection.send(data, 0.0)
    sent = connection.transmit(0.0)
    assert len(sent) == 4  # Nagle holds the 48-byte tail while data is unacknowledged
    # The first segment is lost; the next three each draw a duplicate ACK.
    for _ in range(2):
        script.receive(incoming(remote(1), local(1)))
        script.expect_nothing()
    script.receive(incoming(remote(1), local(1)))
    script.expect(outgoing(local(1), remote(1), payload=data[:1460]))
    assert connection.congestion.in_recovery
    assert connection.snd.duplicate_acks == 3
    # The ACK of everything sent ends recovery (Reno, RFC 5681 3.2 step 6).
    script.receive(incoming(remote(1), connection.snd_nxt))
    assert not connection.congestion.in_recovery and connection.snd.duplicate_acks == 0
    assert connection.retransmissions == 1


def test_a_window_update_is_not_a_duplicate_ack():
    script = established()
    connection = script.connection
    connection.send(bytes(2920), 0.0)
    connection.transmit(0.0)
    for window in (9000, 9100, 9200):
        script.receive(incoming(remote(1), local(1), window=window))
    assert connection.snd.duplicate_acks == 0


def test_congestion_window_restarts_after_an_idle_period():
    script = established()
    connection = script.connection
    # Grow cwnd past the initial window in slow start: a full window of 10 segments, each ACK
    # answering a flight that filled cwnd (RFC 7661: only then may cwnd grow).
    script.receive(incoming(remote(1), local(1), window=65535))
    connection.send(bytes(14600), script.now)
    segments = connection.transmit(script.now)
    assert len(segments) == 10
    for segment in segments:
        script.receive(incoming(remote(1), seq_add(segment.seq, 1460), window=65535))
    # The ten ACKs arrive together, with no chance to send between them: each answers the flight
    # of ten that filled cwnd when it was sent (RFC 7661 asks about the flight at send time), so
    # each adds a segment, 10 -> 20.
    assert connection.congestion.cwnd == 2 * 14600
    script.advance(5.0)  # idle for far longer than the RTO
    connection.send(bytes(1460), script.now)
    connection.transmit(script.now)
    assert connection.congestion.cwnd == 14600  # RFC 5681 4.1: back to the initial window


def test_newreno_partial_ack_retransmits_the_next_hole_at_once():
    config = TcpConfig(**{**CONFIG.__dict__, "congestion_control": "newreno"})
    script = established(config)
    connection = script.connection
    data = bytes(range(256)) * 23  # 5888 bytes
    connection.send(data, 0.0)
    assert len(connection.transmit(0.0)) == 4  # 4 x 1460 (Nagle holds the tail)
    # Segments 1 and 3 are lost; three duplicate ACKs of the first hole arrive.
    for _ in range(3):
        script.receive(incoming(remote(1), local(1)))
    script.expect(outgoing(local(1), remote(1), payload=data[:1460]))
    # The retransmission fills the first hole: the ACK moves up to the second hole only.
    script.receive(incoming(remote(1), local(2921)))
    assert connection.congestion.in_recovery  # a partial ACK (RFC 6582 3.2)
    sent = connection.transmit(0.0)
    assert sent[0] == outgoing(local(2921), remote(1), payload=data[2920:4380])
    script.receive(incoming(remote(1), local(5841)))
    assert not connection.congestion.in_recovery
