"""A Stack files a connection's deadline in its timer heap only when a round set one
(TimerSet.unfiled), not after every transmit of every connection it touched: the heap's entry is
a lower bound (timer_heap.py), so only a deadline set earlier than it could be missed, and those
are exactly what `unfiled` holds (issue 12: 18 calls fewer of a lifecycle's 793).

The TimerSet's side first (what sets and clears the mark). Then a differential test on virtual
time: two worlds, each a client Stack and a server Stack with one connection between them, see
the same seeded traffic (writes, reads that shut the window for a while, losses, timeouts,
closes, keepalive, FIN-WAIT-2 and connect timers); in one the stacks file every touched
connection's deadline after each transmit, as before (written out below), in the other as the
code does now. Packets, states, armed timers and the stacks' next deadlines must agree after every
step, and the next deadline must be the earliest timer any connection of the stack has armed.
A mark that missed an arm (arm_unless_armed not setting it, transmit not reading it, on_timer not
filing again what a fired connection still has armed) fails it. Seeded; the seed is in the id."""

from __future__ import annotations

import dataclasses
import random
import sys
from pathlib import Path

import pytest

from ustack.stack import Stack
from ustack.timer_heap import TimerHeap
from ustack.tcp import TcpConfig
from ustack.tcp.isn import IsnGenerator
from ustack.tcp.state import CLOSED, TIME_WAIT
from ustack.tcp.timer_set import DELAYED_ACK_TIMER, KEEPALIVE_TIMER, NOT_ARMED, RETRANSMIT_TIMER, TimerSet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tcp"))
from lockstep import drive_in_lockstep  # noqa: E402

CLIENT, SERVER, PORT = 0x0A4D0001, 0x0A4D0002, 80
SEEDS = range(60)


# --- the mark -------------------------------------------------------------------------------------


def test_the_mark_holds_the_earliest_deadline_set_since_it_was_cleared():
    timers = TimerSet()
    assert timers.unfiled == NOT_ARMED
    timers.arm(RETRANSMIT_TIMER, 5.0)
    assert timers.unfiled == 5.0
    timers.arm(DELAYED_ACK_TIMER, 7.0)  # later than what is unfiled: the earliest stays
    assert timers.unfiled == 5.0
    timers.arm(RETRANSMIT_TIMER, 3.0)
    assert timers.unfiled == 3.0
    assert timers.take_unfiled() == 3.0  # what the host files
    assert timers.unfiled == NOT_ARMED and timers.take_unfiled() == NOT_ARMED
    timers.arm_unless_armed(RETRANSMIT_TIMER, 1.0)  # running already: nothing set
    assert timers.unfiled == NOT_ARMED
    timers.arm_unless_armed(KEEPALIVE_TIMER, 9.0)
    assert timers.unfiled == 9.0


def test_a_cancel_leaves_the_mark_and_cancel_all_clears_it():
    timers = TimerSet()
    timers.arm(RETRANSMIT_TIMER, 5.0)
    timers.cancel(RETRANSMIT_TIMER)  # filing 5.0 does no harm: the entry is a lower bound
    assert timers.unfiled == 5.0
    timers.cancel_all()  # nothing armed at all: nothing to file
    assert timers.unfiled == NOT_ARMED


class RecordingHeap(TimerHeap):
    __slots__ = ("filed",)

    def arm(self, connection, deadline) -> None:
        self.filed.append((connection, deadline))
        super().arm(connection, deadline)


def test_a_round_that_sets_no_deadline_does_no_heap_work():
    client, server = Stack(CLIENT, TcpConfig()), Stack(SERVER, TcpConfig())
    server.timer_heap = RecordingHeap()
    filed = server.timer_heap.filed = []
    listener = server.listen(PORT)
    connection = client.connect(SERVER, PORT, 0.0)
    exchange(client, server, 0.0)
    accepted = listener.accept()
    filed.clear()
    connection.send(b"request", 0.0)
    client.poke(connection)
    client_packets = client.transmit(0.0)
    for packet in client_packets:
        server.receive(packet, 0.0)
    server.transmit(0.0)  # the data arms the server's delayed ACK: filed
    assert filed == [(accepted, accepted.timers.deadline(DELAYED_ACK_TIMER))]
    assert server.next_deadline() == accepted.timers.deadline(DELAYED_ACK_TIMER)
    filed.clear()
    accepted.recv(100, 0.0)  # a read that sets no deadline (nothing to update in the window)
    server.poke(accepted)
    server.transmit(0.0)
    assert filed == []


