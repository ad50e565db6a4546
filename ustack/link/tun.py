"""A Linux TUN device: the kernel routes IPv4 packets to it, we read them from a file descriptor,
and whatever we write comes out of the device as if a host behind it had sent it.

    link = TunLink("ustun0", mtu=1500)                     # in the current namespace
    link = TunLink("ustun0", namespace="ust-lab-1")        # inside a named namespace

The device is opened with IFF_TUN | IFF_NO_PI: each read is exactly one IP packet with no extra
header in front, each write is one packet. The fd is non-blocking; receive_batch() reads until the
kernel says EAGAIN (or max_packets), so one wake-up of the event loop handles a whole burst.

Namespaces: the kernel puts a new TUN device in the network namespace of whoever opened
/dev/net/tun. So to create it inside a namespace we move this thread there for the few
microseconds of the open (pyroute2.netns.pushns), and come straight back (popns). The fd keeps
working from the root namespace: only the device and its routes live in the other one. (pushns
saves /proc/self/ns/net, the main thread's namespace: create links from the main thread.)

Offloads (issues 11 and 12; on by default, `offload=False` or `ustack serve --no-offload` to
compare): the device is opened with IFF_VNET_HDR too and told TUNSETOFFLOAD(TUN_F_CSUM |
TUN_F_TSO4 | TUN_F_TSO6), so every packet in either direction carries a virtio_net_hdr in front
(ustack/link/vnet.py), and IPv4 and IPv6 connections move super-segments alike:
- receiving, the kernel may hand us a TCP super-segment of up to 64 KB that its GRO/TSO path built
  from MSS-sized segments, with a partial checksum, and the stack takes the super-segment as ONE
  segment (one parse, one ACK decision). The checksum is left partial where the kernel vouches
  for it (vnet.packet_from_parts: at the TCP checksum field of an unfragmented TCP segment): the
  parser is told not to sum it, and vnet.complete_checksum completes it only for what reads the
  packet's bytes as a wire would (pcap, FaultInjector, tracer, live ladder); any other partial
  checksum is completed here;
- sending, the core itself may build segments of up to 64 KB (TcpConfig.offload_segments, which
  the Stack sets when built with segmentation_offload=True, on connections whose segments fill
  the MTU); the kernel cuts them into segments of the MTU minus the headers, with the checksum
  left partial for it to finish. The stack builds such a segment with its checksum partial
  already (codec.build_tcp_packet: no pass over its payload in user space) and in parts
  (SegmentParts: its headers, and the send buffer's payload, never copied behind them), so the
  link writes [vnet header, headers, payload] in one os.writev and the payload's only copy is
  the kernel's; complete_checksum joins and completes a copy for the pcap writer,
  FaultInjector, tracer and live ladder. At a large MTU (65535), where a 64 KB segment needs no
  cutting, one from codec.PARTIAL_CHECKSUM_FROM bytes on goes the same way with NEEDS_CSUM and
  GSO_NONE (vnet.partial_packet_parts): no checksum is made in user space, and a local socket
  takes it without one (CHECKSUM_PARTIAL), where one built whole was summed here and again by
  the kernel. Consecutive in-order MSS-sized
  segments of one connection that still come one by one are joined into a super-segment
  (vnet.Coalescer) which the kernel cuts back into the very same segments (gso_size = their
  length). The run being joined is held until
  the next packet that does not join it, a piece with PSH or FIN (which ends a run, so a reply is
  written as soon as the core makes it), or flush(), which the runtime calls at the end of every
  round (base.py's contract).
Each frame is read with one os.readv into two preallocated buffers (the vnet header, the packet),
whose partial checksum, where it is completed at all, is completed in place; each is written
with one os.writev of its parts (the vnet header, headers, payloads), so no 64 KB payload is
copied into a frame first. A small frame (the vnet header and one packet of at most
JOINED_FRAME_MOST bytes: an answer, an ACK) is joined and written with os.write instead, and the
reads go through one iovec made once (compat.prepared_readv): on PyPy, where os.readv and os.writev are
compat's cffi stand-ins, building an iovec and taking each buffer's address cost more than the
copy of ~130 bytes (issue 12, echo round trip).
Middlewares outside this link (FaultInjector, PcapWriter, Tracer) therefore see super-segments
both ways, as tcpdump on the device shows them: the large segments the core builds, what the
kernel delivers coalesced; and the rest segment by segment. A FaultInjector that drops a
super-segment drops all the segments in it, which is what the peer then misses; one that drops
one of the segments the Coalescer would join cuts the run at the gap, so the peer misses exactly
that one.
BIG TCP (`gso_max_size`, `ustack serve --gso-max-size`): the kernel takes TCP super-segments
longer than IP's 16-bit length fields can say, as Linux's own TCP builds them for a device whose
gso_max_size (IPv6) or gso_ipv4_max_size is raised: over IPv4 with Total Length 0, the frame's
length being the packet's (Linux 6.3 and later); over IPv6 as jumbograms (RFC 2675: Payload
Length 0 and a hop-by-hop header with the Jumbo Payload option, Linux 5.19 and later). With
offloads this link takes them up to 256 KiB by default, and the Stack builds segments that large
(Stack(gso_max_size=)): a download then writes ~5-6 frames per MB instead of ~17 at MTU 1500, for
fewer Python calls and system calls per MB. The kernel cuts them into MSS-sized segments as
always (a peer's `ss -ti` shows its usual MSS; the pieces of a jumbogram are ordinary packets,
without its hop-by-hop header); tcpdump on the device shows an IPv4 one with "length 0", its
sign for a TSO packet, and an IPv6 one as a jumbogram. A frame that long needs a few runs of
contiguous pages in the kernel; where a write of one fails, it is cut here into MTU-sized
packets (cut_tcp_segment) and counted (`big_packets_cut_here`). `gso_max_size=65535` sends as
before; without offloads (software offload) the same size is taken, and cut here.

If the kernel refuses TUNSETOFFLOAD the device is opened again without IFF_VNET_HDR, and
`offload` says which way it runs. If it takes CSUM and TSO4 but refuses TSO6, `tso6` is False: the
kernel then hands us IPv6 segments one by one, and an IPv6 segment larger than the MTU that the
core built is cut here in software (cut_tcp_segment), so the Stack above need not know.

Software offload (`offload=False`, `ustack serve --no-offload`, or a kernel that refuses
TUNSETOFFLOAD; `software_offload=False` turns it off too): the device then carries one MTU-sized
packet per read and per write, and this link does in software what Linux does for a device
without offloads (GRO and GSO), so that the core's per-segment work stays per super-segment:
- receiving, receive_batch reads the batch (until EAGAIN or max_packets) into the slots of one
  buffer and joins each run of consecutive in-order segments of one connection into one
  super-segment (csrc/segment.c states the rules: same addresses, ports, ACK number, window,
  options byte for byte, IP fields and ECN codepoint; data only, PSH on the last piece; each
  packet's checksums verified first, a bad one handed up alone for the stack to drop and count
  as always);
- sending, the Stack builds segments of up to 64 KB (cuts_large_segments) and send() cuts each
  into MTU-sized packets with full checksums, PSH/FIN on the last and CWR on the first only, and
  writes them one by one (cut_tcp_segment takes the SegmentParts as they are: the payload is
  copied once, into the pieces). A partial packet the MTU carries whole leaves complete, summed
  where its parts lie (on PyPy the Stack builds such packets from PARTIAL_CHECKSUM_FROM bytes on,
  as with offloads: PARTS_WITHOUT_OFFLOADS says why).
The byte stream and every decision of the core are the same as with the segments one by one;
the receiver's ACKs count a super-segment's bytes as the full-sized segments in it (one ACK per
joined run, as with the kernel's GRO). Middlewares above see super-segments both ways, as they
do with offloads; a lab, which shows TCP segment by segment, opens its link with
software_offload=False.

Several queues (`ustack serve --workers N`, ustack/workers.py; Documentation/networking/tuntap.rst
3.3): a device opened with IFF_MULTI_QUEUE can be opened again by name, each open (TUNSETIFF with
the same name and flags) adding one queue with its own fd: `link.attach_queue()`. The kernel picks
the queue for each packet it sends to the device: a flow the user side has written to goes to the
queue it last wrote on (the device's flow table, refreshed by our writes), a new flow to the queue
its symmetric flow hash selects (hash scaled onto the number of queues), so both directions of a
TCP connection stay on one queue. The device lives until its last queue is closed.

This class only creates the device, sets its MTU and queue length; addresses, routes and "up" are
the job of ustack.netns.setup_tun_in_namespace. Closing the fd deletes the device (it is not
persistent), so nothing is left behind.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys

import pytun

from .. import compat
from .base import Link, LinkError
from ..wire.buffers import LinkBuffer, SegmentParts
from ..wire.segment import LARGEST_BIG_PACKET, LARGEST_PACKET, AckThinner, SegmentJoiner, cut_tcp_segment
from .vnet import (CWR, ECE, GSO_NONE, GSO_TCPV6, HEADER, HEADER_SIZE, PLAIN_BYTES, Coalescer, VnetDrop,
                   complete_checksum, completed_parts, large_segment_parts, packet_from_parts)

TUN_PATH = "/dev/net/tun"
# The kernel's default transmit queue for a TUN device is 500 packets, which a burst of 64 KiB
# windows overflows; packets past it are dropped by the kernel before we ever see them.
DEFAULT_TXQUEUELEN = 10000
IPV4_VERSION = 4
IPV6_VERSION = 6
# include/uapi/linux/if_tun.h: TUNSETOFFLOAD = _IOW('T', 208, unsigned int) and its flags.
TUNSETOFFLOAD = 0x400454D0
TUN_F_CSUM = 0x01  # "you can hand me unchecksummed packets"
TUN_F_TSO4 = 0x02  # "I can handle TSO for IPv4 packets"
TUN_F_TSO6 = 0x04  # "... and for IPv6 packets"
TUN_F_TSO_ECN = 0x08  # "... with the CWR bit set"
OFFLOADS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6
OFFLOADS_WITHOUT_TSO6 = TUN_F_CSUM | TUN_F_TSO4  # what we settle for if the kernel refuses TSO6
IFF_MULTI_QUEUE = 0x0100  # include/uapi/linux/if_tun.h: one queue (fd) per TUNSETIFF with the same name
# BIG TCP (module docstring): the kernel reads IPv4's Total Length 0 of a TCP GSO packet as "the
# frame's length" since Linux 6.3 ("net: add support for ipv4 big tcp"; IPv6 jumbograms since
# 5.19); an older one drops such a packet as a bad header, silently (the write succeeds), so the
# version decides.
BIG_TCP_SINCE = (6, 3)
# What a link with offloads takes by default on such a kernel: 256 KiB (measured at MTU 1500 with
# two serves at once: 252 KB and 495 KB frames cost alike, both ~20 % less CPU per MB downloaded
# than 64 KB ones; and 256 KiB is what pcap's and Wireshark's usual snapshot length takes whole).
DEFAULT_BIG_TCP_SIZE = LARGEST_BIG_PACKET
# A vnet header and the largest packet: IPv6's 40-byte header and a 65535-byte payload.
LARGEST_FRAME = HEADER_SIZE + 40 + 65535
IOV_MAX = os.sysconf("SC_IOV_MAX")  # the most buffers one os.writev takes (1024 on Linux)
# A frame of two buffers, the vnet header and a packet of at most this many bytes, is joined (a
# copy this small) and written with os.write rather than os.writev. On PyPy os.writev is compat's
# cffi stand-in, which builds an iovec and takes each buffer's address at every call: ~0.4 us
# more than the join and os.write for an echo's answer (issue 12, fourteenth pass; on
# CPython the two cost the same). A packet the MTU carries at 1500 fits; a larger one keeps its
# one copy, the kernel's.
JOINED_FRAME_MOST = 2048
# Software offload on PyPy (`serve --no-offload`): the packets the MTU carries are built in parts
# from PARTIAL_CHECKSUM_FROM bytes on, as with offloads (takes_partial_checksums), and summed and
# written in their parts here (vnet.completed_parts: [headers, the send buffer's payload]). Built
# whole, each segment at MTU 65535 was a new 64 KB bytes object, joined from a view of the send
# buffer (9.5 us per 64 KB on PyPy against 3.4 on CPython) and handed to os.writev, whose cffi
# stand-in moves a young object out of the nursery: libc's memmove was 18.6 % of serve's samples
# (perf), 1.2 % in parts, and serve's user CPU per MB downloaded 1,090-1,330 us against 570-720
# in five runs each (issue 12, fourteenth pass, /work/bench/s14/pypyjumbo). On CPython a packet
# built whole is summed while it is copied, and the two cost alike (tenth pass): it stays so there.
PARTS_WITHOUT_OFFLOADS = sys.implementation.name == "pypy"
# Software offload reads a batch into one buffer of MTU-sized slots: at most this many slots, and
# at most this many bytes (a batch at MTU 65535 is 16 packets).
JOIN_SLOTS = 64
JOIN_BUFFER = 1 << 20


class TunLink(Link):
    def __init__(
        self,
        name: str = "ustun0",
        mtu: int = 1500,
        namespace: str | None = None,
        txqueuelen: int = DEFAULT_TXQUEUELEN,
        offload: bool = True,
        multi_queue: bool = False,
        existing: bool = False,
        software_offload: bool = True,
        gso_max_size: int | None = None,
    ) -> None:
        """`multi_queue`: open the device with IFF_MULTI_QUEUE, so that attach_queue() can add
        queues. `existing`: this is such a further queue of a device already made (no new device,
        MTU and queue length left as they are); use attach_queue() rather than this.
        `software_offload`: where the device runs without the kernel's offloads, join and cut
        segments here instead (see the module docstring); False: every packet as it comes.
        `gso_max_size`: the longest TCP packet the Stack may hand this link to cut (BIG TCP
        above 65535, module docstring); None: 256 KiB with the kernel's offloads on Linux 6.3 or
        later, else 65535."""
        super().__init__()
        if not 68 <= mtu <= 65535:  # RFC 791: every IPv4 link carries at least 68 bytes
            raise LinkError(f"TUN mtu {mtu} is outside 68..65535")
        if len(name.encode()) > 15:  # IFNAMSIZ is 16 including the final NUL
            raise LinkError(f"TUN name {name!r} is longer than 15 characters")
        if gso_max_size is not None and not LARGEST_PACKET <= gso_max_size <= LARGEST_BIG_PACKET:
            raise LinkError(f"gso_max_size {gso_max_size} is outside {LARGEST_PACKET}..{LARGEST_BIG_PACKET}")
        self.name = name
        self.mtu = mtu
        self.namespace = namespace
        self.multi_queue = multi_queue or existing
        self._device = _open_tun(name, namespace, offload, self.multi_queue, existing)
        offloads = _enable_offloads(self._device) if offload else 0
        self.offload = bool(offloads)
        self.tso6 = bool(offloads & TUN_F_TSO6)
        self.software_offload = software_offload and not self.offload
        self.gso_max_size = _big_tcp_size(gso_max_size, self.offload, self.software_offload)
        if offload and not self.offload:
            if existing:  # the queues of one device must all carry the vnet header, or none
                self._device.close()
                raise LinkError(f"TUN {name}: the kernel refused offloads on a further queue")
            self._device.close()  # the kernel offers no offloads: an ordinary device instead
            self._device = _open_tun(name, namespace, False, self.multi_queue)
        try:
            if not existing:
                _configure(name, namespace, mtu, txqueuelen)
            os.set_blocking(self._device.fileno(), False)
        except BaseException:
            self._device.close()
            raise
        self._use(self._device)

    def _use(self, device) -> None:
        """Read and write through `device` (its fileno()), with the offloads already settled."""
        compat.load_vector_io()  # the first read as quick as the rest (on PyPy: compat says why)
        self._device = device
        self._fd = device.fileno()
        self._coalescer = Coalescer(ipv6=self.tso6) if self.offload else None
        # The kernel's GRO joins the data it hands up, never pure ACKs: a download's come one per
        # frame, and a read batch's runs of them are thinned as software GRO thins them.
        self._ack_thinner = AckThinner() if self.offload else None
        self._joiner = None
        if self.software_offload:
            self._joiner = SegmentJoiner(self.mtu, max(1, min(JOIN_SLOTS, JOIN_BUFFER // self.mtu)))
        # Each frame is read straight into these (os.readv): the vnet header, then the packet,
        # copied into the bytes handed to the stack, or for a super-segment handed over whole
        # (packet_from_parts), the next frame then going into a new buffer.
        self._vnet_header = bytearray(HEADER_SIZE)
        self._packet_buffer = LinkBuffer(LARGEST_FRAME - HEADER_SIZE) if self.offload else bytearray()
        self._read_buffers = [self._vnet_header, self._packet_buffer]
        self._read_frame = compat.prepared_readv(self._fd, self._read_buffers) if self.offload else None

    def attach_queue(self) -> "TunLink":
        """One more queue of this multi-queue device: a TunLink with its own fd, same offloads."""
        if not self.multi_queue:
            raise LinkError(f"TUN {self.name} was not opened with multi_queue=True")
        return TunLink(self.name, mtu=self.mtu, namespace=self.namespace, offload=self.offload, existing=True,
                       software_offload=self.software_offload, gso_max_size=self.gso_max_size)

    @property
    def cuts_large_segments(self) -> bool:
        """Whether the Stack may hand this link TCP segments larger than the MTU: the kernel cuts
        them (TSO) or this link does (software offload). Stack(segmentation_offload=...)."""
        return self.offload or self.software_offload

    @property
    def takes_partial_checksums(self) -> bool:
        """Whether this link takes TCP checksums left partial in the packets the MTU carries: the
        Stack then builds packets from PARTIAL_CHECKSUM_FROM bytes on so (SegmentParts),
        Stack(partial_checksums=...). With the vnet header the kernel is handed them (NEEDS_CSUM);
        in software offload on PyPy (PARTS_WITHOUT_OFFLOADS) this link completes them where their
        parts lie (vnet.completed_parts) and writes the parts."""
        return self.offload or (self.software_offload and PARTS_WITHOUT_OFFLOADS)

    def offload_summary(self) -> str:
        """One line for serve's banner: how TCP segments cross this device."""
        if self.offload:
            families = "IPv4 and IPv6" if self.tso6 else "IPv4 (IPv6 segments cut here)"
            size = (f"up to {self.gso_max_size:,} bytes at once (BIG TCP)" if self.gso_max_size > LARGEST_PACKET
                    else "up to 64 KB at once")
            return f"offloads on: the kernel cuts our TCP segments and joins its own, {families}, {size}"
        if self.software_offload:
            return "offloads off: TCP segments joined and cut here, in software (--no-software-offload: every packet as it comes)"
        return "offloads off: every packet as it comes"

    def layer_name(self) -> str:
        return f"TunLink({self.name})"

    def fileno(self) -> int:
        return self._fd

    def receive_batch(self, now: float, max_packets: int = 64) -> list[bytes]:
        joiner = self._joiner
        if joiner is None:
            if self.offload:
                return self._receive_offloaded(max_packets)
            return super().receive_batch(now, max_packets)
        # Software GRO: read the batch into the joiner's slots (one os.readv each, no bytes object
        # made per packet), then join its runs in one C call (ustack/wire/segment.py).
        fd, slots, lengths = self._fd, joiner.slots, joiner.lengths
        count, limit = 0, min(max_packets, joiner.capacity)
        try:
            while count < limit:
                lengths[count] = os.readv(fd, slots[count])
                count += 1
        except BlockingIOError:
            pass  # nothing more is ready
        except OSError:
            if not count:
                raise
            # Hand over what we have; the next call meets the error again.
        if not count:
            return []
        packets = joiner.join(count)
        self.counters["packets_in"] += len(packets)
        self.counters["bytes_in"] += sum(map(len, packets))
        return packets

    def read_packet(self) -> bytes | None:
        if self.offload:
            return self._read_offloaded()
        packet = os.read(self._fd, self.mtu)
        # IFF_NO_PI: no protocol field, the version nibble tells IPv4 from IPv6 (the stack takes
        # both); anything else is dropped by name.
        if not packet or packet[0] >> 4 not in (IPV4_VERSION, IPV6_VERSION):
            self.count_drop("not_ip")
            return None
        return packet

    def _receive_offloaded(self, max_packets: int) -> list[bytes]:
        """Link.receive_batch for a device with the vnet header: the same packets, counters and
        errors, with each frame's read in this loop (read_packet's call per frame left out: every
        packet of every connection comes through here, ~4 per `ab` connection)."""
        packets: list[bytes] = []
        append, read = packets.append, self._read_offloaded
        count = 0
        try:
            while count < max_packets:
                packet = read()
                if packet is not None:
                    append(packet)
                    count += 1
        except BlockingIOError:
            pass  # nothing more is ready
        if count > 2:
            packets = self._ack_thinner.thin(packets)  # counted as software GRO counts: what goes up
        counters = self.counters
        counters["packets_in"] += len(packets)
        counters["bytes_in"] += sum(map(len, packets))
        return packets

    def _read_offloaded(self) -> bytes | None:
        length = self._read_frame() - HEADER_SIZE
        try:
            packet = packet_from_parts(self._vnet_header, self._packet_buffer, length)
        except VnetDrop as drop:
            self.count_drop(drop.reason)
            return None
        if type(packet) is memoryview and packet.obj is self._packet_buffer:
            # The buffer went with it (not on PyPy: vnet.HANDS_OVER_BUFFERS): the next frame needs a new one.
            self._packet_buffer = self._read_buffers[1] = LinkBuffer(LARGEST_FRAME - HEADER_SIZE)
            self._read_frame = compat.prepared_readv(self._fd, self._read_buffers)
        if not packet or packet[0] >> 4 not in (IPV4_VERSION, IPV6_VERSION):
            self.count_drop("not_ip")
            return None
        if self._vnet_header[1] != GSO_NONE:
            self.counters["super_segments_in"] += 1
        return packet

    def send(self, packet: bytes, now: float) -> None:
        if len(packet) > self.mtu and self._coalescer is None:
            # Software GSO: cut here what the core built larger than the MTU (only where
            # cuts_large_segments told the Stack it may), each piece one write.
            pieces = cut_tcp_segment(packet, self.mtu) if self.software_offload else None
            if pieces is None:
                self.count_drop("larger_than_mtu")
                return
            self.counters["large_segments_cut_here"] += 1
            self._write_each(pieces)
            return
        if len(packet) > self.mtu:
            # CWR and ECE may ride on a large segment too (ECN's first new data after a reduction).
            parts = large_segment_parts(packet, self.mtu, CWR | ECE, self.gso_max_size)
            if parts is None:
                self.count_drop("larger_than_mtu")
                return
            for earlier in self._coalescer.flush_parts():
                self._write(earlier)
            self.counters["large_segments_out"] += 1
            # Cut here what the kernel will not cut as it should: an IPv6 segment when it refused
            # TSO6, and one carrying CWR, which it was not offered TUN_F_TSO_ECN for (it would put
            # CWR on every piece; RFC 3168 6.1.2 wants it once, and cut_tcp_segment keeps it
            # on the first piece only).
            _, gso_type, _, _, tcp_start, _ = HEADER.unpack_from(parts[0])
            if (gso_type == GSO_TCPV6 and not self.tso6) or packet[tcp_start + 13] & CWR:
                self.counters["large_segments_cut_here"] += 1
                self._write_cut(packet)
                return
            if len(packet) > LARGEST_PACKET:
                self._write_big(packet, parts)
                return
            self._write(parts)
            return
        if self._coalescer is None:
            # A device without offloads takes no partial checksum: a segment the stack built
            # partial (SegmentParts, from PARTIAL_CHECKSUM_FROM bytes on) leaves complete, summed
            # and written in its parts (completed_parts: no join).
            if type(packet) is SegmentParts:
                self._write(completed_parts(packet))
                return
            if type(packet) is not bytes:
                packet = complete_checksum(packet)
            self._write([packet])
            return
        if type(packet) is memoryview:
            # A received super-segment passed on, its checksum still partial: it leaves complete.
            # (The Coalescer writes SegmentParts with NEEDS_CSUM.)
            packet = complete_checksum(packet)
        for parts in self._coalescer.add_parts(packet):
            self._write(parts)

    def send_batch(self, packets, now: float) -> None:
        """Link.send_batch: each packet as send() takes it. With the vnet header (the coalescer),
        a packet no larger than the MTU, what every connection's handshake, answer and ACKs are,
        goes from the coalescer to os.writev in this loop, counted once for the batch (send's and
        _write's calls and counter updates, per packet, cost as much Python as the rest of its way
        down: ~3 packets per `ab` connection)."""
        coalescer = self._coalescer
        if coalescer is None:
            for packet in packets:
                self.send(packet, now)
            return
        fd, write, writev, mtu, add_parts = self._fd, os.write, os.writev, self.mtu, coalescer.add_parts
        sent = written = 0
        try:
            for packet in packets:
                if len(packet) > mtu:
                    self.send(packet, now)  # a large segment: cut by the kernel or here
                    continue
                for parts in add_parts(packet):
                    if len(parts) > IOV_MAX:
                        self._write(parts)  # (counts itself)
                        continue
                    try:
                        if len(parts) == 2 and len(parts[1]) <= JOINED_FRAME_MOST:
                            written += write(fd, parts[0] + parts[1])  # (JOINED_FRAME_MOST says why)
                        else:
                            written += writev(fd, parts)
                    except OSError as error:
                        self._count_refused(error)  # a counted drop, or LinkError: the device is gone
                        continue
                    sent += 1
        finally:
            if sent:  # (what was written before a LinkError is counted too)
                counters = self.counters
                counters["packets_out"] += sent
                counters["bytes_out"] += written - HEADER_SIZE * sent

    def flush(self) -> None:
        if self._coalescer is not None and not self.closed:
            for parts in self._coalescer.flush_parts():
                self._write(parts)

    def stats(self) -> dict[str, dict[str, int]]:
        joiner = self._joiner
        if joiner is not None:
            self.counters["super_segments_in"] = joiner.super_segments
            self.counters["segments_in_super_segments_in"] = joiner.segments_joined
            self.counters["pure_acks_absorbed"] = joiner.acks_absorbed
            if joiner.not_ip:
                self.counters["drop_not_ip"] = joiner.not_ip
            if joiner.longer_than_slot:
                self.counters["drop_longer_than_mtu"] = joiner.longer_than_slot
        if self._ack_thinner is not None:
            self.counters["pure_acks_absorbed"] = self._ack_thinner.acks_absorbed
        if self._coalescer is not None:
            self.counters["super_segments_out"] = self._coalescer.super_segments
            self.counters["segments_in_super_segments_out"] = self._coalescer.segments_joined
        return super().stats()

    def _write(self, parts: list) -> None:
        """One write of the buffers `parts` (os.writev: gathered by the kernel, not joined here; a
        small frame or a single bytes object with os.write, as said below): a packet, or with
        offloads a frame (the vnet header, then the packet or super-segment)."""
        if len(parts) > IOV_MAX:  # a run of many tiny pieces (a small MTU): more than writev takes
            parts = [b"".join(parts)]
        try:
            if len(parts) == 2 and len(parts[1]) <= JOINED_FRAME_MOST:
                written = os.write(self._fd, parts[0] + parts[1])  # (JOINED_FRAME_MOST says why)
            elif len(parts) == 1 and type(parts[0]) is bytes:
                # A packet built whole: os.write takes the bytes as they lie (PyPy pins them for the
                # call), where compat's os.writev builds an iovec and its from_buffer copies a
                # young object out of the nursery (compat.FROM_BUFFER_MOVES_YOUNG_BYTES).
                written = os.write(self._fd, parts[0])
            else:
                written = os.writev(self._fd, parts)
        except OSError as error:
            self._count_refused(error)
            return
        self.counters["packets_out"] += 1
        self.counters["bytes_out"] += written - (HEADER_SIZE if self.offload else 0)

    def _write_big(self, packet, parts: list) -> None:
        """A BIG TCP frame (module docstring), or where the kernel cannot take it whole, its
        MTU-sized pieces cut here. The kernel builds a written frame's buffer from at most 17 runs
        of pages (alloc_skb_with_frags): a 256 KiB one needs runs of 16 KiB or more, which memory
        worn into small pieces may lack, and then the write fails (ENOBUFS, ENOMEM, EMSGSIZE; EINVAL
        where a kernel refuses the length)."""
        try:
            written = os.writev(self._fd, parts)
        except OSError as error:
            if error.errno not in (errno.ENOBUFS, errno.ENOMEM, errno.EMSGSIZE, errno.EINVAL):
                self._count_refused(error)  # as any write's: a counted drop, or LinkError if the device is gone
                return
            self.counters["big_packets_cut_here"] += 1
            self._write_cut(packet)
            return
        counters = self.counters
        counters["big_packets_out"] += 1
        counters["packets_out"] += 1
        counters["bytes_out"] += written - HEADER_SIZE

    def _write_cut(self, packet) -> None:
        """`packet`, a segment larger than the MTU that large_segment_parts took, in MTU-sized
        packets cut here, each written with a plain vnet header (a segment the cut refuses is a
        counted drop)."""
        pieces = cut_tcp_segment(packet, self.mtu)
        if pieces is None:
            self.count_drop("larger_than_mtu")
            return
        for piece in pieces:
            self._write([PLAIN_BYTES, piece])

    def _write_each(self, packets: list) -> None:
        """Each of `packets` (a large segment cut here, on a device without offloads) with one
        write of its own, as such a device takes them, counted once for the lot: per packet, the
        Python work is the os.write call alone (a _write call and two counter updates each cost
        about as much again as the system call's entry)."""
        fd, write = self._fd, os.write
        sent = written = 0
        for packet in packets:
            try:
                written += write(fd, packet)
            except OSError as error:
                self._count_refused(error)
                continue
            sent += 1
        counters = self.counters
        counters["packets_out"] += sent
        counters["bytes_out"] += written

    def _count_refused(self, error: OSError) -> None:
        """A packet the device did not take: dropped by name, or LinkError if the device is gone."""
        if isinstance(error, BlockingIOError) or error.errno == errno.ENOBUFS:
            self.count_drop("queue_full")
        elif error.errno in (errno.EINVAL, errno.EIO):  # the kernel refused the packet
            self.count_drop("rejected_by_kernel")
        else:
            raise LinkError(f"writing to TUN {self.name}: {error.strerror}") from None

    def close(self) -> None:
        if not self.closed:
            self.flush()
            self.closed = True
            self._device.close()


