"""A TunLink with the vnet header reads and writes a batch in one loop of its own (issue 12,
connections per second: every packet of every connection goes through it, ~7 per `ab`
connection), and what reaches the device and the stack is exactly what the packet-by-packet
path makes: the same frames in the same order (super-segments joined the same way, a large
segment handed to the kernel's TSO), the same packets up, the same counters.

Frames go through a TunLink over one end of an AF_UNIX SOCK_SEQPACKET socketpair in place of the
TUN device (test_checksum_once.py's fake_link; no root needed)."""

from __future__ import annotations

import socket

import pytest
from test_ack_thinning import ack_packet
from test_checksum_once import fake_link, frame
from vnet_helpers import ACK, FIN, PSH, SYN, partial, segment

from ustack.link import tun
from ustack.link.tun import TunLink
from ustack.link.vnet import NEEDS_CSUM
from ustack.wire.segment import AckRun


def pair() -> tuple[socket.socket, socket.socket]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    theirs.setblocking(False)
    return ours, theirs


def frames_on(sock: socket.socket) -> list[bytes]:
    frames = []
    while True:
        try:
            frames.append(sock.recv(1 << 17))
        except BlockingIOError:
            return frames


# What one round of a server sends: a SYN-ACK, an answer with its FIN, a bare ACK, a run of
# full-size data segments the coalescer joins (its last with PSH), one more of another connection,
# and a segment larger than the MTU (TSO: the kernel cuts it).
ROUND = [
    segment(100, 0, SYN | ACK, ports=(80, 40001)),
    segment(500, 300, ACK | PSH | FIN, ports=(80, 40002)),
    segment(900, 0, ACK, ports=(80, 40003)),
    segment(2000, 1448, ACK), segment(3448, 1448, ACK), segment(4896, 1000, ACK | PSH),
    segment(7000, 1448, ACK, ports=(80, 40004)),
    segment(20000, 1448 * 3, ACK),
    segment(30000, 10, ACK | FIN, family=6),
]


def test_a_batch_reaches_the_device_as_packet_by_packet_sends_do():
    (ours_a, theirs_a), (ours_b, theirs_b) = pair(), pair()
    batched, one_by_one = fake_link(ours_a, offload=True), fake_link(ours_b, offload=True)
    batched.send_batch(ROUND, 0.0)
    batched.flush()
    for packet in ROUND:
        one_by_one.send(packet, 0.0)
    one_by_one.flush()
    sent = frames_on(theirs_a)
    assert sent == frames_on(theirs_b)
    assert len(sent) == 7  # the run of three went as one super-segment
    assert batched.stats() == one_by_one.stats()
    assert batched.counters["packets_out"] == 7
    for sock in (ours_a, theirs_a, ours_b, theirs_b):
        sock.close()


def test_small_packets_go_to_the_device_without_a_call_per_packet(monkeypatch):
    """The batch's packets of at most the MTU are written in send_batch's own loop: neither send()
    nor _write() is called for them (each was ~3 Python calls and two counter updates per packet)."""
    ours, theirs = pair()
    link = fake_link(ours, offload=True)
    calls = []
    send, write = TunLink.send, TunLink._write

    def counted_send(self, packet, now):
        calls.append("send")
        send(self, packet, now)

    def counted_write(self, parts):
        calls.append("_write")
        write(self, parts)

    monkeypatch.setattr(TunLink, "send", counted_send)
    monkeypatch.setattr(TunLink, "_write", counted_write)
    small = [packet for packet in ROUND if len(packet) <= 1500]
    link.send_batch(small, 0.0)
    assert calls == []
    assert len(frames_on(theirs)) == 6  # the run of three is still held: flush() writes it
    ours.close()
    theirs.close()


def test_a_full_device_queue_is_a_counted_drop_in_a_batch(monkeypatch):
    ours, theirs = pair()
    link = fake_link(ours, offload=True)

    def refuse(fd, parts):
        raise BlockingIOError()

    monkeypatch.setattr(tun.os, "writev", refuse)
    monkeypatch.setattr(tun.os, "write", refuse)  # (a small frame's one write: JOINED_FRAME_MOST)
    link.send_batch(ROUND[:3], 0.0)
    assert link.counters["drop_queue_full"] == 3
    assert link.counters["packets_out"] == 0
    ours.close()
    theirs.close()


