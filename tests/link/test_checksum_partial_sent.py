"""A large segment the stack sends over a link that cuts segments (TSO) is built with its TCP
checksum left partial (codec.build_tcp_packet, `partial_checksum_over`): a read-only view of a
LinkBuffer marked `tcp_checksum_partial`, the same mark the TUN link puts on a received
super-segment (tests/link/test_checksum_partial.py). The TUN link writes it to the kernel as it
is (NEEDS_CSUM, no second sum); whatever reads it as a wire would (the pcap writer, the
FaultInjector, the tracer, a WireWatch) completes it first with vnet.complete_checksum, in place;
a segment cut in software (no TSO6, CWR, a device without offloads) gets whole checksums.

Frames go through a TunLink over one end of an AF_UNIX SOCK_SEQPACKET socketpair in place of the
TUN device (test_checksum_once.py's fake_link; no root needed)."""

from __future__ import annotations

import io
import socket

import pytest
from scapy.all import IP, TCP, IPv6
from test_checksum_once import fake_link, sockets
from vnet_helpers import A, A6, B, B6, is_partial, partial, scapy_checksum_right

from ustack.link import vnet
from ustack.link.fault import FaultInjector, Faults
from ustack.link.pcap import PcapWriter
from ustack.link.tracer import Tracer
from ustack.link.vnet import GSO_NONE, GSO_TCPV4, GSO_TCPV6, HEADER, HEADER_SIZE, NEEDS_CSUM, split_super_segment
from ustack.stack import Stack
from ustack.trace.live import WireWatch
from ustack.wire import build_tcp_packet, pcap
from ustack.wire.segment import cut_tcp_segment
from ustack.wire.tcp import TcpOptions, TcpSegment

__all__ = ["sockets"]  # the fixture, imported for pytest

MTU = 1500
ACK, CWR = 0x10, 0x80


def whole(packet) -> bytes:
    """The packet with its TCP checksum complete, worked out apart from the code under test."""
    raw = bytearray(packet)
    t = 40 if raw[0] >> 4 == 6 else 20
    raw[t + 16:t + 18] = b"\0\0"
    parsed = (IPv6 if raw[0] >> 4 == 6 else IP)(bytes(raw))
    del parsed[TCP].chksum
    return bytes(parsed)


def connected_stacks(family: int, offload: bool = True, mtu: int = MTU, partial_checksums: bool | None = None) -> tuple:
    """A server stack (segmentation offload on or off; partial checksums as Stack takes them) and
    a client stack over `mtu`, one connection made between them: (server stack, client stack,
    server's end, client's end)."""
    options = dict(mtu=mtu, port_seed=1, segmentation_offload=offload, partial_checksums=partial_checksums)
    if family == 6:
        server_stack = Stack(None, address6=A6, **options)
        client_stack, address = Stack(None, address6=B6, mtu=mtu, port_seed=2), A6
    else:
        server_stack = Stack(A, **options)
        client_stack, address = Stack(B, mtu=mtu, port_seed=2), A
    listener = server_stack.listen(80)
    client = client_stack.connect(address, 80, 0.0)
    for _ in range(2):  # SYN, SYN-ACK; ACK
        for packet in client_stack.transmit(0.0):
            server_stack.receive(packet, 0.0)
        for packet in server_stack.transmit(0.0):
            client_stack.receive(packet, 0.0)
    return server_stack, client_stack, listener.accept(), client


def download_packets(family: int, offload: bool = True, size: int = 100_000) -> list:
    """What a server stack (segmentation offload on or off) sends in its first round of a
    `size`-byte answer: with offload, one large segment of its whole first window."""
    server_stack, _, server, _ = connected_stacks(family, offload)
    server.send(bytes(index * 11 & 0xFF for index in range(size)), 0.0)
    server_stack.poke(server)
    return server_stack.transmit(0.0)


def frames_written(theirs: socket.socket) -> list[bytes]:
    frames = []
    while True:
        try:
            frames.append(theirs.recv(1 << 17, socket.MSG_DONTWAIT))
        except BlockingIOError:
            return frames


