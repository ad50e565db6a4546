"""Pacing (TcpConfig.pacing, ustack/tcp/congestion/pacing.py) on virtual time: how far apart the
segments of a window leave for a given cwnd and SRTT, what is not paced (pure ACKs,
retransmissions), the restart after idle, and that a fast path is never held back."""

from __future__ import annotations

import dataclasses

import pytest
from tcp_script import *  # noqa: F403
from ustack.commands.ss import info_text
from ustack.control import to_jsonable
from ustack.tcp import Connection
from ustack.tcp.congestion.pacing import (
    BURST_SECONDS, CONGESTION_AVOIDANCE_RATIO, MIN_BURST_SEGMENTS, SLOW_START_RATIO, pacing_rate,
)
from ustack.tcp.config import TcpConfig
from ustack.tcp.seq import seq_diff
from ustack.testing.simulator import BulkTransfer, Simulator

MSS = 1460
RTT = 0.1  # the handshake's: SRTT = 0.1 s after it
WINDOW = 60000
WRITTEN = 200 * MSS


def paced(**changes) -> Script:
    """A connection with pacing whose SYN took RTT to be answered, with WRITTEN bytes queued."""
    changes.setdefault("pacing", True)
    config = dataclasses.replace(CONFIG, send_buffer_size=WRITTEN, receive_buffer_size=65535, **changes)
    connection = Connection.open_active(config, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
    script = Script(connection)
    connection.transmit(0.0)  # the SYN
    script.now = RTT
    script.receive(incoming(remote(0), local(1), SYN | ACK, window=WINDOW, options=TcpOptions(mss=MSS)))
    assert connection.rtt.srtt == pytest.approx(RTT)
    return script


def departures(script: Script, until: float) -> list[tuple[float, int]]:
    """(time, data segment number) of every data segment sent up to `until`, timers fired on the way."""
    connection = script.connection
    sent = []
    while True:
        for segment in connection.transmit(script.now):
            if segment.payload:
                sent.append((round(script.now, 6), seq_diff(segment.seq, local(1)) // MSS))
        deadline = connection.next_deadline()
        if deadline is None or deadline > until:
            return sent
        script.now = deadline
        connection.on_timer(script.now)


def test_the_rate_is_linux_s_ratio_times_cwnd_over_srtt():
    # Slow start while cwnd < ssthresh / 2: twice cwnd per SRTT, so that it can still double.
    assert pacing_rate(14600, 1 << 30, 0.1) == pytest.approx(SLOW_START_RATIO * 146000)
    # Past half of ssthresh (and in congestion avoidance): 1.2 times.
    assert pacing_rate(14600, 20000, 0.1) == pytest.approx(CONGESTION_AVOIDANCE_RATIO * 146000)
    assert pacing_rate(14600, 14600, 0.05) == pytest.approx(1.2 * 292000)
    assert pacing_rate(14600, 20000, None) is None  # no RTT yet: not paced


def test_the_initial_window_is_spread_over_half_an_rtt_in_slow_start():
    script = paced()
    connection = script.connection
    connection.send(bytes(WRITTEN), script.now)
    sent = departures(script, until=RTT + 0.09)  # no ACK comes back in this test
    # cwnd 10 segments, SRTT 0.1 s, ratio 2: 292,000 bytes/s, a segment every 5 ms; the bucket
    # starts full: the smallest burst, MIN_BURST_SEGMENTS (5 ms of this rate is less).
    assert [number for _, number in sent] == list(range(10))
    start = RTT
    burst = MIN_BURST_SEGMENTS
    assert [time for time, _ in sent[:burst]] == [start] * burst
    gaps = [round(b[0] - a[0], 6) for a, b in zip(sent[burst - 1:], sent[burst:])]
    assert gaps == [pytest.approx(MSS / (2 * 10 * MSS / RTT), abs=2e-6)] * (10 - burst)
    assert sent[-1][0] - start == pytest.approx((10 - burst) * 0.005, abs=1e-5)  # within RTT / 2
    assert connection.congestion.pacer.rate == pytest.approx(2 * 10 * MSS / RTT)
    # Held back by pacing, not by the application: the next ACKs find cwnd used (RFC 7661).
    assert connection.congestion.flight_after_send >= 9 * MSS


def test_in_congestion_avoidance_a_window_takes_srtt_over_1_2():
    script = paced(initial_window_segments=20)
    connection = script.connection
    connection.congestion.ssthresh = 20 * MSS  # congestion avoidance from the start
    connection.send(bytes(WRITTEN), script.now)
    sent = departures(script, until=RTT + 0.2)
    assert len(sent) == 20
    rate = CONGESTION_AVOIDANCE_RATIO * 20 * MSS / RTT
    # MIN_BURST_SEGMENTS at once, then one every MSS / rate seconds.
    assert sent[-1][0] - RTT == pytest.approx((20 - MIN_BURST_SEGMENTS) * MSS / rate, abs=1e-4)
    assert sent[-1][0] - RTT < RTT / CONGESTION_AVOIDANCE_RATIO


def test_without_pacing_the_window_leaves_at_once():
    script = paced(pacing=False)
    script.connection.send(bytes(WRITTEN), script.now)
    sent = departures(script, until=RTT + 0.09)
    assert {time for time, _ in sent} == {RTT} and len(sent) == 10


def test_a_fast_path_is_never_held_back():
    """SRTT 100 us (a TUN device): BURST_SECONDS of the rate is far more than cwnd, so the whole
    window goes at once and no pacing timer is armed: the bulk path pays no timer."""
    config = dataclasses.replace(CONFIG, pacing=True, send_buffer_size=WRITTEN, receive_buffer_size=65535)
    connection = Connection.open_active(config, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
    script = Script(connection)
    connection.transmit(0.0)
    script.now = 0.0001
    script.receive(incoming(remote(0), local(1), SYN | ACK, window=WINDOW, options=TcpOptions(mss=MSS)))
    connection.send(bytes(WRITTEN), script.now)
    out = [segment for segment in connection.transmit(script.now) if segment.payload]
    assert len(out) == 10
    assert "pacing" not in connection.timers_armed()
    assert pacing_rate(connection.congestion.cwnd, connection.congestion.ssthresh, 0.0001) * BURST_SECONDS > 10 * MSS


def test_pure_acks_are_not_paced():
    script = paced()
    connection = script.connection
    connection.send(bytes(WRITTEN), script.now)
    departures(script, until=RTT)  # the first segments empty the bucket
    assert "pacing" in connection.timers_armed()
    # Two segments from the peer at the same instant: the ACK they call for goes now, alone.
    script.receive(incoming(remote(1), local(1), payload=b"x" * 100, window=WINDOW))
    script.receive(incoming(remote(101), local(1), payload=b"y" * 100, window=WINDOW))
    out = connection.transmit(script.now)
    assert [(segment.payload, segment.ack) for segment in out] == [(b"", remote(201))]


def test_retransmissions_go_at_once_and_are_charged_to_the_bucket():
    script = paced()
    connection = script.connection
    connection.send(bytes(WRITTEN), script.now)
    sent = departures(script, until=RTT + 0.09)
    # Segment 0 is lost; three duplicate ACKs come in the instant the last segment left, when the
    # bucket is empty: the fast retransmission goes all the same, and the bucket owes it.
    script.now = sent[-1][0]
    assert connection.congestion.pacer.tokens == pytest.approx(0, abs=1)
    for _ in range(3):
        script.receive(incoming(remote(1), local(1), window=WINDOW))
    out = connection.transmit(script.now)
    assert [(segment.seq, len(segment.payload)) for segment in out] == [(local(1), MSS)]
    assert connection.congestion.pacer.tokens == pytest.approx(-MSS, abs=1)


def test_after_idle_the_bucket_holds_one_burst_not_the_idle_time():
    script = paced()
    connection = script.connection
    connection.send(bytes(20 * MSS), script.now)
    departures(script, until=RTT + 0.09)
    # Every segment acknowledged, then a second of silence (longer than the RTO: RFC 5681 4.1
    # restarts cwnd from the initial window too).
    script.now = 2 * RTT
    script.receive(incoming(remote(1), local(1 + 10 * MSS), window=WINDOW))
    sent = departures(script, until=2 * RTT + 0.2)
    assert len(sent) == 10
    script.now += 1.0
    connection.send(bytes(20 * MSS), script.now)
    script.receive(incoming(remote(1), local(1 + 20 * MSS), window=WINDOW))
    out = [segment for segment in connection.transmit(script.now) if segment.payload]
    # The bucket was full (MIN_BURST_SEGMENTS at this rate), not a second's worth of the rate.
    assert len(out) == MIN_BURST_SEGMENTS
    assert "pacing" in connection.timers_armed()


def test_ss_shows_the_pacing_rate_as_linux_does():
    script = paced()
    connection = script.connection
    connection.send(bytes(WRITTEN), script.now)
    connection.transmit(script.now)
    snapshot = to_jsonable(connection.snapshot())
    assert snapshot["pacing_rate"] == pytest.approx(292000)
    assert "pacing_rate 2.3Mbps" in info_text(snapshot, script.now)


def test_pacing_can_be_switched_on_an_open_connection():
    script = paced(pacing=False)
    connection = script.connection
    connection.reconfigure(script.now, pacing=True)
    connection.send(bytes(WRITTEN), script.now)
    assert len([segment for segment in connection.transmit(script.now) if segment.payload]) == MIN_BURST_SEGMENTS


def slow_start_windows(pacing: bool) -> list[int]:
    """cwnd in segments at the end of each of the first five 40 ms round trips of a transfer over
    20 ms each way and a 20 Mbit/s bottleneck (test_recovery_batches.py's path)."""
    config = TcpConfig(congestion_control="reno", pacing=pacing)
    sim = Simulator(config, config, delay=0.02, rate=2.5e6)
    sim.client_app = BulkTransfer(bytes(3_000_000))
    sim.server_app = BulkTransfer(b"")
    assert sim.run(until=lambda s: s.client.snd.syn_acknowledged, max_time=1)
    start = sim.now
    windows = []
    for round_trip in range(1, 6):
        sim.run(until=lambda s: s.now >= start + round_trip * 0.04, max_time=2)
        windows.append(sim.client.congestion.cwnd // sim.client.send_mss)
    return windows


def test_slow_start_still_doubles_each_round_trip_when_paced():
    """Pacing at twice cwnd / SRTT in slow start (Linux's tcp_pacing_ss_ratio) lets the window
    double each round trip as without pacing: the growth per ACK is untouched, and data held
    back by pacing counts as cwnd-limited (RFC 7661)."""
    paced_windows, unpaced = slow_start_windows(True), slow_start_windows(False)
    print("cwnd each round trip, paced:", paced_windows, "unpaced:", unpaced)
    assert all(later >= 1.7 * earlier for earlier, later in zip(paced_windows, paced_windows[1:]))
    assert all(p >= 0.9 * u for p, u in zip(paced_windows, unpaced))
