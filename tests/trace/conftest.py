"""Shared helpers for the ladder tests: pcaps of scripted exchanges, built with scapy (an
independent implementation) and read back through ustack's own pcap reader and parse_packet."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from ustack.trace.infer import build_ladder
from ustack.trace.pcap_source import read_capture
from ustack.wire.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, file_header, record


class Conversation:
    """Writes a pcap of a scripted TCP exchange between a client (A) and a server (B).

    Each side tracks its own next sequence number, so a script reads like the textbook:
        talk.send("A", "S"); talk.send("B", "SA"); talk.send("A", "A")
    `send(..., seq=...)` resends old data (a retransmission); `lost=True` leaves the packet out of
    the file but advances the sender (as if it were dropped before the capture point).
    """

    def __init__(self, a=("10.0.0.1", 40000), b=("10.0.0.2", 80), isn_a=1000, isn_b=5000, linktype=LINKTYPE_RAW):
        self.addresses = {"A": a, "B": b}
        self.next_seq = {"A": isn_a, "B": isn_b}
        self.received = {"A": isn_b, "B": isn_a}  # what each side acknowledges
        self.arrived = {"A": {}, "B": {}}  # start -> end of the segments each side has received
        self.time = 1_700_000_000.0
        self.ip_id = {"A": 100, "B": 900}
        self.linktype = linktype
        self.records = []

    def send(self, side, flags, data=b"", seq=None, ack=None, window=64240, options=(), lost=False, gap=0.010,
             advance_peer=True, ip_id=None):
        peer = "B" if side == "A" else "A"
        self.time += gap
        start = self.next_seq[side] if seq is None else seq
        acknowledge = self.received[side] if ack is None else ack
        (src, sport), (dst, dport) = self.addresses[side], self.addresses[peer]
        self.ip_id[side] += 1
        if ":" in src:  # an IPv6 conversation: no identification, no DF (RFC 8200)
            network = IPv6(src=src, dst=dst, fl=self.ip_id[side])
        else:
            network = IP(src=src, dst=dst, id=self.ip_id[side] if ip_id is None else ip_id, flags="DF")
        packet = network / TCP(
            sport=sport, dport=dport, seq=start, ack=acknowledge if "A" in flags else 0, flags=flags,
            window=window, options=list(options)) / data
        length = len(data) + ("S" in flags) + ("F" in flags)
        end = (start + length) % 2**32
        if seq is None:
            self.next_seq[side] = end
        if advance_peer and not lost and length:
            # The peer acknowledges everything that arrived without a hole before it.
            self.arrived[peer][start] = end
            while self.received[peer] in self.arrived[peer]:
                self.received[peer] = self.arrived[peer].pop(self.received[peer])
        raw = bytes(packet)
        if self.linktype == LINKTYPE_ETHERNET:
            raw = bytes(Ether(src="00:00:00:00:00:00", dst="00:00:00:00:00:00") / packet)
        if not lost:
            self.records.append(record(self.time, raw))
        return raw

    def pcap(self):
        return file_header(self.linktype) + b"".join(self.records)

    def write(self, path):
        path.write_bytes(self.pcap())
        return path

    def ladder(self, port=None):
        capture = read_capture(self.pcap())
        assert not capture.skipped, capture.skipped
        return build_ladder(capture.observations, port=port, source="test.pcap")

    def handshake(self):
        self.send("A", "S", options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)])
        self.send("B", "SA", options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)])
        self.send("A", "A")


@pytest.fixture
def conversation():
    """The Conversation class: `talk = conversation()` starts a new scripted exchange."""
    return Conversation