def exchange(client: Stack, server: Stack, now: float) -> None:
    while True:
        to_server, to_client = client.transmit(now), server.transmit(now)
        if not to_server and not to_client:
            return
        for packet in to_server:
            server.receive(packet, now)
        for packet in to_client:
            client.receive(packet, now)


# --- the differential test -----------------------------------------------------------------------


class FilesEveryRound(Stack):
    """The filing as it was: after each transmit, every touched connection that lives on (a
    TIME-WAIT record is filed by transmit itself, as before) files its earliest deadline, or
    leaves the heap when it has none."""

    def transmit(self, now: float) -> list[bytes]:
        touched = list(self._touched)
        packets = super().transmit(now)
        for connection in touched:
            if connection.state is not CLOSED and connection.state is not TIME_WAIT:
                self.timer_heap.arm(connection, connection.timers.next_deadline())
        return packets


class End:
    """One end of a world's connection, as lockstep.py drives it: the user calls go to the
    connection and poke its stack; packets go to the stack."""

    def __init__(self, stack: Stack, connection) -> None:
        self.stack, self.connection = stack, connection

    def _user_call(self, method: str, *args):
        result = getattr(self.connection, method)(*args)
        self.stack.poke(self.connection)
        return result

    def send(self, data: bytes, now: float):
        return self._user_call("send", data, now)

    def recv(self, size: int, now: float):
        return self._user_call("recv", size, now)

    def close(self, now: float):
        return self._user_call("close", now)

    def shutdown(self, now: float):
        return self._user_call("shutdown", now)

    def receive(self, packet: bytes, now: float) -> None:
        self.stack.receive(packet, now)


def earliest_armed(stack: Stack) -> float | None:
    """The earliest timer any connection of `stack` has armed, read from the connections."""
    deadlines = [deadline for connection in stack.connections.values()
                 for deadline in connection.timers_armed().values()]
    return min(deadlines) if deadlines else None


class World:
    def __init__(self, stack_class, config: TcpConfig) -> None:
        client = stack_class(CLIENT, config, port_seed=1, isn_generator=IsnGenerator(fixed_isn=0xFFFFF000))
        server = stack_class(SERVER, config, port_seed=2, isn_generator=IsnGenerator(fixed_isn=0x9000))
        client.events_wanted = server.events_wanted = False  # as the runtime runs them
        listener = server.listen(PORT)
        connection = client.connect(SERVER, PORT, 0.0)
        exchange(client, server, 0.0)
        accepted = listener.accept()
        assert accepted is not None
        self.stacks = (client, server)
        self.ends = (End(client, connection), End(server, accepted))

    def transmit(self, index: int, now: float) -> list:
        stack = self.stacks[index]
        deadline = stack.next_deadline()
        if deadline is not None and deadline <= now:
            stack.on_timer(now)
        packets = stack.transmit(now)
        # Once it has transmitted (what the runtime does after every input), the stack's next
        # deadline is the earliest timer of its connections.
        assert stack.next_deadline() == earliest_armed(stack), f"{stack.next_deadline()} {earliest_armed(stack)}"
        return packets

    def picture(self, index: int, packets: list) -> tuple:
        stack = self.stacks[index]
        connection = self.ends[index].connection
        return packets, stack.next_deadline(), connection.state, connection.timers_armed(), sorted(stack.connections)


def run(seed: int) -> None:
    rng = random.Random(seed)
    config = TcpConfig(
        sack=rng.random() < 0.5,
        timestamps=rng.random() < 0.5,
        window_scaling=rng.random() < 0.5,
        receive_buffer_size=rng.choice([2048, 4096, 16384]),  # small: the window shuts often
        send_buffer_size=rng.choice([16384, 65536]),
        nagle=rng.random() < 0.7,
        keepalive=rng.random() < 0.3,
        connect_timeout=rng.choice([None, 20.0]),
    )
    if config.keepalive:
        config = dataclasses.replace(config, keepalive_idle=rng.choice([0.5, 3.0]), keepalive_interval=0.3)
    worlds = (World(FilesEveryRound, config), World(Stack, config))
    loss = rng.choice([0.0, 0.05, 0.2])
    for step in drive_in_lockstep(worlds, rng, seed, pauses=(0.0, 0.001, 0.01, 0.05, 0.3, 1.5), send_below=0.2,
                                  recv_below=0.3, close_below=0.32, close_after=150, loss=loss):
        for index in (0, 1):
            pictures = [world.picture(index, []) for world in worlds]
            assert pictures[0] == pictures[1], f"seed {seed} step {step} after receiving"


@pytest.mark.parametrize("seed", SEEDS)
def test_filing_only_deadlines_set_changes_nothing(seed):
    run(seed)
