"""The thinning of pure ACKs (csrc/segment.c): in one read batch, a run of consecutive pure ACKs of
one connection, each acknowledging new data beyond the one before, goes up as its first ACK (as it
came) and its last (an AckRun standing for the ACKs after the first); those between are absorbed.
What may join, what never does, and what the core makes of the last ACK
(ustack/tcp/acknowledgement.py, congestion/). Both ways into the one rule are checked alike:
software GRO's SegmentJoiner (ustack_join_tcp_segments, a batch read into its slots) and the
AckThinner of a TUN link with the vnet header (ustack_thin_pure_acks, a batch read one packet
to a buffer)."""

from __future__ import annotations

import pytest
from vnet_helpers import A, A6, B, B6

from ustack.wire import build_tcp_packet, parse_packet
from ustack.wire.segment import AckRun, AckThinner, SegmentJoiner
from ustack.wire.tcp import ACK, CWR, ECE, FIN, PSH, AckRunSegment, TcpOptions, TcpSegment

MSS = 1448


def ack_packet(ack: int, window: int = 500, ts: tuple[int, int] | None = (100, 50), flags: int = ACK,
               seq: int = 7777, ports=(40000, 80), family: int = 4, sack=(), payload: bytes = b"",
               tos: int = 0) -> bytes:
    options = TcpOptions(timestamps=ts, sack_blocks=sack)
    tcp = TcpSegment(ports[0], ports[1], seq, ack, flags, window, 0, options, payload)
    if family == 6:
        return build_tcp_packet(A6, B6, tcp)
    return build_tcp_packet(A, B, tcp, tos=tos)


def joined_in_slots(packets: list[bytes]) -> tuple[list[bytes], SegmentJoiner]:
    joiner = SegmentJoiner(1500, max(1, len(packets)))
    for index, packet in enumerate(packets):
        joiner.slots[index][0][:len(packet)] = packet
        joiner.lengths[index] = len(packet)
    return joiner.join(len(packets)), joiner


def thinned_one_by_one(packets: list[bytes]) -> tuple[list[bytes], AckThinner]:
    thinner = AckThinner()
    return thinner.thin(list(packets)), thinner


@pytest.fixture(params=["SegmentJoiner", "AckThinner"])
def joined(request):
    """One way into the rule: a function from a batch to (what goes up, the object counting)."""
    return joined_in_slots if request.param == "SegmentJoiner" else thinned_one_by_one


def acks_of(out: list[bytes]) -> list[int]:
    """For each packet handed up, how many ACKs it stands for."""
    return [packet.acks if type(packet) is AckRun else 1 for packet in out]


