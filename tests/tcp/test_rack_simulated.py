"""A lost tail between two hosts (ustack.testing.simulator, virtual time): the last three data
segments of a transfer are dropped on their first transmission. With RACK-TLP the sender probes
after about two round trips and repairs the tail from the peer's SACK; with the classic loss
detection nothing draws a duplicate ACK, so only the retransmission timer repairs it."""

from __future__ import annotations

import dataclasses

import pytest

from ustack.tcp.config import TcpConfig
from ustack.testing.simulator import BulkTransfer, Simulator
from ustack.wire import parse_packet

MSS = 1448  # 1460 less the timestamp option
DATA = (bytes(range(256)) * 200)[: 30 * MSS]  # whole segments: none waits for Nagle
DELAY = 0.025  # each way: RTT 50 ms


def run_with_tail_dropped(loss_detection: str) -> Simulator:
    config = dataclasses.replace(TcpConfig(), loss_detection=loss_detection)
    sim = Simulator(config, config, delay=DELAY)
    sim.client_app = BulkTransfer(DATA)
    sim.server_app = BulkTransfer(b"")
    client_iss = 0xFFFFFF00
    tail_start = (client_iss + 1 + len(DATA) - 3 * MSS) & 0xFFFFFFFF
    dropped = set()
    sim.resent_at = []  # (time, seq) of each segment of the tail sent again
    put = sim._put

    def drop_the_tail_once(to_server: bool, packet: bytes) -> None:
        tcp = parse_packet(packet).tcp
        offset = (tcp.seq - tail_start) & 0xFFFFFFFF
        if to_server and tcp.payload and offset < 3 * MSS:
            if tcp.seq in dropped:
                sim.resent_at.append((sim.now, tcp.seq))
            else:
                dropped.add(tcp.seq)
                return  # lost on the wire
        put(to_server, packet)

    sim._put = drop_the_tail_once
    assert sim.run(until=lambda s: s.server_app.received == DATA, max_time=30)
    assert len(dropped) == 3
    return sim


def test_rack_tlp_repairs_a_lost_tail_without_a_retransmission_timeout():
    sim = run_with_tail_dropped("rack")
    assert sim.client.retransmission_timeouts == 0
    assert sim.client.rack.probes_sent == 1
    # Slow start takes the data out in 4 round trips (the last ACK before the tail comes at
    # 0.2 s); then the probe goes 2 SRTT later, its SACK comes one RTT after it, and the resends
    # take one more RTT and a half: 5 RTTs in all, less than an RTO (0.3 s here) after that ACK.
    rtt = 2 * DELAY
    rack_time = sim.now
    assert rack_time <= 0.2 + 5 * rtt + 1e-9
    # The probe resends the last segment; its SACK shows the two before it lost (RACK), and both
    # go at once: ssthresh is 2 segments and nothing is in the network but our FIN, which PRR's
    # pipe does not count (it once did, and the second resend waited for one more ACK).
    probe, *resends = sim.resent_at
    assert len(resends) == 2 and resends[0][0] == resends[1][0] > probe[0]
    classic = run_with_tail_dropped("dupack")
    assert classic.client.retransmission_timeouts >= 1
    assert rack_time < classic.now
    print(f"tail repaired at {rack_time:.3f} s with RACK-TLP, {classic.now:.3f} s with the RTO")


@pytest.mark.parametrize("seed", range(5))
def test_rack_moves_data_intact_through_loss_and_reordering(seed):
    print(f"seed {seed}")
    config = TcpConfig()
    sim = Simulator(config, config, seed=seed, delay=DELAY, loss=0.05, reorder=0.05)
    sim.client_app = BulkTransfer(DATA * 4)
    sim.server_app = BulkTransfer(DATA)
    assert sim.run(until=lambda s: s.client.state.name == "CLOSED" and s.server_closed, max_time=600)
    assert sim.server_app.received == DATA * 4
    assert sim.client_app.received == DATA
