"""FIN-WAIT-1 and FIN-WAIT-2: our FIN is out; the peer may still send."""

from __future__ import annotations

from tcp_script import *  # noqa: F403
from ustack.tcp import State, TcpError


def test_ack_of_fin_enters_fin_wait_2():
    script = fin_wait_2()
    assert script.state_changes()[-1] == (State.FIN_WAIT_1, State.FIN_WAIT_2)
    # After close() only the FIN-WAIT-2 timer is left (TcpConfig.fin_wait_2_timeout).
    assert script.connection.timers_armed() == {"fin_wait_2": script.now + 60.0}


def test_a_peer_that_never_sends_its_fin_is_given_up_after_the_fin_wait_2_timeout():
    # The application closed; nobody reads; RFC 9293 would wait for the FIN forever. Like Linux
    # (tcp_fin_timeout) the connection ends quietly after 60 s, leaving nothing behind.
    script = fin_wait_2()
    entered = script.now
    assert script.advance_to_next_timer() == entered + 60.0
    script.expect_nothing()
    assert script.state_changes()[-1] == (State.FIN_WAIT_2, State.CLOSED)
    assert script.connection.next_deadline() is None and script.connection.error is None


def test_a_shutdown_waits_in_fin_wait_2_as_long_as_the_peer_likes():
    script = established()
    script.connection.shutdown(0.0)
    script.expect(outgoing(local(1), remote(1), ACK | FIN))
    script.receive(incoming(remote(1), local(2)))
    assert script.state is State.FIN_WAIT_2
    assert script.connection.timers_armed() == {}  # the application may still read: no timer
    script.connection.close(script.now)  # ... until it closes too
    assert script.connection.timers_armed() == {"fin_wait_2": script.now + 60.0}


def test_fin_before_the_ack_of_ours_enters_closing():
    script = closing()
    assert script.state_changes()[-1] == (State.FIN_WAIT_1, State.CLOSING)


def test_fin_with_the_ack_of_ours_goes_straight_to_time_wait():
    script = fin_wait_1()
    script.receive(incoming(remote(1), local(2), ACK | FIN))
    script.expect(outgoing(local(2), remote(2), window=AFTER_FIN))
    assert script.state_changes()[-1] == (State.FIN_WAIT_1, State.TIME_WAIT)


def test_fin_in_fin_wait_2_enters_time_wait():
    script = time_wait()
    assert script.state_changes()[-1] == (State.FIN_WAIT_2, State.TIME_WAIT)
    assert script.connection.timers_armed() == {"time_wait": 60.0}


def test_half_close_keeps_receiving():
    script = established()
    script.connection.shutdown(0.0)
    script.expect(outgoing(local(1), remote(1), ACK | FIN))
    script.receive(incoming(remote(1), local(2), payload=b"still talking"))
    assert script.state is State.FIN_WAIT_2
    assert script.advance_to_next_timer() == 0.04  # the delayed ACK
    script.expect(outgoing(local(2), remote(14), window=BUFFER - 13))
    assert script.connection.recv(100, script.now) == b"still talking"
    script.receive(incoming(remote(14), local(2), ACK | FIN))
    script.expect(outgoing(local(2), remote(15), window=BUFFER - 14))
    assert script.state is State.TIME_WAIT


def test_data_after_a_full_close_is_answered_with_a_reset():
    script = fin_wait_2()  # close(), not shutdown(): nobody will read
    script.receive(incoming(remote(1), local(2), payload=b"too late"))
    script.expect(outgoing(local(2), 0, RST, window=0))
    assert script.state_changes()[-1] == (State.FIN_WAIT_2, State.CLOSED)


def test_fin_is_retransmitted_until_acknowledged():
    script = fin_wait_1()
    assert script.advance_to_next_timer() == 0.2  # RTO: the 200 ms floor (instant handshake)
    script.expect(outgoing(local(1), remote(1), ACK | FIN))
    assert script.advance_to_next_timer() == 0.6
    script.expect(outgoing(local(1), remote(1), ACK | FIN))
    script.receive(incoming(remote(1), local(2)))
    assert script.state is State.FIN_WAIT_2


def test_reset_in_fin_wait_1_and_fin_wait_2_is_reported():
    script = fin_wait_1()
    script.receive(incoming(remote(1), 0, RST))
    assert script.state_changes()[-1] == (State.FIN_WAIT_1, State.CLOSED)
    assert script.connection.error is TcpError.RESET
    script = fin_wait_2()
    script.receive(incoming(remote(1), 0, RST))
    assert script.state_changes()[-1] == (State.FIN_WAIT_2, State.CLOSED)


def test_abort_in_fin_wait_2_sends_reset():
    script = fin_wait_2()
    script.connection.abort(0.0)
    script.expect(outgoing(local(2), 0, RST, window=0))
    assert script.state is State.CLOSED


def test_ack_of_our_fin_with_a_fin_beyond_the_window_still_enters_fin_wait_2():
    # The segment acknowledges our FIN, but its FIN lies past data we have no room for: the FIN
    # is not taken (RFC 9293 3.10.7.4 trims to the window), so FIN-WAIT-1 must still move on to
    # FIN-WAIT-2 for the ACK (fifth check), not wait for a FIN that has not counted.
    import dataclasses

    script = syn_sent(dataclasses.replace(CONFIG, receive_buffer_size=100))
    script.receive(incoming(remote(0), local(1), SYN | ACK, options=TcpOptions(mss=1460)))
    script.expect(outgoing(local(1), remote(1), window=100))
    script.connection.shutdown(script.now)
    script.expect(outgoing(local(1), remote(1), ACK | FIN, window=100))
    script.receive(incoming(remote(1), local(2), ACK | FIN, payload=b"x" * 150))
    script.expect(outgoing(local(2), remote(101), window=0))
    assert script.state_changes()[-1] == (State.FIN_WAIT_1, State.FIN_WAIT_2)
    # The rest and the FIN again, once the application has read: TIME-WAIT.
    assert script.connection.recv(1000, script.now) == b"x" * 100
    script.expect(outgoing(local(2), remote(101), window=100))  # the window update
    script.receive(incoming(remote(101), local(2), ACK | FIN, payload=b"x" * 50))
    script.expect(outgoing(local(2), remote(152), window=49))
    assert script.state_changes() == [(State.FIN_WAIT_2, State.TIME_WAIT)]
