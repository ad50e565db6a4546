"""The fast path (arrival._fast_path, "header prediction") must do exactly what the full
processing of RFC 9293 3.10.7.4 does with every segment it takes.

Differential test: two connections with the same configuration and ISS see the same random
traffic (segments at, around and beyond RCV.NXT; ACKs below, at and beyond what was sent; window
changes; old and new timestamps; SACK blocks; the application sending and reading), and
transmit at the same (random) moments. One of them has the fast path switched off. After
every step their segments, events and variables must be equal. Seeded; the seed is printed on
failure."""

from __future__ import annotations

import dataclasses
import random

import pytest

from tcp_script import *  # noqa: F403
from ustack.tcp import Connection, State, TcpCallError
from ustack.tcp.events import segment_summary
from ustack.tcp.receive_side import ReceiveSide
from ustack.tcp.send_side import SendSide
from ustack.tcp.seq import seq_add, seq_diff
from ustack.wire.tcp import URG

SEEDS = range(60)
STEPS = 400


class SlowOnly(Connection):
    def _fast_path(self, segment, now):
        return False


# Every variable of the send and receive sides (SND.*, RCV.*, recovery, Karn, TS.Recent, the
# ACK owed...); the buffers and the scoreboard are compared by content.
SEND_FIELDS = tuple(name for name in SendSide.__slots__ if name not in ("buffer", "_scoreboard"))
RECEIVE_FIELDS = tuple(name for name in ReceiveSide.__slots__ if name != "buffer")


def state_of(connection: Connection) -> dict:
    values = {"state": connection.state}
    values.update({"rcv." + name: getattr(connection.rcv, name) for name in RECEIVE_FIELDS})
    values.update({"snd." + name: getattr(connection.snd, name) for name in SEND_FIELDS})
    values["scoreboard"] = list(connection.snd.scoreboard.blocks)
    values["cwnd"] = connection.congestion.cwnd
    values["ssthresh"] = connection.congestion.ssthresh
    values["readable"] = connection.readable
    values["send_queue"] = connection.snd.queued
    values["drops"] = dict(connection.drops)
    values["srtt"] = connection.rtt.srtt
    values["timers"] = connection.timers_armed()
    return values


