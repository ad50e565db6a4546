"""`ustack decode FILE.pcap`: one line per packet, as `tcpdump -t -nn -S -r FILE.pcap` prints it.

Reads pcap files whose packets start at the IPv4 header (link types RAW 101 and IPV4 228) or carry an Ethernet
header first (link type 1). A packet that fails validation is still listed, with "invalid" and
the reason the stack would count it under; the command reads the whole file and exits 0.
"""

from __future__ import annotations

import struct
import sys

from ..cli import CliError
from ..wire.errors import WireError
from ..wire.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, read_records
from ..wire.text import format_packet

_LINKTYPE_IPV4 = 228  # like RAW, but IPv4 only (what scapy writes)
_IP_LINKTYPES = (LINKTYPE_RAW, _LINKTYPE_IPV4)
_ETHERNET_HEADER_LENGTH = 14
_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_VLAN = 0x8100


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
    if linktype not in _IP_LINKTYPES and linktype != LINKTYPE_ETHERNET:
        raise CliError(f"{args.file}: link type {linktype} is not supported (only raw IPv4 and Ethernet)")
    output = sys.stdout
    for record in records:
        output.write(decode_line(linktype, record.data) + "\n")
    return 0


def decode_line(linktype: int, data: bytes) -> str:
    """The line for one captured frame."""
    if linktype == LINKTYPE_ETHERNET:
        if len(data) < _ETHERNET_HEADER_LENGTH:
            return f"invalid ethernet_truncated, {len(data)} bytes"
        ethertype = struct.unpack_from("!H", data, 12)[0]
        offset = _ETHERNET_HEADER_LENGTH
        if ethertype == _ETHERTYPE_VLAN and len(data) >= offset + 4:  # one 802.1Q tag
            ethertype = struct.unpack_from("!H", data, offset + 2)[0]
            offset += 4
        if ethertype != _ETHERTYPE_IPV4:
            return f"ethertype 0x{ethertype:04x}, length {len(data)} (not IPv4)"
        data = data[offset:]
    return format_packet(data)
