"""Software GRO and GSO (csrc/segment.c through ustack/wire/segment.py, used by the TUN link when
the device has no offloads): which segments join, how a large one is cut, and two Stacks over two
TunLinks that move the same bytes, with the same core decisions, whether the links join and cut or
hand every segment as it comes.

The TunLinks run over the two ends of an AF_UNIX SOCK_SEQPACKET socketpair in place of a TUN
device (each write one packet, each read one packet, as on TUN): no root needed."""

from __future__ import annotations

import socket

import pytest
from vnet_helpers import A, A6, ACK, B, B6, FIN, PSH, SYN, TS, segment, without_ip_id

from ustack.link.base import Link
from ustack.link.tun import TunLink
from ustack.stack import Stack
from ustack.wire import build_tcp_packet, parse_packet
from ustack.wire.segment import SegmentJoiner, cut_tcp_segment
from ustack.wire.tcp import TcpOptions, TcpSegment

CWR, ECE, URG, RST = 0x80, 0x40, 0x20, 0x04
MSS = 1448  # at MTU 1500 with timestamps
CE, ECT0 = 0x03, 0x02


def joined(packets: list[bytes], slot_size: int = 1500) -> tuple[list[bytes], SegmentJoiner]:
    """What the link hands up for one read batch of `packets`."""
    joiner = SegmentJoiner(slot_size, max(1, len(packets)))
    for index, packet in enumerate(packets):
        joiner.slots[index][0][:len(packet)] = packet
        joiner.lengths[index] = len(packet)
    return joiner.join(len(packets)), joiner


def run(first_seq: int, lengths: list[int], last_flags: int = ACK, **fields) -> list[bytes]:
    """Consecutive segments of one connection, the last with `last_flags`."""
    packets, seq = [], first_seq
    for index, length in enumerate(lengths):
        flags = last_flags if index == len(lengths) - 1 else ACK
        packets.append(segment(seq, length, flags, **fields))
        seq += length
    return packets


# --- receiving: what joins ----------------------------------------------------------------------


@pytest.mark.parametrize("family", [4, 6])
def test_a_run_with_a_short_last_piece_joins_into_the_segment_the_sender_could_have_sent(family):
    mss = MSS if family == 4 else MSS - 20  # IPv6's header is 20 bytes longer
    packets = run(1000, [mss] * 5 + [300], family=family)
    out, joiner = joined(packets)
    # The helper's payload bytes follow the sequence number, so the joined segment is exactly
    # the one segment carrying all the data (the first's headers, lengths and checksums new).
    assert out == [segment(1000, 5 * mss + 300, family=family)]
    assert parse_packet(out[0]).tcp.payload == b"".join(parse_packet(p).tcp.payload for p in packets)
    assert (joiner.super_segments, joiner.segments_joined) == (1, 6)


@pytest.mark.parametrize("length", [1001, 1447], ids=["odd", "odd-mss"])
def test_pieces_of_odd_length_join_with_a_right_checksum(length):
    """Every second piece starts at an odd offset of the joined data: its sum counts swapped."""
    out, _ = joined(run(5, [length] * 4 + [9]))
    assert out == [segment(5, 4 * length + 9)]  # parse_packet inside == checks nothing: compare bytes
    assert parse_packet(out[0]).tcp.seq == 5  # and the checksum verifies


def test_psh_on_a_piece_ends_the_run_with_it_and_a_short_piece_ends_it_too():
    packets = run(0, [MSS, MSS], ACK | PSH) + run(2 * MSS, [MSS, 500, MSS])
    out, _ = joined(packets)
    assert out == [segment(0, 2 * MSS, ACK | PSH), segment(2 * MSS, MSS + 500), segment(3 * MSS + 500, MSS)]


@pytest.mark.parametrize("flags", [ACK | FIN, ACK | SYN, ACK | RST, ACK | URG, ACK | CWR, ACK | ECE],
                         ids=["fin", "syn", "rst", "urg", "cwr", "ece"])
def test_a_segment_with_any_flag_but_ack_and_psh_goes_alone_and_splits_the_run(flags):
    packets = run(0, [MSS, MSS]) + [segment(2 * MSS, MSS, flags)] + run(3 * MSS, [MSS, MSS])
    out, _ = joined(packets)
    assert out == [segment(0, 2 * MSS), packets[2], segment(3 * MSS, 2 * MSS)]


