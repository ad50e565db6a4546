"""`ustack decode FILE.pcap` (or `-`, standard input): one line per packet, as `tcpdump -t -nn -S -r
FILE.pcap` prints it.

Reads pcap files whose packets start at the IP header, IPv4 or IPv6 (link types RAW 101, IPV4 228
and IPV6 229, what a TUN device or scapy gives), or behind an Ethernet header (1) or a Linux "cooked" header (113, and
its version 2, 276, which `tcpdump -i any` writes since tcpdump 4.99; tcpdump puts the interface
name and direction in front of those lines, which ustack leaves out). A packet that fails validation is still listed, with "invalid" and
the reason the stack would count it under; the command reads the whole file and exits 0. A file
cut short (the capture was interrupted mid-write) is listed up to its last whole packet, with a
line on stderr saying so; pcapng files (Wireshark's format) are refused with the command that
converts them (ustack/commands/capture_file.py).
"""

from __future__ import annotations

import struct
import sys

from ..wire.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, read_records
from ..wire.text import format_packet
from ..trace.pcap_source import CHECKSUM_REASONS
from .capture_file import cut_short_note, read_capture_file
from .errors import CliError

LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276  # what `tcpdump -i any` writes since tcpdump 4.99
_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_IPV6 = 0x86DD
_ETHERTYPE_VLAN = 0x8100
# Where the EtherType sits and where the network packet starts, for the framed link types.
_FRAMING = {LINKTYPE_ETHERNET: (12, 14), LINKTYPE_LINUX_SLL: (14, 16), LINKTYPE_LINUX_SLL2: (0, 20)}
SUPPORTED_LINKTYPES = (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL,
                       LINKTYPE_LINUX_SLL2)  # fmt: skip


def register(subparsers) -> None:
    parser = subparsers.add_parser("decode", help="print a pcap file one line per packet, as tcpdump -nn -S does")
    parser.add_argument("file", metavar="FILE.pcap", help="the capture; - reads it from standard input (tcpdump -w - | ...)")
    parser.set_defaults(run=run)


def run(args) -> int:
    blob = read_capture_file(args.file)
    linktype, records = read_records(blob)
    if linktype not in SUPPORTED_LINKTYPES:
        raise CliError(f"{args.file}: link type {linktype} is not supported (raw IP, Ethernet, Linux cooked v1 and v2)")
    output = sys.stdout
    count = captured_bytes = bad_checksums = 0
    for record in records:
        line = decode_line(linktype, record.data)
        output.write(line + "\n")
        count += 1
        captured_bytes += len(record.data)
        bad_checksums += any(f"invalid {reason}" in line for reason in CHECKSUM_REASONS)
    if bad_checksums:
        # Listed as invalid (the stack would drop them), but usually not damage: say why.
        output.flush()
        print(f"ustack decode: {bad_checksums} of {count} packets have a bad checksum; in a capture taken on the "
              "host that sent them (on lo, or with checksum offload) that is normal, the checksum is filled in "
              "after the capture", file=sys.stderr)
    # Every whole packet is printed; a last one cut off mid-way is not, and we say so (tcpdump
    # does too: "truncated dump file"). Still status 0: what the file holds was all read.
    note = cut_short_note(args.file, blob, count, captured_bytes)
    if note is not None:
        output.flush()
        print(f"ustack decode: {note}", file=sys.stderr)
    return 0


def decode_line(linktype: int, data: bytes) -> str:
    """The line for one captured frame."""
    if linktype in _FRAMING:
        type_offset, start = _FRAMING[linktype]
        if len(data) < start:
            return f"invalid link_truncated, {len(data)} bytes"
        ethertype = struct.unpack_from("!H", data, type_offset)[0]
        if ethertype == _ETHERTYPE_VLAN and len(data) >= start + 4:  # one 802.1Q tag
            ethertype = struct.unpack_from("!H", data, start + 2)[0]
            start += 4
        if ethertype not in (_ETHERTYPE_IPV4, _ETHERTYPE_IPV6):
            return f"ethertype 0x{ethertype:04x}, length {len(data)} (not IP)"
        data = data[start:]
    return format_packet(data)
