"""The retransmission timer fires for our SYN (or SYN-ACK) and asks transmit() to send it again;
before that transmit, the peer's ACK of it arrives. The SYN is owed no more: the connection is
ESTABLISHED and sends what that state sends (an ACK, RFC 9293 3.10.7.4), never the SYN again,
and arms no retransmission timer for it. Found by a break check in December 2026: the old code
sent a SYN-ACK from ESTABLISHED and re-armed the timer."""

from __future__ import annotations

from ustack.tcp import Connection, State
from ustack.wire.tcp import ACK, SYN

from tcp_script import (
    CONFIG,
    LOCAL_ADDRESS,
    LOCAL_ISS,
    LOCAL_PORT,
    REMOTE_ADDRESS,
    REMOTE_PORT,
    incoming,
    local,
    remote,
)


def test_the_passive_side_answers_data_after_a_syn_ack_timeout_without_a_second_syn_ack():
    connection = Connection.open_passive(CONFIG, LOCAL_ADDRESS, LOCAL_PORT, LOCAL_ISS, 0.0)
    connection.receive(incoming(remote(0), 0, SYN, window=65535), 0.0)
    [syn_ack] = connection.transmit(0.0)
    assert syn_ack.flags == SYN | ACK
    timeout = connection.next_deadline()
    connection.on_timer(timeout)  # asks for the SYN-ACK again; transmit() has not run yet
    connection.receive(incoming(remote(1), local(1), ACK, window=65535, payload=b"hello"), timeout)
    assert connection.state is State.ESTABLISHED
    sent = connection.transmit(timeout)
    assert all(not segment.flags & SYN for segment in sent), sent
    assert "retransmit" not in connection.timers_armed()
    # The data is acknowledged as ESTABLISHED acknowledges it (here by the delayed ACK).
    later = connection.next_deadline()
    connection.on_timer(later)
    [ack] = connection.transmit(later)
    assert ack.flags == ACK and ack.ack == remote(6)


def test_the_active_side_acknowledges_a_syn_ack_after_a_syn_timeout_without_a_second_syn():
    connection = Connection.open_active(CONFIG, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
    [syn] = connection.transmit(0.0)
    assert syn.flags == SYN
    timeout = connection.next_deadline()
    connection.on_timer(timeout)  # asks for the SYN again; transmit() has not run yet
    connection.receive(incoming(remote(0), local(1), SYN | ACK, window=65535), timeout)
    assert connection.state is State.ESTABLISHED
    [ack] = connection.transmit(timeout)
    assert ack.flags == ACK and ack.seq == local(1) and ack.ack == remote(1)
    assert "retransmit" not in connection.timers_armed()
