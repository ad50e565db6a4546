"""The host's choice of a local port for an active open (stack.py `_ephemeral_port`).

A port some listener holds is never handed to an active open, whether the listener is bound to
the wildcard address or to the host's own address: the connection would share its local
(address, port) with the listener, and a SYN for the listener's port could then be taken for
the connection's, or the other way round (Linux's connect() skips a bound port as well).
"""

from __future__ import annotations

import pytest

from ustack.stack import Stack
from ustack.tcp import TcpConfig
from ustack.tcp.isn import IsnGenerator
from ustack.wire.ipv4 import address_value

OURS = address_value("10.77.0.2")
PEER = address_value("10.77.0.1")
PORT_SEED = 7


def make_stack() -> Stack:
    return Stack(OURS, TcpConfig(), isn_generator=IsnGenerator(fixed_isn=1000), port_seed=PORT_SEED)


def next_ephemeral_port() -> int:
    """The port a stack with PORT_SEED hands to its first active open (a twin stack tells)."""
    return make_stack().connect(PEER, 80, 0.0).local_port


@pytest.mark.parametrize("bound_to", ["wildcard", "own address"])
def test_a_port_held_by_a_listener_is_not_handed_to_an_active_open(bound_to):
    port = next_ephemeral_port()
    stack = make_stack()
    stack.listen(port, address=0 if bound_to == "wildcard" else OURS)
    connection = stack.connect(PEER, 80, 0.0)
    assert connection.local_port != port, f"port seed {PORT_SEED}: the listener's port {port} was reused"


def test_later_active_opens_skip_the_listened_port_too():
    port = next_ephemeral_port()
    stack = make_stack()
    stack.listen(port, address=OURS)
    first = stack.connect(PEER, 80, 0.0)
    second = stack.connect(PEER, 80, 0.0)
    assert port not in (first.local_port, second.local_port)
    assert len({first.local_port, second.local_port}) == 2
