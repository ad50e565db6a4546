"""Segmentation offload in software (csrc/segment.c), for a TUN device without the kernel's:

    cut_tcp_segment(packet, mtu)     a TCP segment larger than the MTU (bytes, or SegmentParts),
                                     cut into the packets TSO would have put on the wire (GSO)
    SegmentJoiner(slot_size, slots)  a read batch's buffer, and the packets in it with every run of
                                     in-order segments of one connection joined (GRO), and every
                                     run of pure ACKs of one connection thinned (AckRun)
    AckThinner()                     the same thinning of pure-ACK runs, for a batch read one
                                     packet to a buffer (the TUN link with the vnet header)

The rules (which segments join, what each piece carries) are written once, in csrc/segment.c; the
link (ustack/link/tun.py) reads and writes, this module only moves bytes between Python and C.
"""

from __future__ import annotations

from ._wire import ffi, lib
from .buffers import SegmentParts
from .ipv6 import JUMBO_HEADER_LENGTH, is_jumbogram

LARGEST_PACKET = 65535
# The largest segment cut here: a BIG TCP packet (csrc/wire.h USTACK_LARGEST_BIG_PACKET,
# link/tun.py), cut in software when the kernel could not take it whole.
LARGEST_BIG_PACKET = 262144
# Such a segment cut at the smallest MTU IPv4 allows (68, less 40 bytes of headers) has at most
# this many pieces.
MOST_PIECES = LARGEST_BIG_PACKET // 28 + 1


