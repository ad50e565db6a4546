"""ustack/reassembly.py on virtual time: fragments in any order, duplicates, overlap (RFC 5722),
the timeout, the memory ceiling, the fragment cap, lengths (RFC 791, RFC 815), and the IPv4 front's
tiny-fragment rules (RFC 1858). Every fragment that is not kept must show up under a named drop."""

from __future__ import annotations

import os
import random
from collections import Counter

import pytest

from ustack.reassembly import (
    DATAGRAM_OVERHEAD,
    FRAGMENT_OVERHEAD,
    IPV4_MAX_PAYLOAD,
    Ipv4Reassembly,
    ReassemblyLimits,
    Reassembler,
)
from ustack.wire import Ipv4Header, TcpSegment, build_ipv4_packet, build_tcp_packet, parse_packet
from ustack.wire.ipv4 import PROTOCOL_ICMP, PROTOCOL_TCP, PROTOCOL_UDP, address_value
from ustack.wire.tcp import SYN

OURS = address_value("10.77.0.2")
PEER = address_value("10.77.0.1")
KEY = ("any", "opaque", "key")
DATA = bytes(range(256)) * 4  # 1024 bytes


def pieces(data: bytes, size: int):
    """(offset, bytes, more) for `data` cut every `size` bytes."""
    return [(offset, data[offset:offset + size], offset + size < len(data)) for offset in range(0, len(data), size)]


def feed(reassembler, fragments, now=0.0, key=KEY):
    results = [reassembler.add(key, offset, data, more, now, head=("head", offset)) for offset, data, more in fragments]
    return [result for result in results if result is not None]


def test_in_order_fragments_make_the_datagram_with_the_first_fragments_head():
    reassembler = Reassembler(65535)
    [(head, payload)] = feed(reassembler, pieces(DATA, 128))
    assert payload == DATA and head == ("head", 0)
    assert reassembler.counters["reassembly_fragments_received"] == 8
    assert reassembler.counters["reassembly_datagrams_completed"] == 1
    assert reassembler.pending == 0 and reassembler.memory_used == 0 and not reassembler.drops


def test_any_order_makes_the_same_datagram():
    seed = int(os.environ.get("USTACK_TEST_SEED", "0")) or random.randrange(1 << 30)
    print(f"seed={seed}")
    rng = random.Random(seed)
    for _ in range(50):
        fragments = pieces(DATA, 8 * rng.randint(1, 40))
        rng.shuffle(fragments)
        reassembler = Reassembler(65535)
        results = feed(reassembler, fragments)
        assert [payload for _, payload in results] == [DATA]
        assert results[0][0] == ("head", 0)  # from the offset-0 fragment, whenever it came
        assert reassembler.memory_used == 0 and not reassembler.drops


def test_the_last_fragment_arriving_first_defines_the_length():
    reassembler = Reassembler(65535)
    fragments = pieces(DATA, 256)
    assert feed(reassembler, [fragments[-1]]) == []
    assert feed(reassembler, fragments[:2]) == []  # 0..512 of 1024: not yet
    [(_, payload)] = feed(reassembler, [fragments[2]])
    assert payload == DATA


def test_an_exact_duplicate_is_dropped_alone():
    reassembler = Reassembler(65535)
    first, second, third, fourth = pieces(DATA, 256)
    feed(reassembler, [first, second, second])
    assert reassembler.drops == Counter({"reassembly_duplicate_fragment": 1})
    [(_, payload)] = feed(reassembler, [third, fourth, fourth])
    assert payload == DATA
    # Once complete the datagram is gone: a late copy of a fragment starts a new one, which the
    # timeout will clear.
    assert reassembler.pending == 1


@pytest.mark.parametrize("overlapping", [
    (128, DATA[128:384], True),  # straddles the end of the first fragment
    (0, DATA[0:128], True),  # inside the first fragment, same start
    (248, DATA[248:256], True),  # inside, at its end
    (0, bytes(256), True),  # same range, other bytes: a rewrite, not a duplicate
    (248, DATA[248:1024], False),  # a last fragment reaching back into the first
], ids=["straddles", "inside-start", "inside-end", "rewrite", "last-reaches-back"])
def test_overlap_discards_the_whole_datagram_and_what_is_still_to_come(overlapping):
    reassembler = Reassembler(65535)
    fragments = pieces(DATA, 256)
    feed(reassembler, [fragments[0]])
    assert feed(reassembler, [overlapping]) == []
    assert reassembler.drops == Counter({"reassembly_overlap": 2})  # the held one and the new one
    assert reassembler.counters["reassembly_datagrams_discarded"] == 1
    assert reassembler.memory_used == DATAGRAM_OVERHEAD  # only the record that refuses the rest
    # RFC 5722 3: the fragments not yet received are discarded too, even the honest ones.
    assert feed(reassembler, fragments) == []
    assert reassembler.drops["reassembly_datagram_discarded"] == 4
    # Its time over, the key may carry a new datagram.
    reassembler.on_timer(30.0)
    assert reassembler.pending == 0 and reassembler.memory_used == 0
    assert reassembler.drops["reassembly_timeout"] == 0  # a discarded datagram held nothing
    [(_, payload)] = feed(reassembler, fragments, now=30.0)
    assert payload == DATA