def large_segment(family: int, flags: int = ACK, length: int = 20_001) -> tuple:
    """A large segment built as the stack builds it for a TSO link, and the same built whole."""
    src, dst = (A6, B6) if family == 6 else (A, B)
    tcp = TcpSegment(80, 40000, 5000, 9000, flags, 700, 0, TcpOptions(timestamps=(77, 88)),
                     bytes(index * 5 & 0xFF for index in range(length)))
    return (build_tcp_packet(src, dst, tcp, partial_checksum_over=MTU),
            build_tcp_packet(src, dst, tcp))


@pytest.mark.parametrize("family", [4, 6])
def test_an_offloading_stack_sends_large_segments_partial_and_others_whole(family):
    packets = download_packets(family, offload=True)
    large = [packet for packet in packets if len(packet) > MTU]
    assert large and all(map(is_partial, large))
    assert all(type(packet) is bytes and scapy_checksum_right(packet) for packet in packets if len(packet) <= MTU)
    for packet in large:
        assert not scapy_checksum_right(bytes(packet))  # (scapy sees a partial checksum as wrong)
        assert bytes(packet) == partial(whole(packet))
        assert scapy_checksum_right(bytes(vnet.complete_checksum(packet)))
        assert bytes(packet) == partial(whole(packet))  # the parts the kernel gets stay partial


@pytest.mark.parametrize("family", [4, 6])
def test_a_stack_without_offload_builds_every_checksum_whole(family):
    packets = download_packets(family, offload=False)
    assert len(packets) >= 10
    assert all(type(packet) is bytes and len(packet) <= MTU and scapy_checksum_right(packet) for packet in packets)


@pytest.mark.parametrize("family", [4, 6])
def test_the_tun_link_writes_it_partial_without_a_second_sum(family, sockets, monkeypatch):
    """The frame the kernel gets: NEEDS_CSUM with the partial checksum the stack built (not worked
    out again), which cut as the kernel cuts gives pieces with right checksums."""
    ours, theirs = sockets
    computed = []
    partial_checksum = vnet._partial_checksum
    monkeypatch.setattr(vnet, "_partial_checksum", lambda *a: computed.append(a) or partial_checksum(*a))
    link = fake_link(ours, offload=True)
    large = [packet for packet in download_packets(family) if len(packet) > MTU]
    for packet in large:
        link.send(packet, 0.0)
    frames = frames_written(theirs)
    assert len(frames) == len(large) and computed == []
    for frame, packet in zip(frames, large):
        flags, gso_type, *_ = HEADER.unpack_from(frame)
        assert flags == NEEDS_CSUM and gso_type == (GSO_TCPV6 if family == 6 else GSO_TCPV4)
        assert frame[HEADER_SIZE:] == partial(whole(packet))
        pieces = split_super_segment(frame)
        assert len(pieces) > 1 and all(len(piece) <= MTU and scapy_checksum_right(piece) for piece in pieces)


@pytest.mark.parametrize("family", [4, 6])
def test_pcap_fault_injector_tracer_and_wire_watch_see_sent_segments_whole(family, sockets, tmp_path):
    ours, theirs = sockets
    path = tmp_path / "download.pcap"
    formatted, predicate_saw, recorded = [], [], []

    class Recording(WireWatch):
        def _record(self, now, packet, direction, lost_note=""):
            recorded.append(bytes(packet))

    fault = FaultInjector(fake_link(ours, offload=True), seed=1)
    fault.drop_when(lambda packet: predicate_saw.append(bytes(packet)) and False)
    link = Tracer(PcapWriter(fault, path, timestamp_offset=0.0), output=io.StringIO(),
                  formatter=lambda packet: formatted.append(bytes(packet)) or "")
    watch = Recording()
    large = [packet for packet in download_packets(family) if len(packet) > MTU]
    assert large and all(map(is_partial, large))
    expected = [whole(packet) for packet in large]
    for packet in large:
        link.send(packet, 0.0)
        watch.wire_out(0.0, packet)
    link.flush()
    _, records = pcap.read_records(path.read_bytes())
    assert [record.data for record in records] == expected
    assert formatted == expected and predicate_saw == expected and recorded == expected
    assert all(map(scapy_checksum_right, expected))
    # The kernel still gets the partial checksum (the link writes it in a part of its own).
    assert [frame[HEADER_SIZE:] for frame in frames_written(theirs)] == [partial(packet) for packet in expected]


