"""The wire layer used from several threads at once: each thread's packets keep their own fields.

cffi releases the GIL around every C call, so two threads (two sock.Network hosts in one process:
each runs its stack in a thread of its own) really do parse and build at the same moment. The C
functions write into structs and an output buffer that codec.py hands them; were those shared,
one thread would read the other's packet: a payload sliced at another packet's offset under its
own sequence number, which every checksum has already passed. That is how
tests/stack/test_sock.py::test_blocking_echo_from_threads once echoed wrong bytes from byte
43,440 on (a segment boundary).

The interleavings are forced, so the tests are deterministic: the C function is wrapped so that,
at the worst moment, another thread parses or builds a whole other packet (and is joined) before
the first thread goes on. The last test lets two threads run freely for a bounded time.
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from ustack.wire import codec, parse_packet
from ustack.wire.codec import (
    build_icmp_packet,
    build_ipv4_packet,
    build_tcp_packet,
    tcp_options_length,
)
from ustack.wire.icmp import ECHO_REQUEST, IcmpMessage
from ustack.wire.ipv4 import Ipv4Header
from ustack.wire.tcp import ACK, PSH, TcpOptions, TcpSegment

A_ADDRESS, B_ADDRESS = 0x0A4D0001, 0x0A4D0002  # 10.77.0.1, 10.77.0.2 as in tests/stack
A6_ADDRESS, B6_ADDRESS = bytes.fromhex("fd000077" + "00" * 11 + "01"), bytes.fromhex("fd000077" + "00" * 11 + "02")


def segment(seq: int, payload: bytes, sack_blocks: tuple = (), port: int = 7) -> TcpSegment:
    options = TcpOptions(None, None, False, sack_blocks, (seq & 0xFFFF, 99))
    return TcpSegment(port, 40000, seq, 1000, ACK | PSH, 512, 0, options, payload)


# A's data segment without SACK blocks; B's with two, so its payload starts 20 bytes further in.
SEGMENT_A = segment(43440, bytes(range(256)) * 5 + bytes(168), port=7)
SEGMENT_B = segment(7_000_000, b"\xee" * 1428, sack_blocks=((5, 9), (20, 30)), port=9)
PACKET_A = build_tcp_packet(B_ADDRESS, A_ADDRESS, SEGMENT_A)
PACKET_B = build_tcp_packet(A_ADDRESS, B_ADDRESS, SEGMENT_B)
ICMP_A = build_icmp_packet(B_ADDRESS, A_ADDRESS, IcmpMessage(ECHO_REQUEST, 0, 1, 2, payload=b"from-b-to-a"))


def in_another_thread(function, *args) -> None:
    """Run function(*args) to completion in a thread of its own (as the other host's loop would)."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            function(*args)
        except BaseException as error:  # handed back to the test
            failure.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10.0)
    assert not thread.is_alive(), "the other thread hung"
    if failure:
        raise failure[0]


@pytest.mark.parametrize("packet", [PACKET_A, ICMP_A], ids=["tcp-with-timestamps", "icmp-echo"])
def test_parse_keeps_its_fields_when_another_thread_parses_meanwhile(monkeypatch, packet):
    alone = parse_packet(packet)
    real_parse = codec._parse

    def parse_then_the_other_host_parses(data, length, fields):
        reason = real_parse(data, length, fields)
        if data is packet:  # between the C call and the reading of its fields
            in_another_thread(parse_packet, PACKET_B)
        return reason

    monkeypatch.setattr(codec, "_parse", parse_then_the_other_host_parses)
    assert parse_packet(packet) == alone


def test_parse_keeps_its_sack_blocks_when_another_thread_parses_meanwhile(monkeypatch):
    """SACK blocks are read from the C struct after the other fields (no cache for them)."""
    ours = build_tcp_packet(B_ADDRESS, A_ADDRESS, segment(5000, b"x" * 100, sack_blocks=((1, 2),)))
    alone = parse_packet(ours)
    real_parse = codec._parse

    def parse_then_the_other_host_parses(data, length, fields):
        reason = real_parse(data, length, fields)
        if data is ours:
            in_another_thread(parse_packet, PACKET_B)
        return reason

    monkeypatch.setattr(codec, "_parse", parse_then_the_other_host_parses)
    parsed = parse_packet(ours)
    assert parsed.tcp.options.sack_blocks == ((1, 2),)
    assert parsed == alone


