"""The classic pcap file format (the one tcpdump -w writes), as pure bytes in and out.

Reading and writing files is done by the callers (`ustack decode`, `link.pcap.PcapWriter`); this
module only knows the layout: a 24-byte global header, then per packet a 16-byte record header
(seconds, microseconds or nanoseconds, captured length, original length) and the bytes.
"""

from __future__ import annotations

import struct
from typing import Iterator, NamedTuple

from .errors import WireError

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # the packet starts with the IP header

MAGIC_MICROSECONDS = 0xA1B2C3D4
MAGIC_NANOSECONDS = 0xA1B23C4D

_GLOBAL_HEADER = struct.Struct("<IHHiIII")
_RECORD_HEADER = struct.Struct("<IIII")


class PcapRecord(NamedTuple):
    timestamp: float  # seconds since the epoch (or since the start, for virtual time)
    data: bytes  # the captured bytes
    original_length: int


def file_header(linktype: int = LINKTYPE_RAW, snaplen: int = 262144) -> bytes:
    return _GLOBAL_HEADER.pack(MAGIC_MICROSECONDS, 2, 4, 0, 0, snaplen, linktype)


def record(timestamp: float, data: bytes) -> bytes:
    seconds = int(timestamp)
    microseconds = int(round((timestamp - seconds) * 1_000_000))
    if microseconds >= 1_000_000:
        seconds, microseconds = seconds + 1, microseconds - 1_000_000
    return _RECORD_HEADER.pack(seconds, microseconds, len(data), len(data)) + data


def read_records(blob: bytes) -> tuple[int, Iterator[PcapRecord]]:
    """Parse a whole pcap file held in memory: (linktype, records).

    Raises WireError("pcap_bad_magic" / "pcap_truncated_header") for a file that is not pcap;
    a truncated last record ends the iteration quietly, as tcpdump does.
    """
    if len(blob) < _GLOBAL_HEADER.size:
        raise WireError("pcap_truncated_header", f"{len(blob)} bytes, a pcap header needs 24")
    magic_le = struct.unpack_from("<I", blob)[0]
    magic_be = struct.unpack_from(">I", blob)[0]
    if magic_le in (MAGIC_MICROSECONDS, MAGIC_NANOSECONDS):
        order, magic = "<", magic_le
    elif magic_be in (MAGIC_MICROSECONDS, MAGIC_NANOSECONDS):
        order, magic = ">", magic_be
    else:
        raise WireError("pcap_bad_magic", f"0x{magic_le:08x} is not a pcap magic number")
    linktype = struct.unpack_from(order + "I", blob, 20)[0] & 0x0FFFFFFF
    divisor = 1e9 if magic == MAGIC_NANOSECONDS else 1e6
    header = struct.Struct(order + "IIII")

    def records() -> Iterator[PcapRecord]:
        offset = _GLOBAL_HEADER.size
        while offset + header.size <= len(blob):
            seconds, fraction, captured, original = header.unpack_from(blob, offset)
            offset += header.size
            if offset + captured > len(blob):
                return
            yield PcapRecord(seconds + fraction / divisor, blob[offset : offset + captured], original)
            offset += captured

    return linktype, records()
