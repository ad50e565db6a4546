"""TIME-WAIT on the compact record (ustack/tcp/time_wait.py), between two stacks on virtual time.

Once a connection enters TIME-WAIT the stack keeps only its TimeWait record: every TIME-WAIT
behaviour must hold there (a repeated FIN re-acknowledged and restarting 2*MSL, RFC 9293
3.10.7.4; RST ignored with RFC 1337 on, or ending it; a new SYN reusing the 4-tuple, RFC 6191;
ABORT; `ss`, counters and events), and the memory of a TIME-WAIT endpoint must fall."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

from ustack.commands.ss import describe
from ustack.control import to_jsonable
from ustack.stack import Stack
from ustack.tcp import State, StateChanged, TcpConfig
from ustack.tcp.time_wait import TimeWait
from ustack.wire import build_tcp_packet, parse_packet
from ustack.wire.tcp import ACK, FIN, RST, TcpOptions, TcpSegment

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from bench_lifecycles import CLIENT, PORT, SERVER, bytes_per_endpoint, exchange, request_and_answer  # noqa: E402

MSL = 5.0


def pair(**settings) -> tuple[Stack, Stack, object]:
    config = TcpConfig(msl=MSL, **settings)
    client, server = Stack(CLIENT, config, port_seed=1), Stack(SERVER, config, port_seed=2)
    return client, server, server.listen(PORT)


def server_in_time_wait(client: Stack, server: Stack, listener, now: float = 0.0, drop_last_ack: bool = False):
    """An HTTP/1.0-like exchange: the server closes first and ends in TIME-WAIT. Returns the
    client's connection, the server's (both held by the test) and the record in the table."""
    connection, accepted = request_and_answer(client, server, listener, now, server_closes=True)
    connection.close(now)
    client.poke(connection)
    for packet in client.transmit(now):  # the client's FIN
        server.receive(packet, now)
    last_ack = server.transmit(now)
    assert [parse_packet(packet).tcp.flags for packet in last_ack] == [ACK]
    if not drop_last_ack:
        for packet in last_ack:
            client.receive(packet, now)
        assert client.transmit(now) == []  # and the client forgets its CLOSED connection
    for stack in (client, server):  # what the runtime does after each round
        stack.events()
        stack.drain_active()
    (record,) = server.connections.values()
    return connection, accepted, record


def tcp_of(packets: list[bytes]) -> list[TcpSegment]:
    return [parse_packet(packet).tcp for packet in packets]


def test_the_table_keeps_only_the_record_and_the_connection_goes_when_nobody_holds_it():
    client, server, listener = pair()
    connection, accepted, record = server_in_time_wait(client, server, listener)
    assert type(record) is TimeWait and record.state is accepted.state is State.TIME_WAIT
    assert record.owner is accepted and accepted.time_wait is record
    assert client.connections == {} and connection.state is State.CLOSED
    del accepted
    gc.collect()
    assert record.owner is None  # the full Connection was freed: only the record is left
    assert server.next_deadline() == record.deadline == 2 * MSL
    server.on_timer(2 * MSL - 0.001)
    assert server.transmit(2 * MSL - 0.001) == [] and record.state is State.TIME_WAIT
    server.on_timer(2 * MSL)
    assert server.transmit(2 * MSL) == [] and server.connections == {} and server.next_deadline() is None
    assert listener.open_connections == 0


def test_a_retransmitted_fin_is_acknowledged_again_and_restarts_two_msl():
    client, server, listener = pair()
    connection, accepted, record = server_in_time_wait(client, server, listener, drop_last_ack=True)
    assert connection.state is State.LAST_ACK and record.deadline == 2 * MSL
    # The client's retransmission timer resends its FIN; the record answers it.
    now = client.next_deadline()
    client.on_timer(now)
    (fin,) = tcp_of(again := client.transmit(now))
    assert fin.flags & FIN
    for packet in again:
        server.receive(packet, now)
    (ack,) = tcp_of(answer := server.transmit(now))
    assert ack.flags == ACK and ack.seq == record.snd_nxt and ack.ack == record.rcv_nxt == (fin.seq + 1) % 2**32
    # The repeated FIN is not acceptable (it lies before RCV.NXT): TS.Recent stays (RFC 7323 4.3).
    assert ack.options.timestamps == (int(now * 1000), record.ts_recent)
    assert record.deadline == now + 2 * MSL > 2 * MSL  # restarted (RFC 9293 3.10.7.4)
    assert accepted.snapshot().timers == {"time_wait": now + 2 * MSL}  # the held Connection sees it too
    for packet in answer:
        client.receive(packet, now)
    assert connection.state is State.CLOSED
    # `ustack ss` shows the record as Linux's ss shows a TIME-WAIT socket, with its timer (the
    # held Connection's numbers while it is held, so that the browser view charts them).
    assert record.snapshot().cwnd == accepted.snapshot().cwnd is not None
    del accepted
    gc.collect()
    assert record.snapshot().cwnd is None
    row = describe(to_jsonable(record.snapshot()), {"now": now + 1.0})
    assert row["state"] == "TIME-WAIT" and row["timers"] == f"timer:(time_wait,{2 * MSL - 1.0:.3f}sec)"
    assert row["cells"][3:5] == (f"10.77.0.2:{PORT}", f"10.77.0.1:{connection.local_port}")


def test_a_forged_fin_beside_the_real_one_does_not_hold_time_wait():
    client, server, listener = pair()
    connection, accepted, record = server_in_time_wait(client, server, listener)
    forged = TcpSegment(connection.local_port, PORT, (record.rcv_nxt - 100) % 2**32, record.snd_nxt, FIN | ACK, 1000)
    server.receive(build_tcp_packet(CLIENT, SERVER, forged), 1.0)
    assert record.deadline == 2 * MSL and record.drops["unacceptable_sequence"] == 1


def test_a_reset_is_ignored_with_rfc1337_and_ends_time_wait_without_it():
    for rfc1337 in (True, False):
        client, server, listener = pair(rfc1337=rfc1337)
        connection, accepted, record = server_in_time_wait(client, server, listener)
        reset = TcpSegment(connection.local_port, PORT, record.rcv_nxt, 0, RST, 0)
        server.receive(build_tcp_packet(CLIENT, SERVER, reset), 1.0)
        assert server.transmit(1.0) == []
        if rfc1337:  # RFC 1337 section 4, fix F1
            assert record.state is State.TIME_WAIT and list(server.connections.values()) == [record]
            assert record.drops["rst_in_time_wait_rfc1337"] == 1
        else:
            assert record.state is accepted.state is State.CLOSED and server.connections == {}


def test_counters_of_a_record_outlive_it():
    client, server, listener = pair()
    connection, accepted, record = server_in_time_wait(client, server, listener)
    del accepted
    options = TcpOptions(timestamps=(1000, 0))
    window = TcpConfig().receive_buffer_size
    for offset in (2 * window, 3 * window):  # out of the window: counted, answered with one rate-limited ACK
        stray = TcpSegment(connection.local_port, PORT, (record.rcv_nxt + offset) % 2**32, record.snd_nxt, ACK, 1000,
                           options=options)
        server.receive(build_tcp_packet(CLIENT, SERVER, stray), 1.0)
    assert len(server.transmit(1.0)) == 1 and record.drops["unacceptable_sequence"] == 2
    server.on_timer(2 * MSL)
    server.transmit(2 * MSL)
    assert server.connections == {}
    assert server.ended_connection_counters["drops"]["unacceptable_sequence"] == 2


def test_a_new_syn_with_a_newer_timestamp_reuses_the_four_tuple():
    client, server, listener = pair()
    connection, accepted, record = server_in_time_wait(client, server, listener)
    port = connection.local_port
    again = client.connect(SERVER, PORT, 1.0, local_port=port)  # RFC 6191: a later TSval
    exchange(client, server, 1.0)
    assert again.state is State.ESTABLISHED and record.state is accepted.state is State.CLOSED
    (new,) = server.connections.values()
    assert new is listener.accept() and new.state is State.ESTABLISHED and new.remote_port == port
    assert listener.open_connections == 1  # the old one was counted off when it ended


def test_abort_on_a_held_connection_in_time_wait_ends_its_record():
    client, server, listener = pair()
    connection, accepted, record = server_in_time_wait(client, server, listener)
    accepted.abort(1.0)
    server.poke(accepted)
    assert server.transmit(1.0) == []  # no reset from TIME-WAIT (RFC 9293 3.10.5)
    assert server.connections == {} and accepted.state is State.CLOSED and server.next_deadline() is None


def test_events_name_the_held_connection_and_the_record_once_it_is_gone():
    for held in (True, False):
        client, server, listener = pair()
        connection, accepted, record = server_in_time_wait(client, server, listener)
        server.events()
        if not held:
            del accepted
            gc.collect()
        server.on_timer(2 * MSL)
        server.transmit(2 * MSL)
        changes = [(item.connection, item.event) for item in server.events() if isinstance(item.event, StateChanged)]
        assert [(event.old, event.new, event.cause) for _, event in changes] == [
            (State.TIME_WAIT, State.CLOSED, "TIME-WAIT timer (2*MSL)")]
        assert changes[0][0] is (accepted if held else record)
        if held:
            assert accepted.state is State.CLOSED


def test_events_switched_off_make_none_on_the_record():
    client, server, listener = pair()
    connection, accepted, record = server_in_time_wait(client, server, listener)
    del accepted
    gc.collect()
    server.events()
    server.events_wanted = False
    server.on_timer(2 * MSL)
    server.transmit(2 * MSL)
    assert server.events() == [] and server.connections == {}


def test_a_time_wait_endpoint_takes_far_less_memory_than_an_established_one():
    # Generous bounds (tracemalloc, the connection table and timer heap entry included): the
    # record measured ~1,000 bytes where the whole Connection in TIME-WAIT took ~2,570.
    per_endpoint = bytes_per_endpoint(TcpConfig(msl=0.5), count=300)
    assert per_endpoint["TIME-WAIT"] < 1500
    assert per_endpoint["TIME-WAIT"] < per_endpoint["ESTABLISHED"] / 2


def test_time_wait_on_a_stack_with_segmentation_offload_and_over_ipv6():
    # The host fits each connection's segments to the link's offload: not a record's bare ACKs.
    config = TcpConfig(msl=MSL)
    client = Stack(CLIENT, config, port_seed=1, address6="fd00::1", segmentation_offload=True)
    server = Stack(SERVER, config, port_seed=2, address6="fd00::2", segmentation_offload=True)
    listener = server.listen(PORT)
    for remote in (SERVER, server.address6):
        connection = client.connect(remote, PORT, 0.0)
        exchange(client, server, 0.0)
        accepted = listener.accept()
        accepted.close(0.0)
        server.poke(accepted)
        exchange(client, server, 0.0)
        connection.close(0.0)
        client.poke(connection)
        exchange(client, server, 0.0)
        assert accepted.state is State.TIME_WAIT and connection.state is State.CLOSED
    records = list(server.connections.values())
    assert [type(record) for record in records] == [TimeWait, TimeWait]
    assert type(records[1].local_address) is bytes and records[1] in server._flow_labels
    server.on_timer(2 * MSL)
    assert server.transmit(2 * MSL) == [] and server.connections == {} and server._flow_labels == {}