def _enable_offloads(device: "pytun.TunTapDevice") -> int:
    """Ask for checksum, TSO4 and TSO6 offloads, else for checksum and TSO4 alone; the flags the
    kernel took, 0 if this kernel (or device) refuses even those."""
    for offloads in (OFFLOADS, OFFLOADS_WITHOUT_TSO6):
        try:
            fcntl.ioctl(device.fileno(), TUNSETOFFLOAD, offloads)
        except OSError:
            continue
        return offloads
    return 0


def _big_tcp_size(wanted: int | None, offload: bool, software_offload: bool) -> int:
    """TunLink.gso_max_size for the size asked for (None: the default) on this kernel."""
    kernel_takes_big = kernel_version() >= BIG_TCP_SINCE
    if wanted is None:
        return DEFAULT_BIG_TCP_SIZE if offload and kernel_takes_big else LARGEST_PACKET
    if wanted > LARGEST_PACKET and offload and not kernel_takes_big:
        raise LinkError(f"gso_max_size {wanted} needs Linux {'.'.join(map(str, BIG_TCP_SINCE))} or later "
                        f"(BIG TCP); this one is {'.'.join(map(str, kernel_version()))}")
    return wanted


def kernel_version() -> tuple[int, int]:
    """(major, minor) of the running kernel."""
    return _version_of(os.uname().release)


