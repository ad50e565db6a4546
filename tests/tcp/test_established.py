"""ESTABLISHED: data both ways, reassembly, the acceptability test, and the ways out."""

from __future__ import annotations

import errno

import pytest

from tcp_script import *  # noqa: F403
from ustack.tcp import DataReadable, EndOfStream, State, TcpCallError, TcpError


def test_in_order_data_is_delivered_and_acknowledged_every_second_segment():
    script = established()
    script.receive(incoming(remote(1), local(1), ACK | PSH, payload=b"a" * 100))
    script.expect_nothing()  # delayed ACK
    script.receive(incoming(remote(101), local(1), ACK | PSH, payload=b"b" * 100))
    script.expect(outgoing(local(1), remote(201), window=BUFFER - 200))
    connection = script.connection
    assert DataReadable(100) in connection.events()
    assert connection.readable == 200
    assert connection.recv(150, 0.0) == b"a" * 100 + b"b" * 50
    assert connection.recv(150, 0.0) == b"b" * 50
    with pytest.raises(TcpCallError) as error:
        connection.recv(10, 0.0)
    assert error.value.reason == "would_block"


def test_send_is_cut_to_the_mss_with_psh_on_the_last_segment():
    script = established()
    data = bytes(range(256)) * 12  # 3072 bytes: crosses the sequence-number wrap
    assert script.connection.send(data, 0.0) == 3072
    script.expect(
        outgoing(local(1), remote(1), payload=data[:1460]),
        outgoing(local(1461), remote(1), payload=data[1460:2920]),
    )
    # Nagle (RFC 9293 3.7.4): the small tail waits while full segments are unacknowledged.
    script.expect_nothing()
    script.receive(incoming(remote(1), local(2921)))
    script.expect(outgoing(local(2921), remote(1), ACK | PSH, payload=data[2920:]))
    assert local(2921) < local(1)  # the transfer wrapped
    script.receive(incoming(remote(1), local(3073)))
    script.expect_nothing()
    snapshot = script.connection.snapshot()
    assert snapshot.snd_una == local(3073) and snapshot.send_queue == 0
    assert snapshot.bytes_sent == 3072 and snapshot.timers == {}


def test_out_of_order_data_is_held_and_acknowledged_at_once():
    script = established()
    script.receive(incoming(remote(101), local(1), payload=b"B" * 100))
    script.expect(outgoing(local(1), remote(1)))  # duplicate ACK: a hole at remote(1)
    assert script.connection.readable == 0
    script.receive(incoming(remote(1), local(1), payload=b"A" * 100))
    script.expect(outgoing(local(1), remote(201), window=BUFFER - 200))  # the hole is filled: ACK at once
    assert script.connection.recv(1000, 0.0) == b"A" * 100 + b"B" * 100


def test_overlapping_and_duplicate_segments_are_trimmed():
    script = established()
    script.receive(incoming(remote(1), local(1), payload=b"0123456789"))
    script.receive(incoming(remote(5), local(1), payload=b"456789abcd"))  # overlaps the end
    script.expect(outgoing(local(1), remote(15), window=BUFFER - 14))
    script.receive(incoming(remote(1), local(1), payload=b"0123"))  # entirely old: unacceptable
    script.expect(outgoing(local(1), remote(15), window=BUFFER - 14))
    assert script.connection.recv(100, 0.0) == b"0123456789abcd"
    assert script.connection.drops["unacceptable_sequence"] == 1


def test_segment_outside_the_window_is_acknowledged_and_dropped():
    script = established()
    script.receive(incoming(remote(BUFFER + 1), local(1), payload=b"x"))
    script.expect(outgoing(local(1), remote(1)))
    script.receive(incoming(remote(-100), local(1), payload=b"old"))
    script.expect(outgoing(local(1), remote(1)))
    assert script.connection.drops["unacceptable_sequence"] == 2
    assert script.connection.readable == 0


