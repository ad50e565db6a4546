"""Loss recovery and window growth as they happen on a real link (issue 13, b/a): ACKs read in
batches, recoveries with several holes, the end of a recovery, a resent oldest segment.

Each test is on virtual time (tcp_script, or the two-host simulator), deterministic.
"""

from __future__ import annotations

import dataclasses

import pytest

from tcp_script import *  # noqa: F403
from ustack.tcp import Connection
from ustack.tcp.config import TcpConfig
from ustack.tcp.seq import seq_lt
from ustack.testing.simulator import BulkTransfer, Simulator

MSS = 1460
PEER_WINDOW_WIDE = 60000
DATA = (bytes(range(256)) * 400)[: 60 * MSS]


def config(**changes):
    defaults = dict(sack=True, initial_window_segments=8, send_buffer_size=1 << 17)
    return dataclasses.replace(CONFIG, **{**defaults, **changes})


def in_flight(data: bytes = DATA, **changes) -> Script:
    """SACK negotiated, `data` written, the initial window (8 segments unless changed) sent at t = 0.1."""
    connection = Connection.open_active(config(**changes), LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT,
                                        LOCAL_ISS, 0.0)
    script = Script(connection)
    script.expect(outgoing(local(0), 0, SYN, options=TcpOptions(mss=MSS, sack_permitted=True)))
    script.advance(0.1)
    script.receive(incoming(remote(0), local(1), SYN | ACK, window=PEER_WINDOW_WIDE,
                            options=TcpOptions(mss=MSS, sack_permitted=True)))
    script.expect(outgoing(local(1), remote(1)))
    connection.send(data, script.now)
    assert len(connection.transmit(script.now)) == connection.config.initial_window_segments
    return script


def ack(acked_segments: int, *blocks) -> TcpSegment:
    return incoming(remote(1), local(1 + acked_segments * MSS), window=PEER_WINDOW_WIDE,
                    options=TcpOptions(sack_blocks=blocks))


def segments(first: int, last: int) -> tuple[int, int]:
    return local(1 + first * MSS), local(1 + (last + 1) * MSS)


@pytest.mark.parametrize("name", ["reno", "cubic"])
def test_a_batch_of_acks_grows_cwnd_by_all_it_acknowledges(name):
    # Eight ACKs read together, nothing sent between them: the flight falls 8 -> 0 as they are
    # processed, but each answers the flight of 8 that filled cwnd when it was sent (RFC 7661
    # judges the flight at send time, base.cwnd_limited): slow start adds all 8 segments.
    script = in_flight(congestion_control=name)
    script.advance(0.1)
    for n in range(1, 9):
        script.receive(ack(n))
    assert script.connection.congestion.cwnd == 16 * MSS


@pytest.mark.parametrize("name, beta", [("reno", (1, 2)), ("cubic", (7, 10))])
def test_the_reduction_is_taken_from_the_flight_as_sent_not_as_a_batch_left_it(name, beta):
    # Segment 3 of 8 is lost; the ACKs of 0-2 and the SACKs of 4-7 arrive in one batch. When the
    # loss is found the batch has taken 3 segments out of the flight (8 -> 5 before the SACKs),
    # but the flight the loss happened in was 8: ssthresh = beta * 8 segments.
    script = in_flight(congestion_control=name, loss_detection="dupack")
    connection = script.connection
    script.advance(0.1)
    for n in range(1, 4):
        script.receive(ack(n))
    flight_as_sent = 8 * MSS
    for last in range(4, 8):
        script.receive(ack(3, segments(4, last)))
    assert connection.congestion.in_recovery
    # In whole segments (congestion/base.py _threshold_after_loss): 4 for Reno, 5 for CUBIC.
    assert connection.congestion.ssthresh == flight_as_sent * beta[0] // beta[1] // MSS * MSS


def test_reno_stays_in_sack_recovery_until_the_recovery_point():
    # Segments 2 and 5 of 8 are lost. RFC 6675 5: one recovery for both holes, whatever the
    # algorithm. Before, Reno's "first new ACK ends recovery" (RFC 5681 without SACK) ended it at
    # the ACK of the first hole's resend and the second hole started a recovery of its own,
    # halving ssthresh again for the same window.
    script = in_flight(congestion_control="reno", loss_detection="dupack")
    connection = script.connection
    script.advance(0.1)
    script.receive(ack(1))
    script.receive(ack(2))
    for last in (3, 4):
        script.receive(ack(2, segments(3, last)))
    for last in (6, 7):
        script.receive(ack(2, segments(3, 4), segments(6, last)))
    assert connection.congestion.in_recovery
    ssthresh = connection.congestion.ssthresh
    connection.transmit(script.now)
    script.advance(0.1)
    script.receive(ack(5, segments(6, 7)))  # the resend of 2 arrived: a partial ACK
    assert connection.congestion.in_recovery
    assert connection.congestion.ssthresh == ssthresh
    connection.transmit(script.now)
    script.advance(0.1)
    script.receive(ack(8 + 2))  # everything up to the recovery point and beyond
    assert not connection.congestion.in_recovery
    assert connection.congestion.ssthresh == ssthresh


