"""PcapWriter: a middleware that records every packet, both directions, in a pcap file that
tcpdump and Wireshark open (`tcpdump -nn -r trace.pcap`).

    link = PcapWriter(TunLink("ustun0"), "trace.pcap")

The link type is LINKTYPE_RAW (the packet starts with the IPv4 header), which is exactly what a
TUN device carries, so nothing is invented. Pcap has no direction field: the source and
destination addresses tell in from out.

A received super-segment whose TCP checksum the TUN link left partial (vnet.py packet_from_parts:
the kernel vouched for it, and the stack never reads the field) is written with its checksum
completed (vnet.complete_checksum, in place), so that Wireshark and scapy find every checksum
right. tcpdump on the device itself would show the partial sum, which Wireshark flags as wrong;
written here, it is the super-segment as a wire would carry it whole.

The file is flushed after every batch (and on flush()/close()), so a test or a student can read it
while the stack is still running.

Timestamps: the stack's `now` is monotonic (or virtual) time, while pcap wants seconds since the
epoch. The writer adds `timestamp_offset`: by default the wall clock minus the monotonic clock at
creation, which is right for the asyncio runtime (now = loop.time(), which is time.monotonic());
virtual-time tests pass timestamp_offset=0.0 and get timestamps counted from the epoch itself.
"""

from __future__ import annotations

import os
import time
from typing import BinaryIO, Iterable

from ..wire import pcap
from .base import Link, Middleware
from .vnet import complete_checksum


class PcapWriter(Middleware):
    def __init__(
        self,
        inner: Link,
        destination: str | os.PathLike | BinaryIO,
        timestamp_offset: float | None = None,
    ) -> None:
        super().__init__(inner)
        if isinstance(destination, (str, os.PathLike)):
            self.path = os.fspath(destination)
            self._file: BinaryIO = open(self.path, "wb")
            self._owns_file = True
        else:
            self.path = getattr(destination, "name", None)
            self._file = destination
            self._owns_file = False
        if timestamp_offset is None:
            timestamp_offset = time.time() - time.monotonic()
        self.timestamp_offset = timestamp_offset
        self._file.write(pcap.file_header(pcap.LINKTYPE_RAW))
        self._file.flush()

    def layer_name(self) -> str:
        return f"PcapWriter({self.path})"

    def _write(self, packets: Iterable[bytes], now: float) -> None:
        timestamp = now + self.timestamp_offset
        count = 0
        for packet in packets:
            self._file.write(pcap.record(timestamp, complete_checksum(packet)))
            count += 1
        if count:
            self.counters["packets_written"] += count
            self._file.flush()

    def receive_batch(self, now: float, max_packets: int = 64) -> list[bytes]:
        packets = self.inner.receive_batch(now, max_packets)
        self._write(packets, now)
        return packets

    def send(self, packet: bytes, now: float) -> None:
        self._write((packet,), now)
        self.inner.send(packet, now)

    def send_batch(self, packets: Iterable[bytes], now: float) -> None:
        packets = list(packets)
        self._write(packets, now)
        self.inner.send_batch(packets, now)

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()
        self.inner.flush()

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._owns_file:
                self._file.close()
            else:
                self._file.flush()
        finally:
            super().close()
