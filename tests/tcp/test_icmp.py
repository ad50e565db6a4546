"""ICMP Destination Unreachable delivered by the stack (RFC 1122 4.2.3.9, RFC 5927, RFC 1191)."""

from __future__ import annotations

from tcp_script import *  # noqa: F403
from ustack.tcp import State, TcpError


def test_fragmentation_needed_lowers_the_mss_and_resends():
    script = established()
    connection = script.connection
    connection.send(bytes(2920), 0.0)
    script.expect(outgoing(local(1), remote(1), payload=bytes(1460)), outgoing(local(1461), remote(1), ACK | PSH, payload=bytes(1460)))
    connection.on_icmp_unreachable(4, 1000, local(1), 0.01)
    assert connection.send_mss == 960
    script.now = 0.01
    data = bytes(960)
    script.expect(
        outgoing(local(1), remote(1), payload=data),
        outgoing(local(961), remote(1), payload=data),
        outgoing(local(1921), remote(1), payload=data),
        # the 40-byte tail was sent before (below SND.MAX): Nagle holds back new data only, so it
        # goes with the rest (cwnd allows: 2,920 bytes were in flight before the ICMP error)
        outgoing(local(2881), remote(1), ACK | PSH, payload=bytes(40)),
    )


def test_an_icmp_error_quoting_data_not_in_flight_is_ignored():
    script = established()
    connection = script.connection
    connection.on_icmp_unreachable(4, 1000, local(500), 0.0)
    assert connection.send_mss == 1460 and connection.drops["icmp_sequence_not_in_flight"] == 1


def test_port_unreachable_while_connecting_is_refused():
    script = syn_sent()
    script.connection.on_icmp_unreachable(3, None, local(0), 0.1)
    assert script.state is State.CLOSED and script.connection.error is TcpError.REFUSED


def test_host_unreachable_is_a_soft_error():
    script = syn_sent()
    script.connection.on_icmp_unreachable(1, None, local(0), 0.1)
    assert script.state is State.SYN_SENT and script.connection.soft_error == (3, 1)


def test_administratively_prohibited_refuses_only_when_configured_as_a_hard_error():
    import dataclasses

    script = syn_sent()
    script.connection.on_icmp_unreachable(13, None, local(0), 0.1)
    assert script.state is State.SYN_SENT and script.connection.soft_error == (3, 13)
    script = syn_sent(dataclasses.replace(CONFIG, icmp_hard_error_codes=frozenset({2, 3, 9, 10, 13})))
    script.connection.on_icmp_unreachable(13, None, local(0), 0.1)
    assert script.state is State.CLOSED and script.connection.error is TcpError.REFUSED


def test_fragmentation_needed_quoting_our_syn_leaves_the_handshake_alone():
    # A SYN is at most 60 bytes, below every legal MTU (68), so "fragmentation needed" for it is
    # bogus. Acting on it took SND.NXT back over the SYN and stopped the retransmission timer
    # with nothing to restart it: the connection waited forever.
    script = syn_sent()
    connection = script.connection
    connection.on_icmp_unreachable(4, 68, local(0), 0.1)
    assert connection.drops["icmp_fragmentation_needed_in_handshake"] == 1
    assert connection.timers_armed() == {"retransmit": 1.0}
    script.now = 0.1
    script.expect_nothing()
    assert script.advance_to_next_timer() == 1.0
    script.expect(outgoing(LOCAL_ISS, 0, SYN, window=BUFFER, options=TcpOptions(mss=1460)))
    script.receive(incoming(remote(0), local(1), SYN | ACK, options=TcpOptions(mss=1460)))
    script.expect(outgoing(local(1), remote(1)))
    assert script.state is State.ESTABLISHED and connection.send_mss == 1460


def test_fragmentation_needed_quoting_our_syn_ack_leaves_the_handshake_alone():
    script = syn_received()
    connection = script.connection
    connection.on_icmp_unreachable(4, 68, local(0), 0.1)
    assert connection.timers_armed() == {"retransmit": 1.0}
    script.receive(incoming(remote(1), local(1)))
    script.expect_nothing()
    assert script.state is State.ESTABLISHED and connection.send_mss == 1460
