"""A super-segment whose partial TCP checksum the kernel vouches for (NEEDS_CSUM at the TCP
checksum field of an unfragmented TCP segment) goes up from the TUN link with its checksum still
partial, and is completed (vnet.complete_checksum, in its buffer) only where something reads its
bytes as a wire would: the pcap writer, the FaultInjector, the tracer, the live ladder.

Frames go through a TunLink over one end of an AF_UNIX SOCK_SEQPACKET socketpair in place of the
TUN device (test_checksum_once.py's fake_link; no root needed). The attacker is whoever builds a
frame (the kernel, for a packet from a wire): it knows the whole packet and sets the vnet
header's flags; what it cannot do is have a changed packet ride on the link's mark."""

from __future__ import annotations

import io

import pytest
from test_checksum_once import LARGE, Sums, corrupted, fake_link, frame, packet_to_stack, receive, sockets, stack_for
from vnet_helpers import is_partial, partial, scapy_checksum_right, transfer

from ustack.link import vnet
from ustack.link.fault import FaultInjector, Faults
from ustack.link.pcap import PcapWriter
from ustack.link.tracer import Tracer
from ustack.link.vnet import NEEDS_CSUM
from ustack.trace.live import WireWatch
from ustack.wire import pcap
from ustack.wire.checksum import internet_checksum

# What these tests follow rides on the buffer the link hands over (conftest.py).
pytestmark = pytest.mark.usefixtures("buffers_handed_over")

__all__ = ["sockets"]  # the fixture, imported for pytest


@pytest.mark.parametrize("family", [4, 6])
def test_an_offloaded_upload_arrives_intact_through_partial_super_segments(family):
    """A's segments joined by the Coalescer reach B as super-segments read into LinkBuffers
    (packet_from_parts), the large ones left partial; B's receive buffer gets every byte."""
    handed: list = []
    size = 400_000
    out, received, _ = transfer(size, offload=True, family=family, link_buffers=handed)
    assert out == bytes(index * 7 & 0xFF for index in range(size))
    assert sum(map(is_partial, handed)) >= 3, f"{len(handed)} handed over, {received} received"


@pytest.mark.parametrize("family", [4, 6])
def test_the_pcap_of_partial_super_segments_has_right_checksums(family, sockets, tmp_path):
    ours, theirs = sockets
    path = tmp_path / "upload.pcap"
    link, stack = PcapWriter(fake_link(ours, offload=True), path, timestamp_offset=0.0), stack_for(family)
    packets = [packet_to_stack(family, LARGE), packet_to_stack(family, LARGE + 1000)]
    for packet in packets:
        theirs.send(frame(partial(packet), NEEDS_CSUM, gso=True))
    handed = receive(link, stack)
    link.close()
    assert stack.drops["tcp_bad_checksum"] == 0 and stack.counters["packets_in"] == 2
    assert not any(map(is_partial, handed))  # the writer completed them in their buffers
    _, records = pcap.read_records(path.read_bytes())
    written = [record.data for record in records]
    assert written == packets
    assert all(map(scapy_checksum_right, written))
    assert not scapy_checksum_right(partial(packets[0]))  # (scapy does see a partial checksum as wrong)


@pytest.mark.parametrize("family", [4, 6])
def test_a_corrupted_copy_never_rides_on_the_mark(family, sockets, monkeypatch):
    """Corrupting one bit of a vouched super-segment: the FaultInjector completes the checksum
    first, then copies; the copy (bytes) carries no mark, the parser sums it and drops it."""
    ours, theirs = sockets
    seed = 5
    link = FaultInjector(fake_link(ours, offload=True), seed=seed, inbound=Faults(corrupt=1.0))
    stack, sums = stack_for(family), Sums(monkeypatch)
    theirs.send(frame(partial(packet_to_stack(family, LARGE)), NEEDS_CSUM, gso=True))
    (handed,) = receive(link, stack)
    assert type(handed) is bytes, f"seed {seed}"
    assert (sums.link, sums.parser, sums.parser_skipped) == (1, 1, 0), f"seed {seed}"
    assert stack.drops["tcp_bad_checksum"] == 1 and stack.counters.get("packets_in", 0) == 0, f"seed {seed}"