@pytest.mark.parametrize("family", [4, 6])
def test_a_run_goes_up_as_its_first_and_its_last_standing_for_the_rest(family, joined):
    packets = [ack_packet(1000 + 2 * MSS * index, ts=(100 + index // 3, 50 + index // 4), family=family)
               for index in range(10)]
    out, joiner = joined(packets)
    assert out == [packets[0], packets[-1]]  # byte for byte as they came
    assert acks_of(out) == [1, 9]
    assert joiner.acks_absorbed == 8
    segment = parse_packet(out[1]).tcp
    assert type(segment) is AckRunSegment and segment.acks == 9
    assert segment == parse_packet(packets[-1]).tcp  # the same fields as the plain packet's
    assert type(parse_packet(out[0]).tcp) is TcpSegment


def test_without_timestamps_too_and_two_acks_are_both_handed_up(joined):
    packets = [ack_packet(1000 + MSS * index, ts=None) for index in range(4)]
    out, _ = joined(packets)
    assert out == [packets[0], packets[3]] and acks_of(out) == [1, 3]
    out, joiner = joined(packets[:2])
    assert out == packets[:2] and acks_of(out) == [1, 1] and joiner.acks_absorbed == 0


def test_a_duplicate_ack_is_never_absorbed(joined):
    # RFC 5681 3.2: three duplicate ACKs start fast retransmit; each must reach the core. Only
    # the core knows SND.UNA, so the first ACK of every run goes up as it came too.
    packets = [ack_packet(5000), ack_packet(5000), ack_packet(5000), ack_packet(5000), ack_packet(9000)]
    out, joiner = joined(packets)
    assert out == packets and joiner.acks_absorbed == 0
    assert acks_of(out) == [1, 1, 1, 1, 1]


def test_an_older_ack_ends_the_run_rather_than_joining_it(joined):
    packets = [ack_packet(5000), ack_packet(6000), ack_packet(7000), ack_packet(6500), ack_packet(8000)]
    out, _ = joined(packets)
    assert out == [packets[0], packets[2], packets[3], packets[4]] and acks_of(out) == [1, 2, 1, 1]


@pytest.mark.parametrize("odd_one", [
    dict(flags=ACK | PSH), dict(flags=ACK | ECE), dict(flags=ACK | CWR), dict(flags=ACK | FIN),
    dict(sack=((90000, 91000),)), dict(payload=b"x"), dict(ports=(40001, 80)), dict(seq=7778),
    dict(tos=0x03), dict(ts=(99, 50)), dict(ts=(100, 49)), dict(ts=None),
], ids=["psh", "ece", "cwr", "fin", "sack", "data", "other-port", "other-seq", "ce", "tsval-back",
        "tsecr-back", "no-timestamps"])
def test_an_ack_with_news_of_its_own_is_never_absorbed_and_ends_the_run(odd_one, joined):
    # Each of these is news the core must see on its own segment (flags, SACK blocks, data, CE),
    # belongs to another flow or sequence, or would make the last ACK's timestamps say less.
    fields = dict(odd_one)
    first, second = ack_packet(1000), ack_packet(2000)
    odd = ack_packet(3000, **fields)
    after = [ack_packet(4000 + 1000 * index, **{k: v for k, v in fields.items() if k in ("ports", "seq")})
             for index in range(3)]
    out, joiner = joined([first, second, odd] + after)
    assert out[:3] == [first, second, odd]
    assert acks_of(out[:3]) == [1, 1, 1]


def test_a_bad_checksum_is_handed_up_alone_for_the_stack_to_drop_by_name(joined):
    packets = [ack_packet(1000 + 1000 * index) for index in range(5)]
    broken = bytearray(packets[2])
    broken[-1] ^= 0xFF  # the last timestamp byte: the TCP checksum no longer matches
    packets[2] = bytes(broken)
    out, joiner = joined(packets)
    assert out == [packets[0], packets[1], packets[2], packets[3], packets[4]]
    assert acks_of(out) == [1, 1, 1, 1, 1]


def test_the_window_of_an_absorbed_ack_is_never_above_what_the_core_sees_in_the_run(joined):
    # Windows wavering by a unit (a receiver keeping up) still thin: every absorbed window is at
    # most the first's or the next's, so the largest window seen (MAX.SND.WND) stays what it is.
    wavering = [ack_packet(1000 * (index + 1), window=window) for index, window in enumerate([500, 499, 500, 499, 500])]
    out, _ = joined(wavering)
    assert out == [wavering[0], wavering[-1]] and acks_of(out) == [1, 4]
    # A window above both the first's and the next one's is not absorbed: it goes up, and the
    # next ACK starts a run of its own.
    bump = [ack_packet(1000, window=500), ack_packet(2000, window=600), ack_packet(3000, window=550),
            ack_packet(4000, window=550), ack_packet(5000, window=550)]
    out, _ = joined(bump)
    assert out == [bump[0], bump[1], bump[2], bump[4]] and acks_of(out) == [1, 1, 1, 2]


def test_acks_of_two_connections_interleaved_are_not_absorbed_across_each_other(joined):
    a = [ack_packet(1000 * (index + 1)) for index in range(3)]
    b = [ack_packet(1000 * (index + 1), ports=(40001, 80)) for index in range(3)]
    out, joiner = joined([a[0], b[0], a[1], b[1], a[2], b[2]])
    assert joiner.acks_absorbed == 0 and len(out) == 6
