"""The short paths of a connection's end. The peer's FIN on the fast path (arrival._fast_path):
in ESTABLISHED and FIN-WAIT-2 a FIN at RCV.NXT, with or without data, with or without an ACK of
new data, counts at once (RFC 9293 3.10.7.4 eighth step). The ACK of our FIN in FIN-WAIT-1,
CLOSING and LAST-ACK (arrival._ack_of_fin_fast_path). Each must do exactly what the full
processing does.

Differential tests on virtual time, as test_fast_path.py: two connections with the same
configuration and ISS see the same random traffic, one with the fast path switched off; after
every step their segments, events and variables must be equal. Unlike test_fast_path.py's
traffic, FINs come often here, and the connections go on past them (CLOSE-WAIT, TIME-WAIT). The
FIN-WAIT-2 test starts after close() (data then draws a reset) or after shutdown() (data is
still read). Seeded; the seed is printed on failure."""

from __future__ import annotations

import dataclasses
import random

import pytest

from tcp_script import *  # noqa: F403
from test_fast_path import CountingFastPath, describe, state_of
from ustack.tcp import Connection, State, TcpCallError
from ustack.tcp.events import segment_summary
from ustack.tcp.seq import seq_add, seq_diff

SEEDS = range(40)


class SlowOnly(Connection):
    """Every segment through the full processing of RFC 9293 3.10.7.4."""

    def _fast_path(self, segment, now):
        return False

    def _ack_of_fin_fast_path(self, segment, now):
        return False


class CountingAckOfFin(Connection):
    """Counts the segments _ack_of_fin_fast_path takes."""

    taken = 0

    def _ack_of_fin_fast_path(self, segment, now):
        took = super()._ack_of_fin_fast_path(segment, now)
        CountingAckOfFin.taken += took
        return took


