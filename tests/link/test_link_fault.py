"""FaultInjector: seeded, per-direction faults; every decision counted; scripted drops."""

from __future__ import annotations

import struct

import pytest

from ustack.link import FaultInjector, Faults

from link_helpers import ScriptedLink, numbered_packets, tcp_packet

SEED = 20261121
COUNT = 4000


def sequence_of(packet: bytes) -> int:
    """The ICMP echo sequence number of a numbered packet (IPv4 header is 20 bytes)."""
    return struct.unpack_from("!H", packet, 26)[0]


def internet_checksum_ok(data: bytes) -> bool:
    """RFC 1071: the ones' complement sum over data that includes its checksum is 0xFFFF."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def run_outbound(faults: Faults, seed: int, packets: list[bytes], step: float = 0.001):
    device = ScriptedLink()
    injector = FaultInjector(device, seed=seed, outbound=faults)
    now = 0.0
    for packet in packets:
        injector.send(packet, now)
        now += step
    # Let everything still held come out.
    while (deadline := injector.next_deadline()) is not None:
        injector.on_timer(deadline)
    return injector, device.sent


def run_inbound(faults: Faults, seed: int, packets: list[bytes], step: float = 0.001):
    device = ScriptedLink()
    injector = FaultInjector(device, seed=seed, inbound=faults)
    received = []
    now = 0.0
    for packet in packets:
        device.arrive(packet)
        received += injector.receive_batch(now)
        now += step
    while (deadline := injector.next_deadline()) is not None:
        injector.on_timer(deadline)
        received += injector.receive_batch(deadline)
    return injector, received


@pytest.fixture(scope="module")
def packets():
    return numbered_packets(COUNT)


EVERYTHING = Faults(drop=0.1, duplicate=0.1, corrupt=0.1, reorder=0.1)


def test_same_seed_same_decisions(packets):
    first, sent_first = run_outbound(EVERYTHING, SEED, packets)
    second, sent_second = run_outbound(EVERYTHING, SEED, packets)
    assert sent_first == sent_second
    assert first.counters == second.counters


def test_another_seed_other_decisions(packets):
    _, sent_first = run_outbound(EVERYTHING, SEED, packets)
    _, sent_other = run_outbound(EVERYTHING, SEED + 1, packets)
    assert sent_first != sent_other


def test_directions_draw_from_separate_generators(packets):
    """Outbound traffic must not change which inbound packets are dropped."""
    faults = Faults(drop=0.2)
    device = ScriptedLink()
    quiet = FaultInjector(device, seed=SEED, inbound=faults, outbound=faults)
    device.arrive(*packets[:500])
    kept_quiet = [p for _ in range(10) for p in quiet.receive_batch(0.0, max_packets=64)]

    device = ScriptedLink()
    busy = FaultInjector(device, seed=SEED, inbound=faults, outbound=faults)
    device.arrive(*packets[:500])
    kept_busy = []
    for _ in range(10):
        busy.send_batch(packets[:37], 0.0)  # outbound decisions interleaved
        kept_busy += busy.receive_batch(0.0, max_packets=64)
    assert kept_busy == kept_quiet
    assert busy.counters["dropped_outbound"] > 0


def expect_near(observed: int, probability: float, trials: int) -> None:
    """Within 6 standard deviations of the binomial mean: fails on a broken injector, not on luck."""
    mean = probability * trials
    deviation = (trials * probability * (1 - probability)) ** 0.5
    assert abs(observed - mean) <= 6 * deviation, f"{observed} far from {mean} (seed {SEED})"


def test_drop_statistics_both_directions(packets):
    injector, sent = run_outbound(Faults(drop=0.1), SEED, packets)
    expect_near(injector.counters["dropped_outbound"], 0.1, COUNT)
    assert len(sent) == COUNT - injector.counters["dropped_outbound"]
    assert [sequence_of(p) for p in sent] == sorted(sequence_of(p) for p in sent)  # order kept

    injector, received = run_inbound(Faults(drop=0.3), SEED, packets)
    expect_near(injector.counters["dropped_inbound"], 0.3, COUNT)
    assert len(received) == COUNT - injector.counters["dropped_inbound"]


def test_duplicate_statistics(packets):
    injector, sent = run_outbound(Faults(duplicate=0.05), SEED, packets)
    duplicated = injector.counters["duplicated_outbound"]
    expect_near(duplicated, 0.05, COUNT)
    assert len(sent) == COUNT + duplicated
    doubles = [a for a, b in zip(sent, sent[1:]) if a == b]
    assert len(doubles) == duplicated  # the copy follows the original


def test_reorder_statistics_and_nothing_lost(packets):
    injector, received = run_inbound(Faults(reorder=0.1), SEED, packets)
    reordered = injector.counters["reordered_inbound"]
    expect_near(reordered, 0.1, COUNT - reordered)  # a held packet blocks the next decision
    assert sorted(received) == sorted(packets)
    sequence = [sequence_of(p) for p in received]
    swaps = sum(1 for a, b in zip(sequence, sequence[1:]) if a > b)
    # Each held packet comes right after the one that overtook it, unless none came in time.
    assert swaps == reordered - injector.counters["reorder_timeouts_inbound"]


def test_reorder_always_swaps_pairs_and_times_out():
    device = ScriptedLink()
    injector = FaultInjector(device, seed=SEED, outbound=Faults(reorder=1.0, reorder_timeout=0.5))
    p1, p2, p3, p4, p5 = numbered_packets(5)
    for packet in (p1, p2, p3, p4, p5):
        injector.send(packet, 1.0)
    assert device.sent == [p2, p1, p4, p3]
    assert injector.next_deadline() == 1.5  # p5 waits for a packet that never comes
    injector.on_timer(1.49)
    assert device.sent == [p2, p1, p4, p3]
    injector.on_timer(1.5)
    assert device.sent == [p2, p1, p4, p3, p5]
    assert injector.next_deadline() is None


def test_delay_holds_until_the_deadline_both_directions():
    device = ScriptedLink()
    injector = FaultInjector(device, seed=SEED, inbound=Faults(delay=0.2), outbound=Faults(delay=0.05, jitter=0.01))
    packet_out, packet_in = numbered_packets(2)
    injector.send(packet_out, 10.0)
    assert device.sent == []
    deadline = injector.next_deadline()
    assert 10.05 <= deadline <= 10.06
    injector.on_timer(deadline - 0.001)
    assert device.sent == []
    injector.on_timer(deadline)
    assert device.sent == [packet_out]

    device.arrive(packet_in)
    assert injector.receive_batch(20.0) == []
    assert injector.next_deadline() == pytest.approx(20.2)
    assert injector.receive_batch(20.1) == []
    assert injector.receive_batch(20.2) == [packet_in]
    assert injector.next_deadline() is None
    assert injector.counters["delayed_inbound"] == 1 and injector.counters["delayed_outbound"] == 1


def test_jitter_spreads_delays(packets):
    injector, received = run_inbound(Faults(delay=0.010, jitter=0.020), SEED, packets[:1000])
    assert sorted(received) == sorted(packets[:1000])
    sequence = [sequence_of(p) for p in received]
    assert sequence != sorted(sequence)  # packets 1 ms apart with 20 ms jitter overtake each other


def test_corruption_flips_one_bit_the_checksum_catches(packets):
    injector, sent = run_outbound(Faults(corrupt=0.1), SEED, packets)
    corrupted = [(original, after) for original, after in zip(packets, sent) if original != after]
    assert len(corrupted) == injector.counters["corrupted_outbound"]
    expect_near(len(corrupted), 0.1, COUNT)
    for original, after in corrupted:
        flipped = [i for i, (x, y) in enumerate(zip(original, after)) if x != y]
        assert len(flipped) == 1 and bin(original[flipped[0]] ^ after[flipped[0]]).count("1") == 1
        assert flipped[0] >= 20  # the IPv4 header is left alone by default
        assert internet_checksum_ok(original[20:]) and not internet_checksum_ok(after[20:])


def test_corrupt_header_can_hit_the_ipv4_header(packets):
    _, sent = run_outbound(Faults(corrupt=1.0, corrupt_header=True), SEED, packets[:500])
    hit_header = [p for p in sent if not internet_checksum_ok(p[:20])]
    assert hit_header  # 20 of 80 bytes are header: some flips land there


def test_rate_limit_is_a_token_bucket():
    device = ScriptedLink()
    injector = FaultInjector(device, outbound=Faults(rate_bytes_per_second=10_000, burst_bytes=5_000))
    packet = b"E" + bytes(999)  # 1000 bytes
    for _ in range(20):
        injector.send(packet, 0.0)
    assert len(device.sent) == 5
    for _ in range(20):
        injector.send(packet, 0.3)  # 0.3 s refills 3000 bytes
    assert len(device.sent) == 8
    assert injector.counters["dropped_outbound_rate_limited"] == 32


def test_scripted_drop_of_the_third_data_segment():
    device = ScriptedLink()
    injector = FaultInjector(device, seed=SEED)
    segments = [tcp_packet(seq=1000 + 100 * i, flags="PA", payload=bytes(100)) for i in range(5)]
    third = segments[2]
    rule = injector.drop_when(lambda packet: packet == third, direction="outbound")
    injector.send_batch(segments, 0.0)
    injector.send(third, 1.0)  # the retransmission gets through: the rule had count=1
    assert device.sent == segments[:2] + segments[3:] + [third]
    assert rule.done and rule.dropped == [third]
    assert injector.counters["dropped_outbound_scripted"] == 1


def test_scripted_drop_respects_direction_and_count():
    device = ScriptedLink()
    injector = FaultInjector(device)
    ack = tcp_packet(flags="A")
    rule = injector.drop_when(lambda packet: packet[33] == 0x10, count=2, direction="inbound")  # pure ACK
    injector.send(ack, 0.0)  # outbound: not concerned
    device.arrive(ack, ack, ack)
    assert injector.receive_batch(0.0) == [ack]
    assert device.sent == [ack]
    assert rule.remaining == 0 and injector.counters["dropped_inbound_scripted"] == 2


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        Faults(drop=1.5)
    with pytest.raises(ValueError):
        Faults(delay=-1)
    with pytest.raises(ValueError):
        FaultInjector(ScriptedLink()).drop_when(lambda p: True, direction="sideways")


def test_batch_overflow_is_kept_for_the_next_call():
    device = ScriptedLink()
    injector = FaultInjector(device, inbound=Faults(duplicate=1.0))
    packets = numbered_packets(40)
    device.arrive(*packets)
    first = injector.receive_batch(0.0, max_packets=40)
    assert len(first) == 40
    assert injector.next_deadline() == 0.0  # the rest is due now
    rest = injector.receive_batch(0.0, max_packets=64)
    assert first + rest == [p for p in packets for _ in range(2)]


def test_on_drop_reports_every_drop_exactly_and_changes_no_decision(packets):
    """Each dropped packet is reported once, with its direction and reason, at the moment of the
    decision; what passes is what passes without the hook (the hook draws no random numbers)."""
    faults = Faults(drop=0.2, rate_bytes_per_second=100_000, burst_bytes=5_000)
    sample = packets[:600]

    def run(hook):
        device = ScriptedLink()
        injector = FaultInjector(device, seed=SEED, inbound=faults, outbound=faults, on_drop=hook)
        scripted = injector.drop_when(lambda packet: sequence_of(packet) == 5, direction="outbound")
        received = []
        for index, packet in enumerate(sample):
            injector.send(packet, index * 0.0001)
            device.arrive(packet)
            received += injector.receive_batch(index * 0.0001)
        return injector, device.sent, received, scripted

    reports = []
    injector, sent, received, scripted = run(lambda now, packet, direction, reason:
                                             reports.append((now, sequence_of(packet), direction, reason)))
    _, sent_without, received_without, _ = run(None)
    assert (sent, received) == (sent_without, received_without), f"seed {SEED}"

    for direction, passed in (("outbound", sent), ("inbound", received)):
        dropped = [number for _, number, side, _ in reports if side == direction]
        # Every packet either passed or was reported dropped, never both, in the original order.
        assert sorted(dropped + [sequence_of(p) for p in passed]) == [sequence_of(p) for p in sample]
        assert dropped == sorted(dropped)
        reasons = {reason for _, _, side, reason in reports if side == direction}
        assert {"random", "rate_limited"} <= reasons, f"seed {SEED}: {reasons}"
        counted = sum(count for name, count in injector.counters.items() if name.startswith(f"dropped_{direction}"))
        assert counted == len(dropped)
    assert (scripted.dropped[0], "outbound", "scripted") in [
        (sample[number], side, reason) for _, number, side, reason in reports]
    assert all(now == sample.index(next(p for p in sample if sequence_of(p) == number)) * 0.0001
               for now, number, _, _ in reports)


def test_reseed_gives_both_directions_the_same_losses():
    # scripts/bench_recovery.py sends one way, then the other: each transfer's data starts the
    # "data" stream of the seed, so both senders meet the same random losses.
    from ustack.link import FaultInjector, Faults
    from ustack.wire import TcpSegment, build_tcp_packet
    from ustack.wire.tcp import ACK

    from link_helpers import ScriptedLink

    sent = [build_tcp_packet(1, 2, TcpSegment(1, 2, n, 0, ACK, 100, payload=b"x"), tos=0) for n in range(400)]
    faults = Faults(drop=0.2)
    device = ScriptedLink()
    injector = FaultInjector(device, seed=7, inbound=faults, outbound=faults)
    injector.reseed("outbound", "data")
    for packet in sent:
        injector.send(packet, 0.0)
    outbound_kept = [packet in device.sent for packet in sent]
    injector.reseed("inbound", "data")
    device.arrive(*sent)
    inbound = injector.receive_batch(0.0, max_packets=len(sent))
    assert [packet in inbound for packet in sent] == outbound_kept
    assert 40 < outbound_kept.count(False) < 120  # about 20 % lost, the same ones each way
    with pytest.raises(ValueError):
        injector.reseed("sideways", "data")