def _version_of(release: str) -> tuple[int, int]:
    """(major, minor) from a kernel release string ("6.18.44-fc-v1272"); (0, 0) if unreadable."""
    numbers = release.split("-")[0].split(".")
    try:
        return int(numbers[0]), int(numbers[1])
    except (IndexError, ValueError):
        return (0, 0)  # a release we cannot read: assume the oldest (no BIG TCP)


def _open_tun(name: str, namespace: str | None, vnet_header: bool = False, multi_queue: bool = False,
              existing: bool = False) -> "pytun.TunTapDevice":
    if not os.path.exists(TUN_PATH):
        raise LinkError(f"{TUN_PATH} is missing: load the tun module (modprobe tun) or, in a "
                        "container, pass the device in (--device /dev/net/tun)")
    if namespace is None:
        return _create_device(name, vnet_header=vnet_header, multi_queue=multi_queue, existing=existing)
    from pyroute2 import netns

    if namespace not in netns.listnetns():
        raise LinkError(f"network namespace {namespace!r} does not exist")
    try:
        netns.pushns(namespace)
    except OSError as error:
        raise LinkError(f"cannot enter network namespace {namespace!r}: {error.strerror}") from None
    try:
        return _create_device(name, f" in namespace {namespace}", vnet_header, multi_queue, existing)
    finally:
        netns.popns()