@pytest.mark.parametrize("family", [4, 6])
def test_a_ce_marked_copy_and_a_duplicate_are_accepted(family, sockets, monkeypatch):
    """The FaultInjector's CE mark copies the packet (bytes, unmarked): it must carry the completed
    checksum, or the parser would drop a good packet. A duplicate is the same view again."""
    ours, theirs = sockets
    seed = 3
    link = FaultInjector(fake_link(ours, offload=True), seed=seed, inbound=Faults(ce=1.0, duplicate=1.0))
    stack, sums = stack_for(family), Sums(monkeypatch)
    ect0 = bytearray(packet_to_stack(family, LARGE))
    if family == 4:  # ECT(0) in the TOS byte, the IPv4 header checksum made again
        ect0[1] |= 0b10
        ect0[10:12] = b"\0\0"
        ect0[10:12] = internet_checksum(bytes(ect0[:20])).to_bytes(2, "big")
    else:
        ect0[1] |= 0b10 << 4
    theirs.send(frame(partial(bytes(ect0)), NEEDS_CSUM, gso=True))
    first, second = receive(link, stack)
    assert first is second and type(first) is bytes, f"seed {seed}"
    assert sums.link == 1 and stack.drops["tcp_bad_checksum"] == 0, f"seed {seed}"
    assert stack.counters["packets_in"] == 2, f"seed {seed}"


@pytest.mark.parametrize("family", [4, 6])
def test_a_dropped_super_segment_is_told_completed(family, sockets):
    """on_drop (the live ladder draws it as lost) gets the packet as the wire carried it."""
    ours, theirs = sockets
    seen = []
    link = FaultInjector(fake_link(ours, offload=True), seed=1, inbound=Faults(drop=1.0),
                         on_drop=lambda now, packet, direction, reason: seen.append(bytes(packet)))
    packet = packet_to_stack(family, LARGE)
    theirs.send(frame(partial(packet), NEEDS_CSUM, gso=True))
    assert link.receive_batch(0.0) == []
    assert seen == [packet]


@pytest.mark.parametrize("family", [4, 6])
def test_a_checksum_field_elsewhere_is_still_completed_by_the_link(family, sockets, monkeypatch):
    """NEEDS_CSUM at another offset (here the urgent pointer) is not vouched for: completed by the
    link as before, unmarked, and the TCP checksum summed (and found wrong) by the parser."""
    ours, theirs = sockets
    link, stack, sums = fake_link(ours, offload=True), stack_for(family), Sums(monkeypatch)
    theirs.send(frame(partial(packet_to_stack(family, LARGE)), NEEDS_CSUM, gso=True, csum_offset=18))
    (handed,) = receive(link, stack)
    assert not is_partial(handed) and not handed.obj.tcp_checksum_known
    assert (sums.link, sums.parser, sums.parser_skipped) == (1, 1, 0)
    assert stack.drops["tcp_bad_checksum"] == 1


@pytest.mark.parametrize("family", [4, 6])
def test_the_tracer_and_a_wire_watch_see_the_completed_packet(family, sockets):
    ours, theirs = sockets
    formatted, recorded = [], []

    class Recording(WireWatch):
        def _record(self, now, packet, direction, lost_note=""):
            recorded.append(bytes(packet))

    link = Tracer(fake_link(ours, offload=True), output=io.StringIO(),
                  formatter=lambda packet: formatted.append(bytes(packet)) or "")
    watch = Recording()
    packet = packet_to_stack(family, LARGE)
    theirs.send(frame(partial(packet), NEEDS_CSUM, gso=True))
    for handed in link.receive_batch(0.0):
        watch.observe(0.0, "<", handed)  # (nothing reached the watch through a tap: drawn as it is taken in)
    assert formatted == [packet]
    theirs.send(frame(partial(packet), NEEDS_CSUM, gso=True))
    (again,) = fake_link(ours, offload=True).receive_batch(0.0)
    assert is_partial(again)
    watch.wire_out(0.0, again)
    assert recorded[-1] == packet