def test_reordered_segments_are_not_joined():
    first, second, third = run(0, [MSS, MSS, MSS])
    out, joiner = joined([first, third, second])
    assert out == [first, third, second] and joiner.super_segments == 0


def test_a_ce_marked_segment_never_joins_one_without_ce():
    """RFC 3168 5: the receiver must see CE on the very data it marked (it echoes ECE for it)."""
    def marked(seq, tos):
        tcp = TcpSegment(40000, 80, seq, 7777, ACK, 500, 0, TS, bytes(MSS))
        return build_tcp_packet(A, B, tcp, tos=tos)

    packets = [marked(0, ECT0), marked(MSS, ECT0), marked(2 * MSS, CE), marked(3 * MSS, CE), marked(4 * MSS, ECT0)]
    out, _ = joined(packets)
    assert [len(parse_packet(p).tcp.payload) for p in out] == [2 * MSS, 2 * MSS, MSS]
    assert [parse_packet(p).ip.tos & 3 for p in out] == [ECT0, CE, ECT0]


def test_different_timestamps_window_or_ports_split_the_run():
    """Options must be equal byte for byte: a new TSval would otherwise be hidden from RFC 7323's
    TS.Recent update and PAWS test behind the first piece's."""
    base = run(0, [MSS, MSS])
    later_clock = segment(2 * MSS, MSS, options=TcpOptions(timestamps=(1001, 2000)))
    other_port = segment(3 * MSS, MSS, ports=(40001, 80))
    out, _ = joined(base + [later_clock, other_port])
    assert out == [segment(0, 2 * MSS), later_clock, other_port]


def test_sack_blocks_join_only_when_the_same_on_every_piece():
    sack = TcpOptions(timestamps=(1000, 2000), sack_blocks=((9000, 9500),))
    other = TcpOptions(timestamps=(1000, 2000), sack_blocks=((9000, 9900),))
    same = run(0, [MSS - 12, MSS - 12], options=sack)
    changed = segment(2 * (MSS - 12), MSS - 12, options=other)
    out, _ = joined(same + [changed])
    assert out == [segment(0, 2 * (MSS - 12), options=sack), changed]
    assert parse_packet(out[0]).tcp.options.sack_blocks == ((9000, 9500),)


def test_a_bad_checksum_in_a_run_is_handed_up_alone_and_dropped_by_name_by_the_stack():
    packets = run(0, [MSS] * 5)
    bad = bytearray(packets[2])
    bad[-1] ^= 0xFF
    packets[2] = bytes(bad)
    out, _ = joined(packets)
    # The run is split around it: the two after it no longer follow on from the two before.
    assert out == [segment(0, 2 * MSS), packets[2], segment(3 * MSS, 2 * MSS)]
    stack = Stack(B)
    for packet in out:
        stack.receive(packet, 0.0)
    assert stack.drops["tcp_bad_checksum"] == 1


def test_a_bad_ipv4_header_checksum_is_not_joined_either():
    packets = run(0, [MSS] * 3)
    bad = bytearray(packets[1])
    bad[8] -= 1  # the TTL, without the header checksum following
    packets[1] = bytes(bad)
    out, _ = joined(packets)
    assert out == packets
    stack = Stack(B)
    stack.receive(out[1], 0.0)
    assert stack.drops["ipv4_bad_checksum"] == 1


def test_no_joined_segment_exceeds_the_largest_packet():
    out, _ = joined(run(0, [MSS] * 60))
    assert max(map(len, out)) <= 65535 and len(out) == 2
    assert sum(len(parse_packet(p).tcp.payload) for p in out) == 60 * MSS


def test_what_is_not_ip_or_was_cut_short_by_the_read_is_counted_and_not_handed_up():
    packets = run(0, [MSS, MSS, MSS])
    joiner = SegmentJoiner(1500, 4)
    for index, packet in enumerate([packets[0], b"\x00" * 30, packets[1], packets[2]]):
        joiner.slots[index][0][:len(packet)] = packet
        joiner.lengths[index] = len(packet)
    joiner.lengths[3] = 1501  # a read that returned the length of a packet longer than the slot
    out = joiner.join(4)
    assert out == packets[:2] and (joiner.not_ip, joiner.longer_than_slot) == (1, 1)


# --- sending: the cut ---------------------------------------------------------------------------


