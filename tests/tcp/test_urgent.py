"""Urgent data (RFC 9293 3.8.5 with RFC 6093): the pointer is reported, the data stays inline."""

from __future__ import annotations

from tcp_script import *  # noqa: F403
from ustack.tcp import UrgentDataArrived
from ustack.wire.tcp import URG


def test_sending_urgent_data_sets_urg_and_the_pointer():
    script = established()
    connection = script.connection
    connection.send(b"normal", 0.0)
    connection.send(b"!", 0.0, urgent=True)
    # RFC 6093: the pointer is the offset of the byte after the urgent data.
    script.expect(outgoing(local(1), remote(1), ACK | PSH | URG, urgent_pointer=7, payload=b"normal!"))
    script.receive(incoming(remote(1), local(8)))
    connection.send(b"after", 0.0)
    script.expect(outgoing(local(8), remote(1), ACK | PSH, payload=b"after"))


def test_urgent_pointer_rides_on_every_segment_until_the_urgent_byte_is_sent():
    script = established()
    connection = script.connection
    connection.send(bytes(2000), 0.0, urgent=True)
    sent = connection.transmit(0.0)
    assert [(s.flags & URG, s.urgent_pointer) for s in sent] == [(URG, 2000)]
    script.receive(incoming(remote(1), local(1461)))
    (tail,) = connection.transmit(0.0)
    assert (tail.flags & URG, tail.urgent_pointer) == (URG, 540)


def test_received_urgent_pointer_is_reported_and_data_stays_inline():
    script = established()
    connection = script.connection
    script.receive(incoming(remote(1), local(1), ACK | URG, urgent_pointer=5, payload=b"abcdefgh"))
    assert UrgentDataArrived(5) in connection.events()
    assert connection.urgent_mark == 5
    assert connection.recv(3, 0.0) == b"abc"
    assert connection.urgent_mark == 2
    assert connection.recv(10, 0.0) == b"defgh"
    assert connection.urgent_mark is None


def test_urgent_data_is_still_reported_after_more_than_two_gigabytes():
    # RCV.UP stayed behind once the application had read past it; 2**31 bytes later it compared
    # as "ahead" of the next pointer (modulo 2**32), so new urgent data went unreported, and
    # urgent_mark meanwhile claimed about 2 GiB of urgent data to come.
    import dataclasses

    from ustack.tcp import Connection

    config = dataclasses.replace(CONFIG, receive_buffer_size=65535)
    connection = Connection.open_active(config, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
    connection.transmit(0.0)
    connection.receive(incoming(remote(0), local(1), SYN | ACK, options=TcpOptions(mss=1460)), 0.0)
    connection.transmit(0.0)
    connection.receive(incoming(remote(1), local(1), ACK | URG, urgent_pointer=1, payload=b"!"), 0.0)
    assert connection.recv(10, 0.0) == b"!" and connection.urgent_mark is None
    block = bytes(65535)
    seq = remote(2)
    for _ in range((1 << 31) // len(block) + 1):
        connection.receive(incoming(seq, local(1), payload=block), 0.0)
        assert connection.recv(len(block), 0.0) == block
        connection.transmit(0.0)
        seq = seq_add(seq, len(block))
    assert connection.urgent_mark is None
    connection.events()
    connection.receive(incoming(seq, local(1), ACK | URG, urgent_pointer=3, payload=b"abc"), 0.0)
    assert UrgentDataArrived(3) in connection.events()
    assert connection.urgent_mark == 3
