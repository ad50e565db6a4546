"""Ladders built from scripted pcaps: the connection picked, each segment's kind, the inferred states.

Client A (10.0.0.1:40000, ISN 1000) talks to server B (10.0.0.2:80, ISN 5000) unless a test says
otherwise; `talk.send(side, flags)` writes one packet, numbered the way a real stack would.
"""

from __future__ import annotations

import pytest

from ustack.tcp.state import State
from ustack.trace.infer import NoConnection, build_ladder, classify, select_connection
from ustack.trace.model import DUPLICATE, LEFT, LOST, NORMAL, RETRANSMISSION, RIGHT
from ustack.wire.pcap import LINKTYPE_ETHERNET
from ustack.wire.tcp import flags_text


def flags_in_order(ladder):
    return [(arrow.from_side, flags_text(arrow.flags)) for arrow in ladder.arrows]


def full_exchange(talk):
    talk.handshake()
    talk.send("A", "PA", b"GET / HTTP/1.0\r\n\r\n")
    talk.send("B", "A")
    talk.send("B", "PA", b"x" * 300)
    talk.send("A", "A")
    talk.send("A", "FA")
    talk.send("B", "A")
    talk.send("B", "FA")
    talk.send("A", "A")


def test_handshake_data_and_teardown(conversation):
    talk = conversation()
    full_exchange(talk)
    ladder = talk.ladder()
    assert (ladder.left.name, ladder.left.label) == ("10.0.0.1:40000", "client")
    assert (ladder.right.name, ladder.right.label) == ("10.0.0.2:80", "server")
    assert flags_in_order(ladder) == [
        (LEFT, "S"), (RIGHT, "S."), (LEFT, "."), (LEFT, "P."), (RIGHT, "."), (RIGHT, "P."),
        (LEFT, "."), (LEFT, "F."), (RIGHT, "."), (RIGHT, "F."), (LEFT, "."),
    ]  # fmt: skip
    assert all(arrow.kind == NORMAL for arrow in ladder.arrows)
    assert ladder.states_of(LEFT) == ["CLOSED", "SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    assert ladder.states_of(RIGHT) == ["LISTEN", "SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    assert all(mark.inferred for mark in ladder.marks)
    # A state written where it changes: SYN-SENT just before the SYN, the server's ESTABLISHED
    # just after the ACK that completes the handshake.
    items = ladder.items
    syn = ladder.arrows[0]
    assert items[items.index(syn) - 1].state is State.SYN_SENT
    third = ladder.arrows[2]
    assert items[items.index(third) + 1].state is State.ESTABLISHED and items[items.index(third) + 1].side == RIGHT


def test_passive_close_in_three_segments(conversation):
    # The server answers the client's FIN with FIN,ACK at once: the client goes from FIN-WAIT-1
    # straight to TIME-WAIT on that one segment (RFC 9293 figure 5, note 2).
    talk = conversation()
    talk.handshake()
    talk.send("A", "FA")
    talk.send("B", "FA")
    talk.send("A", "A")
    ladder = talk.ladder()
    assert ladder.states_of(LEFT)[-3:] == ["ESTABLISHED", "FIN-WAIT-1", "TIME-WAIT"]
    assert ladder.marks[-2].cause == "received FIN and the ACK of our FIN"
    assert ladder.states_of(RIGHT)[-3:] == ["CLOSE-WAIT", "LAST-ACK", "CLOSED"]


@pytest.mark.parametrize("first_ack_from", ["A", "B"])
def test_simultaneous_close_is_closing_on_both_sides(conversation, first_ack_from):
    talk = conversation()
    talk.handshake()
    talk.send("A", "FA", advance_peer=False)  # the FINs cross: neither has the other's yet
    talk.send("B", "FA", advance_peer=False)  # its ACK (1001) does not cover A's FIN
    acks = {"A": 5002, "B": 1002}  # each acknowledges the other's FIN
    second = "B" if first_ack_from == "A" else "A"
    talk.send(first_ack_from, "A", ack=acks[first_ack_from])
    talk.send(second, "A", ack=acks[second])
    ladder = talk.ladder()
    assert ladder.states_of(LEFT)[-3:] == ["FIN-WAIT-1", "CLOSING", "TIME-WAIT"]
    assert ladder.states_of(RIGHT)[-3:] == ["FIN-WAIT-1", "CLOSING", "TIME-WAIT"]


def test_connection_refused_with_rst(conversation):
    talk = conversation()
    talk.send("A", "S")
    talk.send("B", "RA", ack=1001)
    ladder = talk.ladder()
    assert ladder.states_of(LEFT) == ["CLOSED", "SYN-SENT", "CLOSED"]
    assert ladder.states_of(RIGHT) == ["CLOSED"]  # nobody was listening
    assert ladder.marks[-1].cause == "received RST"


def test_reset_of_an_established_connection(conversation):
    talk = conversation()
    talk.handshake()
    talk.send("A", "PA", b"hello")
    talk.send("B", "RA")
    ladder = talk.ladder()
    assert ladder.states_of(RIGHT)[-1] == "CLOSED" and ladder.marks[-2].cause == "sent RST"
    assert ladder.states_of(LEFT)[-1] == "CLOSED" and ladder.marks[-1].cause == "received RST"


def test_simultaneous_open(conversation):
    talk = conversation()
    talk.send("A", "S")
    talk.send("B", "S", advance_peer=False)
    talk.received["B"] = 1001
    talk.received["A"] = 5001
    talk.send("A", "SA", seq=1000)
    talk.send("B", "SA", seq=5000)
    ladder = talk.ladder()
    assert ladder.states_of(LEFT) == ["CLOSED", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED"]
    assert ladder.states_of(RIGHT) == ["CLOSED", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED"]


def lose_second_of_three(talk, peer_acks=True):
    """A sends three segments; the middle one is lost after the capture point (the capture is at
    the sender, so the original is in the file). If `peer_acks`, B acknowledges the first, then
    repeats that ACK when the third arrives: it is still waiting for exactly the lost bytes."""
    talk.handshake()
    talk.send("A", "PA", b"a" * 100)
    lost_seq = talk.next_seq["A"]
    talk.send("A", "PA", b"b" * 100, advance_peer=False)
    talk.send("A", "PA", b"c" * 100)  # arrives, after a hole
    if peer_acks:
        talk.send("B", "A", gap=0.030)
        talk.send("B", "A", gap=0.001)
    talk.send("A", "PA", b"b" * 100, seq=lost_seq, gap=0.200)
    talk.send("B", "A", ack=lost_seq + 200, gap=0.030)
    return lost_seq


def test_loss_seen_at_the_sender(conversation):
    talk = conversation()
    lost_seq = lose_second_of_three(talk)
    arrows = talk.ladder().arrows
    original = next(a for a in arrows if a.seq == lost_seq)
    resent = [a for a in arrows if a.seq == lost_seq][1]
    assert original.kind == LOST and "probably lost" in original.note
    assert resent.kind == RETRANSMISSION and resent.note == "retransmission 1, +0.241 s"
    assert [a.kind for a in arrows].count(LOST) == 1


def test_no_loss_claimed_without_evidence(conversation):
    # Same exchange, but B says nothing before the retransmission: the segment may as well have
    # arrived and B's ACK been lost, so the original stays a plain segment.
    talk = conversation()
    lost_seq = lose_second_of_three(talk, peer_acks=False)
    arrows = talk.ladder().arrows
    assert [a.kind for a in arrows if a.seq == lost_seq] == [NORMAL, RETRANSMISSION]


def test_spurious_retransmission_is_not_a_loss(conversation):
    talk = conversation()
    talk.handshake()
    talk.send("A", "PA", b"a" * 100)
    talk.send("A", "PA", b"a" * 100, seq=1001, gap=0.300)  # the ACK was merely late
    talk.send("B", "A", gap=0.010)
    kinds = [a.kind for a in talk.ladder().arrows[3:]]
    assert kinds == [NORMAL, RETRANSMISSION, NORMAL]


def test_loss_seen_at_the_receiver(conversation):
    # Captured behind the loss: the original never shows, its resend is still a retransmission
    # because later bytes had already been seen.
    talk = conversation()
    talk.handshake()
    talk.send("A", "PA", b"a" * 100)
    talk.send("A", "PA", b"b" * 100, lost=True)
    talk.send("A", "PA", b"c" * 100)  # arrives, after a hole
    talk.send("B", "A")
    talk.send("A", "PA", b"b" * 100, seq=1101, gap=0.2)
    arrows = talk.ladder().arrows
    assert [a.kind for a in arrows[3:]] == [NORMAL, NORMAL, NORMAL, RETRANSMISSION]


def test_syn_backoff_is_visible(conversation):
    # Nobody answers: three SYNs, 1 s then 2 s apart (RFC 6298 5.5 backoff). The capture cannot
    # tell a lost SYN from a lost SYN,ACK, so none is called lost; the notes carry the timing.
    talk = conversation()
    talk.send("A", "S")
    talk.send("A", "S", seq=1000, gap=1.0)
    talk.send("A", "S", seq=1000, gap=2.0)
    arrows = talk.ladder().arrows
    assert [a.kind for a in arrows] == [NORMAL, RETRANSMISSION, RETRANSMISSION]
    assert [a.note for a in arrows] == ["", "retransmission 1, +1.000 s", "retransmission 2, +2.000 s"]
    assert talk.ladder().states_of(LEFT) == ["CLOSED", "SYN-SENT"]


def test_duplicate_packet(conversation):
    talk = conversation()
    talk.handshake()
    talk.send("A", "PA", b"hello")
    talk.send("A", "PA", b"hello", seq=1001, ip_id=talk.ip_id["A"], gap=0.0001)  # same IP ID too
    talk.send("B", "A")
    arrows = talk.ladder().arrows
    assert [a.kind for a in arrows[3:]] == [NORMAL, DUPLICATE, NORMAL]


def test_identical_segment_with_ip_id_zero_is_a_retransmission(conversation):
    talk = conversation()
    talk.handshake()
    talk.send("A", "PA", b"hello", ip_id=0)
    talk.send("A", "PA", b"hello", seq=1001, ip_id=0, gap=0.2)
    assert [a.kind for a in talk.ladder().arrows[3:]] == [NORMAL, RETRANSMISSION]


def test_keepalive_is_not_a_retransmission(conversation):
    talk = conversation()
    talk.handshake()
    talk.send("A", "A", seq=1000, gap=7200)  # RFC 9293 3.8.4: SEG.SEQ = SND.NXT - 1, no data
    arrow = talk.ladder().arrows[-1]
    assert (arrow.kind, arrow.note) == (NORMAL, "keep-alive")


def test_capture_started_mid_connection(conversation):
    talk = conversation()
    talk.send("A", "PA", b"data")
    talk.send("B", "A")
    ladder = talk.ladder()
    assert ladder.states_of(LEFT) == ["ESTABLISHED"] and ladder.states_of(RIGHT) == ["ESTABLISHED"]
    assert "mid-connection" in ladder.marks[0].cause
    assert ladder.left.label == ""


def test_sequence_numbers_that_wrap(conversation):
    talk = conversation(isn_a=2**32 - 50)
    talk.handshake()
    talk.send("A", "PA", b"w" * 100)  # crosses 2**32
    talk.send("B", "A")
    talk.send("A", "FA")
    talk.send("B", "A")
    talk.send("B", "FA")
    talk.send("A", "A")
    ladder = talk.ladder()
    assert ladder.states_of(LEFT)[-3:] == ["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    assert ladder.states_of(RIGHT)[-3:] == ["CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    assert all(arrow.kind == NORMAL for arrow in ladder.arrows)


def two_connections(conversation):
    first = conversation()
    full_exchange(first)
    second = conversation(a=("10.0.0.1", 40001), b=("10.0.0.2", 8080), isn_a=7000, isn_b=9000)
    second.time = first.time + 1
    full_exchange(second)
    first.records.extend(second.records)
    return first


def test_conn_selects_by_port_on_either_side(conversation):
    talk = two_connections(conversation)
    assert talk.ladder().right.port == 80
    assert talk.ladder(port=8080).right.port == 8080
    assert talk.ladder(port=40001).left.port == 40001
    assert len(talk.ladder(port=8080).arrows) == 11
    with pytest.raises(NoConnection, match="port 443"):
        talk.ladder(port=443)


def test_select_connection_on_nothing():
    with pytest.raises(NoConnection):
        select_connection([])


def test_ethernet_capture(conversation):
    talk = conversation(linktype=LINKTYPE_ETHERNET)
    full_exchange(talk)
    assert len(talk.ladder().arrows) == 11


def test_classify_keeps_the_order_and_the_numbers(conversation):
    talk = conversation()
    talk.handshake()
    ladder = talk.ladder()
    assert [(a.seq, a.ack, a.window, a.length) for a in ladder.arrows] == [
        (1000, 0, 64240, 0), (5000, 1001, 64240, 0), (1001, 5001, 64240, 0),
    ]  # fmt: skip
    assert ladder.arrows[0].options.mss == 1460 and ladder.arrows[0].options.window_scale == 7


def test_nothing_in_nothing_out():
    assert classify([]) == []
    with pytest.raises(NoConnection):
        build_ladder([])


def test_a_new_syn_on_the_same_ports_is_another_connection(conversation):
    talk = conversation()
    talk.send("A", "S")
    talk.send("B", "RA", ack=1001)
    talk.send("A", "S", seq=1000, gap=1.0)  # the same SYN again: still this connection
    talk.send("B", "RA", ack=1001)
    talk.next_seq["A"] = 90000
    talk.send("A", "S", gap=3.0)  # a new ISN: the next connection on the same 4-tuple
    talk.send("B", "SA", ack=90001)
    ladder = talk.ladder()
    assert [flags_text(a.flags) for a in ladder.arrows] == ["S", "R.", "S", "R."]
    assert ladder.arrows[2].kind == RETRANSMISSION
