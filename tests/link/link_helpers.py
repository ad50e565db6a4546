"""Helpers for the link tests: a scripted device with no fd, and real packets built by scapy."""

from __future__ import annotations

from collections import deque

from scapy.all import ICMP, IP, TCP, Raw

from ustack.link.base import Link


class ScriptedLink(Link):
    """A device for tests: `arrive(packet)` queues what receive_batch returns; send() records."""

    def __init__(self, mtu: int = 1500) -> None:
        super().__init__()
        self.mtu = mtu
        self.incoming: deque[bytes] = deque()
        self.sent: list[bytes] = []

    def arrive(self, *packets: bytes) -> None:
        self.incoming.extend(packets)

    def receive_batch(self, now, max_packets=64):
        batch = []
        while self.incoming and len(batch) < max_packets:
            batch.append(self.incoming.popleft())
        self.counters["packets_in"] += len(batch)
        return batch

    def send(self, packet, now):
        self.sent.append(packet)
        self.counters["packets_out"] += 1

    def fileno(self):
        return -1


def numbered_packets(count: int, payload_size: int = 32) -> list[bytes]:
    """Distinct, valid ICMP echo requests; packet i carries i in its sequence field."""
    return [
        bytes(IP(src="10.77.0.1", dst="10.77.0.2", id=i % 65536)
              / ICMP(type=8, id=1, seq=i % 65536) / Raw(bytes(payload_size)))
        for i in range(count)
    ]


def tcp_packet(seq: int = 1000, flags: str = "S", payload: bytes = b"") -> bytes:
    return bytes(IP(src="10.77.0.1", dst="10.77.0.2") / TCP(sport=40000, dport=80, seq=seq, flags=flags) / payload)
