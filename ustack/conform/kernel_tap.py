"""When the kernel sent each packet: the TUN reader of the kernel backend, with the kernel's clock.

A packet the kernel sends into the TUN device waits there until our reader thread is scheduled,
reads it and looks at the clock; on a busy 2-core machine that is milliseconds late, as much as
packetdrill's whole 4 ms tolerance. packetdrill itself does not time packets by when it reads
them: it sniffs the device with a packet socket and asks the kernel when the packet passed
(packet_socket_linux.c, SIOCGSTAMP). This module does the same: a packet socket bound to tun0
inside the namespace, with SO_TIMESTAMPNS, sees every packet the kernel hands the device
(PACKET_OUTGOING, from dev_queue_xmit_nit) with the time it did so. The TUN device itself is still
read, only so that its queue never fills; what it gives is dropped, the tap's copy is used.

If the packet socket cannot be made, the reader falls back to stamping a packet when it reads it
from the TUN device, and says so in the result's warnings.
"""

from __future__ import annotations

import os
import queue
import select
import socket
import struct
import threading
import time

from ustack.conform.kernel_thread import enter_network_namespace, join_realtime
from ustack.wire.checksum import checksum_add, checksum_finish, pseudo_header_sum

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # linux/if_packet.h: a packet this host sends
SO_TIMESTAMPNS = 35  # asm-generic/socket.h; the control message SCM_TIMESTAMPNS has the same number
LARGEST_PACKET = 65535
TAP_BUFFER = 4 * 1024 * 1024  # a burst of 64 KB super-segments must not be dropped by the tap
ANCILLARY_SPACE = socket.CMSG_SPACE(16)  # struct timespec


def open_packet_tap(namespace_path: str, device: str) -> socket.socket:
    """A packet socket on `device` of the namespace at `namespace_path`, with kernel time stamps.
    Made by a thread that enters the namespace (setns moves only the calling thread); the socket
    stays in that namespace whoever reads it. OSError if it cannot be made."""
    made: list = []

    def enter_and_open() -> None:
        try:
            enter_network_namespace(namespace_path)
            tap = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
            tap.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, TAP_BUFFER)
            tap.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            tap.bind((device, ETH_P_ALL))
            made.append(tap)
        except OSError as error:
            made.append(error)

    thread = threading.Thread(target=enter_and_open, name="drill-tap-open", daemon=True)
    thread.start()
    thread.join()
    if isinstance(made[0], OSError):
        raise made[0]
    return made[0]


class TunReader:
    """What the kernel sends into the TUN device, each packet with the time it was sent: the
    kernel's time stamp when a packet tap is given, else the time our thread read it."""

    def __init__(self, fd: int, clock, tap: socket.socket | None = None) -> None:
        self.fd = fd
        self.clock = clock
        self.tap = tap
        self.packets: queue.Queue = queue.Queue()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._main, name="drill-tun", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        join_realtime()
        watched = [self.fd] + ([self.tap] if self.tap is not None else [])
        while not self.stopping.is_set():
            ready, _, _ = select.select(watched, [], [], 0.05)
            try:
                if self.fd in ready:
                    packet = os.read(self.fd, LARGEST_PACKET)
                    if self.tap is None:
                        self.packets.put((self.clock(), packet))
                if self.tap is not None and self.tap in ready:
                    self._read_tap()
            except BlockingIOError:
                continue
            except OSError:
                return

    def _read_tap(self) -> None:
        packet, ancillary, _, address = self.tap.recvmsg(LARGEST_PACKET, ANCILLARY_SPACE)
        if address[2] != PACKET_OUTGOING:
            return  # what the script injected, seen on its way in
        sent = None
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                seconds, nanoseconds = struct.unpack("qq", data[:16])
                sent = seconds + nanoseconds / 1e9
        # The stamp is wall-clock time; the script's clock is monotonic: take the packet's age.
        age = max(0.0, time.time() - sent) if sent is not None else 0.0
        self.packets.put((self.clock() - age, packet))

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=1.0)
        if self.tap is not None:
            self.tap.close()


def fill_tcp_checksum(packet: bytes) -> bytes:
    """The packet with its TCP checksum computed: with checksum offload the kernel leaves only
    the pseudo-header sum in it (the device is supposed to finish it). IPv4 or IPv6 (without
    extension headers, which the kernel does not put on TCP)."""
    if packet[0] >> 4 == 6:
        if len(packet) < 60 or packet[6] != 6:
            return packet
        header_length, total = 40, 40 + struct.unpack_from("!H", packet, 4)[0]
    else:
        header_length = (packet[0] & 0x0F) * 4
        if len(packet) < header_length + 20 or packet[9] != 6:
            return packet
        total = struct.unpack_from("!H", packet, 2)[0]
    tcp = bytearray(packet[header_length:total])
    tcp[16:18] = b"\0\0"
    if header_length == 40:  # RFC 8200 8.1: addresses, upper-layer length, next header
        partial = checksum_add(0, packet[8:40] + struct.pack("!I3xB", len(tcp), 6))
    else:
        source, destination = struct.unpack_from("!II", packet, 12)
        partial = pseudo_header_sum(source, destination, 6, len(tcp))
    tcp[16:18] = struct.pack("!H", checksum_finish(checksum_add(partial, bytes(tcp))))
    return packet[:header_length] + bytes(tcp)