def open_pair(config, timestamps: bool, classes=(Connection, SlowOnly)):
    pair = []
    for cls in classes:
        connection = cls.open_active(config, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
        connection.transmit(0.0)
        options = TcpOptions(mss=1460, sack_permitted=config.sack, timestamps=(1000, 0) if timestamps else None)
        connection.receive(incoming(remote(0), local(1), SYN | ACK, window=65535, options=options), 0.001)
        connection.transmit(0.001)
        pair.append(connection)
    return pair


def random_fin_segment(rng, connection, peer_ts, timestamps):
    """A segment at or near RCV.NXT, FIN half the time, with data or not, acknowledging nothing
    new, some or all of what we sent, or too much."""
    rcv_nxt, snd_una, snd_max = connection.rcv_nxt, connection.snd_una, connection.snd_max
    seq = rng.choice((rcv_nxt,) * 8 + (seq_add(rcv_nxt, -1), seq_add(rcv_nxt, 100)))
    in_flight = seq_diff(snd_max, snd_una)
    ack = rng.choice((snd_una,) * 3 + (snd_max, seq_add(snd_una, rng.randint(0, in_flight)), seq_add(snd_max, 1)))
    length = rng.choice((0, 0, 1, 100, 1460, 9000))
    flags = rng.choice((ACK, ACK | PSH, ACK | FIN, ACK | PSH | FIN, ACK | FIN, FIN))
    window = rng.choice((8192, 8192, 0, 65535))
    options = NO_OPTIONS
    if timestamps and rng.random() < 0.95:
        ts = (seq_add(peer_ts, rng.choice((0,) * 6 + (-100, 7))), connection.rcv.ts_recent and 1)
        options = TcpOptions(timestamps=ts)
    return incoming(seq, ack, flags, window=window, options=options, payload=bytes(length))


def run_differential(seed: int, prepare) -> None:
    rng = random.Random(seed)
    timestamps = seed % 2 == 0
    config = dataclasses.replace(
        CONFIG, sack=seed % 4 < 2, timestamps=timestamps, receive_buffer_size=8192,
        window_advertisement=rng.choice(("sws_steps", "free_space")), tolerate_missing_timestamps=rng.random() < 0.8,
    )
    fast, slow = open_pair(config, timestamps)
    now = 0.002
    peer_ts = 1000
    log = []
    draw = rng.random()
    for c in (fast, slow):
        prepare(c, now, draw)  # both alike
    try:
        for step in range(60):
            now += rng.choice((0.0, 0.001, 0.05))
            peer_ts += rng.choice((0, 1, 5))
            action = rng.random()
            if action < 0.1 and fast.state in (State.ESTABLISHED, State.CLOSE_WAIT):
                data = b"d" * rng.choice((1, 1460, 3000))
                results = [c.send(data, now) for c in (fast, slow)]
                log.append(f"send {len(data)}")
            elif action < 0.2:
                size = rng.choice((1, 10000))
                results = []
                for c in (fast, slow):
                    try:
                        results.append(c.recv(size, now))
                    except TcpCallError as error:
                        results.append(error.reason)
                log.append(f"recv {size}")
            else:
                segment = random_fin_segment(rng, fast, peer_ts, timestamps)
                log.append(f"receive {segment_summary(segment)} {segment.options} in {fast.state.value}")
                for c in (fast, slow):
                    c.receive(segment, now)
                results = []
            assert results[:1] == results[1:]
            out = [c.transmit(now) for c in (fast, slow)]
            assert out[0] == out[1], f"fast path:\n    {describe(out[0])}\nfull processing:\n    {describe(out[1])}"
            assert fast.events() == slow.events()
            assert state_of(fast) == state_of(slow)
            if fast.state in (State.CLOSED, State.TIME_WAIT):
                break
    except AssertionError:
        print(f"seed {seed}; last steps:\n  " + "\n  ".join(log[-6:]))
        raise


@pytest.mark.parametrize("seed", SEEDS)
def test_fin_in_established_is_equivalent_to_the_full_processing(seed):
    run_differential(seed, lambda connection, now, draw: None)


def to_fin_wait_2(connection: Connection, now: float, draw: float) -> None:
    """close() (or shutdown(), half the time), our FIN out and acknowledged: FIN-WAIT-2."""
    to_fin_wait_1(connection, now, 0.3 if draw < 0.5 else 0.8)  # no data: the FIN goes at once
    options = TcpOptions(timestamps=(1000, 1)) if connection.timestamps_enabled else NO_OPTIONS
    connection.receive(incoming(remote(1), connection.snd_max, options=options), now)
    assert connection.state is State.FIN_WAIT_2


def to_fin_wait_1(connection: Connection, now: float, draw: float) -> None:
    """Data in flight half the time, then close() (or shutdown()): FIN-WAIT-1."""
    if draw < 0.25 or 0.5 <= draw < 0.75:
        connection.send(b"x" * 3000, now)
    if draw < 0.5:
        connection.close(now)
    else:
        connection.shutdown(now)
    connection.transmit(now)
    assert connection.state is State.FIN_WAIT_1


def to_closing(connection: Connection, now: float, draw: float) -> None:
    """close(), then the peer's FIN before the ACK of ours: CLOSING."""
    to_fin_wait_1(connection, now, 0.3 if draw < 0.5 else 0.8)  # no data: the FIN goes at once
    options = TcpOptions(timestamps=(1000, 1)) if connection.timestamps_enabled else NO_OPTIONS
    connection.receive(incoming(remote(1), local(1), ACK | FIN, options=options), now)
    connection.transmit(now)
    assert connection.state is State.CLOSING


def to_last_ack(connection: Connection, now: float, draw: float) -> None:
    """The peer's FIN first (CLOSE-WAIT), then close(): LAST-ACK."""
    options = TcpOptions(timestamps=(1000, 1)) if connection.timestamps_enabled else NO_OPTIONS
    connection.receive(incoming(remote(1), local(1), ACK | FIN, options=options), now)
    if draw < 0.5:
        connection.send(b"x" * 3000, now)
    connection.close(now)
    connection.transmit(now)
    assert connection.state is State.LAST_ACK


@pytest.mark.parametrize("prepare", [to_fin_wait_1, to_closing, to_last_ack])
@pytest.mark.parametrize("seed", SEEDS)
def test_ack_of_fin_is_equivalent_to_the_full_processing(seed, prepare):
    run_differential(seed, prepare)


def test_the_last_ack_of_each_end_takes_the_short_path():
    # FIN-WAIT-1 -> FIN-WAIT-2 (the server that closed first), LAST-ACK -> CLOSED (the client),
    # CLOSING -> TIME-WAIT: each by the ACK of our FIN alone, taken by _ack_of_fin_fast_path.
    # (The draws that send no data first: the FIN is out at once.)
    for prepare, draw, after in ((to_fin_wait_1, 0.3, State.FIN_WAIT_2), (to_last_ack, 0.6, State.CLOSED),
                                 (to_closing, 0.3, State.TIME_WAIT)):
        connection = open_pair(CONFIG, False, classes=(CountingAckOfFin,))[0]
        prepare(connection, 0.002, draw)
        CountingAckOfFin.taken = 0
        connection.receive(incoming(connection.rcv_nxt, connection.snd_max), 0.003)
        assert CountingAckOfFin.taken == 1 and connection.state is after, prepare.__name__
    # FIN-WAIT-1: the peer's FIN with the ACK of ours (an HTTP client closing on reading the
    # answer) goes straight to TIME-WAIT (Figure 5 note 2), the FIN acknowledged at once.
    connection = open_pair(CONFIG, False, classes=(CountingAckOfFin,))[0]
    to_fin_wait_1(connection, 0.002, 0.3)
    CountingAckOfFin.taken = 0
    connection.receive(incoming(remote(1), connection.snd_max, ACK | FIN), 0.003)
    assert CountingAckOfFin.taken == 1 and connection.state is State.TIME_WAIT
    [ack] = connection.transmit(0.003)
    assert ack.flags == ACK and ack.ack == remote(2)
    # An ACK of less than everything is left to the full processing.
    connection = open_pair(CONFIG, False, classes=(CountingAckOfFin,))[0]
    to_fin_wait_1(connection, 0.002, 0.0)  # 3,000 bytes and the FIN in flight
    CountingAckOfFin.taken = 0
    connection.receive(incoming(connection.rcv_nxt, local(1001)), 0.003)
    assert CountingAckOfFin.taken == 0 and connection.state is State.FIN_WAIT_1 and connection.snd_una == local(1001)


@pytest.mark.parametrize("seed", SEEDS)
def test_fin_in_fin_wait_2_is_equivalent_to_the_full_processing(seed):
    run_differential(seed, to_fin_wait_2)


def test_the_fast_path_takes_an_answer_with_its_fin_and_the_fin_that_ends_fin_wait_2():
    # An HTTP/1.0 exchange seen from each end: the client gets the answer and its FIN in one
    # segment (ESTABLISHED -> CLOSE-WAIT), the server, in FIN-WAIT-2, the client's bare FIN
    # (-> TIME-WAIT). Both are taken by the fast path, with the same result as the full
    # processing (the differential tests above).
    client = CountingFastPath.open_active(CONFIG, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
    client.transmit(0.0)
    client.receive(incoming(remote(0), local(1), SYN | ACK), 0.001)
    client.send(b"GET / HTTP/1.0\r\n\r\n", 0.001)
    client.transmit(0.001)
    CountingFastPath.taken = 0
    client.receive(incoming(remote(1), local(19), ACK | PSH | FIN, payload=b"answer"), 0.002)
    assert CountingFastPath.taken == 1
    assert client.state is State.CLOSE_WAIT and client.rcv_nxt == remote(8) and client.snd_una == local(19)
    assert client.recv(100, 0.002) == b"answer"
    [ack] = client.transmit(0.002)
    assert ack.flags == ACK and ack.ack == remote(8)  # the FIN acknowledged at once

    server = CountingFastPath.open_active(CONFIG, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
    server.transmit(0.0)
    server.receive(incoming(remote(0), local(1), SYN | ACK), 0.001)
    to_fin_wait_2(server, 0.001, 0.0)
    CountingFastPath.taken = 0
    server.receive(incoming(remote(1), local(2), ACK | FIN), 0.003)
    assert CountingFastPath.taken == 1
    assert server.state is State.TIME_WAIT and server.rcv_nxt == remote(2)
    [ack] = server.transmit(0.003)
    assert ack.flags == ACK and ack.ack == remote(2)


def test_data_after_close_in_fin_wait_2_is_left_to_the_full_processing():
    # RFC 1122 4.2.2.13 (as Linux does): after close() nobody reads, so data draws a reset. The
    # fast path leaves such a segment alone, FIN or not.
    server = CountingFastPath.open_active(CONFIG, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
    server.transmit(0.0)
    server.receive(incoming(remote(0), local(1), SYN | ACK), 0.001)
    to_fin_wait_2(server, 0.001, 0.0)
    CountingFastPath.taken = 0
    server.receive(incoming(remote(1), local(2), ACK | FIN, payload=b"late"), 0.003)
    assert CountingFastPath.taken == 0
    assert server.state is State.CLOSED
    [reset] = server.transmit(0.003)
    assert reset.flags & RST
