"""A seeded stress on virtual time: an echo over a lossy, duplicating, reordering link, with
applications that read at random moments and in random amounts.

The client sends a random payload; the server reads what has arrived when it feels like it and
writes it back; the client reads the echo the same way. Reading late fills the receive buffers,
so windows close and reopen, probes go out, and segments get trimmed to the window; buffers
are small and varied so that this happens often. Every byte each side reads is compared with
the payload (TCP must never deliver a wrong byte), and the transfer must finish: both
connections close without an error.

Each seed draws the whole scene (buffer sizes, link faults, reading habits, ISNs), is printed,
and replays exactly: `pytest tests/tcp/test_echo_stress.py -k "[seed]"`. This stress found the
fast retransmission that sent data beyond SND.MAX (test_retransmit_bounds.py).
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from ustack.tcp import State, TcpConfig
from ustack.tcp.connection import Connection
from ustack.testing.simulator import BulkTransfer, Simulator

# Short timers, as tests/stack/twohosts.FAST_CONFIG: losses cost little virtual time. But TIME-WAIT
# (2 * msl) outlasts the largest RTO: otherwise, once the ACK of the last FIN is lost, the FIN sent
# again after TIME-WAIT ends meets a closed port and a RST (RFC 9293 3.4.2 sizes TIME-WAIT to avoid
# exactly that), and the passive closer ends "reset by peer" with every byte delivered.
FAST = TcpConfig(msl=0.6, initial_rto=0.2, min_rto=0.05, max_rto=1.0, persist_min=0.05, persist_max=0.5)
APPLICATION_TICK = 0.01  # the applications look at their connection at least this often
TIME_LIMIT = 2000.0  # virtual seconds; a transfer that has not finished by then is a failure


class RandomReader(BulkTransfer):
    """Sends `data` (the client) or echoes what it reads (the server), reading at random moments
    and in random amounts. Half-closes once done: the client when the whole echo is back, the
    server after the client's FIN, once everything is echoed. Closes after both FINs."""

    def __init__(self, rng: random.Random, data: bytes = b"", *, echo: bool, expect: int = 0):
        super().__init__(data)
        self.rng = rng
        self.echo = echo
        self.expect = expect
        self.unechoed = bytearray()
        self.read_chance = rng.choice([0.1, 0.5, 1.0])
        self.largest_read = rng.choice([100, 4096, 65536])
        self.largest_write = rng.choice([1000, 65536])

    def poll(self, connection: Connection | None, now: float) -> None:
        if connection is None or connection.state is State.CLOSED:
            return
        rng = self.rng
        if connection.state in (State.ESTABLISHED, State.CLOSE_WAIT):
            while self.offset < len(self.data):
                accepted = connection.send(self.data[self.offset : self.offset + rng.randint(1, self.largest_write)], now)
                self.offset += accepted
                if not accepted:
                    break
            while self.unechoed:
                accepted = connection.send(bytes(self.unechoed[: self.largest_write]), now)
                del self.unechoed[:accepted]
                if not accepted:
                    break
        if rng.random() < self.read_chance:
            while connection.readable and rng.random() < 0.9:
                data = connection.recv(rng.randint(1, self.largest_read), now)
                self.received += data
                if self.echo:
                    self.unechoed += data
        all_written = self.offset == len(self.data) and not self.unechoed
        done = connection.at_eof and not connection.readable if self.echo else len(self.received) >= self.expect
        if all_written and done and not self.shut:
            connection.shutdown(now)
            self.shut = True
        self.close_when_both_finished(connection, now)


def run_scene(seed: int):
    rng = random.Random(seed)
    size = rng.choice([50_000, 150_000, 300_000])
    base = FAST if rng.random() < 0.7 else TcpConfig()  # the defaults: RACK-TLP, CUBIC, SACK, timestamps
    config = dataclasses.replace(
        base,
        receive_buffer_size=rng.choice([8192, 16384, 65536, 131072, 262144]),
        send_buffer_size=rng.choice([8192, 65536, 262144]),
    )
    link = dict(
        loss=rng.choice([0.0, 0.02, 0.05, 0.1]),
        duplicate=rng.choice([0.0, 0.0, 0.02, 0.1]),
        reorder=rng.choice([0.0, 0.0, 0.05, 0.2]),
        delay=rng.choice([0.001, 0.005, 0.02]),
    )
    sim = Simulator(config, config, seed=seed, client_iss=rng.getrandbits(32), server_iss=rng.getrandbits(32), **link)
    payload = rng.randbytes(size)
    sim.client_app = client = RandomReader(random.Random(rng.getrandbits(64)), payload, echo=False, expect=size)
    sim.server_app = server = RandomReader(random.Random(rng.getrandbits(64)), echo=True)
    scene = f"seed={seed} size={size} buffers={config.receive_buffer_size}/{config.send_buffer_size} link={link}"

    def finished(sim: Simulator) -> bool:
        return sim.client.state is State.CLOSED and sim.server_closed

    while not finished(sim) and sim.now < TIME_LIMIT:
        next_event = sim.next_event_time()
        if next_event is not None and next_event <= sim.now + APPLICATION_TICK:
            sim.step()
            continue
        # Nothing due soon: the applications still act (a reader that left data unread comes
        # back for it), at a moment drawn from the seed.
        sim.now += APPLICATION_TICK * rng.random()
        sim.client_stack.on_timer(sim.now)
        sim.server_stack.on_timer(sim.now)
        sim.flush()
    return sim, payload, client, server, scene


def first_difference(got: bytes, expected: bytes) -> int | None:
    """The index of the first byte of `got` that differs from `expected`, None if got is a prefix."""
    for index, (a, b) in enumerate(zip(got, expected)):
        if a != b:
            return index
    return None if len(got) <= len(expected) else len(expected)


@pytest.mark.parametrize("seed", range(120, 144))
def test_echo_delivers_every_byte_unchanged(seed):
    sim, payload, client, server, scene = run_scene(seed)
    print(scene)
    where = f"{scene} t={sim.now:.2f} client={sim.client!r} server={sim.server!r}"
    at = first_difference(bytes(server.received), payload)
    assert at is None, f"client->server byte {at} is wrong: {where}"
    at = first_difference(bytes(client.received), payload)
    assert at is None, f"server->client byte {at} is wrong: {where}"
    assert sim.client.error is None and sim.server.error is None, (
        f"errors {sim.client.error} {sim.server.error}: {where} drops {dict(sim.client.drops)} {dict(sim.server.drops)}"
    )
    assert bytes(client.received) == payload and bytes(server.received) == payload, f"incomplete: {where}"