@pytest.mark.parametrize("family", [4, 6])
def test_a_large_segment_is_cut_at_the_mtu_with_psh_and_fin_on_the_last_piece_only(family):
    big = segment(7, 4 * 1000 + 123, ACK | PSH | FIN, family=family)
    header_length = (40 if family == 6 else 20) + 32
    pieces = [bytes(piece) for piece in cut_tcp_segment(big, header_length + 1000)]
    tcp = [parse_packet(piece).tcp for piece in pieces]  # parsing checks both checksums
    assert [len(t.payload) for t in tcp] == [1000, 1000, 1000, 1000, 123]
    assert [t.seq for t in tcp] == [7, 1007, 2007, 3007, 4007]
    assert [t.flags for t in tcp] == [ACK] * 4 + [ACK | PSH | FIN]
    assert all(t.options == TS for t in tcp)
    if family == 4:
        assert [parse_packet(piece).ip.identification for piece in pieces] == [0, 1, 2, 3, 4]


def test_cwr_rides_on_the_first_piece_only():
    """RFC 3168 6.1.2: one CWR for one reduction of the congestion window."""
    pieces = cut_tcp_segment(segment(0, 3 * MSS, ACK | CWR), 1500)
    assert [parse_packet(bytes(piece)).tcp.flags for piece in pieces] == [ACK | CWR, ACK, ACK]


def test_cutting_then_joining_gives_back_the_segment():
    big = segment(123456, 30 * MSS + 77, ACK | PSH, options=TcpOptions(timestamps=(5, 6), sack_blocks=((1, 2),)))
    pieces = [bytes(piece) for piece in cut_tcp_segment(big, 1500)]
    assert max(map(len, pieces)) <= 1500
    out, _ = joined(pieces)
    assert out == [big]


def test_what_is_not_a_data_segment_is_not_cut():
    assert cut_tcp_segment(segment(0, 3000, ACK | SYN), 1500) is None
    assert cut_tcp_segment(segment(0, 0), 1500) is None
    assert cut_tcp_segment(b"\x45" + bytes(3000), 1500) is None


# --- the link and two Stacks ----------------------------------------------------------------------


def fake_link(sock: socket.socket, mtu: int, software: bool) -> TunLink:
    """A TunLink without offloads whose fd is one end of a SOCK_SEQPACKET socketpair."""
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    link = TunLink.__new__(TunLink)
    Link.__init__(link)
    link.name, link.mtu, link.offload, link.tso6, link.software_offload = "fake0", mtu, False, False, software
    link.gso_max_size = 65535
    link._use(sock)
    return link