def test_fragments_of_other_datagrams_do_not_meet():
    reassembler = Reassembler(65535)
    first, second = pieces(DATA[:512], 256)
    feed(reassembler, [first], key=("a",))
    feed(reassembler, [(0, bytes(256), True)], key=("b",))
    [(_, payload)] = feed(reassembler, [second], key=("a",))
    assert payload == DATA[:512] and reassembler.pending == 1 and not reassembler.drops


def test_timeout_counts_every_fragment_held_and_is_not_restarted_by_later_fragments():
    reassembler = Reassembler(65535, ReassemblyLimits(timeout=30.0))
    fragments = pieces(DATA, 128)
    feed(reassembler, fragments[0:1], now=10.0)
    assert reassembler.next_deadline() == 40.0
    feed(reassembler, fragments[1:3], now=39.0)  # a trickle does not extend the life
    assert reassembler.next_deadline() == 40.0
    reassembler.on_timer(39.999)
    assert reassembler.pending == 1
    reassembler.on_timer(40.0)
    assert reassembler.drops == Counter({"reassembly_timeout": 3})
    assert reassembler.counters["reassembly_datagrams_timed_out"] == 1
    assert reassembler.pending == 0 and reassembler.memory_used == 0 and reassembler.next_deadline() is None


def test_an_arrival_expires_what_is_due_even_without_a_timer():
    reassembler = Reassembler(65535)
    feed(reassembler, pieces(DATA, 128)[0:2], now=0.0, key=("old",))
    feed(reassembler, pieces(DATA, 128)[0:1], now=31.0, key=("new",))
    assert reassembler.drops["reassembly_timeout"] == 2
    assert reassembler.pending == 1


def test_deadlines_come_in_the_order_of_first_fragments():
    reassembler = Reassembler(65535, ReassemblyLimits(timeout=5.0))
    for index in range(3):
        feed(reassembler, pieces(DATA, 128)[0:1], now=float(index), key=(index,))
    expired = []
    for now in (5.0, 6.0, 7.0):
        reassembler.on_timer(now)
        expired.append(reassembler.pending)
    assert expired == [2, 1, 0]


def test_memory_ceiling_evicts_the_oldest_incomplete_datagrams():
    # Room for three datagrams of two 1000-byte fragments each (plus bookkeeping), not four.
    per_datagram = DATAGRAM_OVERHEAD + 2 * (1000 + FRAGMENT_OVERHEAD)
    limit = 3 * per_datagram + 100
    reassembler = Reassembler(65535, ReassemblyLimits(memory_limit=limit))
    data = bytes(3000)
    for index in range(4):
        feed(reassembler, pieces(data, 1000)[0:2], now=float(index), key=(index,))
        assert reassembler.memory_used <= limit
    assert reassembler.pending == 3
    assert reassembler.drops == Counter({"reassembly_memory_limit": 2})  # datagram 0's two fragments
    assert reassembler.counters["reassembly_datagrams_evicted"] == 1
    # The newest datagrams are still whole-able; the evicted one starts again from nothing.
    [(_, payload)] = feed(reassembler, pieces(data, 1000)[2:3], now=4.0, key=(3,))
    assert payload == data
    assert feed(reassembler, pieces(data, 1000)[2:3], now=4.0, key=(0,)) == []


def test_a_fragment_larger_than_the_ceiling_is_dropped_and_memory_stays_bounded():
    reassembler = Reassembler(65535, ReassemblyLimits(memory_limit=2000))
    feed(reassembler, [(0, bytes(4000), True)])
    assert reassembler.drops == Counter({"reassembly_memory_limit": 1})
    assert reassembler.memory_used <= 2000


