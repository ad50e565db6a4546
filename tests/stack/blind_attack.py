"""An off-path (blind) attacker against two ustack hosts, on virtual time.

The attacker KNOWS the 4-tuple (addresses and ports) of a connection, and NOT its sequence
numbers, acknowledgement numbers or timestamps. It sweeps the sequence space: the i-th forgery of
`count` carries sequence number start + i * 2**32 / count (a random start), so with count above
2**32 / window (16,384 for the default 256 KiB window) some forgeries of every kind land inside
the receive window, as RFC 5961 1.1 describes the attack. Acknowledgement numbers and timestamps
are drawn from a seeded random generator. Five kinds of forged segment, each sent `count` times, 0.1 ms apart
(10,000 per virtual second, the rate at which issue 9 saw one ACK answer each forgery):

    rst        RST with a random sequence number
    syn        SYN with a random sequence number (and a random timestamp)
    fin        FIN+ACK with random sequence and acknowledgement numbers
    data       100 bytes with random sequence and acknowledgement numbers
    timestamp  data with random sequence and acknowledgement numbers and a far-future TSval,
               the "TS.Recent poisoning" of issue 9

Targets: an ESTABLISHED connection, which keeps exchanging genuine data while it is attacked
(every 100 forgeries each side sends 1000 bytes), and a connection in TIME-WAIT (2*MSL = 2 s
here), which is made again whenever it ends so that forgeries keep hitting one. The outcome
counts are what tests/stack/test_blind_attack.py asserts and scripts/attack_blind.py prints.
"""

from __future__ import annotations

import random
from collections import Counter

from ustack.stack import Stack
from ustack.tcp import State, TcpConfig
from ustack.tcp.isn import IsnGenerator
from ustack.wire import TcpOptions, TcpSegment, build_tcp_packet, parse_packet
from ustack.wire.ipv4 import address_value
from ustack.wire.tcp import ACK, FIN, PSH, RST, SYN

KINDS = ("rst", "syn", "fin", "data", "timestamp")
CLIENT = address_value("10.77.0.1")
SERVER = address_value("10.77.0.2")
SERVER_PORT = 80
FORGERY_INTERVAL = 0.0001  # 10,000 forged segments per virtual second
GENUINE_EVERY = 100  # forgeries between two rounds of genuine traffic
CONFIG = TcpConfig(msl=1.0)  # TIME-WAIT lasts 2 s; everything else as by default


class Hosts:
    """Client and server Stacks joined by a lossless wire that delivers at once."""

    def __init__(self, seed: int, now: float) -> None:
        self.now = now
        isn = random.Random(seed)
        self.client = Stack(CLIENT, CONFIG, isn_generator=IsnGenerator(isn.randbytes(32)), port_seed=seed)
        self.server = Stack(SERVER, CONFIG, isn_generator=IsnGenerator(isn.randbytes(32)), port_seed=seed + 1)
        self.listener = self.server.listen(SERVER_PORT)
        self.client_connection = self.client.connect(SERVER, SERVER_PORT, now)
        self.exchange()
        self.server_connection = self.listener.accept()
        assert self.client_connection.state is State.ESTABLISHED and self.server_connection is not None
        self.client_received = bytearray()
        self.server_received = bytearray()
        self.sent_by_client = bytearray()
        self.sent_by_server = bytearray()

    def exchange(self) -> None:
        """Deliver packets both ways until both hosts are quiet (fire due timers first)."""
        for stack in (self.client, self.server):
            stack.on_timer(self.now)
        while True:
            to_server = self.client.transmit(self.now)
            to_client = self.server.transmit(self.now)
            if not to_server and not to_client:
                return
            for packet in to_server:
                self.server.receive(packet, self.now)
            for packet in to_client:
                self.client.receive(packet, self.now)

    def genuine_round(self, payload: bytes) -> None:
        """Each side sends `payload`; each side reads what arrived."""
        for connection, sent in ((self.client_connection, self.sent_by_client), (self.server_connection, self.sent_by_server)):
            if connection.state is State.ESTABLISHED:
                accepted = connection.send(payload, self.now)
                sent += payload[:accepted]
                (self.client if connection is self.client_connection else self.server).poke(connection)
        self.exchange()
        for stack, connection, received in (
            (self.client, self.client_connection, self.client_received),
            (self.server, self.server_connection, self.server_received),
        ):
            if connection.readable:
                received += connection.recv(1 << 20, self.now)
                stack.poke(connection)  # a window update may be due
        self.exchange()


