"""An ACK standing for a run (AckRunSegment, made by software GRO's thinning, csrc/segment.c):
a sender that receives a run's first ACK and its last, the last standing for the rest, ends where
one that receives every ACK of the run one by one ends: the same SND.UNA, send window,
duplicate-ACK count, congestion window and threshold, HyStart++ samples, retransmission timer,
and the same segments sent after the batch. And duplicate ACKs, which the link never absorbs,
still start fast retransmit when they come through the link's joiner. On virtual time."""

from __future__ import annotations

import pytest

from ustack.tcp import Connection, Listener, State, TcpConfig
from ustack.tcp.isn import IsnGenerator
from ustack.tcp.timer_set import RETRANSMIT_TIMER
from ustack.wire import build_tcp_packet, parse_packet
from ustack.wire.segment import AckRun, SegmentJoiner
from ustack.wire.tcp import AckRunSegment

CLIENT, SERVER = 0x0A000001, 0x0A000002
RTT = 0.002


def connect(config: TcpConfig) -> tuple[Connection, Connection, float]:
    now = 0.0
    client = Connection.open_active(config, CLIENT, 40000, SERVER, 5001, 0xFFFF0000, now)
    listener = Listener(config, SERVER, 5001, isn_generator=IsnGenerator(fixed_isn=0xFFF00000))
    (syn,) = client.transmit(now)
    now += RTT
    server = listener.receive(CLIENT, syn, now)
    for segment in server.transmit(now):
        now += RTT
        client.receive(segment, now)
    for segment in client.transmit(now):
        server.receive(segment, now)
    assert client.state is State.ESTABLISHED and server.state is State.ESTABLISHED
    return client, server, now


def sender_with_a_batch_of_acks(config: TcpConfig, rounds: int) -> tuple[Connection, list, float]:
    """A client that sent a flight after `rounds` round trips of a bulk transfer, and the ACKs the
    server sent for that flight (acknowledging every second segment), all to be read at once."""
    client, server, now = connect(config)
    client.send(bytes(4 << 20), now)
    for round_number in range(rounds + 1):
        flight = client.transmit(now)
        now += RTT / 2
        acks = []
        for segment in flight:
            server.receive(segment, now)
            acks += server.transmit(now)
        server.recv(1 << 30, now)
        now += RTT / 2
        if round_number < rounds:
            for ack in acks:
                client.receive(ack, now)
    assert len(acks) >= 4 and all(not ack.payload and not ack.options.sack_blocks for ack in acks)
    return client, acks, now


def state(connection: Connection) -> dict:
    snd, congestion = connection.snd, connection.congestion
    hystart = getattr(congestion, "hystart", None)
    return {
        "una": snd.una, "nxt": snd.nxt, "wnd": snd.wnd, "max_wnd": snd.max_wnd, "dupacks": snd.duplicate_acks,
        "cwnd": congestion.cwnd, "ssthresh": congestion.ssthresh, "in_recovery": congestion.in_recovery,
        "hystart": None if hystart is None else (hystart.phase, hystart.rtt_sample_count,
                                                 hystart.current_round_min_rtt, hystart.window_end),
        "retransmit_at": connection.timers.deadline(RETRANSMIT_TIMER), "ts_recent": connection.rcv.ts_recent,
        "srtt_set": connection.rtt.srtt is not None,
    }


def as_run_end(ack, acks: int) -> AckRunSegment:
    segment = tuple.__new__(AckRunSegment, ack)
    segment.acks = acks
    return segment


@pytest.mark.parametrize("algorithm", ["reno", "newreno", "cubic"])
@pytest.mark.parametrize("rounds", [0, 1, 3])
def test_a_run_first_and_last_leave_the_sender_where_every_ack_one_by_one_does(algorithm, rounds):
    config = TcpConfig(mss=1460, congestion_control=algorithm, send_buffer_size=1 << 22, receive_buffer_size=1 << 22)
    one_by_one, acks, now = sender_with_a_batch_of_acks(config, rounds)
    thinned, same_acks, _ = sender_with_a_batch_of_acks(config, rounds)
    assert acks == same_acks  # the two runs are the same run
    for ack in acks:
        one_by_one.receive(ack, now)
    thinned.receive(acks[0], now)
    thinned.receive(as_run_end(acks[-1], len(acks) - 1), now)
    assert state(thinned) == state(one_by_one)
    assert thinned.transmit(now) == one_by_one.transmit(now)  # the same segments leave after the batch