def test_a_flood_of_first_fragments_never_passes_the_ceiling_and_leaves_nothing_behind():
    limit = 64 * 1024
    reassembler = Reassembler(65535, ReassemblyLimits(memory_limit=limit, timeout=30.0))
    for identification in range(20000):
        reassembler.add(("flood", identification), 0, bytes(8), True, now=identification * 0.001)
        assert reassembler.memory_used <= limit
    assert sum(reassembler.drops.values()) + reassembler.pending == 20000
    reassembler.on_timer(1000.0)
    assert reassembler.pending == 0 and reassembler.memory_used == 0


def test_too_many_fragments_discards_the_datagram():
    reassembler = Reassembler(65535, ReassemblyLimits(max_fragments=4))
    fragments = pieces(DATA, 128)  # 8 fragments
    assert feed(reassembler, fragments[:5]) == []
    assert reassembler.drops == Counter({"reassembly_too_many_fragments": 5})
    assert reassembler.memory_used == DATAGRAM_OVERHEAD


@pytest.mark.parametrize("fragments, reason", [
    ([(0, DATA[:512], True), (768, DATA[768:776], False), (768, DATA[768:1024], False)], "reassembly_length_conflict"),
    ([(512, DATA[512:520], False), (512, DATA[512:1024], True)], "reassembly_length_conflict"),
    ([(0, DATA[:512], True), (256, b"", False)], "reassembly_length_conflict"),
], ids=["two-different-ends", "beyond-the-end", "end-inside-held-data"])
def test_fragments_that_disagree_about_the_length_discard_the_datagram(fragments, reason):
    reassembler = Reassembler(65535)
    assert feed(reassembler, fragments) == []
    assert reassembler.drops[reason] == len(fragments)
    assert reassembler.counters["reassembly_datagrams_discarded"] == 1


def test_an_empty_last_fragment_just_marks_the_end():
    reassembler = Reassembler(65535)
    [(_, payload)] = feed(reassembler, [(0, DATA[:512], True), (512, b"", False)])
    assert payload == DATA[:512]


@pytest.mark.parametrize("length", [0, 7, 12, 1001])
def test_a_middle_fragment_must_carry_a_multiple_of_8_bytes(length):
    reassembler = Reassembler(65535)
    assert feed(reassembler, [(0, bytes(length), True)]) == []
    assert reassembler.drops == Counter({"reassembly_bad_fragment_length": 1})
    assert reassembler.pending == 0


# --------------------------------------------------------------------------------------------
# The IPv4 front
# --------------------------------------------------------------------------------------------
def fragment(payload: bytes, offset: int, more: bool, protocol=PROTOCOL_ICMP, identification=7):
    header = Ipv4Header(PEER, OURS, protocol, identification=identification, dont_fragment=False,
                        more_fragments=more, fragment_offset=offset)
    return parse_packet(build_ipv4_packet(header, payload))


def test_a_datagram_past_65535_bytes_is_discarded():
    # The "ping of death": the last fragment ends past what the total length field can say.
    reassembly = Ipv4Reassembly()
    assert reassembly.receive(fragment(bytes(1480), 0, True), 0.0) is None
    last_offset = 65528  # the largest offset the 13-bit field holds
    assert reassembly.receive(fragment(bytes(8), last_offset, False), 0.0) is None  # ends at 65536
    assert reassembly.drops["reassembly_too_long"] == 2
    # Exactly the largest payload a 20-byte header allows is fine (the length is checked).
    reassembler = Reassembler(IPV4_MAX_PAYLOAD)
    assert feed(reassembler, [(0, bytes(65512), True), (65512, bytes(3), False)])[0][1] == bytes(65515)
    assert feed(reassembler, [(0, bytes(65512), True), (65512, bytes(4), False)], key="x") == []
    assert reassembler.drops["reassembly_too_long"] == 2  # the fragment held and the one too long


def test_ipv4_fragments_become_one_parsed_tcp_segment():
    syn = TcpSegment(40000, 80, seq=1, ack=0, flags=SYN, window=1000, payload=b"x" * 100)
    whole = build_tcp_packet(PEER, OURS, syn, dont_fragment=False, identification=99)
    transport = whole[20:]
    reassembly = Ipv4Reassembly()
    second = fragment(transport[64:], 64, False, PROTOCOL_TCP, identification=99)
    first = fragment(transport[:64], 0, True, PROTOCOL_TCP, identification=99)
    assert reassembly.receive(second, 0.0) is None
    packet = reassembly.receive(first, 0.0)
    assert packet.tcp == parse_packet(whole).tcp
    assert not packet.ip.is_fragment and packet.ip.identification == 99