class Sweep:
    """The attacker's sequence numbers: `count` of them spread evenly over the 2**32 space."""

    def __init__(self, rng: random.Random, count: int) -> None:
        self.next = rng.getrandbits(32)
        self.stride = max((1 << 32) // count, 1)

    def take(self) -> int:
        seq = self.next
        self.next = (seq + self.stride) & 0xFFFFFFFF
        return seq


def forged_segment(kind: str, rng: random.Random, seq: int, src_port: int, dst_port: int) -> TcpSegment:
    ack = rng.getrandbits(32)
    tsval = rng.getrandbits(32)
    if kind == "rst":
        return TcpSegment(src_port, dst_port, seq, 0, RST, 0)
    if kind == "syn":
        return TcpSegment(src_port, dst_port, seq, 0, SYN, 65535, options=TcpOptions(mss=1460, timestamps=(tsval, 0)))
    if kind == "fin":
        return TcpSegment(src_port, dst_port, seq, ack, FIN | ACK, 65535, options=TcpOptions(timestamps=(tsval, 0)))
    if kind == "data":
        return TcpSegment(src_port, dst_port, seq, ack, ACK | PSH, 65535, options=TcpOptions(timestamps=(tsval, 0)), payload=bytes(100))
    if kind == "timestamp":
        # Far ahead of any genuine clock (still "newer" modulo 2**32 than a TSval near it).
        far_future = rng.randrange(1 << 30, 1 << 31)
        # A full segment's worth of data: the more it covers, the likelier it overlaps RCV.NXT.
        return TcpSegment(src_port, dst_port, seq, ack, ACK | PSH, 65535, options=TcpOptions(timestamps=(far_future, 0)), payload=bytes(1448))
    raise ValueError(kind)


# The drops after which a connection sends an RFC 5961 challenge ACK (rate-limited on its own).
CHALLENGE_REASONS = ("rst_not_exact", "syn_in_synchronized_state", "ack_of_unsent_data", "ack_too_old")


class Answers:
    """The packets a host sends in answer to forgeries, and the most in any one second."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def add(self, packets: list, now: float) -> None:
        self.times.extend([now] * len(packets))

    def most_in_one_second(self) -> int:
        most, first = 0, 0
        for last, time in enumerate(self.times):
            while time - self.times[first] >= 1.0:
                first += 1
            most = max(most, last - first + 1)
        return most


def _record(outcome: Counter, answers: Answers, connection) -> None:
    drops = connection.drops
    outcome["challenge_acks"] += sum(drops[reason] for reason in CHALLENGE_REASONS) - drops["challenge_ack_rate_limited"]
    for reason in ("ack_for_unacceptable_rate_limited", "challenge_ack_rate_limited", "paws_old_timestamp"):
        outcome[reason] += drops[reason]


def attack_established(kind: str, count: int, seed: int) -> Counter:
    """`count` forgeries of one kind at the server's side of an ESTABLISHED connection (forged
    as from the client), with genuine traffic both ways throughout."""
    rng = random.Random(seed)
    sweep = Sweep(rng, count)
    hosts = Hosts(seed, 0.0)
    target = hosts.server_connection
    outcome: Counter = Counter()
    answers = Answers()
    genuine = bytes(range(256)) * 4
    for i in range(count):
        hosts.now += FORGERY_INTERVAL
        segment = forged_segment(kind, rng, sweep.take(), target.remote_port, target.local_port)
        hosts.server.receive(build_tcp_packet(CLIENT, SERVER, segment), hosts.now)
        packets = hosts.server.transmit(hosts.now)
        answers.add(packets, hosts.now)
        for packet in packets:
            hosts.client.receive(packet, hosts.now)  # the real client hears the answers
        if target.state is not State.ESTABLISHED:
            outcome["connections_killed"] += 1
            break
        if i % GENUINE_EVERY == GENUINE_EVERY - 1:
            hosts.genuine_round(genuine[: 1000])
    hosts.now += 1.0  # let any loss recovery finish
    hosts.genuine_round(b"end")
    if target.state is not State.ESTABLISHED or hosts.client_connection.state is not State.ESTABLISHED:
        outcome["connections_killed"] += 1 if not outcome["connections_killed"] else 0
    if bytes(hosts.server_received) != bytes(hosts.sent_by_client) or bytes(hosts.client_received) != bytes(hosts.sent_by_server):
        outcome["genuine_data_corrupted_or_lost"] += 1
    outcome["genuine_bytes_delivered"] = len(hosts.server_received) + len(hosts.client_received)
    outcome["answers"] = len(answers.times)
    outcome["most_answers_in_one_second"] = answers.most_in_one_second()
    _record(outcome, answers, target)
    return outcome


def attack_time_wait(kind: str, count: int, seed: int) -> Counter:
    """`count` forgeries of one kind at a client connection in TIME-WAIT (forged as from the
    server). When the TIME-WAIT connection ends, a new one is made for the next forgeries."""
    rng = random.Random(seed)
    sweep = Sweep(rng, count)
    outcome: Counter = Counter()
    answers = Answers()
    now = 0.0
    sent = 0
    generation = 0
    while sent < count:
        hosts = Hosts(seed + generation, now)
        generation += 1
        connection = hosts.client_connection
        connection.close(hosts.now)
        hosts.client.poke(connection)
        hosts.exchange()
        hosts.server_connection.close(hosts.now)
        hosts.server.poke(hosts.server_connection)
        hosts.exchange()
        assert connection.state is State.TIME_WAIT
        deadline = connection.next_deadline()
        assert deadline == hosts.now + 2 * CONFIG.msl
        key = (CLIENT, connection.local_port, SERVER, SERVER_PORT)
        outcome["time_wait_connections"] += 1
        while sent < count:
            hosts.now += FORGERY_INTERVAL * 10  # 1,000 per second: a TIME-WAIT lasts 2,000 of them
            if hosts.now >= deadline:
                hosts.client.on_timer(hosts.now)
                hosts.client.transmit(hosts.now)
                if key in hosts.client.connections:
                    outcome["time_wait_held_past_2msl"] += 1
                break
            segment = forged_segment(kind, rng, sweep.take(), SERVER_PORT, connection.local_port)
            hosts.client.receive(build_tcp_packet(SERVER, CLIENT, segment), hosts.now)
            sent += 1
            answers.add(hosts.client.transmit(hosts.now), hosts.now)
            if connection.next_deadline() not in (None, deadline):
                outcome["time_wait_timer_moved"] += 1
                deadline = connection.next_deadline()
            if key not in hosts.client.connections:
                # RFC 6191: a SYN with a newer timestamp (half of random ones) may reopen the
                # 4-tuple, as in Linux; an RST at exactly RCV.NXT ends it (RFC 1337 is off).
                outcome["time_wait_ended_early"] += 1
                break
        outcome["resets_for_no_connection"] += hosts.client.counters["resets_sent"]
        _record(outcome, answers, connection)
        now = hosts.now + 10.0
    outcome["answers"] = len(answers.times)
    outcome["most_answers_in_one_second"] = answers.most_in_one_second()
    return outcome
