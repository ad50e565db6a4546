"""The timer heap keeps no finished connection alive and stays about as large as the number of
armed connections (issue 12: stale entries pinned ~60,000 finished connections for 59 s)."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

from ustack.timer_heap import HEAP_SLACK
from ustack.tcp import Connection, TcpConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from bench_lifecycles import exchange, make_pair, one_lifecycle  # noqa: E402


def run_lifecycles(count: int, config: TcpConfig):
    client, server, listener = make_pair(config)
    for index in range(count):
        now = index * 0.001
        for stack in (client, server):
            if (stack.next_deadline() or now + 1) <= now:
                stack.on_timer(now)
            stack.events()
            stack.drain_active()
        exchange(client, server, now)
        one_lifecycle(client, server, listener, now)
    return client, server


def test_a_finished_connection_is_not_kept_alive_by_a_stale_timer_entry():
    # The server closes first: FIN-WAIT-2 arms a 60 s timer, then TIME-WAIT (2 * 0.05 s)
    # replaces it, and the connection finishes long before the stale 60 s entry surfaces.
    client, server = run_lifecycles(600, TcpConfig(msl=0.05))
    for stack in (client, server):  # what the runtime does at the end of a round
        stack.transmit(0.6)
        stack.events()
        stack.drain_active()
    gc.collect()
    live = set(map(id, server.connections.values()))
    held = [item for item in gc.get_objects() if isinstance(item, Connection) and id(item) not in live]
    client_live = set(map(id, client.connections.values()))
    held = [item for item in held if id(item) not in client_live]
    assert held == []
    assert all(type(entry[2]) is tuple for entry in server.timer_heap.heap)  # 4-tuples, no Connection


def test_stale_entries_never_outnumber_half_the_live_ones_by_more_than_the_slack():
    client, server = run_lifecycles(1500, TcpConfig(msl=0.05, keepalive=True))
    for stack in (client, server):
        live = len(stack.timer_heap.entries)
        assert len(stack.timer_heap.heap) <= live + live // 2 + HEAP_SLACK + 1


def test_timers_still_fire_after_a_rebuild():
    # Every server connection reaches TIME-WAIT and is gone 2 * msl later: only timers do that.
    client, server = run_lifecycles(300, TcpConfig(msl=0.05))
    now = 300 * 0.001 + 1.0
    for stack in (client, server):
        stack.on_timer(now)
        exchange(client, server, now)
    assert len(server.connections) == 0 and len(client.connections) == 0
