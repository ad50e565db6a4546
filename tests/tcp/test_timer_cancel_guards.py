"""The delayed-ACK and persist timers are cancelled only when armed, on the paths that run for
nearly every segment: an ACK sent (output._acknowledgement_fields), a window update taken
(acknowledgement._update_send_window), a burst of data sent (output._data_timers); and the
connect timer, which only an active open with a connect_timeout has, when the connection is
established (arrival._after_established). Each path
reads `TimerSet.deadlines` (is_armed, in line) before calling cancel(), to save the call when,
as almost always, there is nothing to cancel (issue 12: 13 calls of a lifecycle's ~810).

Two tests. A differential one on virtual time: two worlds, each a client and a server
connection wired back to back, see the same seeded traffic (writes, reads that leave the window
shut for a while, losses, timeouts, closes); in one the connections cancel as before, always
(the old forms, written out below), in the other as the code does now. Their segments, states,
armed timers and persist back-off must agree after every step. And a count: in a whole lifecycle
between two Stacks, and in traffic that opens a zero window, no cancel() from those paths finds
its timer not armed. Seeded; the seed is in the test's id."""

from __future__ import annotations

import dataclasses
import random
import sys
from pathlib import Path

import pytest

from lockstep import drive_in_lockstep
from tcp_script import CONFIG, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT
from ustack.tcp import Connection, TcpConfig
from ustack.tcp.timer_set import CONNECT_TIMER, DELAYED_ACK_TIMER, PERSIST_TIMER, TimerSet

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from bench_lifecycles import exchange, make_pair, one_lifecycle  # noqa: E402

SEEDS = range(80)
GUARDED_PATHS = ("_acknowledgement_fields", "_update_send_window", "_data_timers", "_after_established")


class AlwaysCancels(Connection):
    """The four paths as they were: cancel() called whether or not the timer is armed."""

    armed_cancels = 0  # how often one of them found its timer armed (the test means something)

    def _acknowledgement_fields(self, now):
        armed = self.timers.is_armed(DELAYED_ACK_TIMER)
        fields = super()._acknowledgement_fields(now)
        AlwaysCancels.armed_cancels += self.timers.cancel(DELAYED_ACK_TIMER) or armed
        return fields

    def _update_send_window(self, segment):
        window = self.snd.update_window(segment, self.send_shift)
        if window and self.timers.cancel(PERSIST_TIMER):
            AlwaysCancels.armed_cancels += 1
            self.snd.persist_ended()

    def _data_timers(self, now):
        armed = self.timers.is_armed(PERSIST_TIMER)
        super()._data_timers(now)
        AlwaysCancels.armed_cancels += self.timers.cancel(PERSIST_TIMER) or armed

    def _after_established(self, now):
        armed = self.timers.is_armed(CONNECT_TIMER)
        super()._after_established(now)  # (nothing in it arms the connect timer)
        AlwaysCancels.armed_cancels += self.timers.cancel(CONNECT_TIMER) or armed


class World:
    def __init__(self, cls, config) -> None:
        self.ends = (
            cls.open_active(config, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, 0x1000, 0.0),
            cls.open_passive(config, REMOTE_ADDRESS, REMOTE_PORT, 0x9000, 0.0),
        )

    def transmit(self, index: int, now: float) -> list:
        connection = self.ends[index]
        deadline = connection.next_deadline()
        if deadline is not None and deadline <= now:
            connection.on_timer(now)
        return connection.transmit(now)

    def picture(self, index: int, segments: list) -> tuple:
        connection = self.ends[index]
        return (segments, connection.state, connection.timers_armed(), connection.snd.persist_backoff,
                connection.rcv.segments_since_ack, connection.rcv.ack_owed)  # fmt: skip


