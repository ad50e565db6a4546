"""Blind injection (issue 9): an off-path attacker who knows the 4-tuple but NOT the sequence
numbers forges segments at one connection. Each rule of RFC 5961, RFC 7323 5.3 and RFC 9293
that keeps such a segment from harming the connection has a test here, on virtual time."""

from __future__ import annotations

import dataclasses

from tcp_script import *  # noqa: F403
from ustack.tcp import Connection, State, TcpConfig

TS_CONFIG = dataclasses.replace(CONFIG, timestamps=True)
FAR_FUTURE = 0x7FFF0000  # a TSval far ahead of the peer's clock (still "newer" modulo 2**32)


def established_with_timestamps() -> Script:
    connection = Connection.open_active(TS_CONFIG, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
    script = Script(connection)
    connection.transmit(0.0)  # our SYN
    script.now = 0.010
    script.receive(incoming(remote(0), local(1), SYN | ACK, options=TcpOptions(mss=1460, timestamps=(5000, 0))))
    [ack] = connection.transmit(script.now)
    assert script.state is State.ESTABLISHED and connection.rcv.ts_recent == 5000 and ack.flags == ACK
    return script


def test_a_segment_with_an_unacceptable_ack_does_not_move_ts_recent():
    # RFC 7323 5.3 with RFC 5961 5: TS.Recent follows only a segment that passed the sequence
    # check AND the ACK check. The attacker's guess: a segment overlapping RCV.NXT (a window's
    # worth of guesses finds one) whose ACK is far beyond SND.MAX, and a far-future TSval.
    script = established_with_timestamps()
    connection = script.connection
    forged = incoming(remote(1), local(1) ^ 0x80000000, payload=b"evil", options=TcpOptions(timestamps=(FAR_FUTURE, 0)))
    script.receive(forged)
    assert connection.drops["ack_of_unsent_data"] + connection.drops["ack_too_old"] == 1
    assert connection.rcv.ts_recent == 5000, "a forged segment moved TS.Recent"
    connection.transmit(script.now)  # the (rate-limited) challenge ACK
    # Genuine traffic still flows: the peer's next segment passes PAWS and its data arrives.
    script.now = 0.050
    script.receive(incoming(remote(1), local(1), payload=b"hello", options=TcpOptions(timestamps=(5040, 10))))
    assert connection.drops["paws_old_timestamp"] == 0
    assert connection.recv(100, script.now) == b"hello" and connection.rcv.ts_recent == 5040


def test_a_segment_with_an_acceptable_ack_still_updates_ts_recent():
    script = established_with_timestamps()
    script.receive(incoming(remote(1), local(1), payload=b"a", options=TcpOptions(timestamps=(5010, 10))))
    assert script.connection.rcv.ts_recent == 5010


def time_wait_script() -> Script:
    script = time_wait()
    assert script.connection.next_deadline() == 60.0
    return script


def test_forged_fins_with_random_sequence_numbers_do_not_extend_time_wait():
    # RFC 9293 3.10.7.4 eighth: only a FIN that passes the sequence check restarts 2*MSL.
    import random

    seed = 9
    print("seed", seed)
    rng = random.Random(seed)
    script = time_wait_script()
    connection = script.connection
    answers = 0
    for i in range(25):
        script.now = 2.0 * i
        seq = rng.getrandbits(32)
        if seq_in_receive_window(connection, seq):
            continue  # the attacker guessed right; not this test's case
        script.receive(incoming(seq, rng.getrandbits(32), ACK | FIN))
        answers += len(connection.transmit(script.now))
        assert connection.next_deadline() == 60.0, f"forged FIN #{i} moved TIME-WAIT"
    # Answers to unacceptable segments: at most one per unacceptable_ack_interval (0.5 s) here.
    assert answers <= 25
    script.advance(60.0 - script.now)
    assert script.state is State.CLOSED


def seq_in_receive_window(connection, seq) -> bool:
    from ustack.tcp.seq import seq_in_window

    return seq_in_window(seq, connection.rcv_nxt, max(connection._receive_window(), 1))


def test_an_acceptable_retransmitted_fin_still_restarts_time_wait():
    script = time_wait_script()
    script.advance(50.0)
    script.receive(incoming(remote(1), local(2), ACK | FIN))
    script.expect(outgoing(local(2), remote(2), window=AFTER_FIN))
    assert script.connection.next_deadline() == 110.0


def test_acks_for_unacceptable_segments_are_rate_limited_per_connection():
    # Like Linux's tcp_invalid_ratelimit: at most one such ACK per unacceptable_ack_interval,
    # for out-of-window ACKs, FINs and SYNs alike.
    script = established()
    connection = script.connection
    sent = 0
    for i in range(99):
        script.now = i * 0.01  # 99 forgeries in one second
        flags = (ACK, ACK | FIN, SYN)[i % 3]
        script.receive(incoming(remote(100000 + 7 * i), local(1), flags))
        sent += len(connection.transmit(script.now))
    assert sent == 2  # at t=0 and t=0.5
    assert connection.drops["ack_for_unacceptable_rate_limited"] == 97
    assert connection.drops["unacceptable_sequence"] == 99


def test_the_per_connection_interval_is_a_setting():
    config = dataclasses.replace(CONFIG, unacceptable_ack_interval=0.0)
    script = established(config)
    connection = script.connection
    for i in range(10):
        script.receive(incoming(remote(100000 + i), local(1)))
        script.expect(outgoing(local(1), remote(1)))
    assert connection.drops["ack_for_unacceptable_rate_limited"] == 0


def test_the_per_second_budget_limits_acks_for_unacceptable_data_too():
    # The second limit, like RFC 5961 7's challenge ACK limit: at most unacceptable_ack_limit per
    # second, whatever the segment carries.
    config = dataclasses.replace(CONFIG, unacceptable_ack_limit=3)
    script = established(config)
    connection = script.connection
    sent = 0
    for i in range(10):
        script.receive(incoming(remote(100000 + i), local(1), payload=b"x"))
        sent += len(connection.transmit(script.now))
    assert sent == 3 and connection.drops["ack_for_unacceptable_rate_limited"] == 7
    script.now = 1.0  # a new second
    script.receive(incoming(remote(200000), local(1), payload=b"x"))
    script.expect(outgoing(local(1), remote(1)))


def test_old_duplicate_data_is_answered_each_time_as_in_linux():
    # Data cannot be part of an ACK loop, and a peer repeating data whose ACK was lost must hear
    # of it: only the per-second budget applies (Linux's tcp_oow_rate_limited spares data too).
    script = established()
    connection = script.connection
    script.receive(incoming(remote(1), local(1), payload=b"abc"))
    connection.transmit(script.now)
    for _ in range(5):
        script.receive(incoming(remote(1), local(1), payload=b"abc"))  # old duplicate
        script.expect(outgoing(local(1), remote(4), window=BUFFER - 3))
    assert connection.drops["ack_for_unacceptable_rate_limited"] == 0