def open_pair(config, timestamps: bool):
    pair = []
    for cls in (Connection, SlowOnly):
        connection = cls.open_active(config, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
        connection.transmit(0.0)
        options = TcpOptions(mss=1460, sack_permitted=config.sack, timestamps=(1000, 0) if timestamps else None)
        connection.receive(incoming(remote(0), local(1), SYN | ACK, window=65535, options=options), 0.001)
        connection.transmit(0.001)
        pair.append(connection)
    return pair


@pytest.mark.parametrize("seed", SEEDS)
def test_fast_path_is_equivalent_to_the_full_processing(seed):
    rng = random.Random(seed)
    timestamps = seed % 2 == 0
    config = dataclasses.replace(
        CONFIG, sack=seed % 4 < 2, timestamps=timestamps, nagle=rng.random() < 0.5, receive_buffer_size=8192,
        window_advertisement=rng.choice(("sws_steps", "free_space")), tolerate_missing_timestamps=rng.random() < 0.8,
    )
    fast, slow = open_pair(config, timestamps)
    now = 0.001
    peer_ts = 1000
    log = []
    try:
        for step in range(STEPS):
            now += rng.choice((0.0, 0.0, 0.001, 0.01, 0.05))
            peer_ts += rng.choice((0, 1, 1, 5))
            action = rng.random()
            if action < 0.15:
                data = bytes([step & 0xFF]) * rng.choice((1, 100, 1460, 3000))
                results = [c.send(data, now) for c in (fast, slow)]
                log.append(f"send {len(data)}")
            elif action < 0.25:
                size = rng.choice((1, 500, 10000))
                results = []
                for c in (fast, slow):
                    try:
                        results.append(c.recv(size, now))
                    except TcpCallError as error:
                        results.append(error.reason)
                log.append(f"recv {size}")
            else:
                segment = random_segment(rng, fast, peer_ts, timestamps, config.sack, closing=step > STEPS * 0.9)
                log.append(f"receive {segment_summary(segment)} {segment.options}")
                for c in (fast, slow):
                    c.receive(segment, now)
                results = []
            assert results[:1] == results[1:]
            if rng.random() < 0.7:
                out = [c.transmit(now) for c in (fast, slow)]
                assert out[0] == out[1], f"fast path:\n    {describe(out[0])}\nfull processing:\n    {describe(out[1])}"
                log.append(f"transmit -> {len(out[0])} segments")
            assert fast.events() == slow.events()
            assert state_of(fast) == state_of(slow)
            if fast.state is not State.ESTABLISHED:
                break
    except AssertionError:
        print(f"seed {seed}; last steps:\n  " + "\n  ".join(log[-6:]))
        raise


def random_segment(rng, connection, peer_ts, timestamps, sack, closing):
    rcv_nxt, snd_una, snd_max = connection.rcv_nxt, connection.snd_una, connection.snd_max
    seq = rng.choice((rcv_nxt,) * 6 + (seq_add(rcv_nxt, -50), seq_add(rcv_nxt, 100), seq_add(rcv_nxt, 9000)))
    in_flight = seq_diff(snd_max, snd_una)
    ack = rng.choice(
        (snd_una,) * 4
        + (snd_max, seq_add(snd_una, rng.randint(0, in_flight)), seq_add(snd_max, 1), seq_add(snd_una, -10))
    )
    length = rng.choice((0, 0, 0, 1, 100, 1460, 1460, 4000))
    flags = rng.choice((ACK, ACK | PSH, ACK | PSH, ACK) * 6 + (ACK | URG, ACK | PSH | URG))
    if closing and rng.random() < 0.1:
        flags |= FIN  # the peer's FIN ends the test, so only near its end
    window = rng.choice((8192,) * 6 + (0, 100, 4096, 65535))
    options = NO_OPTIONS
    ts = None
    if timestamps and rng.random() < 0.95:
        ts = (seq_add(peer_ts, rng.choice((0,) * 8 + (-100, 7))), connection.rcv.ts_recent and 1)
    blocks = ()
    if sack and rng.random() < 0.1 and in_flight > 2:
        start = seq_add(snd_una, rng.randint(1, in_flight - 1))
        blocks = ((start, seq_add(start, 1)),)
    if ts is not None or blocks:
        options = TcpOptions(timestamps=ts, sack_blocks=blocks)
    urgent = rng.randint(0, 200) if flags & URG else 0
    return incoming(seq, ack, flags, window=window, urgent_pointer=urgent, options=options, payload=bytes(length))


class CountingFastPath(Connection):
    """Counts the segments the fast path takes."""

    taken = 0

    def _fast_path(self, segment, now):
        took = super()._fast_path(segment, now)
        CountingFastPath.taken += took
        return took


def test_request_response_segments_take_the_fast_path():
    # Each side's data also acknowledges the other's last data (an echo, an HTTP request and its
    # answer): in-order data with a new ACK is taken, as Linux's fast path takes it; the slow path
    # would give the same result (test_fast_path_is_equivalent_to_the_full_processing).
    connection = CountingFastPath.open_active(CONFIG, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
    connection.transmit(0.0)
    connection.receive(incoming(remote(0), local(1), SYN | ACK), 0.001)
    connection.transmit(0.001)
    CountingFastPath.taken = 0
    sent = received = 0
    for round_ in range(5):
        now = 0.01 * (round_ + 1)
        connection.send(b"q" * 64, now)
        connection.transmit(now)
        sent += 64
        connection.receive(incoming(remote(1 + received), local(1 + sent), ACK | PSH, payload=b"a" * 64), now + 0.001)
        received += 64
        assert connection.recv(100, now + 0.001) == b"a" * 64 and connection.snd_una == local(1 + sent)
    assert CountingFastPath.taken == 5


def test_an_ack_half_the_sequence_space_away_is_not_taken():
    # seq_lt and seq_le both hold for numbers exactly 2**31 apart; the fast path's range test does
    # not, so such an ACK gets the full checks (RFC 5961 5.2: dropped and answered).
    connection = CountingFastPath.open_active(CONFIG, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
    connection.transmit(0.0)
    connection.receive(incoming(remote(0), local(1), SYN | ACK), 0.001)
    connection.transmit(0.001)  # nothing in flight: SND.UNA = SND.MAX
    CountingFastPath.taken = 0
    connection.receive(incoming(remote(1), local(1) ^ 0x80000000), 0.02)
    assert CountingFastPath.taken == 0 and connection.snd_una == local(1)
    assert connection.drops["ack_of_unsent_data"] + connection.drops["ack_too_old"] == 1
