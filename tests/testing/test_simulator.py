"""The simulator's two hosts are real ones (ustack.stack.Stack): what they do past the core,
demultiplexing, the reset for a segment that matches nothing, forgetting a connection after
TIME-WAIT, happens in a simulation as on a TUN device."""

from __future__ import annotations

from ustack.tcp import State, TcpConfig
from ustack.testing.simulator import CLIENT_ADDRESS, BulkTransfer, Simulator
from ustack.wire import TcpSegment, build_tcp_packet, parse_packet
from ustack.wire.tcp import ACK, RST


def test_every_packet_on_the_link_reaches_a_host_and_a_finished_connection_is_forgotten():
    sim = Simulator(TcpConfig(msl=1.0), TcpConfig(msl=1.0), seed=1)
    sim.client_app = BulkTransfer(b"request")
    sim.server_app = BulkTransfer(b"response" * 1000)
    assert sim.run(until=lambda s: s.client.state is State.CLOSED and s.server_closed)
    assert sim.server_stack.counters["packets_in"] == sim.to_server.sent
    assert sim.client_stack.counters["packets_in"] == sim.to_client.sent
    assert sim.client_stack.connections == {} and sim.server_stack.connections == {}
    assert sim.next_event_time() is None  # no timer left armed on either host


def test_a_late_segment_for_a_forgotten_connection_is_reset_by_the_server_host():
    sim = Simulator(TcpConfig(msl=1.0), TcpConfig(msl=1.0), seed=2)
    sim.client_app = BulkTransfer(b"ping")
    sim.server_app = BulkTransfer(b"pong")
    assert sim.run(until=lambda s: s.client.state is State.CLOSED and s.server_closed)
    server = sim.server
    late = TcpSegment(sim.client.local_port, server.local_port, 12345, 777, ACK, 1000)
    sim.server_stack.receive(build_tcp_packet(CLIENT_ADDRESS, server.local_address, late), sim.now)
    [reply] = [parse_packet(packet).tcp for packet in sim.server_stack.transmit(sim.now)]
    # No connection has the 4-tuple any more; the listener on the port answers an ACK with
    # <SEQ=SEG.ACK><CTL=RST> (RFC 9293 3.10.7.2).
    assert (reply.flags, reply.seq, reply.dst_port) == (RST, 777, sim.client.local_port)
    assert sim.listener.drops["ack_in_listen"] == 1