@pytest.mark.parametrize("family", [4, 6])
def test_a_dropped_large_segment_is_told_whole(family, sockets):
    ours, theirs = sockets
    seen = []
    link = FaultInjector(fake_link(ours, offload=True), seed=1, outbound=Faults(drop=1.0),
                         on_drop=lambda now, packet, direction, reason: seen.append(bytes(packet)))
    packet, built_whole = large_segment(family)
    assert is_partial(packet)
    link.send(packet, 0.0)
    assert seen == [built_whole] and frames_written(theirs) == []


def expect_cut_here(frames: list[bytes], built_whole: bytes, vnet_header: bool) -> None:
    """The frames are the pieces cut in software from the whole segment, each checksum right."""
    expected = [bytes(piece) for piece in cut_tcp_segment(built_whole, MTU)]
    if vnet_header:
        assert all(HEADER.unpack_from(frame)[:2] == (0, GSO_NONE) for frame in frames)
        frames = [frame[HEADER_SIZE:] for frame in frames]
    assert frames == expected and len(frames) > 1
    assert all(map(scapy_checksum_right, frames))


@pytest.mark.parametrize("family", [4, 6])
def test_software_cutting_without_offloads_gives_right_checksums(family, sockets):
    ours, theirs = sockets
    link = fake_link(ours, offload=False, software=True)
    packet, built_whole = large_segment(family)
    assert is_partial(packet)
    link.send(packet, 0.0)
    expect_cut_here(frames_written(theirs), built_whole, vnet_header=False)


@pytest.mark.parametrize("family", [4, 6])
def test_cutting_a_cwr_segment_here_gives_right_checksums(family, sockets):
    ours, theirs = sockets
    link = fake_link(ours, offload=True)
    packet, built_whole = large_segment(family, flags=ACK | CWR)
    assert is_partial(packet)
    link.send(packet, 0.0)
    expect_cut_here(frames_written(theirs), built_whole, vnet_header=True)


def test_cutting_ipv6_without_tso6_gives_right_checksums(sockets):
    ours, theirs = sockets
    link = fake_link(ours, offload=True)
    link.tso6 = False
    packet, built_whole = large_segment(6, length=30_003)
    assert is_partial(packet)
    link.send(packet, 0.0)
    expect_cut_here(frames_written(theirs), built_whole, vnet_header=True)


def fitting_partial_packet(family: int) -> tuple:
    """A segment built partial that the MTU carries whole (what a large MTU gives: the Stack asks
    for partial checksums from PARTIAL_CHECKSUM_FROM bytes on), and the same built whole."""
    src, dst = (A6, B6) if family == 6 else (A, B)
    tcp = TcpSegment(80, 40000, 5000, 9000, ACK | 0x08, 700, 0, TcpOptions(), bytes(range(200)) * 5 + b"odd")
    return build_tcp_packet(src, dst, tcp, partial_checksum_over=900), build_tcp_packet(src, dst, tcp)


@pytest.mark.parametrize("family", [4, 6])
def test_a_partial_packet_that_fits_the_mtu_goes_partial_and_whole_for_the_kernel(family, sockets):
    """With offloads, written in its parts with NEEDS_CSUM and no segmentation (GSO_NONE): the
    kernel completes the checksum where it must (a local socket takes it without one)."""
    ours, theirs = sockets
    link = fake_link(ours, offload=True)
    packet, built_whole = fitting_partial_packet(family)
    assert is_partial(packet) and len(packet) <= MTU
    link.send(packet, 0.0)
    (frame,) = frames_written(theirs)
    t = 40 if family == 6 else 20
    assert HEADER.unpack_from(frame) == (NEEDS_CSUM, GSO_NONE, len(packet.headers), 0, t, 16)
    assert frame[HEADER_SIZE:] == partial(built_whole)
    assert split_super_segment(frame) == [built_whole]  # as the kernel completes it


@pytest.mark.parametrize("family", [4, 6])
def test_a_partial_packet_leaves_whole_from_a_device_without_offloads(family, sockets):
    ours, theirs = sockets
    link = fake_link(ours, offload=False, software=True)
    packet, built_whole = fitting_partial_packet(family)
    link.send(packet, 0.0)
    link.send_batch([packet], 0.0)
    assert frames_written(theirs) == [built_whole, built_whole] and scapy_checksum_right(built_whole)
