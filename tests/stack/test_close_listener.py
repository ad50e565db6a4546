"""CLOSE of a listening socket at the host (Stack.close_listener, RFC 9293 3.10.4).

The port stops taking connections, and the connections the listener made that nobody accepted
are aborted: a reset goes to each peer and the host forgets them.
"""

from __future__ import annotations

from ustack.stack import Stack
from ustack.tcp import State, TcpConfig
from ustack.tcp.isn import IsnGenerator
from ustack.wire import TcpSegment, build_tcp_packet, parse_packet
from ustack.wire.ipv4 import address_value
from ustack.wire.tcp import ACK, RST, SYN

OURS = address_value("10.77.0.2")
PEER = address_value("10.77.0.1")
OUR_ISN = 5000


def server() -> Stack:
    return Stack(OURS, TcpConfig(), isn_generator=IsnGenerator(fixed_isn=OUR_ISN), port_seed=1)


def arrive(stack: Stack, segment: TcpSegment, now: float) -> list[TcpSegment]:
    stack.receive(build_tcp_packet(PEER, OURS, segment), now)
    return [parse_packet(packet).tcp for packet in stack.transmit(now)]


def test_closing_a_listener_resets_the_connections_nobody_accepted():
    stack = server()
    listener = stack.listen(80)
    # Peer port 40001 completes its handshake but is never accepted; 40002 is half-open.
    arrive(stack, TcpSegment(40001, 80, 100, 0, SYN, 65535), 0.0)
    arrive(stack, TcpSegment(40001, 80, 101, OUR_ISN + 1, ACK, 65535), 0.0)
    arrive(stack, TcpSegment(40002, 80, 700, 0, SYN, 65535), 0.0)
    assert stack.state_counts() == {"ESTABLISHED": 1, "SYN-RECEIVED": 1}

    stack.close_listener(listener, 0.1)
    resets = [parse_packet(packet).tcp for packet in stack.transmit(0.1)]
    assert sorted((reset.dst_port, reset.flags & RST != 0, reset.seq) for reset in resets) == [
        (40001, True, OUR_ISN + 1),
        (40002, True, OUR_ISN + 1),
    ]
    assert listener.state is State.CLOSED
    assert stack.connections == {} and stack.next_deadline() is None
    # The port takes no new connection: a SYN meets the reset of RFC 9293 3.10.7.1.
    [reply] = arrive(stack, TcpSegment(40003, 80, 900, 0, SYN, 65535), 0.2)
    assert reply.flags == RST | ACK and reply.ack == 901
