"""Two worlds of connection pairs driven in lockstep by one seeded stream of user calls, timers
and losses: the differential tests' one driver (test_sequence_space_shift.py: the same traffic
near the 2**32 wrap and far from it; test_timer_cancel_guards.py: the same traffic with and
without a cut). A world has `ends` (client, server), `transmit(index, now)` (due timers fire
first) and `picture(index, segments)` (what must agree between the worlds)."""

from __future__ import annotations

from ustack.tcp import TcpCallError


def call(connection, method: str, *args):
    """A user call's result, or the reason it was refused (the worlds must agree on either)."""
    try:
        return getattr(connection, method)(*args)
    except TcpCallError as error:
        return error.reason


def drive_in_lockstep(worlds, rng, seed: int, *, pauses: tuple, send_below: float, recv_below: float,
                      close_below: float, close_after: int, loss: float, steps: int = 300):
    """Each step: a pause from `pauses`, then on a random end a send, a read, a close or shutdown
    (once, after step `close_after`) or nothing, the same in every world; then both ends transmit,
    and each segment reaches the other end unless lost (the same segments in every world). The
    worlds' results and pictures must agree; yields each step's number after its deliveries."""
    now = 0.0
    closed = [False, False]
    for step in range(steps):
        now += rng.choice(pauses)
        action = rng.random()
        index = rng.randrange(2)
        if action < send_below and not closed[index]:
            data = bytes([step & 0xFF]) * rng.choice((1, 100, 1460, 3000, 20000))
            results = [call(world.ends[index], "send", data, now) for world in worlds]
        elif action < recv_below:
            size = rng.choice((1, 1000, 100000))
            results = [call(world.ends[index], "recv", size, now) for world in worlds]
        elif action < close_below and step > close_after and not closed[index]:
            closed[index] = True
            method = rng.choice(("close", "shutdown"))
            results = [call(world.ends[index], method, now) for world in worlds]
        else:
            results = []
        assert results[:1] == results[1:], f"seed {seed} step {step}"
        for sender in (index, 1 - index):
            sent = [world.transmit(sender, now) for world in worlds]
            pictures = [world.picture(sender, segments) for world, segments in zip(worlds, sent)]
            assert pictures[0] == pictures[1], f"seed {seed} step {step} sender {sender}"
            for n in range(len(sent[0])):
                if rng.random() < loss:
                    continue
                for world, segments in zip(worlds, sent):
                    world.ends[1 - sender].receive(segments[n], now)
        yield step