@pytest.mark.parametrize("when", ["before", "after"])
def test_build_keeps_its_packet_when_another_thread_builds_meanwhile(monkeypatch, when):
    """`before`: the other thread fills in its segment's description while C is about to read
    ours; `after`: it writes its packet while ours waits to be copied out."""
    real_build = codec._build_tcp

    def build_beside_the_other_host(out, capacity, spec, payload, length):
        if payload is SEGMENT_A.payload and when == "before":
            in_another_thread(build_tcp_packet, A_ADDRESS, B_ADDRESS, SEGMENT_B)
        result = real_build(out, capacity, spec, payload, length)
        if payload is SEGMENT_A.payload and when == "after":
            in_another_thread(build_tcp_packet, A_ADDRESS, B_ADDRESS, SEGMENT_B)
        return result

    monkeypatch.setattr(codec, "_build_tcp", build_beside_the_other_host)
    assert build_tcp_packet(B_ADDRESS, A_ADDRESS, SEGMENT_A) == PACKET_A


def test_build_ipv6_keeps_its_packet_when_another_thread_builds_meanwhile(monkeypatch):
    expected = build_tcp_packet(B6_ADDRESS, A6_ADDRESS, SEGMENT_A)
    real_build = codec._build_tcp6

    def build_then_the_other_host_builds(out, capacity, *rest):
        result = real_build(out, capacity, *rest)
        in_another_thread(build_tcp_packet, A_ADDRESS, B_ADDRESS, SEGMENT_B)
        return result

    monkeypatch.setattr(codec, "_build_tcp6", build_then_the_other_host_builds)
    assert build_tcp_packet(B6_ADDRESS, A6_ADDRESS, SEGMENT_A) == expected


def test_small_builders_keep_their_packet_when_another_thread_builds_meanwhile(monkeypatch):
    """build_ipv4_packet and tcp_options_length also hand C a struct of the module's."""
    header = Ipv4Header(B_ADDRESS, A_ADDRESS, 17, 64, 0, 1234, False, False, 0, 20, 0)
    expected = build_ipv4_packet(header, b"udp?")
    assert expected[:4] == bytes([0x45, 0, 0, 24])
    real_header = codec.lib.ustack_build_ipv4_header

    class Lib:  # lib itself is read-only: a stand-in with the one function wrapped
        def __getattr__(self, name):
            return getattr(codec.lib, name)

        @staticmethod
        def ustack_build_ipv4_header(out, capacity, fields):
            result = real_header(out, capacity, fields)
            in_another_thread(build_tcp_packet, A_ADDRESS, B_ADDRESS, SEGMENT_B)  # before the copy
            return result

    monkeypatch.setattr(codec, "lib", Lib())
    assert build_ipv4_packet(header, b"udp?") == expected
    monkeypatch.undo()

    options = TcpOptions(None, None, False, (), (1, 2))  # timestamps alone: 12 bytes
    real_length = codec.lib.ustack_tcp_options_length

    class LengthLib(Lib):
        @staticmethod
        def ustack_tcp_options_length(spec):
            in_another_thread(build_tcp_packet, A_ADDRESS, B_ADDRESS, SEGMENT_B)  # two SACK blocks: 32
            return real_length(spec)

    monkeypatch.setattr(codec, "lib", LengthLib())
    assert tcp_options_length(options) == 12


def test_two_threads_parsing_and_building_at_once_each_get_their_own_packets():
    """Both hosts' threads run freely, as two sock.Network stacks do, for a bounded time; every
    packet parsed and built must be exactly its own."""
    seed = 20261121
    print(f"seed={seed}")
    rng = random.Random(seed)
    work = {
        "a": [segment(rng.getrandbits(32), rng.randbytes(1448)) for _ in range(20)],
        "b": [segment(rng.getrandbits(32), rng.randbytes(1428), ((1, 2), (3, 4)), port=9) for _ in range(20)],
    }
    addresses = {"a": (B_ADDRESS, A_ADDRESS), "b": (A_ADDRESS, B_ADDRESS)}
    built = {name: [build_tcp_packet(*addresses[name], one) for one in work[name]] for name in work}
    wrong = {"a": 0, "b": 0}
    rounds = {"a": 0, "b": 0}
    start = threading.Barrier(2)
    deadline = time.monotonic() + 1.0  # a bound, not a measurement

    def host(name: str) -> None:
        start.wait()
        source, destination = addresses[name]
        while time.monotonic() < deadline:
            for one, packet in zip(work[name], built[name]):
                parsed = parse_packet(packet)
                if parsed.tcp != one or parsed.ip.src != source:
                    wrong[name] += 1
                if build_tcp_packet(source, destination, one) != packet:
                    wrong[name] += 1
            rounds[name] += 1

    threads = [threading.Thread(target=host, args=(name,)) for name in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30.0)
        assert not thread.is_alive()
    assert rounds["a"] and rounds["b"]
    assert wrong == {"a": 0, "b": 0}, f"seed={seed}: packets crossed between threads in {rounds} rounds"
