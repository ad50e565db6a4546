"""Two hosts joined by a lossy, duplicating, reordering link (ustack.testing.simulator).

Seeded and deterministic; a failure names its seed so it can be replayed.
"""

from __future__ import annotations

import random

import pytest

from ustack.tcp import State, TcpConfig
from ustack.testing.simulator import BulkTransfer, Link, Simulator

MIB = 1 << 20
CLIENT_DATA = bytes(range(256)) * (MIB // 256)
SERVER_DATA = bytes(reversed(range(256))) * (MIB // 256)


def both_closed(sim):
    return sim.client.state is State.CLOSED and sim.server_closed


def transfer(seed, **link):
    sim = Simulator(seed=seed, **link)
    sim.client_app = BulkTransfer(CLIENT_DATA)
    sim.server_app = BulkTransfer(SERVER_DATA)
    finished = sim.run(until=both_closed, max_time=20000.0)
    return sim, finished


def check(sim, finished, seed):
    where = f"seed={seed} t={sim.now:.3f} client={sim.client!r} server={sim.server!r}"
    assert finished, f"did not finish: {where}"
    assert sim.client.error is None and sim.server.error is None, f"errors {sim.client.error} {sim.server.error}: {where}"
    assert bytes(sim.server_app.received) == CLIENT_DATA, f"client->server data differs: {where}"
    assert bytes(sim.client_app.received) == SERVER_DATA, f"server->client data differs: {where}"
    # Whoever closed first went through TIME-WAIT; nothing is left armed.
    histories = [sim.events(sim.client), sim.events(sim.server)]
    passed_time_wait = [any(getattr(e, "new", None) is State.TIME_WAIT for e in h) for h in histories]
    assert any(passed_time_wait), f"nobody went through TIME-WAIT: {where}"
    assert sim.client.next_deadline() is None and sim.server.next_deadline() is None, where


@pytest.mark.parametrize("seed", range(20))
def test_one_mib_each_way_at_ten_percent_loss(seed):
    sim, finished = transfer(seed, loss=0.10)
    check(sim, finished, seed)
    assert sim.to_server.lost and sim.to_client.lost, f"seed={seed}: the link lost nothing"


@pytest.mark.parametrize("seed", range(5))
def test_duplication_and_reordering(seed):
    sim, finished = transfer(seed, loss=0.02, duplicate=0.05, reorder=0.10)
    check(sim, finished, seed)
    assert sim.to_server.duplicated and sim.to_server.reordered, f"seed={seed}"


def test_lossless_transfer_needs_no_retransmission():
    sim, finished = transfer(0)
    check(sim, finished, 0)
    assert sim.client.retransmissions == 0 and sim.server.retransmissions == 0


def test_small_buffers_and_no_options_still_deliver():
    config = TcpConfig(receive_buffer_size=5000, send_buffer_size=3000, window_scaling=False, sack=False, timestamps=False)
    sim = Simulator(config, config, seed=3, loss=0.05)
    sim.client_app = BulkTransfer(CLIENT_DATA[:200_000])
    sim.server_app = BulkTransfer(SERVER_DATA[:100_000])
    assert sim.run(until=both_closed, max_time=20000.0), f"seed=3 t={sim.now}"
    assert bytes(sim.server_app.received) == CLIENT_DATA[:200_000]
    assert bytes(sim.client_app.received) == SERVER_DATA[:100_000]


@pytest.mark.parametrize("seed", range(3))
def test_newreno_through_the_same_interface(seed):
    config = TcpConfig(congestion_control="newreno")
    sim = Simulator(config, config, seed=seed, loss=0.10)
    sim.client_app = BulkTransfer(CLIENT_DATA)
    sim.server_app = BulkTransfer(SERVER_DATA)
    check(sim, sim.run(until=both_closed, max_time=20000.0), seed)


@pytest.mark.parametrize("seed", range(5))
def test_bsd_window_advertisement_and_retransmission_timer_through_the_same_loss(seed):
    # The knobs the FreeBSD conformance profile selects (config.py) must deliver just as well.
    config = TcpConfig(
        window_advertisement="free_space", rto_slop=0.2, min_rto=0.03, window_scale_shift=6,
        rfc5961_rst_check=False, rfc5961_syn_check=False,
    )
    sim = Simulator(config, config, seed=seed, loss=0.10)
    sim.client_app = BulkTransfer(CLIENT_DATA)
    sim.server_app = BulkTransfer(SERVER_DATA)
    check(sim, sim.run(until=both_closed, max_time=20000.0), seed)


def test_the_simulator_is_deterministic_for_a_seed():
    def run(seed):
        sim = Simulator(seed=seed, loss=0.1, reorder=0.1)
        sim.trace = []
        sim.client_app = BulkTransfer(CLIENT_DATA[:50_000])
        sim.server_app = BulkTransfer(SERVER_DATA[:50_000])
        sim.run(until=both_closed)
        return sim.now, sim.trace

    assert run(4) == run(4)
    assert run(4) != run(5)


def test_a_bottleneck_rate_spreads_a_burst_out():
    link = Link(random.Random(1), delay=0.001, loss=0.0, duplicate=0.0, reorder=0.0, rate=1_000_000)
    # Three 960-byte segments sent at once leave one after another, 1000 bytes (with headers)
    # a millisecond each, then take the delay.
    times = [link.arrival_times(0.0, 960)[0] for _ in range(3)]
    assert times == pytest.approx([0.002, 0.003, 0.004])
    assert link.arrival_times(1.0, 960) == pytest.approx([1.002])  # the queue has drained


def download(seed, config):
    sim = Simulator(config, config, seed=seed, loss=0.05, delay=0.0005, rate=12_500_000)
    sim.client_app = BulkTransfer(CLIENT_DATA[:1000])
    sim.server_app = BulkTransfer(SERVER_DATA)
    return sim, sim.run(until=both_closed, max_time=20000.0)


@pytest.mark.parametrize("seed", range(3))
def test_sack_recovery_through_a_bottleneck_delivers_with_fewer_timeouts(seed):
    # Segments arrive spread out, so the receiver acknowledges them one by one (duplicate ACKs
    # with SACK blocks for every segment after a hole), as a kernel peer does.
    sim, finished = download(seed, TcpConfig())
    assert finished, f"seed={seed} t={sim.now}"
    assert bytes(sim.client_app.received) == SERVER_DATA, f"seed={seed}"
    assert bytes(sim.server_app.received) == CLIENT_DATA[:1000], f"seed={seed}"
    plain, finished = download(seed, TcpConfig(sack_recovery=False, limited_transmit=False, congestion_control="reno"))
    assert finished and bytes(plain.client_app.received) == SERVER_DATA, f"seed={seed}"
    # The same losses cost the RFC 6675 sender fewer retransmission timeouts than plain Reno.
    assert sim.server.retransmission_timeouts < plain.server.retransmission_timeouts, f"seed={seed}"