def test_the_key_includes_the_protocol():
    reassembly = Ipv4Reassembly()
    reassembly.receive(fragment(bytes(64), 0, True, PROTOCOL_UDP), 0.0)
    assert reassembly.receive(fragment(bytes(8), 64, False, PROTOCOL_ICMP), 0.0) is None
    assert reassembly.reassembler.pending == 2 and not reassembly.drops


def test_a_reassembled_datagram_with_a_bad_checksum_is_dropped_by_name():
    syn = build_tcp_packet(PEER, OURS, TcpSegment(40000, 80, 1, 0, SYN, 1000, payload=b"y" * 40))
    transport = bytearray(syn[20:])
    transport[-1] ^= 1
    reassembly = Ipv4Reassembly()
    reassembly.receive(fragment(bytes(transport[:32]), 0, True, PROTOCOL_TCP), 0.0)
    assert reassembly.receive(fragment(bytes(transport[32:]), 32, False, PROTOCOL_TCP), 0.0) is None
    assert reassembly.drops == Counter({"tcp_bad_checksum": 1})


def test_tiny_first_tcp_fragment_is_dropped_rfc_1858():
    # Attacker: can send any fragments; wants the TCP flags to land in a second fragment that a
    # filter checking first fragments never sees.
    reassembly = Ipv4Reassembly()
    assert reassembly.receive(fragment(bytes(16), 0, True, PROTOCOL_TCP), 0.0) is None
    assert reassembly.drops == Counter({"reassembly_tiny_tcp_first_fragment": 1})
    assert reassembly.reassembler.counters["reassembly_fragments_received"] == 1
    assert reassembly.reassembler.pending == 0
    # 16 bytes is fine for other protocols (and for TCP at 24).
    reassembly.receive(fragment(bytes(16), 0, True, PROTOCOL_ICMP), 0.0)
    reassembly.receive(fragment(bytes(24), 0, True, PROTOCOL_TCP, identification=8), 0.0)
    assert sum(reassembly.drops.values()) == 1 and reassembly.reassembler.pending == 2


def test_tcp_fragment_at_offset_8_is_dropped_rfc_1858():
    reassembly = Ipv4Reassembly()
    assert reassembly.receive(fragment(bytes(16), 8, True, PROTOCOL_TCP), 0.0) is None
    assert reassembly.drops == Counter({"reassembly_tcp_header_overwrite": 1})


# --------------------------------------------------------------------------------------------
# Any sequence of fragments, honest or hostile
# --------------------------------------------------------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

hostile_fragments = st.lists(
    st.tuples(
        st.integers(0, 3),  # which of four datagrams
        st.integers(0, 40).map(lambda units: units * 8),  # offset
        st.integers(0, 100),  # length
        st.booleans(),  # more fragments
        st.integers(0, 255),  # fill byte
        st.floats(0, 5),  # time step
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(hostile_fragments)
def test_any_fragments_keep_the_bounds_and_every_fragment_is_accounted_for(fragments):
    limit = 3000
    reassembler = Reassembler(300, ReassemblyLimits(timeout=10.0, memory_limit=limit, max_fragments=6))
    now = 0.0
    completed = 0
    fragments_in_completed = 0
    for datagram, offset, length, more, fill, step in fragments:
        now += step
        reassembler.on_timer(now)  # as add() does first: what it holds is what survives that
        before = reassembler._datagrams.get(datagram)
        held_before = before.fragments_held if before is not None else 0
        result = reassembler.add(datagram, offset, bytes([fill]) * length, more, now)
        assert reassembler.memory_used <= limit
        if result is not None:
            completed += 1
            fragments_in_completed += held_before + 1
            assert len(result[1]) <= 300
    # Every fragment is held, or went into a finished datagram, or was dropped by a named reason
    # (exactly one of the three).
    held = sum(datagram.fragments_held for datagram in reassembler._datagrams.values())
    assert completed == reassembler.counters["reassembly_datagrams_completed"]
    assert all(reason.startswith("reassembly_") for reason in reassembler.drops)
    assert len(fragments) == held + fragments_in_completed + sum(reassembler.drops.values())
    reassembler.on_timer(now + 10.0)
    assert reassembler.pending == 0 and reassembler.memory_used == 0 and reassembler.next_deadline() is None
    assert len(fragments) == fragments_in_completed + sum(reassembler.drops.values())
