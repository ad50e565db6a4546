"""Initial sequence numbers per RFC 6528: a 4-microsecond clock plus a keyed hash of the 4-tuple."""

from __future__ import annotations

import pytest

import hashlib

from ustack.tcp.isn import TICKS_PER_SECOND, IsnGenerator, keyed_hash, keyed_hasher, pack_four_tuple
from ustack.wire.ipv4 import address_value

LOCAL, REMOTE = address_value("10.0.0.1"), address_value("10.0.0.2")
SECRET = bytes(range(32))


def test_a_fixed_isn_is_returned_for_every_connection():
    generator = IsnGenerator(fixed_isn=2**32 - 1000)
    assert generator.generate(LOCAL, 80, REMOTE, 40000, 0.0) == 2**32 - 1000
    assert generator.generate(REMOTE, 1, LOCAL, 2, 99.0) == 2**32 - 1000
    assert IsnGenerator(fixed_isn=2**32 + 5).generate(LOCAL, 80, REMOTE, 40000, 0.0) == 5


def test_the_same_secret_tuple_and_time_give_the_same_isn():
    first = IsnGenerator(secret=SECRET).generate(LOCAL, 80, REMOTE, 40000, 12.5)
    second = IsnGenerator(secret=SECRET).generate(LOCAL, 80, REMOTE, 40000, 12.5)
    assert first == second
    assert 0 <= first < 2**32


def test_different_four_tuples_get_unrelated_isns():
    generator = IsnGenerator(secret=SECRET)
    now = 5.0
    tuples = [
        (LOCAL, 80, REMOTE, 40000),
        (LOCAL, 80, REMOTE, 40001),  # another remote port
        (LOCAL, 81, REMOTE, 40000),  # another local port
        (LOCAL, 80, REMOTE + 1, 40000),  # another remote address
        (LOCAL + 1, 80, REMOTE, 40000),  # another local address
        (REMOTE, 40000, LOCAL, 80),  # the mirror image is another tuple
    ]
    isns = [generator.generate(*four_tuple, now) for four_tuple in tuples]
    assert len(set(isns)) == len(isns)
    # Not just the clock plus a small per-port step: neighbouring ports land far apart.
    assert all(abs(isns[0] - other) > 1000 for other in isns[1:])


def test_a_different_secret_gives_a_different_offset():
    one = IsnGenerator(secret=SECRET).generate(LOCAL, 80, REMOTE, 40000, 1.0)
    other = IsnGenerator(secret=SECRET[::-1]).generate(LOCAL, 80, REMOTE, 40000, 1.0)
    assert one != other


def test_random_secrets_differ_between_generators():
    one = IsnGenerator().generate(LOCAL, 80, REMOTE, 40000, 1.0)
    others = {IsnGenerator().generate(LOCAL, 80, REMOTE, 40000, 1.0) for _ in range(4)}
    assert others - {one}  # 2**-128 chance of a false failure


def test_the_isn_advances_with_time_at_250000_per_second():
    generator = IsnGenerator(secret=SECRET)
    start = generator.generate(LOCAL, 80, REMOTE, 40000, 100.0)
    assert (generator.generate(LOCAL, 80, REMOTE, 40000, 101.0) - start) % 2**32 == TICKS_PER_SECOND == 250_000
    assert (generator.generate(LOCAL, 80, REMOTE, 40000, 100.000004) - start) % 2**32 == 1
    assert generator.generate(LOCAL, 80, REMOTE, 40000, 100.000001) == start  # under one tick


def test_the_isn_wraps_modulo_2_to_the_32():
    generator = IsnGenerator(secret=SECRET)
    start = generator.generate(LOCAL, 80, REMOTE, 40000, 0.0)
    # 2**32 ticks of 4 microseconds is about 4.77 hours: the clock comes back where it started.
    period = 2**32 / TICKS_PER_SECOND
    assert generator.generate(LOCAL, 80, REMOTE, 40000, period) == start
    later = generator.generate(LOCAL, 80, REMOTE, 40000, period * 3 + 2.0)
    assert later == (start + 2 * TICKS_PER_SECOND) % 2**32


def test_secret_lengths_are_checked_and_the_secret_is_not_shown():
    with pytest.raises(ValueError):
        IsnGenerator(secret=b"")
    with pytest.raises(ValueError):
        IsnGenerator(secret=bytes(65))
    assert SECRET.hex() not in repr(IsnGenerator(secret=SECRET))


def test_the_isn_offset_is_blake2b_of_the_zero_extended_four_tuple_keyed_with_the_secret():
    # Written out from the definition (RFC 6528 3's F): the fast paths (IPv4 packed in one
    # struct call, the key hashed once and its state copied) must give the very same numbers.
    generator = IsnGenerator(SECRET)
    for local, remote in ((LOCAL, REMOTE), (bytes(range(16)), bytes(range(16, 32))), (LOCAL, bytes(16))):
        data = b"".join((address if type(address) is bytes else address.to_bytes(16, "big")) + port.to_bytes(2, "big")
                        for address, port in ((local, 443), (remote, 51234)))
        assert pack_four_tuple(local, 443, remote, 51234) == data
        offset = int.from_bytes(hashlib.blake2b(data, digest_size=4, key=SECRET).digest(), "big")
        assert generator.generate(local, 443, remote, 51234, 0.0) == offset
        assert keyed_hasher(SECRET)(data) == keyed_hash(SECRET, data) == offset
    hash_of = keyed_hasher(SECRET, 8)
    assert [hash_of(b"a"), hash_of(b"b"), hash_of(b"a")] == [keyed_hash(SECRET, b"a", 8), keyed_hash(SECRET, b"b", 8),
                                                             keyed_hash(SECRET, b"a", 8)]
