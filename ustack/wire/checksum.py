"""The Internet checksum (RFC 1071), computed in C (csrc/checksum.c).

    internet_checksum(data)                  the 16-bit checksum of a whole buffer
    internet_checksum_of(buffer, start, end) the same of buffer[start:end], without copying it out
    checksum_add(partial, data) / checksum_finish(partial)
                                             the same in pieces: each piece but the last must have
                                             an even length (RFC 1071 2(A): the words must line up)
    checksum_update(checksum, old, new)      a checksum after one 16-bit word changed (RFC 1624 3)
    pseudo_header_sum(src, dst, protocol, length)
                                             the partial sum of the TCP/UDP pseudo-header over IPv4
    pseudo_header_sum6(src, dst, protocol, length)
                                             the same over IPv6 (RFC 8200 8.1), 16-byte addresses
"""

from __future__ import annotations

from ._wire import ffi, lib


def _as_bytes(data) -> bytes:
    return data if type(data) is bytes else bytes(data)


def internet_checksum(data: bytes) -> int:
    return lib.ustack_checksum(_as_bytes(data), len(data))


def internet_checksum_of(buffer: bytes | bytearray, start: int, end: int) -> int:
    """internet_checksum(buffer[start:end]) without the copy the slice would make (a packet read
    into a preallocated bytearray, ustack/link/tun.py)."""
    if not 0 <= start <= end <= len(buffer):
        raise ValueError(f"{start}..{end} is not within a buffer of {len(buffer)} bytes")
    return lib.ustack_checksum(ffi.from_buffer(buffer) + start, end - start)


def checksum_add(partial_sum: int, data) -> int:
    """`data` (bytes, or any buffer of bytes: read where it lies, not copied) added to the sum."""
    if type(data) is bytes:
        return lib.ustack_checksum_add(partial_sum, data, len(data))
    return lib.ustack_checksum_add(partial_sum, ffi.from_buffer(data), len(data))


def checksum_finish(partial_sum: int) -> int:
    return lib.ustack_checksum_finish(partial_sum)


def checksum_update(checksum: int, old_word: int, new_word: int) -> int:
    return lib.ustack_checksum_update(checksum, old_word, new_word)


def pseudo_header_sum(src: int, dst: int, protocol: int, length: int) -> int:
    return lib.ustack_pseudo_header_sum(src, dst, protocol, length)


def pseudo_header_sum6(src: bytes, dst: bytes, protocol: int, length: int) -> int:
    return lib.ustack_pseudo_header_sum6(_as_bytes(src), _as_bytes(dst), protocol, length)
