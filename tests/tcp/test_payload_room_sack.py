"""A data segment that carries SACK blocks carries that much less data (output._payload_room):
RFC 2018 3's 2 + 8 bytes a block, led by two NOPs, come out of the option space, so the segment
still fits the MTU. Each data segment sent while we hold data out of order is checked: its
payload is the send MSS less 4 + 8 bytes for each block it carries, and without blocks (the hole
filled) the whole send MSS again."""

from __future__ import annotations

import dataclasses

import pytest

from tcp_script import CONFIG, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, incoming, local, remote
from ustack.tcp import Connection
from ustack.wire.tcp import ACK, SYN, TcpOptions


@pytest.mark.parametrize("timestamps", (False, True))
@pytest.mark.parametrize("holes", (1, 2, 3))
def test_data_segments_leave_room_for_their_sack_blocks(timestamps, holes):
    config = dataclasses.replace(CONFIG, sack=True, timestamps=timestamps, nagle=False)
    connection = Connection.open_active(config, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
    connection.transmit(0.0)
    options = TcpOptions(mss=1460, sack_permitted=True, timestamps=(1000, 0) if timestamps else None)
    connection.receive(incoming(remote(0), local(1), SYN | ACK, window=65535, options=options), 0.001)
    connection.transmit(0.001)
    peer_options = TcpOptions(timestamps=(1001, 0)) if timestamps else TcpOptions()
    for n in range(holes):  # 100 bytes each, with a 100-byte hole in front of each
        connection.receive(incoming(remote(1 + 200 * n + 100), local(1), payload=b"x" * 100, window=65535,
                                    options=peer_options), 0.002)
    connection.transmit(0.002)  # the duplicate ACKs with their blocks
    mss = connection.send_mss
    connection.send(b"d" * 4 * mss, 0.003)
    sent = [segment for segment in connection.transmit(0.003) if segment.payload]
    assert len(sent) == 5  # four segments' worth, less the room of the blocks: a short fifth
    for segment in sent:
        blocks = len(segment.options.sack_blocks)
        assert blocks == min(holes, 3 if timestamps else 4)
        room = mss - (4 + 8 * blocks)
        assert len(segment.payload) == room or segment is sent[-1] and len(segment.payload) < room
    # The holes filled: no blocks, whole segments again.
    for n in range(holes):
        connection.receive(incoming(remote(1 + 200 * n), local(1), payload=b"y" * 100, window=65535,
                                    options=peer_options), 0.004)
    connection.receive(incoming(remote(1 + 200 * holes), local(1), window=65535, options=peer_options), 0.004)
    connection.send(b"e" * 4 * mss, 0.005)
    later = [segment for segment in connection.transmit(0.005) if segment.payload]
    assert later and all(not segment.options.sack_blocks and len(segment.payload) == mss for segment in later[:-1])
