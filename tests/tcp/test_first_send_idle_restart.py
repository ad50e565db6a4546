"""The restart after idle (RFC 5681 4.1) is not asked for a connection's first data.

SendSide.last_send_time starts at NOTHING_SENT_YET (infinitely late) instead of 0.0, so the
"idle for more than one RTO" check in output._emit_data fails for a connection that has sent no
data or FIN yet, where on_idle_restart would change nothing (RW = min(IW, cwnd) is cwnd before any
data was acknowledged; CUBIC's epoch has not started). A differential test on virtual time: one
connection as the code is, one whose last_send_time starts at 0.0 as before (so that a first send
at a large `now` does call on_idle_restart); both see the same seeded traffic (SYN lost or not,
idle gaps, ACKs, a second burst after a real idle period) under each congestion control, and
their segments and congestion variables must be equal after every step. Seeded; the seed is in
the test's id."""

from __future__ import annotations

import dataclasses
import random

import pytest

from tcp_script import (
    CONFIG, LOCAL_ADDRESS, LOCAL_ISS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, describe, incoming, local, remote,
)
from ustack.tcp import Connection
from ustack.tcp.congestion import base as congestion_base
from ustack.tcp.send_side import NOTHING_SENT_YET
from ustack.wire.tcp import ACK, SYN, TcpOptions

SEEDS = range(30)


class OldStart(Connection):
    """last_send_time from 0.0, as before NOTHING_SENT_YET: the first data after one RTO of
    virtual time goes through on_idle_restart."""

    @classmethod
    def open_active(cls, *args, **kwargs):
        connection = super().open_active(*args, **kwargs)
        connection.snd.last_send_time = 0.0
        return connection


def variables(connection: Connection) -> tuple:
    congestion = connection.congestion
    return (
        connection.state, connection.snd.una, connection.snd.nxt, connection.snd.max, congestion.cwnd,
        congestion.ssthresh, congestion.in_recovery, getattr(congestion, "epoch_start", None),
        connection.timers_armed(),
    )


@pytest.fixture
def restarts(monkeypatch):
    """How many times on_idle_restart ran, by connection class name."""
    counts: dict[str, int] = {}
    original = congestion_base.CongestionControl.on_idle_restart

    def counting(self, now):
        counts[counting.owner] = counts.get(counting.owner, 0) + 1
        original(self, now)

    counting.owner = None
    monkeypatch.setattr(congestion_base.CongestionControl, "on_idle_restart", counting)
    return counts, counting


@pytest.mark.parametrize("seed", SEEDS)
def test_first_data_needs_no_idle_restart(seed, restarts):
    counts, counting = restarts
    rng = random.Random(seed)
    config = dataclasses.replace(
        CONFIG, congestion_control=rng.choice(["reno", "newreno", "cubic"]), sack=rng.random() < 0.5,
        timestamps=rng.random() < 0.5, nagle_minshall=rng.random() < 0.5,
    )
    opened_at = rng.uniform(0.0, 50.0)
    lose_syn = rng.random() < 0.3
    first_write_after = rng.choice([0.0, rng.uniform(0.0, 0.5), rng.uniform(2.0, 30.0)])
    first_size = rng.choice([18, 1460, 5000, 14600])
    idle_before_second = rng.choice([0.01, rng.uniform(3.0, 30.0)])
    second_size = rng.choice([100, 3000, 20000])
    pair = {cls.__name__: cls.open_active(config, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT,
                                          LOCAL_ISS, opened_at) for cls in (Connection, OldStart)}  # fmt: skip

    def step(what, now):
        """Run `what(connection, now)` then transmit(now) on both; outputs and variables must agree."""
        outputs = {}
        for name, connection in pair.items():
            counting.owner = name
            what(connection, now)
            if connection.timers.next_deadline() is not None and connection.timers.next_deadline() <= now:
                connection.on_timer(now)
            outputs[name] = connection.transmit(now)
        new, old = outputs["Connection"], outputs["OldStart"]
        assert new == old, f"seed {seed}: new\n    {describe(new)}\nold\n    {describe(old)}"
        assert variables(pair["Connection"]) == variables(pair["OldStart"]), f"seed {seed}"
        return new

    now = opened_at
    step(lambda c, t: None, now)  # the SYN
    if lose_syn:
        now += 1.0 + 1e-6  # the initial RTO: the SYN goes again
        step(lambda c, t: None, now)
    now += 0.01
    options = TcpOptions(mss=1460, sack_permitted=config.sack, timestamps=(1000, 0) if config.timestamps else None)
    synack = incoming(remote(0), local(1), SYN | ACK, window=65535, options=options)
    step(lambda c, t: c.receive(synack, t), now)
    now += first_write_after
    sent = step(lambda c, t: c.send(b"q" * first_size, t), now)
    acked = 1
    while sent:
        now += 0.01
        for segment in sent:
            acked = max(acked, segment.seq - LOCAL_ISS + len(segment.payload) & 0xFFFFFFFF)
        ts = (2000, sent[-1].options.timestamps[0]) if config.timestamps else None
        ack = incoming(remote(1), local(acked), ACK, window=65535, options=TcpOptions(timestamps=ts))
        sent = step(lambda c, t: c.receive(ack, t), now)
    now += idle_before_second
    step(lambda c, t: c.send(b"r" * second_size, t), now)
    # The short path was taken: the connection as it is never restarted for its first data (the
    # old start did whenever that data came more than one RTO after time 0).
    if idle_before_second < 1.0:
        assert counts.get("Connection", 0) == 0, f"seed {seed}"


def test_a_real_idle_period_still_restarts_from_the_initial_window():
    """After data was sent and acknowledged (cwnd grown in slow start), an idle period longer
    than the RTO takes cwnd back to the initial window before the next burst (RFC 5681 4.1)."""
    config = dataclasses.replace(CONFIG, congestion_control="newreno")
    connection = Connection.open_active(config, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
    connection.transmit(0.0)
    connection.receive(incoming(remote(0), local(1), SYN | ACK, window=65535, options=TcpOptions(mss=1460)), 0.01)
    connection.transmit(0.01)
    assert connection.snd.last_send_time == NOTHING_SENT_YET
    initial = connection.congestion.cwnd
    connection.send(b"x" * 20000, 0.02)
    sent = connection.transmit(0.02)
    assert connection.snd.last_send_time == 0.02
    flight = sum(len(segment.payload) for segment in sent)
    connection.receive(incoming(remote(1), local(1 + flight), ACK, window=65535), 0.03)
    assert connection.congestion.cwnd > initial  # slow start grew it
    connection.send(b"y" * 8000, 10.0)  # idle for ten seconds, far beyond the RTO
    sent = connection.transmit(10.0)
    assert connection.congestion.cwnd == initial
    assert 0 < sum(len(segment.payload) for segment in sent) <= initial