def test_a_prr_recovery_ends_with_cwnd_at_ssthresh():
    # RFC 6937 3 "on exiting recovery: cwnd = ssthresh", as Linux; NewReno's
    # min(ssthresh, FlightSize + MSS) would leave what little PRR let out to slow start back up.
    script = in_flight(congestion_control="cubic", loss_detection="dupack")
    connection = script.connection
    script.advance(0.1)
    for last in range(1, 4):
        script.receive(ack(0, segments(1, last)))  # segment 0 lost, 1-3 SACKed
    assert connection.congestion.in_recovery
    connection.transmit(script.now)
    script.advance(0.1)
    script.receive(ack(8))  # the resend and the rest: the whole flight at the start
    assert not connection.congestion.in_recovery
    assert connection.congestion.cwnd == connection.congestion.ssthresh
    assert connection.congestion.prr is None


def test_resending_the_oldest_segment_restarts_the_retransmission_timer():
    script = in_flight(loss_detection="dupack")
    connection = script.connection
    script.advance(0.1)
    script.receive(ack(1))  # the timer restarts here: one RTO from now
    armed_by_the_ack = connection.timers_armed()["retransmit"]
    script.advance(0.05)
    for last in range(2, 5):
        script.receive(ack(1, segments(2, last)))
    sent = connection.transmit(script.now)
    assert sent[0].seq == local(1 + MSS)  # the fast retransmission of segment 1
    # Its ACK takes a round trip from now: the timer counts from the resend (Linux, FreeBSD).
    assert connection.timers_armed()["retransmit"] == pytest.approx(script.now + connection.rtt.rto)
    assert connection.timers_armed()["retransmit"] > armed_by_the_ack


def test_blocks_below_snd_una_are_forgotten_so_the_tail_probe_is_armed_again():
    # A recovery ends with SND.UNA past every SACK block; has_sacked must say False at once, or
    # RACK-TLP (rack.py) would not arm the probe for the next flight and its lost tail would wait
    # for the retransmission timer.
    script = in_flight()
    connection = script.connection
    script.advance(0.1)
    for last in range(1, 4):
        script.receive(ack(0, segments(1, last)))
    connection.transmit(script.now)
    script.advance(0.1)
    script.receive(ack(8))
    assert not connection.snd.has_sacked
    connection.transmit(script.now)
    assert "tlp" in connection.timers_armed()


@pytest.mark.parametrize("name", ["reno", "newreno", "cubic"])
def test_slow_start_doubles_cwnd_every_round_trip_against_a_delayed_ack_receiver(name):
    """Two hosts, 20 ms each way, a 20 Mbit/s bottleneck (so segments arrive spaced and the
    receiver ACKs every second one, RFC 9293 3.8.6.3). cwnd at the end of each of the first
    round trips of data doubles (RFC 3465 L = 2: each delayed ACK adds both segments; with L = 1
    it grew 1.5x a round trip: 10, 15, 23, 35)."""
    # Unpaced: a round here is "what was sent when it began", a whole window only when the
    # window leaves at once (test_pacing.py checks the doubling with pacing, round by time).
    config = TcpConfig(congestion_control=name, pacing=False)
    sim = Simulator(config, config, delay=0.02, rate=2.5e6)
    sim.client_app = BulkTransfer(bytes(3_000_000))
    sim.server_app = BulkTransfer(b"")
    assert sim.run(until=lambda s: s.client.snd.syn_acknowledged, max_time=1)
    client = sim.client
    windows = [client.congestion.cwnd // client.send_mss]
    for _ in range(4):
        # One round trip: until everything sent when it began is acknowledged.
        round_end = client.snd.nxt
        assert sim.run(until=lambda s: not seq_lt(client.snd.una, round_end), max_time=2)
        windows.append(client.congestion.cwnd // client.send_mss)
    # Exactly doubled, give or take the ACK that arrives with the round's last one: 10, 21, 43...
    growth = [after / before for before, after in zip(windows, windows[1:])]
    assert all(2.0 <= ratio <= 2.1 for ratio in growth), windows