def run(seed: int) -> None:
    rng = random.Random(seed)
    config = dataclasses.replace(
        CONFIG,
        sack=rng.random() < 0.5,
        timestamps=rng.random() < 0.5,
        window_scaling=rng.random() < 0.5,
        receive_buffer_size=rng.choice([2048, 4096, 16384]),  # small: the window shuts often
        send_buffer_size=rng.choice([16384, 65536]),
        quick_ack_segments=rng.choice([0, 0, 4]),
        ack_every_segments=rng.choice([2, 2, 3]),
        nagle=rng.random() < 0.7,
        connect_timeout=rng.choice([None, 0.5, 20.0]),
    )
    worlds = (World(AlwaysCancels, config), World(Connection, config))
    loss = rng.choice([0.0, 0.05, 0.2])
    for step in drive_in_lockstep(worlds, rng, seed, pauses=(0.0, 0.001, 0.01, 0.05, 0.3, 1.5), send_below=0.2,
                                  recv_below=0.3, close_below=0.32, close_after=150, loss=loss):
        for world_index in (0, 1):
            pictures = [world.picture(world_index, []) for world in worlds]
            assert pictures[0] == pictures[1], f"seed {seed} step {step} after receiving"


@pytest.mark.parametrize("seed", SEEDS)
def test_cancelling_only_what_is_armed_changes_nothing(seed):
    run(seed)


def test_the_traffic_cancels_armed_delayed_ack_and_persist_timers():
    # The differential test means something only if its traffic does cancel armed timers on
    # these paths: both kinds, many times.
    AlwaysCancels.armed_cancels = 0
    for seed in SEEDS[:10]:
        run(seed)
    assert AlwaysCancels.armed_cancels > 50


def cancels_by_path(monkeypatch) -> list:
    """Every TimerSet.cancel from the guarded paths, as (path, kind, found armed)."""
    calls = []
    cancel = TimerSet.cancel

    def recording(self, kind):
        was_armed = cancel(self, kind)
        path = sys._getframe(1).f_code.co_name
        if path in GUARDED_PATHS:
            calls.append((path, kind, was_armed))
        return was_armed

    monkeypatch.setattr(TimerSet, "cancel", recording)
    return calls


@pytest.mark.parametrize("connect_timeout", (None, 20.0))
def test_a_lifecycle_cancels_only_armed_timers_on_the_per_segment_paths(monkeypatch, connect_timeout):
    calls = cancels_by_path(monkeypatch)
    client, server, listener = make_pair(TcpConfig(connect_timeout=connect_timeout))
    for n in range(3):
        one_lifecycle(client, server, listener, 1.0 + n)
    assert calls, "a lifecycle's delayed ACK is cancelled when the answer carries the ACK"
    assert all(armed for _, _, armed in calls), calls
    cancelled = {(path, kind) for path, kind, _ in calls}
    assert cancelled == {("_acknowledgement_fields", DELAYED_ACK_TIMER)} | (
        set() if connect_timeout is None else {("_after_established", CONNECT_TIMER)})


def test_a_shut_window_cancels_only_armed_persist_timers(monkeypatch):
    calls = cancels_by_path(monkeypatch)
    config = TcpConfig(receive_buffer_size=4096)
    client, server, listener = make_pair(config)
    connection = client.connect(server.address, 80, 0.0)
    exchange(client, server, 0.0)
    accepted = listener.accept()
    connection.send(b"x" * 20000, 0.0)
    client.poke(connection)
    exchange(client, server, 0.0)  # the server's window shuts: the client arms its persist timer
    assert connection.timers.is_armed(PERSIST_TIMER)
    now = 0.0
    for _ in range(5):  # the window opens as the server reads, a little at a time
        now += 0.5
        if (deadline := client.next_deadline()) is not None and deadline <= now:
            client.on_timer(now)
        accepted.recv(3000, now)
        server.poke(accepted)
        exchange(client, server, now)
    assert ("_update_send_window", PERSIST_TIMER, True) in calls
    assert all(armed for _, _, armed in calls), calls