def cut_tcp_segment(packet: bytes | bytearray | memoryview | SegmentParts, mtu: int) -> list[memoryview] | None:
    """The pieces of at most `mtu` bytes that the TCP segment `packet` is cut into (its data in
    pieces of MTU minus its headers; sequence numbers, lengths and both checksums made for each;
    PSH and FIN on the last piece only, CWR on the first only), as views into one new buffer of
    their own. None if `packet` is not a TCP segment with data over IPv4 without options or IPv6
    without extension headers. SegmentParts (a segment the stack built with its checksum partial)
    is cut from its parts: its data is copied once, into the pieces, never joined behind the
    headers first."""
    headers: bytes | bytearray | memoryview
    if type(packet) is SegmentParts:
        headers, data = packet.headers, packet.payload
        data_length = len(data) if type(data) is bytes else memoryview(data).nbytes
    else:
        headers, data, data_length = packet, None, 0
    header_bytes = len(headers)
    length = header_bytes + data_length
    if length <= 60 or header_bytes < 40:
        return None
    start = 20 if headers[0] == 0x45 else 40
    left_out = 0  # the bytes of the headers that no piece carries
    if start == 40 and is_jumbogram(headers, length):
        left_out = JUMBO_HEADER_LENGTH  # its hop-by-hop header (C leaves it out, as the kernel does)
        start += left_out
    header_length = start + (headers[start + 12] >> 4) * 4
    if mtu <= header_length:
        return None
    most = -(-(length - header_length) // (mtu - header_length))
    capacity = length + most * header_length  # a copy of the headers in every piece
    out = bytearray(capacity)
    # The pieces' lengths, in an array of this call's own: two stacks in two threads may cut at
    # once, and cffi lets C run without the GIL (as codec.py's per-call structs).
    piece_lengths = ffi.new("uint32_t[]", min(most, MOST_PIECES))
    # cffi passes bytes as they are; any other bytes-like buffer (a read-only view of a LinkBuffer,
    # a view of the send buffer's bytes) as a view of the same memory. The checksum field does not
    # matter: every piece's is made anew.
    source = headers if type(headers) is bytes else ffi.from_buffer(headers)
    if data is None:
        count = lib.ustack_cut_tcp_segment(source, length, ffi.NULL, 0, mtu, ffi.from_buffer(out), capacity,
                                           piece_lengths, len(piece_lengths))
    else:
        count = lib.ustack_cut_tcp_segment(source, header_bytes, data if type(data) is bytes else ffi.from_buffer(data),
                                           data_length, mtu, ffi.from_buffer(out), capacity, piece_lengths,
                                           len(piece_lengths))
    if count <= 0:
        return None
    # Every piece but the last is exactly `mtu` bytes (C fills each with MTU minus the headers of
    # data), so the views are cut by position, without reading piece_lengths back one by one
    # (that loop cost about as much as the C call: a 64 KB segment has 45 pieces at MTU 1500).
    view = memoryview(out)[:length - header_length + count * (header_length - left_out)]
    return [view[offset:offset + mtu] for offset in range(0, len(view), mtu)]


class AckRun(bytes):
    """A pure ACK the joiner hands up as the last of a run of ACKs it thinned: `acks` is how many
    ACKs of the run it stands for (itself and those it absorbed; the run's first went up alone).
    parse_packet turns it into an AckRunSegment. A middleware that copies it (a FaultInjector
    corrupting it) makes plain bytes: one ACK again."""

    acks = 1  # set on each instance by SegmentJoiner.join


class SegmentJoiner:
    """A buffer of `slots` slots of `slot_size` bytes (the MTU) that the link reads a batch into,
    one packet a slot (`joiner.slots[i]` is the list os.readv takes, `joiner.lengths[i] = n` what it
    read), and join(count), the packets of the batch with its runs joined:

        count = 0
        while count < joiner.capacity:
            joiner.lengths[count] = os.readv(fd, joiner.slots[count])   # until BlockingIOError
            count += 1
        packets = joiner.join(count)

    Counters (since creation): super_segments (joined packets handed up), segments_joined (the
    packets in them), acks_absorbed (pure ACKs of a run absorbed by its last, AckRun), not_ip (packets that are not IPv4 or IPv6) and longer_than_slot (a read
    that says more than the slot took: the packet was cut short), both not handed up."""

    def __init__(self, slot_size: int, slots: int) -> None:
        self.slot_size = slot_size
        self.capacity = slots
        self._buffer = bytearray(slot_size * slots)
        self._view = memoryview(self._buffer)
        self._c_buffer = ffi.from_buffer(self._buffer)
        self.slots = [[self._view[index * slot_size:(index + 1) * slot_size]] for index in range(slots)]
        self.lengths = ffi.new("uint32_t[]", slots)
        self._out = ffi.new("struct ustack_joined_packet[]", slots)
        self.super_segments = 0
        self.segments_joined = 0
        self.not_ip = 0
        self.longer_than_slot = 0
        self.acks_absorbed = 0

    def join(self, count: int) -> list[bytes]:
        """The `count` packets read into the slots, as the stack is to receive them, in order."""
        produced = lib.ustack_join_tcp_segments(self._c_buffer, self.slot_size, self.lengths, count, self._out)
        view, out = self._view, self._out
        packets: list[bytes] = []
        for index in range(produced):
            entry = out[index]
            segments = entry.segments
            if segments:
                acks = entry.acks
                if acks > 1:
                    packet = AckRun(view[entry.offset:entry.offset + entry.length])
                    packet.acks = acks
                    packets.append(packet)
                    self.acks_absorbed += acks - 1
                    continue
                packets.append(bytes(view[entry.offset:entry.offset + entry.length]))
                if segments > 1:
                    self.super_segments += 1
                    self.segments_joined += segments
            elif entry.length > self.slot_size:
                self.longer_than_slot += 1
            else:
                self.not_ip += 1
        return packets


# The longest packet that may be a pure ACK a run holds: IPv6's header, TCP's and the timestamps
# option (60 + 12 bytes; IPv4's is 52). Longer ones are not handed to C at all.
LONGEST_PURE_ACK = 72


class AckThinner:
    """Thins the runs of pure ACKs in a batch of packets read one by one, each its own object (the
    TUN link with the vnet header: the kernel's GRO joins data segments but hands up every pure ACK
    alone), by SegmentJoiner's rule, written once in csrc/segment.c: of a run of consecutive pure
    ACKs of one connection, each acknowledging new data beyond the one before, the first goes up as
    it came and the last as an AckRun standing for the ACKs after the first; those between are
    absorbed (counted in acks_absorbed)."""

    def __init__(self) -> None:
        self.acks_absorbed = 0

    def thin(self, packets: list) -> list:
        """`packets` with every run of pure ACKs thinned: the same list when nothing was absorbed."""
        lengths = list(map(len, packets))
        # (counted in C, no Python step per packet: most batches of a bulk transfer hold none)
        if sum(map(LONGEST_PURE_ACK.__ge__, lengths)) < 3:
            return packets  # a run needs three ACKs before one is absorbed
        candidates = [ffi.from_buffer("uint8_t[]", packet) if length <= LONGEST_PURE_ACK else ffi.NULL
                      for packet, length in zip(packets, lengths)]
        count = len(packets)
        acks = ffi.new("uint16_t[]", count)
        absorbed = lib.ustack_thin_pure_acks(ffi.new("uint8_t *[]", candidates), ffi.new("uint32_t[]", lengths),
                                             count, acks)
        if not absorbed:
            return packets
        self.acks_absorbed += absorbed
        thinned = []
        for packet, stands_for in zip(packets, acks):
            if stands_for == 1:
                thinned.append(packet)
            elif stands_for:
                last = AckRun(packet)
                last.acks = stands_for
                thinned.append(last)
        return thinned