@pytest.mark.parametrize("family", [4, 6])
def test_a_batch_read_hands_up_what_reads_one_by_one_do(family, monkeypatch):
    """receive_batch reads each frame in its own loop, without read_packet's call per frame; the
    packets (checksums completed where the kernel left them partial), the drops and the counters
    are those of the frame-by-frame path."""
    packets = [segment(1000 + index * 100, 40, ACK | PSH, family=family) for index in range(5)]
    frames = [frame(partial(packet), NEEDS_CSUM) for packet in packets]
    frames.insert(2, frame(packets[0])[:5])  # shorter than a vnet header: dropped by name
    (ours_a, theirs_a), (ours_b, theirs_b) = pair(), pair()
    batched, one_by_one = fake_link(ours_a, offload=True), fake_link(ours_b, offload=True)
    for data in frames:
        theirs_a.send(data)
        theirs_b.send(data)
    reference = []
    while True:
        try:
            packet = one_by_one.read_packet()
        except BlockingIOError:
            break
        if packet is not None:
            reference.append(packet)
    calls = []
    read_packet = TunLink.read_packet

    def counted(self):
        calls.append("read_packet")
        return read_packet(self)

    monkeypatch.setattr(TunLink, "read_packet", counted)
    received = batched.receive_batch(0.0, 64)
    assert calls == []
    assert received == packets == reference
    assert batched.counters["packets_in"] == 5
    assert batched.counters["bytes_in"] == sum(map(len, packets))
    assert {key: value for key, value in batched.counters.items() if key.startswith("drop")} == \
        {key: value for key, value in one_by_one.counters.items() if key.startswith("drop")}
    for sock in (ours_a, theirs_a, ours_b, theirs_b):
        sock.close()


@pytest.mark.parametrize("family", [4, 6])
def test_a_batch_read_thins_runs_of_pure_acks_as_software_gro_does(family):
    """The kernel's GRO hands every pure ACK up alone (a download's ~8 per MB): a batch's run of
    them goes up as its first and its last, an AckRun standing for the rest (test_ack_thinning.py
    has the rule), counted in pure_acks_absorbed; packets_in counts what went up."""
    acks = [ack_packet(1000 + 2896 * index, ts=(100 + index, 50), family=family) for index in range(5)]
    data = segment(9000, 1448, ACK, family=family)
    ours, theirs = pair()
    link = fake_link(ours, offload=True)
    for packet in acks + [data]:
        theirs.send(frame(partial(packet), NEEDS_CSUM))  # as a local socket's are: checksum partial
    received = link.receive_batch(0.0, 64)
    assert received == [acks[0], acks[-1], data]
    assert type(received[1]) is AckRun and received[1].acks == 4
    assert link.stats()["TunLink(fake0)"]["pure_acks_absorbed"] == 3
    assert link.counters["packets_in"] == 3
    ours.close()
    theirs.close()


def test_a_batch_read_stops_at_max_packets():
    ours, theirs = pair()
    link = fake_link(ours, offload=True)
    packets = [segment(1000 + index * 100, 40, ACK) for index in range(5)]
    for packet in packets:
        theirs.send(frame(partial(packet), NEEDS_CSUM))
    assert link.receive_batch(0.0, 2) == packets[:2]
    assert link.receive_batch(0.0, 1) == packets[2:3]
    assert link.receive_batch(0.0, 64) == packets[3:]
    assert link.receive_batch(0.0, 64) == []
    ours.close()
    theirs.close()


def test_a_tun_link_loads_the_vector_io_before_its_first_read(monkeypatch):
    """On PyPy compat's os.readv would parse its cffi declarations at the first call (~225 ms,
    inside serve's first read: compat.load_vector_io says what that did to --delay); the link
    has them loaded when it takes its device."""
    from ustack import compat
    calls = []
    monkeypatch.setattr(compat, "load_vector_io", lambda: calls.append("loaded"))
    ours, theirs = pair()
    fake_link(ours, offload=True)
    assert calls == ["loaded"]
    ours.close()
    theirs.close()
