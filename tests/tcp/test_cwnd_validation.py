"""cwnd validation (RFC 7661, RFC 5681 4.1): cwnd grows only when it limited the sender, and a
sender back from idle restarts from the initial window. Without it, a download limited by the
receiver's window showed `cwnd:50283344` in `ustack ss -i`."""

from __future__ import annotations

import dataclasses

import pytest

from tcp_script import CONFIG, established, incoming, local, remote
from ustack.tcp.congestion import create_congestion_control
from ustack.tcp.seq import seq_add

MSS = 1460


@pytest.mark.parametrize("name", ["reno", "newreno", "cubic"])
def test_an_application_limited_sender_does_not_grow_cwnd(name):
    cc = create_congestion_control(name, MSS)
    for step in range(500):
        cc.on_ack(MSS, 2 * MSS, step * 0.01)  # two segments in flight against a cwnd of ten
    assert cc.cwnd == 10 * MSS


@pytest.mark.parametrize("name", ["reno", "newreno", "cubic"])
def test_a_cwnd_limited_sender_grows_it(name):
    cc = create_congestion_control(name, MSS)
    for step in range(50):
        cc.on_ack(MSS, cc.cwnd, step * 0.01)
    assert cc.cwnd > 10 * MSS


def test_slow_start_grows_while_the_flight_is_more_than_half_of_cwnd():
    cc = create_congestion_control("reno", MSS)
    cc.on_ack(MSS, 5 * MSS, 0.0)  # exactly half: not limited
    assert cc.cwnd == 10 * MSS
    cc.on_ack(MSS, 6 * MSS, 0.0)
    assert cc.cwnd == 11 * MSS


def test_congestion_avoidance_grows_only_when_the_flight_filled_cwnd():
    cc = create_congestion_control("reno", MSS)
    cc.ssthresh = 10 * MSS
    for _ in range(20):
        cc.on_ack(MSS, 9 * MSS, 0.0)  # one segment short of cwnd: not cwnd-limited
    assert cc.cwnd == 10 * MSS
    for _ in range(10):
        cc.on_ack(MSS, 10 * MSS - 1, 0.0)  # full to within one segment: limited
    assert cc.cwnd == 11 * MSS


@pytest.mark.parametrize("name", ["newreno", "cubic"])
def test_a_transfer_limited_by_the_receivers_window_keeps_cwnd_bounded(name):
    """Scripted: the peer's window is 3 segments; 200 round trips of full windows, each segment
    acknowledged. cwnd stays below twice the flight the receiver allows (slow start's test)."""
    script = established(dataclasses.replace(CONFIG, congestion_control=name, send_buffer_size=65536))
    connection = script.connection
    window = 3 * MSS
    script.receive(incoming(remote(1), local(1), window=window))
    for _ in range(200):
        connection.send(bytes(window), script.now)
        sent = connection.transmit(script.now)
        assert sum(len(segment.payload) for segment in sent) == window
        for segment in sent:
            script.advance(0.001)
            script.receive(incoming(remote(1), seq_add(segment.seq, len(segment.payload)), window=window))
    assert connection.bytes_sent == 200 * window
    assert connection.congestion.cwnd == 10 * MSS  # 2 * 3 segments never exceeds the initial 10
    assert connection.snapshot().cwnd == 10 * MSS


@pytest.mark.parametrize("name", ["newreno", "cubic"])
def test_cwnd_restarts_after_an_idle_period_longer_than_the_rto(name):
    script = established(dataclasses.replace(CONFIG, congestion_control=name, send_buffer_size=65536))
    connection = script.connection
    script.receive(incoming(remote(1), local(1), window=65535))
    for _ in range(3):  # three full windows, each ACK answering a flight that filled cwnd
        connection.send(bytes(connection.congestion.cwnd), script.now)
        for segment in connection.transmit(script.now):
            script.advance(0.001)
            script.receive(incoming(remote(1), seq_add(segment.seq, len(segment.payload)), window=65535))
    grown = connection.congestion.cwnd
    assert grown > 20 * MSS
    script.advance(0.5 * connection.rtt.rto)  # a pause shorter than the RTO keeps cwnd
    connection.send(bytes(MSS), script.now)
    for segment in connection.transmit(script.now):
        script.receive(incoming(remote(1), seq_add(segment.seq, len(segment.payload)), window=65535))
    assert connection.congestion.cwnd == grown
    script.advance(2 * connection.rtt.rto + 1)  # idle longer than the RTO (RFC 5681 4.1)
    connection.send(bytes(40 * MSS), script.now)
    burst = connection.transmit(script.now)
    assert connection.congestion.cwnd == 10 * MSS  # RW = min(IW, cwnd)
    assert len(burst) == 10  # not the stale window's worth
