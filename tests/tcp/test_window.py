"""Flow control: the receive window, its reopening, and silly-window avoidance (RFC 9293 3.8.6)."""

from __future__ import annotations

from tcp_script import *  # noqa: F403
from ustack.tcp import TcpConfig

SMALL = TcpConfig(**{**CONFIG.__dict__, "receive_buffer_size": 4000})


def small_established():
    script = syn_sent(SMALL)
    script.receive(incoming(remote(0), local(1), SYN | ACK, options=TcpOptions(mss=1460)))
    script.expect(outgoing(local(1), remote(1), window=4000))
    return script


def test_window_closes_as_unread_data_arrives_and_reopens_when_read():
    script = small_established()
    connection = script.connection
    script.receive(incoming(remote(1), local(1), payload=bytes(1460)))
    script.receive(incoming(remote(1461), local(1), payload=bytes(1460)))
    script.expect(outgoing(local(1), remote(2921), window=1080))
    script.receive(incoming(remote(2921), local(1), payload=bytes(1080)))
    script.advance_to_next_timer()
    script.expect(outgoing(local(1), remote(4001), window=0))
    # Data beyond a zero window is not accepted; the ACK repeats the zero window.
    script.receive(incoming(remote(4001), local(1), payload=b"more"))
    script.expect(outgoing(local(1), remote(4001), window=0))
    assert connection.readable == 4000
    # Reading opens the window; half the buffer or more is worth an update of its own.
    connection.recv(2000, script.now)
    script.expect(outgoing(local(1), remote(4001), window=2000))


def test_receiver_sws_small_reads_do_not_reopen_the_window():
    script = small_established()
    connection = script.connection
    script.receive(incoming(remote(1), local(1), payload=bytes(1460)))
    script.receive(incoming(remote(1461), local(1), payload=bytes(1460)))
    script.expect(outgoing(local(1), remote(2921), window=1080))
    connection.recv(100, script.now)
    script.expect_nothing()  # no window update for 100 bytes
    # And the next ACK keeps the old right edge: 100 bytes is below min(buffer/2, MSS).
    script.receive(incoming(remote(2921), local(1), payload=bytes(80)))
    script.advance_to_next_timer()
    script.expect(outgoing(local(1), remote(3001), window=1000))


def test_sender_respects_the_peer_window_and_resumes_when_it_opens():
    script = established()
    connection = script.connection
    connection.send(bytes(3000), 0.0)
    script.receive(incoming(remote(1), local(1), window=1460))
    sent = connection.transmit(0.0)
    assert [len(s.payload) for s in sent] == [1460]
    script.receive(incoming(remote(1), local(1461), window=0))
    script.expect_nothing()
    script.receive(incoming(remote(1), local(1461), window=4000))
    assert [len(s.payload) for s in connection.transmit(0.0)] == [1460]  # Nagle holds the tail
    script.receive(incoming(remote(1), local(2921), window=4000))
    assert [len(s.payload) for s in connection.transmit(0.0)] == [80]


def test_sender_sws_waits_for_a_useful_window():
    script = established()
    connection = script.connection
    connection.send(bytes(3000), 0.0)
    sent = connection.transmit(0.0)
    assert [len(s.payload) for s in sent] == [1460, 1460]  # the 80-byte tail waits for Nagle
    # The peer acknowledges, but offers only 100 bytes: far below half its largest window.
    script.receive(incoming(remote(1), local(2921), window=60))
    script.expect_nothing()
    assert "persist" in connection.timers_armed()  # the persist timer will force it out


def test_reading_one_segment_from_a_zero_window_sends_an_update():
    script = established()  # a 16 KiB buffer
    connection = script.connection
    for n in range(0, BUFFER, 1024):
        script.receive(incoming(remote(1 + n), local(1), payload=bytes(1024)))
        connection.transmit(script.now)
    assert connection.snapshot().rcv_wnd == 0
    connection.recv(1460, script.now)
    # The sender is stalled at a zero window: tell it at once rather than wait for its probe.
    script.expect(outgoing(local(1), remote(1 + BUFFER), window=1460))


def test_a_large_open_window_is_not_updated_for_a_small_read():
    script = established()
    connection = script.connection
    script.receive(incoming(remote(1), local(1), payload=bytes(3000)))
    # More than two full segments' worth in one segment is ACKed at once (arrival._delay_ack).
    script.expect(outgoing(local(1), remote(3001), window=BUFFER - 3000))
    connection.recv(3000, script.now)
    script.expect_nothing()  # 13384 bytes still open: the growth rides on the next segment