def test_in_slow_start_a_run_grows_cwnd_for_each_ack_it_stands_for_not_once():
    # RFC 3465 2.2: at most L*SMSS per ACK. Counted once, the last ACK of a run of 8 would add
    # 2 MSS where its 8 ACKs one by one add 16 (and slow start would crawl behind a busy link).
    config = TcpConfig(mss=1460, congestion_control="reno", send_buffer_size=1 << 22)
    client, acks, now = sender_with_a_batch_of_acks(config, 1)
    before = client.congestion.cwnd
    client.receive(acks[0], now)
    client.receive(as_run_end(acks[-1], len(acks) - 1), now)
    assert client.congestion.cwnd - before == 2 * client.send_mss * len(acks)
    # The same ACK as a plain segment (a run the link did not thin, or an ACK that was lost
    # between) counts as one stretch ACK: L alone.
    plain, acks, now = sender_with_a_batch_of_acks(config, 1)
    plain.receive(acks[0], now)
    plain.receive(acks[-1], now)
    assert plain.congestion.cwnd - before == 2 * 2 * plain.send_mss


def test_a_run_grows_cwnd_no_further_past_twice_the_flight_than_one_by_one():
    # RFC 7661 / cwnd_limited: slow start stops growing once cwnd reaches twice the flight; one
    # by one the last step may pass it by one ACK's growth, and the run's sum is cut the same.
    config = TcpConfig(mss=1460, congestion_control="reno", send_buffer_size=1 << 22)
    client, acks, now = sender_with_a_batch_of_acks(config, 0)
    flight = client.congestion.flight_after_send
    client.receive(acks[0], now)
    client.receive(as_run_end(acks[-1], 100), now)  # claims far more ACKs than the flight had
    assert client.congestion.cwnd <= 2 * flight + 2 * client.send_mss


def ack_packets_through_the_joiner(segments) -> list:
    """The server's ACKs as the client's link reads them in one batch: packets, joined (and
    thinned) by software GRO, parsed as the stack parses them."""
    packets = [build_tcp_packet(SERVER, CLIENT, segment) for segment in segments]
    joiner = SegmentJoiner(1500, len(packets))
    for index, packet in enumerate(packets):
        joiner.slots[index][0][:len(packet)] = packet
        joiner.lengths[index] = len(packet)
    return [parse_packet(packet).tcp for packet in joiner.join(len(packets))]


def test_through_the_joiner_a_batch_of_new_acks_comes_up_as_two_with_the_same_outcome():
    config = TcpConfig(mss=1460, send_buffer_size=1 << 22, receive_buffer_size=1 << 22)
    one_by_one, acks, now = sender_with_a_batch_of_acks(config, 2)
    thinned, _, _ = sender_with_a_batch_of_acks(config, 2)
    handed_up = ack_packets_through_the_joiner(acks)
    assert [getattr(segment, "acks", 1) for segment in handed_up] == [1, len(acks) - 1]
    for ack in acks:
        one_by_one.receive(ack, now)
    for segment in handed_up:
        thinned.receive(segment, now)
    assert state(thinned) == state(one_by_one)
    assert thinned.transmit(now) == one_by_one.transmit(now)


def test_duplicate_acks_read_in_one_batch_still_start_fast_retransmit():
    # Without SACK, RFC 5681 3.2: the third duplicate ACK resends the segment at SND.UNA. The
    # joiner never absorbs a duplicate ACK (its ACK number does not advance), so all reach the core.
    config = TcpConfig(mss=1460, sack=False, congestion_control="reno", limited_transmit=False,
                       send_buffer_size=1 << 22, receive_buffer_size=1 << 22)
    client, server, now = connect(config)
    client.send(bytes(200_000), now)
    flight = client.transmit(now)
    lost, *delivered = flight
    now += RTT / 2
    duplicates = []
    for segment in delivered:
        server.receive(segment, now)
        duplicates += server.transmit(now)
    assert len(duplicates) >= 3 and all(ack.ack == lost.seq for ack in duplicates)
    handed_up = ack_packets_through_the_joiner(duplicates)
    assert len(handed_up) == len(duplicates)
    now += RTT / 2
    for segment in handed_up:
        client.receive(segment, now)
    assert client.congestion.in_recovery
    resent = client.transmit(now)
    assert resent and resent[0].seq == lost.seq and resent[0].payload == lost.payload
