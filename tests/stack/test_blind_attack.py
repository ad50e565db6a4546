"""Issue 9's goal for blind injection, at test scale: an off-path attacker who knows the 4-tuple
but not the sequence numbers (see blind_attack.py for the attacker and the outcomes) sends
17,000 forged segments of each kind, sweeping the whole sequence space so that some land in the
receive window, against an ESTABLISHED connection carrying genuine data and against connections
in TIME-WAIT. scripts/attack_blind.py runs 100,000 of each and prints the outcome counts."""

from __future__ import annotations

import pytest

from blind_attack import CONFIG, FORGERY_INTERVAL, KINDS, attack_established, attack_time_wait

SEED = 20261206
COUNT = 17000  # above 2**32 / 256 KiB: the sweep crosses the receive window at least once
DATA_KINDS = ("data", "timestamp")  # answered within the stack's per-second budget only (as in Linux)


def answers_allowed(kind: str, outcome) -> int:
    """The most answers in any one second the rate limits allow (plus the RFC 5961 challenge
    ACKs, limited on their own)."""
    if kind in DATA_KINDS:
        return CONFIG.unacceptable_ack_limit + outcome["challenge_acks"]
    # One ACK per unacceptable_ack_interval: at most 1 + 1 / interval in one second.
    return int(1 / CONFIG.unacceptable_ack_interval) + 1 + outcome["challenge_acks"]


@pytest.mark.parametrize("kind", KINDS)
def test_blind_forgeries_never_kill_an_established_connection(kind):
    print(f"seed={SEED} count={COUNT} kind={kind}")
    outcome = attack_established(kind, COUNT, SEED)
    print(dict(outcome))
    assert outcome["connections_killed"] == 0
    assert outcome["genuine_data_corrupted_or_lost"] == 0
    assert outcome["genuine_bytes_delivered"] == 2 * 1000 * (COUNT // 100) + 6
    assert outcome["most_answers_in_one_second"] <= answers_allowed(kind, outcome)
    # Without the limits every forgery drew an ACK: 10,000 a second (issue 9).
    seconds = int(COUNT * FORGERY_INTERVAL) + 1
    assert outcome["answers"] <= seconds * answers_allowed(kind, outcome)
    if kind in ("syn", "fin"):
        # Nearly all were unacceptable, and nearly all of those went unanswered.
        assert outcome["ack_for_unacceptable_rate_limited"] >= COUNT * 0.99


@pytest.mark.parametrize("kind", KINDS)
def test_blind_forgeries_never_hold_time_wait_past_two_msl(kind):
    count = 2000 if kind == "syn" else COUNT  # each forged SYN soon ends a TIME-WAIT (below)
    print(f"seed={SEED} count={count} kind={kind}")
    outcome = attack_time_wait(kind, count, SEED)
    print(dict(outcome))
    assert outcome["time_wait_held_past_2msl"] == 0
    assert outcome["time_wait_timer_moved"] == 0
    if kind == "syn":
        # RFC 6191 2 (and Linux): a SYN with a newer timestamp ends TIME-WAIT, and a random
        # TSval is newer half of the time; the stack then answers the SYN with a RST (no
        # listener here). Each TIME-WAIT connection answers at most one older SYN.
        assert outcome["answers"] <= 2 * outcome["time_wait_connections"]
    else:
        assert outcome["time_wait_ended_early"] == 0
        assert outcome["most_answers_in_one_second"] <= answers_allowed(kind, outcome)


def test_the_per_second_budget_is_shared_by_all_connections_of_a_stack():
    # Forged data spread over many connections cannot draw more than unacceptable_ack_limit
    # ACKs a second from one stack (the attacker knows the 4-tuples, not the sequence numbers).
    import dataclasses
    import random

    from ustack.stack import Stack
    from ustack.tcp.isn import IsnGenerator
    from ustack.wire import TcpSegment, build_tcp_packet
    from ustack.wire.tcp import ACK

    from blind_attack import CLIENT, SERVER, SERVER_PORT

    config = dataclasses.replace(CONFIG, unacceptable_ack_limit=5)
    client = Stack(CLIENT, config, isn_generator=IsnGenerator(b"c" * 32), port_seed=1)
    server = Stack(SERVER, config, isn_generator=IsnGenerator(b"s" * 32), port_seed=2)
    server.listen(SERVER_PORT)
    connections = [client.connect(SERVER, SERVER_PORT, 0.0) for _ in range(4)]
    for _ in range(3):
        for packet in client.transmit(0.0):
            server.receive(packet, 0.0)
        for packet in server.transmit(0.0):
            client.receive(packet, 0.0)
    assert len(server.connections) == 4
    rng = random.Random(SEED)
    answers = 0
    for i in range(40):
        connection = connections[i % 4]
        forged = TcpSegment(connection.local_port, SERVER_PORT, rng.getrandbits(32), rng.getrandbits(32), ACK, 1000, payload=b"x" * 10)
        server.receive(build_tcp_packet(CLIENT, SERVER, forged), 0.5)
        answers += len(server.transmit(0.5))
    assert answers == 5
    limited = sum(c.drops["ack_for_unacceptable_rate_limited"] for c in server.connections.values())
    assert limited == 35