def test_ack_for_data_never_sent_is_answered_and_dropped():
    script = established()
    script.receive(incoming(remote(1), local(500), payload=b"data"))
    script.expect(outgoing(local(1), remote(1)))
    assert script.connection.readable == 0  # dropped before the text is processed
    assert script.connection.drops["ack_of_unsent_data"] == 1


def test_segment_without_ack_is_dropped():
    script = established()
    script.receive(incoming(remote(1), 0, PSH, payload=b"x"))
    script.expect_nothing()
    assert script.connection.readable == 0 and script.connection.drops["no_ack"] == 1


def test_rcv_fin_enters_close_wait_and_signals_end_of_stream():
    script = established()
    script.receive(incoming(remote(1), local(1), ACK | PSH | FIN, payload=b"bye"))
    script.expect(outgoing(local(1), remote(5), window=BUFFER - 4))
    connection = script.connection
    events = connection.events()
    assert EndOfStream() in events
    assert events[-1].old is State.ESTABLISHED and events[-1].new is State.CLOSE_WAIT
    assert not connection.at_eof and connection.recv(10, 0.0) == b"bye"
    assert connection.at_eof and connection.recv(10, 0.0) == b""


def test_fin_before_missing_data_waits_for_the_data():
    script = established()
    script.receive(incoming(remote(4), local(1), ACK | FIN, payload=b"def"))
    script.expect(outgoing(local(1), remote(1)))
    assert script.state is State.ESTABLISHED
    script.receive(incoming(remote(1), local(1), payload=b"abc"))
    script.expect(outgoing(local(1), remote(8), window=BUFFER - 7))
    assert script.state is State.CLOSE_WAIT
    assert script.connection.recv(10, 0.0) == b"abcdef"


def test_close_sends_fin_and_enters_fin_wait_1():
    script = fin_wait_1()
    assert script.state_changes()[-1] == (State.ESTABLISHED, State.FIN_WAIT_1)
    with pytest.raises(TcpCallError) as error:
        script.connection.send(b"late", 0.0)
    assert error.value.reason == "connection_closing"


def test_close_after_queued_data_puts_fin_on_the_last_segment():
    script = established()
    script.connection.send(b"last words", 0.0)
    script.connection.close(0.0)
    script.expect(outgoing(local(1), remote(1), ACK | PSH | FIN, payload=b"last words"))


def test_close_with_unread_data_sends_a_reset():
    script = established()
    script.receive(incoming(remote(1), local(1), payload=b"unread"))
    script.connection.close(0.0)
    # RFC 1122 4.2.2.13: the reset tells the peer its data was not consumed. It is queued before
    # the delayed ACK would have gone out, and the ACK is never sent.
    script.expect(outgoing(local(1), 0, RST, window=0))
    assert script.state_changes()[-1] == (State.ESTABLISHED, State.CLOSED)
    assert script.connection.error is TcpError.ABORTED


def test_abort_sends_a_reset_and_reports_aborted():
    script = established()
    script.connection.send(b"pending", 0.0)
    script.connection.abort(0.0)
    script.expect(outgoing(local(1), 0, RST, window=0))
    connection = script.connection
    assert connection.state is State.CLOSED and connection.error.errno == errno.ECONNABORTED
    assert connection.next_deadline() is None and connection.is_finished
    with pytest.raises(TcpCallError) as error:
        connection.send(b"x", 0.0)
    assert error.value.errno == errno.ECONNABORTED


def test_data_flows_both_ways_and_acks_piggyback():
    script = established()
    script.receive(incoming(remote(1), local(1), ACK | PSH, payload=b"ping"))
    script.connection.send(b"pong", 0.0)
    script.expect(outgoing(local(1), remote(5), ACK | PSH, window=BUFFER - 4, payload=b"pong"))
    script.expect_nothing()  # the data carried the ACK: no delayed ACK left
    assert "delayed_ack" not in script.connection.timers_armed()