def transfer_over_links(size: int, software: bool, mtu: int = 1500, family: int = 4):
    """A sends `size` bytes to B, each Stack over its own TunLink, the links joined by a
    socketpair. Returns what B read, the packets B's stack received, and per round of B the data
    bytes it took in order and whether it answered with an ACK in that round, plus both links."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    link_a, link_b = fake_link(ours, mtu, software), fake_link(theirs, mtu, software)
    if family == 6:
        a = Stack(None, address6=A6, mtu=mtu, port_seed=1, segmentation_offload=link_a.cuts_large_segments)
        b = Stack(None, address6=B6, mtu=mtu, port_seed=2, segmentation_offload=link_b.cuts_large_segments)
    else:
        a = Stack(A, mtu=mtu, port_seed=1, segmentation_offload=link_a.cuts_large_segments)
        b = Stack(B, mtu=mtu, port_seed=2, segmentation_offload=link_b.cuts_large_segments)
    listener = b.listen(80)
    client = a.connect(B6 if family == 6 else B, 80, 0.0)
    data = bytes(index * 7 & 0xFF for index in range(size))
    sent, out, server, received, rounds = 0, bytearray(), None, 0, []
    now = 0.0
    try:
        for _ in range(20000):
            if server is None:
                server = listener.accept()
            if sent < size:
                sent += client.send(data[sent:], now)
                a.poke(client)
            link_a.send_batch(a.transmit(now), now)
            before = server.rcv.nxt if server is not None else None
            while batch := link_b.receive_batch(now):
                for packet in batch:
                    b.receive(packet, now)
                    received += 1
            if server is None:
                server = listener.accept()
            took = 0 if before is None or server is None else (server.rcv.nxt - before) & 0xFFFFFFFF
            if server is not None and server.readable:
                out += server.recv(1 << 20, now)
                b.poke(server)
            replies = b.transmit(now)
            rounds.append((took, any(not parse_packet(p).tcp.payload for p in replies)))
            link_b.send_batch(replies, now)
            while batch := link_a.receive_batch(now):
                for packet in batch:
                    a.receive(packet, now)
            if len(out) == size:
                break
            now += 0.001
            for stack in (a, b):
                if (stack.next_deadline() or now + 1) <= now:
                    stack.on_timer(now)
        return bytes(out), received, rounds, link_a.stats()["TunLink(fake0)"], link_b.stats()["TunLink(fake0)"], client
    finally:
        link_a.close()
        link_b.close()


@pytest.mark.parametrize("family", [4, 6])
def test_two_stacks_move_the_same_bytes_with_software_offload_and_without(family):
    size = 2_000_000
    plain, plain_packets, _, plain_a, plain_b, plain_client = transfer_over_links(size, False, family=family)
    data, packets, rounds, link_a, link_b, client = transfer_over_links(size, True, family=family)
    assert data == plain == bytes(index * 7 & 0xFF for index in range(size))
    # No loss in either (the socketpair never filled) and no retransmission: the same decisions.
    for counters in (plain_a, plain_b, link_a, link_b):
        assert not any(name.startswith("drop_") for name in counters), counters
    assert client.snd.retransmissions == plain_client.snd.retransmissions == 0
    assert client.retransmission_timeouts == plain_client.retransmission_timeouts == 0
    # The core saw and built far fewer, larger segments; the wire carried MTU-sized packets.
    assert packets * 5 < plain_packets
    assert link_a["large_segments_cut_here"] > 0 and link_b["super_segments_in"] > 0
    assert link_a["packets_out"] >= plain_a["packets_out"] - 5
    # RFC 5681 4.2 / RFC 9293 3.8.6.3: a round that took two full-sized segments or more of data
    # in order was answered with an ACK at once (a super-segment counts as the segments in it).
    assert all(acked for took, acked in rounds if took >= 2 * (MSS if family == 4 else MSS - 20))


def test_a_link_without_software_offload_drops_what_is_larger_than_its_mtu():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    link = fake_link(ours, 1500, software=False)
    try:
        assert not link.cuts_large_segments
        link.send(segment(0, 3 * MSS), 0.0)
        assert link.counters["drop_larger_than_mtu"] == 1
        theirs.setblocking(False)
        with pytest.raises(BlockingIOError):
            theirs.recv(65536)
    finally:
        link.close()
        theirs.close()


def test_the_link_joins_a_read_batch_and_cuts_what_it_sends():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    link = fake_link(ours, 1500, software=True)
    try:
        assert link.cuts_large_segments
        for packet in run(0, [MSS] * 3, ACK | PSH) + [b"\x00" * 20]:
            theirs.send(packet)
        assert link.receive_batch(0.0) == [segment(0, 3 * MSS, ACK | PSH)]
        link.send(segment(0, 2 * MSS + 1), 0.0)
        assert [without_ip_id(theirs.recv(65536)) for _ in range(3)] == list(map(without_ip_id, run(0, [MSS, MSS, 1])))
        counters = link.stats()["TunLink(fake0)"]
        assert counters["super_segments_in"] == 1 and counters["segments_in_super_segments_in"] == 3
        assert counters["drop_not_ip"] == 1 and counters["packets_in"] == 1
        assert counters["large_segments_cut_here"] == 1 and counters["packets_out"] == 3
    finally:
        link.close()
        theirs.close()


def test_pieces_the_device_refuses_are_dropped_by_name_and_the_rest_still_go_and_count():
    # A device without offloads takes one packet per write; when its queue is full a write fails
    # (EAGAIN here, ENOBUFS on TUN) and that piece is lost like any packet the wire drops, while
    # the pieces before and after it are still written: each outcome counted once per piece.
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    link = fake_link(ours, 1500, software=True)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # room for a few pieces only
    try:
        pieces = cut_tcp_segment(segment(0, 40 * MSS + 7), 1500)
        link.send(segment(0, 40 * MSS + 7), 0.0)
        theirs.setblocking(False)
        arrived = []
        while True:
            try:
                arrived.append(theirs.recv(65536))
            except BlockingIOError:
                break
        counters = link.stats()["TunLink(fake0)"]
        assert 0 < len(arrived) < len(pieces) == 41
        assert counters["packets_out"] == len(arrived)
        assert counters["drop_queue_full"] == len(pieces) - len(arrived)
        assert counters["bytes_out"] == sum(map(len, arrived))
        assert arrived == [bytes(piece) for piece in pieces[:len(arrived)]]  # in order, none changed
    finally:
        link.close()
        theirs.close()
