"""What a connection's life costs the host, kept cheap without changing what anyone sees (issue 12):
events made only for a reader, timer-heap entries that stay put when a deadline moves later, one
offload config shared by a listener's children."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from ustack.stack import Stack
from ustack.tcp import State, StateChanged, TcpConfig
from ustack.tcp.seq import seq_diff
from ustack.tcp.timer_set import RETRANSMIT_TIMER

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from bench_lifecycles import (  # noqa: E402
    CLIENT, PORT, REQUEST, RESPONSE, SERVER, count_calls, exchange, make_pair, request_and_answer,
)


def state_changes(stack: Stack) -> list[tuple[State, State, str]]:
    return [(item.event.old, item.event.new, item.event.cause) for item in stack.events()
            if isinstance(item.event, StateChanged)]


# --- events only for a reader --------------------------------------------------------------------


def test_with_events_off_no_event_is_made_and_the_life_is_the_same():
    quiet_client, quiet_server, quiet_listener = make_pair(TcpConfig(msl=0.05), events=False)
    loud_client, loud_server, loud_listener = make_pair(TcpConfig(msl=0.05), events=True)
    ends = []
    for client, server, listener in ((quiet_client, quiet_server, quiet_listener),
                                     (loud_client, loud_server, loud_listener)):
        connection, accepted = request_and_answer(client, server, listener, 0.0, server_closes=True)
        connection.close(0.0)
        client.poke(connection)
        exchange(client, server, 0.0)
        ends.append(accepted)  # the server's Connection, held: its TIME-WAIT record reports to it
    assert quiet_client.events() == [] and quiet_server.events() == []
    quiet, loud = ends
    assert [type(end).__name__ for end in (*quiet_server.connections.values(), *loud_server.connections.values())] == [
        "TimeWait", "TimeWait"]
    assert quiet.events() == [] and quiet.state is loud.state is State.TIME_WAIT
    sent_and_received = [(seq_diff(end.snd.max, end.snd.iss), seq_diff(end.rcv.nxt, end.rcv.irs)) for end in (quiet, loud)]
    assert sent_and_received[0] == sent_and_received[1] == (len(RESPONSE) + 2, len(REQUEST) + 2)
    changes = state_changes(loud_server)
    assert [(old.value, new.value) for old, new, _ in changes] == [
        ("CLOSED", "LISTEN"), ("LISTEN", "SYN-RECEIVED"), ("SYN-RECEIVED", "ESTABLISHED"),
        ("ESTABLISHED", "FIN-WAIT-1"), ("FIN-WAIT-1", "FIN-WAIT-2"), ("FIN-WAIT-2", "TIME-WAIT")]
    # A cause given as the segment is put into words as tcpdump -S prints it.
    assert changes[1][2].startswith("Flags [S], seq ") and changes[2][2].startswith("Flags [.], seq ")
    assert changes[3][2] == "CLOSE"


def test_with_events_off_no_state_change_is_described_from_the_first_one(monkeypatch):
    # The connections are made with events off (connect, and a listener's child), not made with
    # them on and switched off afterwards: a state change before the switch was put into words
    # (the SYN, tcpdump-style) and dropped unread.
    from ustack.tcp import state as state_module
    described = []
    monkeypatch.setattr(state_module, "segment_summary", lambda segment: described.append(segment) or "?")
    client, server, listener = make_pair(TcpConfig(msl=0.05), events=False)
    made = []
    real_init = state_module.StateChanged.__init__
    monkeypatch.setattr(state_module.StateChanged, "__init__", lambda self, *args: made.append(args) or real_init(self, *args))
    connection, accepted = request_and_answer(client, server, listener, 0.0, server_closes=True)
    assert accepted.state is State.FIN_WAIT_2 and connection.state is State.CLOSE_WAIT
    assert described == [] and made == []
    loud_client, loud_server, loud_listener = make_pair(TcpConfig(msl=0.05), events=True)
    request_and_answer(loud_client, loud_server, loud_listener, 0.0, server_closes=True)
    assert (len(made), len(described)) == (9, 5)  # the same life observed (the listen() included)


def test_switching_events_on_reaches_the_connections_already_open():
    client, server, listener = make_pair(TcpConfig(msl=0.05), events=False)
    connection = client.connect(SERVER, PORT, 0.0)
    exchange(client, server, 0.0)
    accepted = listener.accept()
    assert connection.state is State.ESTABLISHED and client.events() == []
    client.events_wanted = server.events_wanted = True
    accepted.close(0.0)
    server.poke(accepted)
    exchange(client, server, 0.0)
    assert [(old.value, new.value) for old, new, _ in state_changes(client)] == [("ESTABLISHED", "CLOSE-WAIT")]
    assert [(old.value, new.value) for old, new, _ in state_changes(server)] == [
        ("ESTABLISHED", "FIN-WAIT-1"), ("FIN-WAIT-1", "FIN-WAIT-2")]


# --- the timer heap: a later deadline pushes nothing, and every answer stays exact ----------------


def test_a_deadline_moved_later_pushes_no_entry_and_is_still_reported_exactly():
    client = Stack(CLIENT, TcpConfig(connect_timeout=None))
    connection = client.connect(SERVER, PORT, 0.0)
    client.transmit(0.0)  # the SYN: the retransmission timer, 1 s (RFC 6298 2.1)
    assert client.next_deadline() == 1.0 and len(client.timer_heap.heap) == 1
    connection.timers.arm(RETRANSMIT_TIMER, 5.0)  # moved later, as an ACK restarting it would
    client.poke(connection)
    client.transmit(0.0)
    assert len(client.timer_heap.heap) == 1  # nothing pushed: the entry at 1 s is a lower bound
    assert client.next_deadline() == 5.0  # the entry came up, was asked, and was filed at 5 s
    client.on_timer(4.9)
    assert connection.snd.retransmit_count == 0  # not due: nothing handed out before 5 s
    client.on_timer(5.0)
    assert connection.snd.retransmit_count == 1


def test_a_lower_bound_entry_comes_up_in_on_timer_and_is_filed_again():
    client = Stack(CLIENT, TcpConfig(connect_timeout=None))
    connection = client.connect(SERVER, PORT, 0.0)
    client.transmit(0.0)
    connection.timers.arm(RETRANSMIT_TIMER, 3.0)
    client.poke(connection)
    client.transmit(0.0)
    client.on_timer(2.0)  # the 1 s entry surfaces first here, not in next_deadline
    assert connection.snd.retransmit_count == 0 and client.next_deadline() == 3.0
    assert len(client.timer_heap.heap) == 1


# --- segmentation offload: one config for a listener's children ---------------------------------


def test_the_children_of_one_listener_share_one_offload_config():
    client = Stack(CLIENT, mtu=1500)
    server = Stack(SERVER, mtu=1500, segmentation_offload=True)
    listener = server.listen(PORT)
    children = []
    for index in range(3):
        client.connect(SERVER, PORT, index)
        exchange(client, server, index)
        children.append(listener.accept())
    for child in children:
        child.send(b"x", 3.0)
        server.poke(child)
    exchange(client, server, 3.0)
    configs = {id(child.config) for child in children}
    assert len(configs) == 1
    assert children[0].config.offload_segments == server.offload_segments == 44
    assert children[0].config is not server.config and server.config.offload_segments == 1


# --- bench_lifecycles.py --calls: a count that does not move with the machine's load ---------------


def test_calls_per_lifecycle_are_counted_over_the_lifecycles_asked_for(capsys):
    client, server, listener = make_pair(TcpConfig(msl=0.05))
    count_calls(client, server, listener, 0, 20, 1000.0)
    lines = capsys.readouterr().out.splitlines()
    figure = int(re.search(r"them\): ([\d,]+) \(over 20 more", lines[0]).group(1).replace(",", ""))
    assert 100 < figure < 100_000 and len(lines) == 13
    assert not server.connections or all(end.state is State.TIME_WAIT for end in server.connections.values())


def test_a_negative_calls_count_gets_one_line_and_exit_2():
    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_lifecycles.py"
    result = subprocess.run([sys.executable, str(script), "--calls", "-1"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("--msl and --calls not negative")
