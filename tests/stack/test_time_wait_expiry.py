"""A SYN that arrives after TIME-WAIT's timer closed the connection, before the transmit() that
forgets it, reaches the listener (seen as a refused connection in the ab interop test)."""

from __future__ import annotations

import sys
from pathlib import Path

from ustack.tcp import State, TcpConfig
from ustack.wire import parse_packet
from ustack.wire.tcp import ACK, RST, SYN

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from bench_lifecycles import PORT, SERVER, make_pair, one_lifecycle  # noqa: E402


def test_a_syn_right_after_time_wait_ends_is_answered_with_a_syn_ack():
    client, server, listener = make_pair(TcpConfig(msl=0.05))
    one_lifecycle(client, server, listener, 0.0)  # the server closes first: TIME-WAIT on its side
    ((key, old),) = server.connections.items()
    assert old.state is State.TIME_WAIT
    server.on_timer(0.2)  # 2 * MSL is over: CLOSED, still in the table until transmit()
    assert old.state is State.CLOSED
    client.connect(SERVER, PORT, 0.2, local_port=key[3])  # the same 4-tuple again
    (syn,) = client.transmit(0.2)
    server.receive(syn, 0.2)
    replies = [parse_packet(packet).tcp for packet in server.transmit(0.2)]
    assert [reply.flags & (SYN | ACK | RST) for reply in replies] == [SYN | ACK]
    assert server.connections[key] is not old and server.connections[key].state is State.SYN_RECEIVED
