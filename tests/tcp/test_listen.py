"""LISTEN (RFC 9293 3.10.7.2) and the socket-style Listener with its two queues."""

from __future__ import annotations

import dataclasses

import pytest

from tcp_script import *  # noqa: F403
from ustack.tcp import Connection, Listener, State, TcpCallError, TcpError
from ustack.tcp.isn import IsnGenerator


def test_passive_open_enters_listen():
    script = listening()
    assert script.state_changes() == [(State.CLOSED, State.LISTEN)]
    script.expect_nothing()
    assert script.connection.next_deadline() is None


def test_rcv_syn_sends_syn_ack_and_enters_syn_received():
    script = listening()
    script.receive(incoming(remote(0), 0, SYN, options=TcpOptions(mss=1000)))
    script.expect(outgoing(local(0), remote(1), SYN | ACK, options=TcpOptions(mss=1460)))
    script.expect_nothing()
    assert script.state_changes() == [(State.CLOSED, State.LISTEN), (State.LISTEN, State.SYN_RECEIVED)]
    assert script.connection.remote_port == REMOTE_PORT


def test_rst_in_listen_is_ignored():
    script = listening()
    script.receive(incoming(remote(0), 0, RST))
    script.expect_nothing()
    assert script.state is State.LISTEN
    assert script.connection.drops["rst_in_listen"] == 1


def test_ack_in_listen_draws_a_reset_from_its_ack_number():
    script = listening()
    script.receive(incoming(remote(5), local(77)))
    script.expect(outgoing(local(77), 0, RST, window=0))
    script.expect_nothing()
    assert script.state is State.LISTEN


def test_segment_without_syn_in_listen_is_dropped():
    script = listening()
    script.receive(incoming(remote(0), 0, FIN))
    script.expect_nothing()
    assert script.connection.drops["no_syn_in_listen"] == 1


def test_close_in_listen_deletes_the_tcb():
    script = listening()
    script.connection.close(script.now)
    assert script.state_changes()[-1] == (State.LISTEN, State.CLOSED)
    script.expect_nothing()
    assert script.connection.is_finished


def test_send_in_listen_turns_into_an_active_open():
    # RFC 9293 3.10.2: SEND in LISTEN with a fully specified foreign socket sends a SYN.
    connection = Connection.open_passive(
        CONFIG, LOCAL_ADDRESS, LOCAL_PORT, LOCAL_ISS, 0.0, remote_address=REMOTE_ADDRESS, remote_port=REMOTE_PORT
    )
    script = Script(connection)
    assert connection.send(b"hello", 0.0) == 5
    script.expect(outgoing(local(0), 0, SYN, options=TcpOptions(mss=1460)))
    assert script.state_changes()[-1] == (State.LISTEN, State.SYN_SENT)
    script.receive(incoming(remote(0), local(1), SYN | ACK))
    script.expect(outgoing(local(1), remote(1), ACK | PSH, payload=b"hello"))


def test_send_in_listen_without_a_foreign_socket_is_an_error():
    script = listening()
    with pytest.raises(TcpCallError) as error:
        script.connection.send(b"x", 0.0)
    assert error.value.reason == "foreign_socket_unspecified"


# ---------------------------------------------------------------------- the Listener
def make_listener(backlog=128, syn_queue_size=128, config=CONFIG):
    return Listener(
        config, LOCAL_ADDRESS, LOCAL_PORT, backlog=backlog, syn_queue_size=syn_queue_size,
        isn_generator=IsnGenerator(fixed_isn=LOCAL_ISS),
    )


def syn_from(port):
    return TcpSegment(port, LOCAL_PORT, remote(0), 0, SYN, PEER_WINDOW, options=TcpOptions(mss=1460))


def ack_from(port):
    return TcpSegment(port, LOCAL_PORT, remote(1), local(1), ACK, PEER_WINDOW)


def test_listener_makes_one_connection_per_syn_and_queues_it_for_accept():
    listener = make_listener()
    child = listener.receive(REMOTE_ADDRESS, syn_from(5000), 0.0)
    assert child.state is State.SYN_RECEIVED and child.remote_port == 5000
    assert [s.flags for s in child.transmit(0.0)] == [SYN | ACK]
    assert listener.accept() is None  # the handshake is not complete
    child.receive(ack_from(5000), 0.01)
    assert child.state is State.ESTABLISHED
    assert listener.accept() is child
    assert listener.accept() is None


def test_listener_answers_a_stray_ack_with_a_reset():
    listener = make_listener()
    assert listener.receive(REMOTE_ADDRESS, ack_from(5000), 0.0) is None
    reply = TcpSegment(LOCAL_PORT, 5000, local(1), 0, RST, 0)
    assert listener.transmit(0.0) == [(REMOTE_ADDRESS, reply)]
    assert listener.transmit(0.0) == []
    assert listener.receive(REMOTE_ADDRESS, TcpSegment(5000, LOCAL_PORT, 1, 0, RST, 0), 0.0) is None
    assert listener.transmit(0.0) == []


def test_syn_queue_limit_drops_further_syns():
    # Without SYN cookies (with them, tests/tcp/test_syn_cookies.py).
    listener = make_listener(syn_queue_size=2, config=dataclasses.replace(CONFIG, syncookies="off"))
    assert listener.receive(REMOTE_ADDRESS, syn_from(5000), 0.0) is not None
    assert listener.receive(REMOTE_ADDRESS, syn_from(5001), 0.0) is not None
    assert listener.receive(REMOTE_ADDRESS, syn_from(5002), 0.0) is None
    assert listener.drops["syn_queue_full"] == 1


def test_full_accept_queue_ignores_the_final_ack_until_there_is_room():
    listener = make_listener(backlog=1)
    first = listener.receive(REMOTE_ADDRESS, syn_from(5000), 0.0)
    second = listener.receive(REMOTE_ADDRESS, syn_from(5001), 0.0)
    first.transmit(0.0), second.transmit(0.0)  # the SYN-ACKs
    first.receive(ack_from(5000), 0.01)
    second.receive(ack_from(5001), 0.01)
    assert first.state is State.ESTABLISHED
    assert second.state is State.SYN_RECEIVED and second.drops["accept_queue_full"] == 1
    assert listener.receive(REMOTE_ADDRESS, syn_from(5002), 0.0) is None  # no room: SYN dropped too
    assert listener.accept() is first
    second.receive(ack_from(5001), 0.02)
    assert second.state is State.ESTABLISHED and listener.accept() is second


def test_reset_child_leaves_the_syn_queue_and_the_listener_listening():
    listener = make_listener()
    child = listener.receive(REMOTE_ADDRESS, syn_from(5000), 0.0)
    child.transmit(0.0)
    child.receive(TcpSegment(5000, LOCAL_PORT, remote(1), 0, RST, 0), 0.01)
    assert child.state is State.CLOSED and child.error is None
    assert listener.syn_queue == [] and listener.state is State.LISTEN


def test_closing_the_listener_aborts_connections_not_yet_accepted():
    listener = make_listener()
    child = listener.receive(REMOTE_ADDRESS, syn_from(5000), 0.0)
    child.transmit(0.0)
    listener.close(0.1)
    assert listener.state is State.CLOSED
    assert child.state is State.CLOSED and child.error is TcpError.ABORTED
    assert [s.flags for s in child.transmit(0.1)] == [RST]
    assert listener.receive(REMOTE_ADDRESS, syn_from(5001), 0.2) is None
    assert listener.transmit(0.2)[0][1].flags == RST | ACK
