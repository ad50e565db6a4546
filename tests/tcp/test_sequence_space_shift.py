"""The sequence-number arithmetic written inline on the hot paths (seq.py lists the forms) wraps
exactly as the helpers do.

A differential test on virtual time: two worlds, each a client and a server connection talking
to each other, see the same seeded traffic (writes, reads, lost segments, timeouts, closes). In
one world both initial sequence numbers lie far from the wrap, in the other a few bytes to a few
kilobytes below 2**32, so that the handshake, the data, the window's right edge, SND.WL1/WL2, the
send buffer's release and the FINs cross it. With every sequence number taken relative to its
ISS, the two worlds must send the same segments and hold the same variables after every step:
an inline form that got the modulo-2**32 rule wrong (a missing mask, a plain comparison) parts
them, and so does a sequence number stored unwrapped. Seeded; the seed is in the test's id. A
second test puts both FINs on sequence number 2**32 - 1, the one place where "one past" wraps.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from lockstep import call, drive_in_lockstep
from tcp_script import CONFIG, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT
from ustack.tcp import Connection
from ustack.tcp.seq import SEQ_HALF, SEQ_MASK, seq_add, seq_diff, seq_gt, seq_le, seq_lt
from ustack.wire.tcp import ACK

SEEDS = range(100)
FAR_FROM_WRAP = (0x10000000, 0x20000000)


def relative(seq: int, iss: int) -> int:
    return (seq - iss) & SEQ_MASK


def normalized(segment, own_iss: int, peer_iss: int) -> tuple:
    """The segment with SEQ relative to the sender's ISS, ACK and SACK blocks to the receiver's."""
    options = segment.options
    if options.sack_blocks:
        options = options._replace(
            sack_blocks=tuple((relative(a, peer_iss), relative(b, peer_iss)) for a, b in options.sack_blocks)
        )
    ack = relative(segment.ack, peer_iss) if segment.flags & ACK else segment.ack
    return (segment.src_port, segment.dst_port, relative(segment.seq, own_iss), ack, segment.flags,
            segment.window, segment.urgent_pointer, options, bytes(segment.payload))  # fmt: skip


def variables(connection: Connection, own_iss: int, peer_iss: int) -> tuple:
    snd, rcv, congestion = connection.snd, connection.rcv, connection.congestion
    stored = (snd.una, snd.nxt, snd.max, snd.wl1, snd.wl2, snd.small_end) + (
        () if rcv.irs is None else (rcv.nxt, rcv.adv, rcv.last_ack_sent, rcv.read_seq)
    ) + (() if rcv.buffer is None else (rcv.buffer.rcv_nxt,))
    # A sequence number is stored wrapped, never as an int past 2**32 that later masks hide.
    assert all(0 <= value <= SEQ_MASK for value in stored if value is not None), stored
    peer_side = () if rcv.irs is None else (
        relative(rcv.nxt, peer_iss), relative(rcv.adv, peer_iss), relative(rcv.last_ack_sent, peer_iss),
        snd.wnd, relative(snd.wl1, peer_iss), relative(snd.wl2, own_iss),
    )  # fmt: skip
    return (
        connection.state, 0 if snd.buffer is None else snd.buffer.length, relative(snd.una, own_iss), relative(snd.nxt, own_iss), relative(snd.max, own_iss),
        peer_side, rcv.ts_recent, congestion.cwnd, congestion.ssthresh, congestion.flight_after_send,
        connection.timers_armed(), connection.fast_path_taken, congestion.take_calls(),
    )


class Counting(Connection):
    """Counts the segments the fast path (header prediction) takes: a wrap mistake that only
    sends a segment the long way round still does the same, but no longer takes the short path."""

    fast_path_taken = 0

    def _fast_path(self, segment, now):
        took = super()._fast_path(segment, now)
        self.fast_path_taken += took
        return took


class Heard:
    """Stands in front of a connection's congestion control and keeps the arguments of every
    call it hears about ACKs and losses: FlightSize and the bytes acknowledged are worked out
    from sequence numbers where the ACK arrives, and some of them change what the algorithm
    does only in rare cases (a partial ACK in recovery), so they are compared as they are
    passed."""

    HEARD = ("on_ack", "on_recovery_ack", "on_enter_fast_recovery", "on_partial_ack_in_sack_recovery",
             "on_rtt_sample", "on_idle_restart")  # fmt: skip

    def __init__(self, congestion) -> None:
        object.__setattr__(self, "_congestion", congestion)
        object.__setattr__(self, "calls", [])

    def take_calls(self) -> list:
        calls = self.calls
        object.__setattr__(self, "calls", [])
        return calls

    def __getattr__(self, name):
        value = getattr(self._congestion, name)
        if name in Heard.HEARD:
            def heard(*args):
                self.calls.append((name, args))
                return value(*args)
            return heard
        return value

    def __setattr__(self, name, value) -> None:
        setattr(self._congestion, name, value)


class World:
    """A client and a server connection with the given ISSs, wired back to back."""

    def __init__(self, config, client_iss: int, server_iss: int) -> None:
        self.iss = (client_iss, server_iss)
        self.client = Counting.open_active(
            config, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, client_iss, 0.0
        )
        self.server = Counting.open_passive(config, REMOTE_ADDRESS, REMOTE_PORT, server_iss, 0.0)
        self.ends = (self.client, self.server)
        for connection in self.ends:
            connection.congestion = Heard(connection.congestion)

    def transmit(self, index: int, now: float) -> list:
        connection = self.ends[index]
        deadline = connection.timers.next_deadline()
        if deadline is not None and deadline <= now:
            connection.on_timer(now)
        return connection.transmit(now)

    def picture(self, index: int, segments: list) -> tuple:
        own, peer = self.iss[index], self.iss[1 - index]
        return (
            [normalized(segment, own, peer) for segment in segments],
            variables(self.ends[index], own, peer),
        )


@pytest.mark.parametrize("seed", SEEDS)
def test_traffic_across_the_wrap_matches_traffic_far_from_it(seed):
    rng = random.Random(seed)
    config = dataclasses.replace(
        CONFIG,
        congestion_control=rng.choice(["reno", "newreno", "cubic"]),
        sack=rng.random() < 0.6,
        timestamps=rng.random() < 0.6,
        window_scaling=rng.random() < 0.5,
        receive_buffer_size=rng.choice([4096, 16384, 65536]),
        send_buffer_size=rng.choice([16384, 65536]),
        window_advertisement=rng.choice(("sws_steps", "free_space")),
        nagle_minshall=rng.random() < 0.5,
        offload_segments=rng.choice([1, 1, 4]),  # TSO: segments of several MSS, as the TUN's
    )
    most = rng.choice((2000, 20000))
    near_wrap = [SEQ_MASK + 1 - rng.randint(1, most), SEQ_MASK + 1 - rng.randint(1, most)]
    if seed % 4 < 2:
        near_wrap[seed % 4] = SEQ_MASK  # the SYN itself is the last number before the wrap
    worlds = (World(config, *FAR_FROM_WRAP), World(config, *near_wrap))
    loss = rng.choice([0.0, 0.05, 0.2])
    for _ in drive_in_lockstep(worlds, rng, seed, pauses=(0.0, 0.001, 0.01, 0.2, 1.5), send_below=0.15,
                               recv_below=0.3, close_below=0.33, close_after=100, loss=loss):
        pass


def deliver(worlds, now: float) -> None:
    """Each end transmits, the other receives it all, until both are quiet; the worlds' pictures
    must agree at each transmit."""
    for _ in range(20):
        quiet = True
        for sender in (0, 1):
            sent = [world.transmit(sender, now) for world in worlds]
            pictures = [world.picture(sender, segments) for world, segments in zip(worlds, sent)]
            assert pictures[0] == pictures[1], f"sender {sender}"
            for world, segments in zip(worlds, sent):
                for segment in segments:
                    world.ends[1 - sender].receive(segment, now)
            quiet = quiet and not sent[0]
        if quiet:
            return


@pytest.mark.parametrize("config_seed", range(6))
@pytest.mark.parametrize("first_to_close", (0, 1))
@pytest.mark.parametrize("sizes", [(0, 0), (0, 300), (300, 0), (1000, 5000)])
def test_fins_on_the_last_sequence_number(config_seed, first_to_close, sizes):
    """Each end writes sizes[i] bytes and closes, its FIN taking sequence number 2**32 - 1
    exactly (its ISS chosen for that): ends of data and FINs at the wrap, acknowledged by a 0."""
    rng = random.Random(config_seed)
    config = dataclasses.replace(
        CONFIG, sack=rng.random() < 0.5, timestamps=rng.random() < 0.5, window_scaling=rng.random() < 0.5,
        congestion_control=rng.choice(["reno", "newreno", "cubic"]), receive_buffer_size=65536, send_buffer_size=65536,
    )
    near_wrap = [(SEQ_MASK - 1 - size) & SEQ_MASK for size in sizes]  # ISS + 1 + size = 2**32 - 1
    worlds = (World(config, *FAR_FROM_WRAP), World(config, *near_wrap))
    now = 0.001
    deliver(worlds, now)
    for index in (0, 1):
        if sizes[index]:
            results = [world.ends[index].send(bytes(sizes[index]), now) for world in worlds]
            assert results[0] == results[1]
    for order in (first_to_close, 1 - first_to_close):
        now += 0.01
        deliver(worlds, now)
        results = [call(world.ends[order], "recv", 100000, now) for world in worlds]
        assert results[0] == results[1]
        for world in worlds:
            world.ends[order].close(now)
        deliver(worlds, now)
    for world in worlds:
        assert world.client.snd.una == (world.iss[0] + 2 + sizes[0]) & SEQ_MASK  # everything and the FIN
        assert world.server.snd.una == (world.iss[1] + 2 + sizes[1]) & SEQ_MASK
    assert worlds[1].client.snd.una == 0 and worlds[1].server.snd.una == 0  # both wrapped to 0


@pytest.mark.parametrize("a", [0, 1, 5, SEQ_HALF - 1, SEQ_HALF, SEQ_HALF + 1, SEQ_MASK - 1, SEQ_MASK])
@pytest.mark.parametrize("b", [0, 1, 5, SEQ_HALF - 1, SEQ_HALF, SEQ_HALF + 1, SEQ_MASK - 1, SEQ_MASK])
def test_the_inline_forms_are_the_helpers(a, b):
    """seq.py's docstring gives each hot path's inline form; each equals its helper."""
    assert ((a - b + SEQ_HALF) & SEQ_MASK) - SEQ_HALF == seq_diff(a, b)
    assert (a + b) & SEQ_MASK == seq_add(a, b)
    assert (((a - b) & SEQ_MASK) >= SEQ_HALF) == seq_lt(a, b)
    assert (((b - a) & SEQ_MASK) >= SEQ_HALF) == seq_gt(a, b)
    assert (a == b or ((a - b) & SEQ_MASK) >= SEQ_HALF) == seq_le(a, b)
