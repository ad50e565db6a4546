"""`ustack decode FILE.pcap`: one tcpdump-style line per packet (filled in by the wire layer work)."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("decode", help="print a pcap file one line per packet, as tcpdump -nn -S does")
    parser.add_argument("file", metavar="FILE.pcap")
    parser.set_defaults(run=run)


def run(args) -> int:
    raise NotImplementedError
