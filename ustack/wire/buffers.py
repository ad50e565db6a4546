"""The two kinds of buffer packets travel in between a link and the stack, besides bytes:

    LinkBuffer     a buffer a link reads one packet into and hands over whole, which says what is
                   known of the packet's TCP checksum (a received super-segment)
    ChecksumKnownCopy  a received super-segment a link copied into bytes (PyPy, where it hands
                   over no LinkBuffer), whose TCP checksum it knows to be right
    SegmentParts   a segment the stack built with its TCP checksum partial, kept as its headers
                   and its payload, which the TUN link writes without joining them

Both are made by codec.py (build_tcp_packet) and the TUN link (ustack/link/vnet.py
packet_from_parts); vnet.complete_checksum turns either into the packet a wire carries.
"""

from __future__ import annotations

from typing import final

from ._wire import ffi


class LinkBuffer(bytearray):
    """A buffer a link reads one packet into and may hand over whole (the TUN link's super-segments,
    ustack/link/vnet.py packet_from_parts), which says what is known of that packet's TCP checksum:

    - `tcp_checksum_known`: it is right. The link completed it itself (the kernel left it partial,
      NEEDS_CSUM, and the bytes came from the kernel's memory, not a wire), the kernel verified it
      (DATA_VALID), or the kernel vouched for it and the link left it partial (below);
    - `tcp_checksum_partial` (only ever with `tcp_checksum_known`): the checksum field still holds
      the kernel's partial sum (NEEDS_CSUM at the TCP checksum field: the kernel would complete it
      on its way out of the machine, and the bytes never left its memory). Nothing in the stack
      reads that field once the parser skips the check, so the link leaves it so; whatever looks
      at the packet's bytes as a wire would (the pcap writer, the FaultInjector before it copies
      or changes a packet, a ladder that parses a copy) first calls vnet.complete_checksum, which
      writes the checksum into the buffer and clears this flag.

    The same two flags mark a large segment the stack sends with its checksum left partial
    (build_tcp_packet with `partial_checksum_over`: the kernel cuts it and completes each piece's
    checksum, TSO; or the TUN link cuts it in software and makes every piece's checksum anew), so
    the same one call, vnet.complete_checksum, completes it for whatever reads it as a wire would.

    vnet.packet_from_parts, build_tcp_packet and vnet.complete_checksum alone set these;
    parse_packet only reads `tcp_checksum_known`. Class attributes give both their default
    (False) without an __init__: the TUN link makes one LinkBuffer per super-segment it hands
    over, and a Python-level __init__ cost more than the rest of the allocation.

    parse_packet then leaves out the one pass over the segment that checks the TCP checksum
    (up to 64 KB, ~3 us), and only for a read-only memoryview of such a buffer: the packet exactly
    as the link handed it over, which nobody writes again but complete_checksum. Every other packet, and
    every other check (the IPv4 header checksum, ICMP's), is checked as always: a copy that a
    FaultInjector corrupted is a new bytes object and is summed again (tests/link/test_checksum_once.py)."""

    tcp_checksum_known = False
    tcp_checksum_partial = False


@final  # (the parser tells it by `type(view.obj) is ChecksumKnownCopy`)
class ChecksumKnownCopy(bytes):
    """A received packet that a link copied into bytes of its own, whose TCP checksum the link
    knows to be right, on the same grounds as LinkBuffer's `tcp_checksum_known` (the link
    completed it, the kernel vouching for it, or the kernel verified it): its class is the mark,
    so a copy costs no attribute. The TUN link makes one on PyPy, where a super-segment is copied
    rather than handed over in its LinkBuffer (ustack/link/vnet.py HANDS_OVER_BUFFERS), and
    hands over a view of it; parse_packet then leaves out its pass over the segment (up to 64 KB)
    as for a marked LinkBuffer. Its checksum is never partial: the link completes it before the
    copy. Anything made from it is plain bytes (a slice, a FaultInjector's changed copy), and is
    summed as always."""


def copy_of(buffer: bytearray, length: int, kind: type = bytes) -> bytes:
    """buffer[:length] as a new `kind` (bytes, or ChecksumKnownCopy), its bytes copied once: what a
    link that does not hand its buffer over (the TUN link on PyPy) hands over instead.

    Through cffi, because in Python a bytearray's bytes reach a new bytes object by two copies on
    PyPy: bytes() of a slice of it or of a view, tobytes() and join all fill a temporary of the
    same size first. For a 64 KB super-segment that was two 64 KB objects in the collector's
    nursery where one will do, so the nursery filled, and a minor collection came, twice as often,
    each copying the live copies of a batch (up to 64 super-segments) out of it: in a loop that
    keeps 40 copies alive, as a batch does, 16 us per 64 KB copied against 8 this way (issue 12,
    fifteenth pass). ffi.from_buffer of the link's own buffer, read into again and again, moves
    nothing (it left the nursery once, at its first read: compat.FROM_BUFFER_MOVES_YOUNG_BYTES).
    A bytes subclass made from bytes shares them on PyPy (no second copy; on CPython it copies,
    where no link calls this)."""
    copy = ffi.buffer(ffi.from_buffer(buffer), length)[:]
    return copy if kind is bytes else kind(copy)


@final  # (nothing derives from it: the links tell it by `type(packet) is SegmentParts`)
class SegmentParts:
    """A TCP segment built with its checksum partial (build_tcp_packet's `partial_checksum_over`),
    kept as its two parts: `headers` (IP and TCP, options included, the TCP checksum field holding
    the partial sum) and `payload` (the send buffer's own bytes, or a view of them: never copied
    here). The TUN link writes the parts as they are, one os.writev of [vnet header, headers,
    payload], so the payload's only copy on its way down is the kernel's.

    It is a packet only for what looks at its headers: len() is the whole packet's length, and
    packet[i] for i inside the headers reads them (the IP version, addresses, ports and flags
    that links and predicates peek at). Whatever reads it as a wire would (the pcap writer, the
    FaultInjector, the tracer, the live ladder, a link that cuts it in software) asks
    vnet.complete_checksum, the one owner of that, for the whole packet: joined() (one copy, made
    once and kept) with its checksum then completed in place. bytes() gives the packet as the
    kernel is handed it (the checksum partial)."""

    __slots__ = ("headers", "payload", "_length", "_joined")

    def __init__(self, headers: bytes, payload) -> None:
        self.headers = headers
        self.payload = payload
        self._length = len(headers) + len(payload)
        self._joined: memoryview | None = None

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index):
        headers = self.headers
        if type(index) is int and 0 <= index < len(headers):
            return headers[index]
        return self.joined()[index]  # anything past the headers: the packet in one piece

    def __bytes__(self) -> bytes:
        return b"".join((self.headers, self.payload))

    def __repr__(self) -> str:
        return f"SegmentParts({len(self.headers)} bytes of headers, {len(self.payload)} of payload)"

    @property
    def was_joined(self) -> bool:
        """Whether joined() made the packet in one piece already (an observer asked for it)."""
        return self._joined is not None

    def joined(self) -> memoryview:
        """The packet in one piece, its checksum as it is (partial until complete_checksum
        completed it): a read-only view of one LinkBuffer marked `tcp_checksum_known` and
        `tcp_checksum_partial` (see LinkBuffer), the same one on every call. Extending the buffer
        by the payload is the one copy of it; no zeroed buffer is made first."""
        joined = self._joined
        if joined is None:
            buffer = LinkBuffer(self.headers)
            buffer += self.payload
            buffer.tcp_checksum_known = buffer.tcp_checksum_partial = True
            joined = self._joined = memoryview(buffer).toreadonly()
        return joined
