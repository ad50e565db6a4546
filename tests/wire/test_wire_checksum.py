"""The Internet checksum in C (csrc/checksum.c) against RFC 1071's example and a slow reference."""

from __future__ import annotations

import random

import pytest
from wire_packets import reference_checksum

from ustack.wire import checksum_add, checksum_finish, checksum_update, internet_checksum, pseudo_header_sum
from ustack.wire.checksum import internet_checksum_of


def test_rfc1071_example():
    # RFC 1071 section 3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2, so the checksum is 220d.
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert checksum_finish(checksum_add(0, data)) == 0x220D
    assert internet_checksum(data) == 0x220D


def test_odd_length_pads_the_last_byte_with_zero():
    assert internet_checksum(b"\x01") == 0xFEFF
    assert internet_checksum(b"\x01\x02\x03") == reference_checksum(b"\x01\x02\x03") == 0xFBFD


def test_empty_buffer():
    assert internet_checksum(b"") == 0xFFFF


def test_64_kib_of_ones_and_of_zeros():
    assert internet_checksum(b"\xff" * 65536) == 0x0000
    assert internet_checksum(b"\x00" * 65536) == 0xFFFF
    # A sum that carries many times: 0xffff words fold back to 0xffff, complemented to 0.
    blob = bytes(range(256)) * 256
    assert internet_checksum(blob) == reference_checksum(blob)


@pytest.mark.parametrize("length", [0, 1, 2, 3, 7, 8, 63, 64, 65, 255, 256, 257, 1459, 1460, 4097, 65535, 65536])
def test_every_length_matches_the_reference(length):
    # Lengths around the 8-byte and 64-byte steps of the C loops (portable and AVX2 paths).
    generator = random.Random(length)
    data = bytes(generator.getrandbits(8) for _ in range(length))
    assert internet_checksum(data) == reference_checksum(data)


def test_incremental_sum_in_pieces_equals_the_whole():
    generator = random.Random(1071)
    data = bytes(generator.getrandbits(8) for _ in range(3001))
    partial = 0
    for start in range(0, 3000, 200):  # even-length pieces, then an odd tail
        partial = checksum_add(partial, data[start : start + 200])
    partial = checksum_add(partial, data[3000:])
    assert checksum_finish(partial) == internet_checksum(data) == reference_checksum(data)


def test_a_packet_with_its_checksum_in_place_sums_to_zero():
    header = bytearray.fromhex("450000340000400040060000" "0a000001" "0a000002")
    header[10:12] = internet_checksum(bytes(header)).to_bytes(2, "big")
    assert internet_checksum(bytes(header)) == 0


def test_rfc1624_incremental_update():
    # Change the TTL/protocol word of a header; the updated checksum equals a full recompute.
    header = bytearray.fromhex("45000034000040004006" "0000" "0a000001" "0a000002")
    old_checksum = internet_checksum(bytes(header))
    header[10:12] = old_checksum.to_bytes(2, "big")
    header[8] = 0x3F  # TTL 64 -> 63
    new_word, old_word = 0x3F06, 0x4006
    header[10:12] = b"\x00\x00"
    assert checksum_update(old_checksum, old_word, new_word) == internet_checksum(bytes(header))
    # RFC 1624 section 4's worked example: HC 0xDD2F, m 0x5555 -> m' 0x3285 gives HC' 0x0000
    # with equation 3 (equation 2 of RFC 1141 would wrongly give 0xFFFF).
    assert checksum_update(0xDD2F, 0x5555, 0x3285) == 0x0000


def test_pseudo_header_sum():
    # 10.0.0.1 + 10.0.0.2 + 6 + 20 = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 0x0006 + 0x0014
    assert pseudo_header_sum(0x0A000001, 0x0A000002, 6, 20) == 0x141D


@pytest.fixture(params=["portable", "avx2", "avx512"])
def checksum_path(request):
    """Runs a test with each loop csrc/checksum.c has for long buffers, then goes back to the
    widest. A path this processor lacks is skipped (the C refuses to select it)."""
    from ustack.wire._wire import lib

    wanted = {"portable": lib.USTACK_CHECKSUM_PORTABLE, "avx2": lib.USTACK_CHECKSUM_AVX2,
              "avx512": lib.USTACK_CHECKSUM_AVX512}[request.param]  # fmt: skip
    try:
        if lib.ustack_checksum_select(wanted) != wanted:
            pytest.skip(f"this processor has no {request.param}")
        yield wanted
    finally:
        lib.ustack_checksum_select(-1)


@pytest.mark.parametrize("length", [255, 256, 257, 1480, 4097, 65515])
def test_every_path_and_start_address_matches_the_reference(checksum_path, length):
    # The vector loops start on an aligned address after summing a short head (csrc/checksum.c);
    # data that starts at an odd address is summed unaligned. Every start offset in a 64-byte
    # block must give the same result as the reference, head and tail included, on every path.
    from ustack.wire._wire import ffi, lib

    generator = random.Random(length)
    blob = bytes(generator.getrandbits(8) for _ in range(length + 64))
    base = ffi.from_buffer(blob)
    for offset in range(64):
        assert lib.ustack_checksum(base + offset, length) == reference_checksum(blob[offset : offset + length])


def test_checksum_of_a_range_is_the_checksum_of_that_slice_without_copying_it():
    buffer = bytearray(bytes(range(256)) * 4)
    for start, end in [(0, 0), (0, 1024), (3, 51), (20, 1023), (1023, 1024)]:
        assert internet_checksum_of(buffer, start, end) == internet_checksum(bytes(buffer[start:end]))
    with pytest.raises(ValueError):
        internet_checksum_of(buffer, 10, 1025)
    with pytest.raises(ValueError):
        internet_checksum_of(buffer, 11, 10)
