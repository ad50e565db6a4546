"""A view of a whole bytes object (what the TUN link hands over on PyPy: vnet.HANDS_OVER_BUFFERS
False, a super-segment copied once into bytes) goes to the C parser as the bytes object itself,
never through ffi.from_buffer: on PyPy that call moves a bytes object still in the collector's
nursery out of it first, a copy of the whole packet into memory only a major collection frees
(compat.FROM_BUFFER_MOVES_YOUNG_BYTES). The parse must be the one bytes give: same fields, the
payload still a view of the same memory, a bad checksum still refused by name."""

from __future__ import annotations

import pytest

from ustack.wire import codec
from ustack.wire.buffers import ChecksumKnownCopy
from ustack.wire.codec import WireError, build_tcp_packet, parse_packet
from ustack.wire.tcp import ACK, TcpOptions, TcpSegment

SRC6, DST6 = bytes.fromhex("fd000077" + "00" * 11 + "02"), bytes.fromhex("fd000077" + "00" * 11 + "01")


def super_segment(family: int, length: int = 60_000) -> bytes:
    payload = bytes((index * 13 + 5) & 0xFF for index in range(length))
    segment = TcpSegment(40000, 80, 2**32 - 100, 7777, ACK, 500, 0, TcpOptions(timestamps=(1, 2)), payload)
    if family == 6:
        return build_tcp_packet(SRC6, DST6, segment)
    return build_tcp_packet(0x0A4D0001, 0x0A4D0002, segment)


@pytest.fixture
def handed_to_c(monkeypatch):
    """The type of what each call of the C parser was handed."""
    seen = []
    real_parse = codec._parse

    def recording_parse(data, length, fields):
        seen.append(type(data))
        return real_parse(data, length, fields)

    monkeypatch.setattr(codec, "_parse", recording_parse)
    return seen


@pytest.mark.parametrize("family", [4, 6])
def test_a_view_of_whole_bytes_reaches_c_as_the_bytes_object(family, handed_to_c):
    packet = super_segment(family)
    view = memoryview(packet)
    parsed = parse_packet(view)
    assert handed_to_c == [bytes]
    expected = parse_packet(packet)
    assert parsed.ip == expected.ip and parsed.tcp[:8] == expected.tcp[:8]
    payload = parsed.tcp.payload
    assert type(payload) is memoryview and payload.obj is packet and payload == expected.tcp.payload


def test_a_view_of_part_of_bytes_still_goes_through_from_buffer(handed_to_c):
    """A view that starts or ends inside its bytes object: C must read the view's bytes, not the
    object's from its start."""
    packet = super_segment(4)
    framed = b"\x00" * 10 + packet + b"\x00" * 3
    parsed = parse_packet(memoryview(framed)[10:10 + len(packet)])
    assert handed_to_c and bytes not in handed_to_c
    assert parsed.tcp.payload == parse_packet(packet).tcp.payload


def test_a_bad_checksum_in_a_view_of_bytes_is_still_refused(handed_to_c):
    changed = bytearray(super_segment(4))
    changed[-100] ^= 0x10
    with pytest.raises(WireError) as refused:
        parse_packet(memoryview(bytes(changed)))
    assert refused.value.args[0] == "tcp_bad_checksum" and handed_to_c == [bytes]


def test_a_view_of_a_checksum_known_copy_is_not_summed_and_what_is_made_from_it_is(monkeypatch):
    """ChecksumKnownCopy (the TUN link's copy of a super-segment whose checksum it knows, on PyPy)
    is parsed as a marked LinkBuffer is: no pass over the segment. A copy made from it is plain
    bytes and summed as always, so a changed one is refused."""
    calls = []
    real_parse, real_known = codec._parse, codec._parse_tcp_checksum_known
    monkeypatch.setattr(codec, "_parse", lambda *arguments: calls.append("summed") or real_parse(*arguments))
    monkeypatch.setattr(codec, "_parse_tcp_checksum_known",
                        lambda *arguments: calls.append("not summed") or real_known(*arguments))
    packet = super_segment(4)
    known = ChecksumKnownCopy(packet)
    assert parse_packet(memoryview(known)).tcp.payload == parse_packet(packet).tcp.payload
    assert calls == ["not summed", "summed"]
    changed = bytearray(known)
    changed[-100] ^= 0x10
    assert type(known[:]) is bytes and type(bytes(memoryview(known))) is bytes
    with pytest.raises(WireError):
        parse_packet(memoryview(bytes(changed)))
    assert calls[-1] == "summed"
