"""Helpers for the vnet tests (test_vnet.py over IPv4, test_vnet_ipv6.py over IPv6): segments of
either family, the Coalescer run over a list, a packet as the kernel hands it with a partial
checksum, and a transfer between two Stacks through what the kernel's TSO and GRO would do."""

from __future__ import annotations

from scapy.all import IP, TCP, IPv6

from ustack.link.vnet import (
    GSO_NONE, HEADER_SIZE, Coalescer, large_segment_frame, packet_from_kernel, packet_from_parts, parse_vnet_header,
    split_super_segment,
)
from ustack.stack import Stack
from ustack.wire import build_tcp_packet
from ustack.wire.checksum import pseudo_header_sum, pseudo_header_sum6
from ustack.wire.codec import LinkBuffer, SegmentParts
from ustack.wire.tcp import TcpOptions, TcpSegment

A, B = 0x0A4D0001, 0x0A4D0002
A6, B6 = bytes.fromhex("fd000077000000000000000000000001"), bytes.fromhex("fd000077000000000000000000000002")
ACK, PSH, FIN, SYN = 0x10, 0x08, 0x01, 0x02
TS = TcpOptions(timestamps=(1000, 2000))


def is_partial(packet) -> bool:
    """A packet whose TCP checksum is still partial: a large segment the stack built so, in parts
    (SegmentParts: its headers hold the partial sum for the kernel, whatever an observer completed
    in a joined copy), or a read-only view of a LinkBuffer so marked (a received super-segment the
    kernel vouched for)."""
    if type(packet) is SegmentParts:
        return True
    return type(packet) is memoryview and type(packet.obj) is LinkBuffer and packet.obj.tcp_checksum_partial


def scapy_checksum_right(raw: bytes) -> bool:
    """scapy's own TCP checksum of the packet equals the one it carries."""
    parsed = (IPv6 if raw[0] >> 4 == 6 else IP)(raw)
    carried = parsed[TCP].chksum
    del parsed[TCP].chksum
    rebuilt = (IPv6 if raw[0] >> 4 == 6 else IP)(bytes(parsed))
    return rebuilt[TCP].chksum == carried


def segment(seq: int, length: int, flags: int = ACK, options: TcpOptions = TS, ports=(40000, 80), family: int = 4,
            flow_label: int = 0x12345) -> bytes:
    payload = bytes((seq + index) & 0xFF for index in range(length))
    tcp = TcpSegment(ports[0], ports[1], seq, 7777, flags, 500, 0, options, payload)
    if family == 6:
        return build_tcp_packet(A6, B6, tcp, flow_label=flow_label)
    return build_tcp_packet(A, B, tcp)


def coalesce(packets: list[bytes], ipv6: bool = True) -> list[bytes]:
    coalescer = Coalescer(ipv6=ipv6)
    frames = [frame for packet in packets for frame in coalescer.add(packet)]
    return frames + coalescer.flush()


def without_ip_id(packet: bytes) -> bytes:
    """The kernel numbers the pieces' IPv4 identification upwards (and so their IP checksum
    differs); everything else must be byte for byte what the stack built. IPv6 has neither."""
    if packet[0] >> 4 == 6:
        return packet
    return packet[:4] + packet[6:10] + packet[12:]


def partial(packet: bytes) -> bytes:
    """`packet` as the kernel hands it with CHECKSUM_PARTIAL: the TCP checksum field holds only
    the folded pseudo-header sum of its family (RFC 9293 3.1, RFC 8200 8.1)."""
    if packet[0] >> 4 == 6:
        tcp_start, partial_sum = 40, pseudo_header_sum6(packet[8:24], packet[24:40], 6, len(packet) - 40)
    else:
        src, dst = int.from_bytes(packet[12:16], "big"), int.from_bytes(packet[16:20], "big")
        tcp_start, partial_sum = 20, pseudo_header_sum(src, dst, 6, len(packet) - 20)
    while partial_sum >> 16:
        partial_sum = (partial_sum & 0xFFFF) + (partial_sum >> 16)
    field = tcp_start + 16
    return packet[:field] + partial_sum.to_bytes(2, "big") + packet[field + 2:]


def transfer(size: int, offload: bool, mtu: int = 1500, tso: bool = False, pieces: list | None = None,
             family: int = 4, link_buffers: list | None = None):
    """A sends `size` bytes to B over IPv4 or IPv6. With `tso`, A's stack hands down segments
    larger than the MTU, which the kernel would cut (split_super_segment). With offload, A's
    packets go through the Coalescer and reach B as whole super-segments (as the kernel's GRO would
    hand them), with a partial checksum B's link completes. Returns what B read, the packets B
    received and the ACKs B sent. With a list `link_buffers`, each frame is read into a LinkBuffer
    as the TUN link reads it (packet_from_parts: a large super-segment is handed over with its
    checksum left partial), and the packets B gets are appended to it."""
    if family == 6:
        a = Stack(None, address6=A6, mtu=mtu, port_seed=1, segmentation_offload=tso)
        b = Stack(None, address6=B6, mtu=mtu, port_seed=2)
    else:
        a, b = Stack(A, mtu=mtu, port_seed=1, segmentation_offload=tso), Stack(B, mtu=mtu, port_seed=2)
    listener = b.listen(80)
    now = 0.0
    received = acks = 0

    def to_b(packets):
        nonlocal received
        if tso:  # the kernel cuts what is larger than the MTU; B gets the pieces
            cut = []
            for packet in packets:
                frame = large_segment_frame(packet, mtu) if len(packet) > mtu else None
                cut += split_super_segment(frame) if frame else [packet]
            pieces.extend(cut)
            packets = cut
        if offload:
            frames = coalesce(packets)
            packets = []
            for frame in frames:
                if parse_vnet_header(frame).gso_type != GSO_NONE:
                    frame = frame[:HEADER_SIZE] + partial(frame[HEADER_SIZE:])  # as the kernel leaves it
                if link_buffers is None:
                    packets.append(packet_from_kernel(frame))
                    continue
                buffer = LinkBuffer(len(frame) - HEADER_SIZE)
                buffer[:] = frame[HEADER_SIZE:]
                packets.append(packet_from_parts(frame[:HEADER_SIZE], buffer, len(buffer)))
                link_buffers.append(packets[-1])
        for packet in packets:
            b.receive(packet, now)
            received += 1

    client = a.connect(B6 if family == 6 else B, 80, now)
    data = bytes(index * 7 & 0xFF for index in range(size))
    sent = 0
    out = bytearray()
    server = None
    for _ in range(100000):
        if server is None:
            server = listener.accept()
        if sent < size:
            sent += client.send(data[sent:], now)
            a.poke(client)
        to_b(a.transmit(now))
        if server is not None and server.readable:
            out += server.recv(1 << 20, now)
            b.poke(server)
        replies = b.transmit(now)
        acks += len(replies)
        for packet in replies:
            a.receive(packet, now)
        if len(out) == size:
            break
        now += 0.001
        for stack in (a, b):
            if (stack.next_deadline() or now + 1) <= now:
                stack.on_timer(now)
    return bytes(out), received, acks
