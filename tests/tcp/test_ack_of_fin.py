"""The ACK of everything we sent, our FIN included (Connection._ack_of_our_fin_arrives).

In FIN-WAIT-1, CLOSING and LAST-ACK that ACK ends the send side for good, so it skips what an
ACK of new data feeds (RTT samples, congestion control, RACK-TLP): these tests pin down that it
still does everything RFC 9293 3.10.7.4 asks (SND.UNA, the send buffer, the timers, the window,
the state change), and that every other ACK in those states takes the full way."""

from __future__ import annotations

from tcp_script import *  # noqa: F403
from ustack.tcp import State


def data_then_fin(script: Script, size: int = 100) -> None:
    """Send `size` bytes, then close: the data and our FIN leave in one segment."""
    script.connection.send(b"x" * size, script.now)
    script.connection.close(script.now)
    script.expect(outgoing(local(1), remote(1), ACK | FIN | PSH, payload=b"x" * size))


def test_in_fin_wait_1_it_releases_everything_and_moves_to_fin_wait_2_without_feeding_the_estimators():
    script = established()
    script.advance(0.5)
    data_then_fin(script)
    connection = script.connection
    srtt, samples_state, cwnd = connection.rtt.srtt, connection.rtt.rto, connection.congestion.cwnd
    script.advance(0.1)  # within the RTO
    script.receive(incoming(remote(1), local(102)))  # 100 bytes and the FIN
    script.expect_nothing()
    assert script.state is State.FIN_WAIT_2
    assert connection.snd_una == connection.snd_max == local(102)
    assert connection.send_buffer is None or connection.send_buffer.length == 0
    # Nothing is ever sent again: no RTT sample, no cwnd growth, and only FIN-WAIT-2's timer.
    assert (connection.rtt.srtt, connection.rtt.rto, connection.congestion.cwnd) == (srtt, samples_state, cwnd)
    assert connection.timers_armed() == {"fin_wait_2": script.now + 60.0}
    assert connection.rack is None
    assert connection.snd_wnd == PEER_WINDOW  # the window is still taken from the segment


def test_an_ack_of_the_data_but_not_of_the_fin_takes_the_full_way():
    script = established()
    script.advance(0.5)
    data_then_fin(script)
    connection = script.connection
    srtt = connection.rtt.srtt
    script.advance(0.1)  # within the RTO
    script.receive(incoming(remote(1), local(101)))  # the data, not the FIN
    script.expect_nothing()
    assert script.state is State.FIN_WAIT_1
    assert connection.rtt.srtt != srtt  # an RTT sample: the ACK of new data was processed in full
    assert "retransmit" in connection.timers_armed()  # the FIN is still in flight


def test_a_fin_not_yet_sent_is_not_acknowledged_by_an_ack_of_all_that_was_sent():
    # The peer's window (100 bytes) holds the data back: the FIN waits behind it, so an ACK of
    # SND.MAX acknowledges only data and must not count as the ACK of our FIN.
    script = syn_sent()
    script.receive(incoming(remote(0), local(1), SYN | ACK, window=100, options=TcpOptions(mss=1460)))
    script.expect(outgoing(local(1), remote(1)))
    script.connection.send(b"y" * 150, script.now)
    script.connection.close(script.now)
    script.expect(outgoing(local(1), remote(1), payload=b"y" * 100))
    script.receive(incoming(remote(1), local(101), window=100))
    assert script.state is State.FIN_WAIT_1
    assert script.connection.snd_una == local(101)
    script.expect(outgoing(local(101), remote(1), ACK | FIN | PSH, payload=b"y" * 50))


def test_in_last_ack_it_closes_and_leaves_nothing_armed():
    script = last_ack()
    connection = script.connection
    cwnd = connection.congestion.cwnd
    script.receive(incoming(remote(2), local(2)))
    script.expect_nothing()
    assert script.state_changes()[-1] == (State.LAST_ACK, State.CLOSED)
    assert connection.is_finished and connection.error is None
    assert connection.snd_una == connection.snd_max == local(2)
    assert connection.next_deadline() is None
    assert connection.congestion.cwnd == cwnd


def test_in_closing_it_enters_time_wait():
    script = closing()
    script.receive(incoming(remote(2), local(2)))
    script.expect_nothing()
    assert script.state is State.TIME_WAIT
    assert script.connection.timers_armed() == {"time_wait": script.now + 60.0}


def test_an_ack_beyond_our_fin_is_still_challenged():
    # RFC 5961 5.2: an ACK of data never sent is answered with an ACK and dropped; LAST-ACK stays.
    script = last_ack()
    script.receive(incoming(remote(2), local(3)))
    script.expect(outgoing(local(2), remote(2), window=AFTER_FIN))
    assert script.state is State.LAST_ACK
