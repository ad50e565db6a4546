"""A TunLink's reads and small writes without per-call iovecs (issue 12, echo round trip on PyPy).

On PyPy os.readv and os.writev are compat's cffi stand-ins, which build an iovec and take the
address of every buffer at each call. The link now reads through one iovec made once
(compat.prepared_readv) and writes a small frame (the vnet header and a packet of at most
JOINED_FRAME_MOST bytes: an echo's answer, an ACK) joined, with one os.write. Here os.readv is
made compat's on every interpreter, as PyPy has it, and the iovecs are counted; the device (one
end of a SOCK_SEQPACKET socketpair, test_checksum_once.fake_link) sees the same frames as before.
"""

from __future__ import annotations

import os

from test_checksum_once import fake_link, frame
from test_tun_batches import frames_on, pair
from vnet_helpers import ACK, PSH, partial, segment

from ustack import compat
from ustack.link import tun
from ustack.link.vnet import HEADER_SIZE, NEEDS_CSUM, PLAIN_BYTES


def counted_iovecs(monkeypatch) -> list:
    """Every iovec compat's os.readv / os.writev stand-ins build, from here on."""
    built = []
    io_vector = compat._io_vector

    def counting(ffi, buffers, writable):
        built.append(len(buffers))
        return io_vector(ffi, buffers, writable)

    monkeypatch.setattr(compat, "_io_vector", counting)
    return built


def test_frames_are_read_through_one_iovec_made_once(monkeypatch):
    monkeypatch.setattr(os, "readv", compat.readv)  # as on PyPy (3.9 has no os.readv)
    monkeypatch.setattr(os, "writev", compat.writev)
    built = counted_iovecs(monkeypatch)
    ours, theirs = pair()
    link = fake_link(ours, offload=True)
    assert built == [2]  # the one iovec, made with the link: the vnet header and the packet buffer
    built.clear()
    packets = [segment(1000 + index * 100, 64 + index, ACK | PSH) for index in range(6)]
    for packet in packets:
        theirs.send(frame(partial(packet), NEEDS_CSUM))
    received = link.receive_batch(0.0, 3) + link.receive_batch(0.0, 64)
    assert received == packets
    assert link.receive_batch(0.0, 64) == []  # nothing waits: BlockingIOError inside, as before
    assert built == []  # before: one iovec of two buffers per read, 8 reads (two of them EAGAIN)
    assert link.counters["packets_in"] == 6
    ours.close()
    theirs.close()


def test_the_reader_is_made_anew_when_its_packet_buffer_is_handed_over(monkeypatch):
    """Where a received super-segment takes the packet buffer with it (CPython:
    vnet.HANDS_OVER_BUFFERS), the next frame is read into the new buffer, never the old one."""
    monkeypatch.setattr(os, "readv", compat.readv)
    monkeypatch.setattr(tun, "packet_from_parts", lambda header, packet, length: memoryview(packet)[:length])
    ours, theirs = pair()
    link = fake_link(ours, offload=True)
    first, second = b"\x45" + b"a" * 99, b"\x45" + b"b" * 59
    theirs.send(PLAIN_BYTES + first)
    theirs.send(PLAIN_BYTES + second)
    one = link.receive_batch(0.0, 1)[0]
    two = link.receive_batch(0.0, 1)[0]
    assert bytes(one) == first and bytes(two) == second
    assert one.obj is not two.obj
    ours.close()
    theirs.close()


def test_a_small_frame_is_written_joined_with_one_write(monkeypatch):
    monkeypatch.setattr(os, "writev", compat.writev)  # as on PyPy
    ours, theirs = pair()
    link = fake_link(ours, offload=True)
    built = counted_iovecs(monkeypatch)  # the writes' (on PyPy the link's reads have one already)
    answer = segment(5000, 64, ACK | PSH, ports=(7, 40001))  # an echo's answer
    ack = segment(6000, 0, ACK, ports=(7, 40002))
    link.send_batch([answer, ack], 0.0)
    link.send(answer, 0.0)
    link.flush()
    assert frames_on(theirs) == [PLAIN_BYTES + answer, PLAIN_BYTES + ack, PLAIN_BYTES + answer]
    assert built == []  # before: one iovec per frame
    assert link.counters["packets_out"] == 3
    assert link.counters["bytes_out"] == 2 * len(answer) + len(ack)
    ours.close()
    theirs.close()


def test_a_run_joined_into_a_super_segment_still_goes_in_one_writev(monkeypatch):
    """Larger frames keep os.writev: their payloads are not copied into a frame here."""
    monkeypatch.setattr(os, "writev", compat.writev)
    ours, theirs = pair()
    link = fake_link(ours, offload=True)
    built = counted_iovecs(monkeypatch)  # the writes' (on PyPy the link's reads have one already)
    run = [segment(2000, 1448, ACK), segment(3448, 1448, ACK), segment(4896, 1000, ACK | PSH)]
    link.send_batch(run, 0.0)
    link.flush()
    sent = frames_on(theirs)
    assert len(sent) == 1 and len(sent[0]) > HEADER_SIZE + 3000
    assert built == [3 + len(run)]  # the vnet header, IP header and TCP header, then the three payloads
    ours.close()
    theirs.close()
