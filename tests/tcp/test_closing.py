"""CLOSING: both FINs crossed (simultaneous close)."""

from __future__ import annotations

from tcp_script import *  # noqa: F403
from ustack.tcp import State
from ustack.tcp.errors import TcpError


def test_ack_of_fin_in_closing_enters_time_wait():
    script = closing()
    script.receive(incoming(remote(2), local(2)))
    script.expect_nothing()
    assert script.state_changes()[-1] == (State.CLOSING, State.TIME_WAIT)


def test_fin_is_retransmitted_in_closing():
    script = closing()
    assert script.advance_to_next_timer() == 0.2
    script.expect(outgoing(local(1), remote(2), ACK | FIN, window=AFTER_FIN))


def test_reset_in_closing_closes():
    script = closing()
    script.receive(incoming(remote(2), 0, RST))
    assert script.state_changes()[-1] == (State.CLOSING, State.CLOSED)
    assert script.connection.error is TcpError.RESET  # our FIN was never acknowledged


def test_simultaneous_close_between_two_hosts():
    from ustack.testing.simulator import Simulator

    sim = Simulator(delay=0.01)
    sim.run(until=lambda s: s.server is not None and s.server.state is State.ESTABLISHED)
    sim.step()
    sim.client.close(sim.now)
    sim.server.close(sim.now)
    sim.flush()
    sim.run(until=lambda s: s.client.state is State.CLOSED and s.server.state is State.CLOSED)
    for connection in (sim.client, sim.server):
        changes = [(e.old, e.new) for e in sim.events(connection) if hasattr(e, "old")]
        assert changes[-3:] == [
            (State.FIN_WAIT_1, State.CLOSING),
            (State.CLOSING, State.TIME_WAIT),
            (State.TIME_WAIT, State.CLOSED),
        ]
