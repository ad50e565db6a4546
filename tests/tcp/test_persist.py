"""The persist timer and zero-window probes (RFC 9293 3.8.6.1, RFC 1122 4.2.2.17)."""

from __future__ import annotations

import pytest

from tcp_script import *  # noqa: F403
from ustack.tcp import State


def zero_window():
    script = established()
    connection = script.connection
    connection.send(b"0123456789", 0.0)
    script.receive(incoming(remote(1), local(1), window=0))
    script.expect_nothing()
    return script


def test_zero_window_arms_the_persist_timer_and_probes_with_one_byte():
    script = zero_window()
    assert script.connection.timers_armed() == {"persist": 0.2}
    assert script.advance_to_next_timer() == 0.2
    script.expect(outgoing(local(1), remote(1), payload=b"0"))
    script.expect_nothing()


def test_probes_back_off_and_never_give_up_while_answered():
    script = zero_window()
    times = []
    for _ in range(20):
        times.append(script.advance_to_next_timer())
        script.expect(outgoing(local(1), remote(1), payload=b"0"))
        script.receive(incoming(remote(1), local(1), window=0))  # the answer: still zero
    assert times[:4] == pytest.approx([0.2, 0.6, 1.4, 3.0])
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) == pytest.approx(60.0)  # persist_max
    assert script.state is State.ESTABLISHED
    assert "retransmit" not in script.connection.timers_armed()


def test_window_opening_resumes_sending_from_snd_nxt():
    script = zero_window()
    script.advance_to_next_timer()
    script.expect(outgoing(local(1), remote(1), payload=b"0"))
    script.receive(incoming(remote(1), local(1), window=100))
    script.expect(outgoing(local(1), remote(1), ACK | PSH, payload=b"0123456789"))
    assert "persist" not in script.connection.timers_armed()


def test_a_probe_byte_the_peer_accepted_is_acknowledged():
    script = zero_window()
    script.advance_to_next_timer()
    script.expect(outgoing(local(1), remote(1), payload=b"0"))
    script.receive(incoming(remote(1), local(2), window=50))
    assert script.connection.snd_una == local(2)
    script.expect(outgoing(local(2), remote(1), ACK | PSH, payload=b"123456789"))


def test_persist_timer_forces_out_a_small_segment_the_window_allows():
    script = established()
    connection = script.connection
    connection.send(bytes(3000), 0.0)
    connection.transmit(0.0)
    script.receive(incoming(remote(1), local(2921), window=60))
    script.expect_nothing()
    script.advance_to_next_timer()
    script.expect(outgoing(local(2921), remote(1), payload=bytes(60)))


def test_probing_stops_when_nothing_is_left_to_send():
    script = established()
    connection = script.connection
    connection.send(b"z", 0.0)
    script.receive(incoming(remote(1), local(1), window=0))
    script.expect_nothing()
    script.advance_to_next_timer()
    script.expect(outgoing(local(1), remote(1), payload=b"z"))
    # The peer took the probe byte but its window is still zero: nothing waits any more.
    script.receive(incoming(remote(1), local(2), window=0))
    script.expect_nothing()
    assert connection.send_buffer.length == 0
    script.advance_to_next_timer()  # the persist timer fires once more, finds nothing, stops
    script.expect_nothing()
    assert connection.next_deadline() is None  # idle means no timers (DESIGN.md rule 6)
