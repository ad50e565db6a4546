"""Hostile packets into a Stack with live connections (issue 9): only named drops, never an
exception, no ACK storm, and both tables empty once everybody closes and every timer has run.

The world and the packet maker are in stack_fuzzing.py (scripts/fuzz_stack.py runs a million
packets through the same). The attacker is on the path: it knows the 4-tuples, sequence
numbers and timestamps of the live connections (see stack_fuzzing.py). Hypothesis draws the
randomness from a fixed seed (printed; USTACK_TEST_SEED replays another) and no example
database, so every run tries the same packets.
"""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, given, seed, settings, strategies as st

from stack_fuzzing import FuzzWorld, check_drop_names, hostile_packet
from twohosts import default_seed
from ustack.tcp import State
from ustack.wire import TcpOptions, TcpSegment, build_tcp_packet
from ustack.wire.tcp import SYN

FUZZ_SEED = default_seed()


def run_world(rng, count: int, stack_first: bool) -> FuzzWorld:
    world = FuzzWorld(stack_first)
    for _ in range(count):
        packet = hostile_packet(rng, world)
        try:
            world.inject(packet)
            if rng.random() < 0.05:
                world.run_timers()
            if rng.random() < 0.05:
                world.accept_all()
        except Exception as error:
            raise AssertionError(f"packet {packet.hex()} at t={world.now}: {error!r}") from error
    check_drop_names(world.drop_names())
    world.finish()
    return world


@seed(FUZZ_SEED)
# No shrinking: a failure already names the packet in hex, and shrinking a stream of random draws
# through a world that reacts to each can run for minutes.
@settings(
    max_examples=60,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
@given(rng=st.randoms(use_true_random=False), count=st.integers(1, 150), stack_first=st.booleans())
def test_hostile_packets_are_dropped_by_name_and_leave_nothing_behind(rng, count, stack_first):
    print(f"hypothesis seed={FUZZ_SEED} (set USTACK_TEST_SEED to replay another)")
    run_world(rng, count, stack_first)


def test_the_world_has_the_states_it_claims_and_ends_empty_without_attack():
    world = FuzzWorld()
    states = sorted(connection.state.value for connection in world.ours.connections.values())
    assert states == ["CLOSE-WAIT", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED", "TIME-WAIT"]
    world.finish()
    assert world.now > 0  # the timers really ran (TIME-WAIT, at least)


def test_a_forged_syn_for_a_connection_we_lost_raises_no_ack_storm():
    """Found by the fuzzer: our side of a connection is gone (here: reset by a forged RST
    the attacker, who knows the numbers, put at RCV.NXT) while the peer still has it. A forged SYN
    on that 4-tuple makes us SYN-RECEIVED; the peer answers our SYN-ACK with a challenge ACK
    (RFC 5961 4), which our SYN-RECEIVED finds unacceptable and answers with an ACK, which the
    peer finds unacceptable... Only rate-limiting the ACKs sent for unacceptable segments (as
    Linux's tcp_invalid_ratelimit does) stops it; exchange() fails on a storm."""
    world = FuzzWorld()
    victim = next(c for c in world.ours.connections.values() if c.state is State.ESTABLISHED and c.local_port == 80)
    port = victim.remote_port
    reset = TcpSegment(port, 80, victim.rcv_nxt, 0, 0x04, 0)
    world.inject(build_tcp_packet(world.peer.address, world.ours.address, reset))
    assert victim.state is State.CLOSED
    syn = TcpSegment(port, 80, 12345, 0, SYN, 1000, options=TcpOptions(mss=536))
    world.inject(build_tcp_packet(world.peer.address, world.ours.address, syn))
    world.finish()