def _create_device(name: str, where: str = "", vnet_header: bool = False, multi_queue: bool = False,
                   existing: bool = False) -> "pytun.TunTapDevice":
    # IFF_TUN_EXCL: only a new device. Without it the kernel would hand us an existing persistent
    # TUN device of that name (`ip tuntap add`), which we would then readdress and leave changed,
    # since closing our fd deletes only a device we created. A further queue of our own
    # multi-queue device is the one case where the device must exist already.
    try:
        flags = (pytun.IFF_TUN | pytun.IFF_NO_PI | (0 if existing else pytun.IFF_TUN_EXCL)
                 | (pytun.IFF_VNET_HDR if vnet_header else 0) | (IFF_MULTI_QUEUE if multi_queue else 0))
        return pytun.TunTapDevice(name=name, flags=flags)
    except pytun.Error as error:
        reason = str(error.args[-1]) if error.args else str(error)
        if error.args and error.args[0] == errno.EBUSY:
            raise LinkError(f"cannot create TUN {name}: a network device named {name!r} already exists{where} "
                            "(another ustack? choose another name)") from None
        if os.geteuid() != 0 or "not permitted" in reason:
            raise LinkError(f"cannot create TUN {name}: {reason} (needs root or CAP_NET_ADMIN)") from None
        raise LinkError(f"cannot create TUN {name}: {reason}") from None


def _configure(name: str, namespace: str | None, mtu: int, txqueuelen: int) -> None:
    # Through netlink in the device's namespace (pytun's ioctl would act on the namespace of this
    # thread, which is not the device's one).
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        with IPRoute(netns=namespace, flags=0) if namespace else IPRoute() as ipr:
            index = ipr.link_lookup(ifname=name)[0]
            ipr.link("set", index=index, mtu=mtu, txqlen=txqueuelen)
    except NetlinkError as error:
        raise LinkError(f"cannot set mtu {mtu} / txqueuelen on TUN {name}: {error}") from None