def test_snapshot_reports_the_variables():
    script = established()
    script.connection.send(b"x" * 10, 0.0)
    script.expect(outgoing(local(1), remote(1), ACK | PSH, payload=b"x" * 10))
    snapshot = script.connection.snapshot()
    assert snapshot.state is State.ESTABLISHED
    assert (snapshot.snd_una, snapshot.snd_nxt, snapshot.snd_wnd) == (local(1), local(11), PEER_WINDOW)
    assert (snapshot.rcv_nxt, snapshot.rcv_wnd) == (remote(1), BUFFER)
    # The handshake took no virtual time: RTT 0, so the RTO sits at its 200 ms floor.
    assert snapshot.cwnd == 14600 and snapshot.srtt == 0.0 and snapshot.rto == 0.2
    assert snapshot.retransmissions == 0 and snapshot.timers == {"retransmit": 0.2}
    assert snapshot.local == (LOCAL_ADDRESS, LOCAL_PORT) and snapshot.remote == (REMOTE_ADDRESS, REMOTE_PORT)


def test_send_buffer_fills_and_space_is_reported_when_acknowledged():
    from ustack.tcp import SendSpaceAvailable

    script = established()
    connection = script.connection
    assert connection.send(b"z" * (BUFFER + 100), 0.0) == BUFFER
    assert connection.send_space == 0
    sent = connection.transmit(0.0)
    # The peer's window (8192) limits us to five full segments; the 892 bytes left in the window
    # wait, being less than half the peer's largest window (sender SWS, RFC 9293 3.8.6.2.1).
    assert [len(s.payload) for s in sent] == [1460] * 5
    script.receive(incoming(remote(1), local(1 + 2920)))
    assert SendSpaceAvailable(2920) in connection.events()


def test_payloads_may_be_memoryviews_of_a_reused_buffer():
    # The wire layer can hand out payloads that share the packet's memory (codec.parse with a
    # memoryview); the core must copy what it keeps, since the buffer is reused for the next packet.
    script = established()
    packet = bytearray(b"later" + b"first")
    view = memoryview(packet)
    script.receive(incoming(remote(6), local(1), payload=view[:5]))  # out of order: kept
    script.receive(incoming(remote(1), local(1), payload=view[5:]))  # in order: fills the hole
    packet[:] = b"XXXXXXXXXX"  # the runtime reuses its buffer
    assert script.connection.recv(100, 0.0) == b"firstlater"


def test_sending_goes_on_when_snd_una_comes_round_to_the_iss():
    # After 2**32 - 1 bytes are acknowledged, SND.UNA equals ISS again (modulo 2**32). "Our SYN
    # is unacknowledged" was tested as SND.UNA == ISS, so the connection took itself for one
    # still in its handshake: it sent no more data (and a timeout would have resent the SYN).
    import dataclasses

    from ustack.tcp import Connection

    config = dataclasses.replace(CONFIG, mss=65495, send_buffer_size=65535, nagle=False)
    connection = Connection.open_active(config, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
    connection.transmit(0.0)
    connection.receive(incoming(remote(0), local(1), SYN | ACK, window=65535, options=TcpOptions(mss=65495)), 0.0)
    connection.transmit(0.0)
    block = bytes(65495)
    total = (1 << 32) - 1
    sent = 0
    while sent < total:
        chunk = block if total - sent >= len(block) else block[: total - sent]
        assert connection.send(chunk, 0.0) == len(chunk)
        [segment] = connection.transmit(0.0)
        assert segment.seq == local(1 + sent) and len(segment.payload) == len(chunk)
        sent += len(chunk)
        connection.receive(incoming(remote(1), local(1 + sent), window=65535), 0.0)
    assert connection.snd_una == LOCAL_ISS and connection.snd_max == LOCAL_ISS
    script = Script(connection)
    connection.send(b"more", 0.0)
    script.expect(outgoing(LOCAL_ISS, remote(1), ACK | PSH, window=BUFFER, payload=b"more"))
    assert connection.timers_armed() == {"retransmit": pytest.approx(0.2)}
    script.receive(incoming(remote(1), local(4), window=65535))  # ACK = ISS + 4: the 4 bytes
    script.expect_nothing()
    assert connection.snd_una == local(4) and connection.timers_armed() == {}
