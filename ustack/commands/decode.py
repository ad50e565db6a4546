"""`ustack decode FILE.pcap`: one line per packet, as `tcpdump -t -nn -S -r FILE.pcap` prints it.

Reads pcap files whose packets start at the IPv4 header (link types RAW 101 and IPV4 228, what a
TUN device or scapy gives), or behind an Ethernet header (1) or a Linux "cooked" header (113,
what `tcpdump -i any` writes). A packet that fails validation is still listed, with "invalid" and
the reason the stack would count it under; the command reads the whole file and exits 0.
"""

from __future__ import annotations

import struct
import sys

from ..cli import CliError
from ..wire.errors import WireError
from ..wire.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, read_records
from ..wire.text import format_packet

LINKTYPE_IPV4 = 228
LINKTYPE_LINUX_SLL = 113
_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_VLAN = 0x8100
# Where the EtherType sits and where the network packet starts, for the framed link types.
_FRAMING = {LINKTYPE_ETHERNET: (12, 14), LINKTYPE_LINUX_SLL: (14, 16)}
SUPPORTED_LINKTYPES = (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL)


def register(subparsers) -> None:
    parser = subparsers.add_parser("decode", help="print a pcap file one line per packet, as tcpdump -nn -S does")
    parser.add_argument("file", metavar="FILE.pcap")
    parser.set_defaults(run=run)


def run(args) -> int:
    try:
        with open(args.file, "rb") as pcap_file:
            blob = pcap_file.read()
    except OSError as error:
        raise CliError(f"cannot read {args.file}: {error.strerror or error}") from None
    try:
        linktype, records = read_records(blob)
    except WireError as error:
        raise CliError(f"{args.file} is not a pcap file ({error})") from None
    if linktype not in SUPPORTED_LINKTYPES:
        raise CliError(f"{args.file}: link type {linktype} is not supported (raw IPv4, Ethernet, Linux cooked)")
    output = sys.stdout
    for record in records:
        output.write(decode_line(linktype, record.data) + "\n")
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
        if ethertype != _ETHERTYPE_IPV4:
            return f"ethertype 0x{ethertype:04x}, length {len(data)} (not IPv4)"
        data = data[start:]
    return format_packet(data)
