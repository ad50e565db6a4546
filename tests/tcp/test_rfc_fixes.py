"""Core behaviours found wrong against the RFC text (issue 9 ICMP, issue 10), and unit tests for
the spots mutation testing found covered only by the FreeBSD suite or seeded loss simulations.
Each test failed before its fix."""

from __future__ import annotations

import dataclasses

from tcp_script import *  # noqa: F403
from test_blind_injection import TS_CONFIG, established_with_timestamps
from ustack.tcp import State, TcpConfig
from ustack.tcp.timer_set import Timer


# ---------------------------------------------------------------- ICMP (RFC 5927, RFC 1191)
def sending_two_segments(config: TcpConfig = CONFIG) -> Script:
    script = established(config)
    script.connection.send(bytes(2920), 0.0)
    assert len(script.connection.transmit(0.0)) == 2
    return script


def test_a_forged_fragmentation_needed_with_mtu_68_no_longer_gives_mss_16():
    script = established_with_timestamps()
    connection = script.connection
    connection.send(bytes(2000), script.now)
    connection.transmit(script.now)
    connection.on_icmp_unreachable(4, 68, local(1), script.now)
    # Clamped to TcpConfig.min_path_mtu (552, Linux's min_pmtu): 552 - 40 - 12 bytes of timestamps.
    assert connection.send_mss == 500
    assert connection.drops["icmp_next_hop_mtu_below_minimum"] == 1


def test_the_path_mtu_floor_is_a_setting_and_the_mss_never_drops_below_48():
    config = dataclasses.replace(CONFIG, min_path_mtu=68)
    script = sending_two_segments(config)
    script.connection.on_icmp_unreachable(4, 68, local(1), 0.0)
    assert script.connection.send_mss == 48  # not 28: the floor of a peer's MSS (options.MIN_PEER_MSS)


def test_a_next_hop_mtu_above_the_floor_is_followed():
    script = sending_two_segments()
    script.connection.on_icmp_unreachable(4, 1000, local(1), 0.0)
    assert script.connection.send_mss == 960 and not script.connection.drops["icmp_next_hop_mtu_below_minimum"]


def test_the_path_mtu_floor_is_at_least_the_ipv4_minimum():
    import pytest

    with pytest.raises(ValueError):
        TcpConfig(min_path_mtu=67)


def test_a_fragmentation_needed_quoting_a_sequence_number_not_in_flight_is_dropped():
    script = sending_two_segments()
    connection = script.connection
    connection.on_icmp_unreachable(4, 600, local(2921), 0.0)  # SND.NXT: nothing sent there yet
    connection.on_icmp_unreachable(4, 600, local(0), 0.0)  # below SND.UNA
    assert connection.send_mss == 1460 and connection.drops["icmp_sequence_not_in_flight"] == 2


# ---------------------------------------------------------------- RFC 6191 2: SYN in TIME-WAIT
def time_wait_with_timestamps() -> Script:
    script = established_with_timestamps()
    connection = script.connection
    connection.close(script.now)
    [fin] = connection.transmit(script.now)
    assert fin.flags == ACK | FIN
    script.now = 0.020
    script.receive(incoming(remote(1), local(2), ACK | FIN, options=TcpOptions(timestamps=(5010, 10))))
    connection.transmit(script.now)
    assert script.state is State.TIME_WAIT and connection.rcv.ts_recent == 5010
    return script


def test_a_syn_with_a_newer_timestamp_reopens_time_wait_whatever_its_sequence_number():
    script = time_wait_with_timestamps()
    syn = incoming(remote(-5000), 0, SYN, options=TcpOptions(mss=1460, timestamps=(6000, 0)))
    script.receive(syn)
    script.expect_nothing()
    assert script.state is State.CLOSED and script.connection.time_wait.reopening_syn == syn


def test_a_syn_with_a_lower_sequence_number_and_no_newer_timestamp_is_answered_with_an_ack():
    script = time_wait_with_timestamps()
    script.receive(incoming(remote(-5000), 0, SYN, options=TcpOptions(mss=1460, timestamps=(5010, 0))))
    [ack] = script.connection.transmit(script.now)
    assert ack.flags == ACK and ack.ack == remote(2)
    assert script.state is State.TIME_WAIT and script.connection.time_wait.reopening_syn is None


# ---------------------------------------------------------------- RFC 6298 5.4 with a shrunk window
def test_the_retransmission_timer_resends_the_oldest_data_at_once_into_a_window_below_one_mss():
    # RFC 9293 3.8.6.2.1 (SHLD-16) and RFC 6298 5.4: sender SWS avoidance must not hold back
    # the retransmission of the oldest unacknowledged data until the persist timer.
    script = sending_two_segments()
    connection = script.connection
    script.now = 0.1
    script.receive(incoming(remote(1), local(1), window=500))  # the peer shrank its window
    script.expect_nothing()
    rto_deadline = connection.timers.deadline(Timer.RETRANSMIT)
    assert script.advance_to_next_timer() == rto_deadline  # the retransmission timer fires
    script.expect(outgoing(local(1), remote(1), payload=bytes(500)))


# ---------------------------------------------------------------- mutation weak spots (issue 10)
def test_syn_sent_an_ack_of_exactly_iss_draws_a_reset():
    # RFC 9293 3.10.7.3 first: SEG.ACK =< ISS is unacceptable (the left edge).
    script = syn_sent()
    script.receive(incoming(remote(0), local(0), SYN | ACK, options=TcpOptions(mss=1460)))
    script.expect(TcpSegment(LOCAL_PORT, REMOTE_PORT, local(0), 0, RST, 0))
    assert script.state is State.SYN_SENT and script.connection.drops["bad_ack_in_syn_sent"] == 1


def test_syn_sent_an_ack_of_iss_plus_one_is_accepted():
    script = syn_sent()
    script.receive(incoming(remote(0), local(1), SYN | ACK, options=TcpOptions(mss=1460)))
    script.expect(outgoing(local(1), remote(1)))
    assert script.state is State.ESTABLISHED


def test_a_partial_ack_restarts_the_retransmission_timer():
    # RFC 6298 5.3: an ACK of new data restarts the timer to expire RTO after now.
    script = sending_two_segments()
    connection = script.connection
    first_deadline = connection.timers.deadline(Timer.RETRANSMIT)
    script.now = 0.1
    script.receive(incoming(remote(1), local(1461)))  # the first segment only
    assert connection.timers.deadline(Timer.RETRANSMIT) == 0.1 + connection.rtt.rto
    assert connection.timers.deadline(Timer.RETRANSMIT) > first_deadline


def test_a_bare_ack_after_going_back_to_retransmit_carries_snd_max():
    # After a timeout SND.NXT goes back to SND.UNA; a bare ACK must still carry SND.MAX, or
    # the peer finds its sequence number old (output.transmit).
    script = established()
    connection = script.connection
    connection.send(bytes(3 * 1460), 0.0)
    assert len(connection.transmit(0.0)) == 3
    script.advance_to_next_timer()
    script.expect(outgoing(local(1), remote(1), payload=bytes(1460)))  # cwnd is one segment
    assert connection.snd_nxt == local(1461) and connection.snd_max == local(4381)
    script.receive(incoming(remote(101), local(1), payload=b"z"))  # out of order: ACK at once
    script.expect(outgoing(local(4381), remote(1)))
