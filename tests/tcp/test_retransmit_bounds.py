"""A retransmission resends what was sent, never more (RFC 5681 3.2, RFC 6298 5.4).

Found by a seeded stress of two hosts on virtual time (echo at 10 % loss, an 8 KiB send buffer):
the receiver had taken a segment only in part (trimmed to its window), so SND.UNA sat 137 bytes
before SND.MAX. Fast retransmit then sent a whole MSS from SND.UNA, 1,311 bytes of it never sent
before, without moving SND.MAX. The peer acknowledged them; to us that ACK acknowledged data not
yet sent (RFC 9293 3.10.7.4), dropped each time, and the connection retransmitted the same range
until it timed out.
"""

from __future__ import annotations

from tcp_script import *  # noqa: F403
from ustack.tcp import State
from ustack.tcp.seq import seq_add

DATA = bytes(range(256)) * 23  # 5888 bytes: four full segments, then a tail Nagle holds


def partly_acknowledged():
    """Four full segments sent; the peer took the last one only in part: SND.UNA is 40 bytes
    before SND.MAX, and 48 bytes wait unsent."""
    script = established()
    connection = script.connection
    connection.send(DATA, 0.0)
    assert len(connection.transmit(0.0)) == 4
    assert connection.snd_max == local(1 + 5840)
    script.receive(incoming(remote(1), local(1 + 5800)))
    script.expect_nothing()
    return script


def test_fast_retransmit_resends_only_what_was_sent():
    script = partly_acknowledged()
    connection = script.connection
    for _ in range(3):  # three duplicate ACKs (RFC 5681 2): the 40 bytes are lost
        script.receive(incoming(remote(1), local(1 + 5800)))
    script.expect(outgoing(local(1 + 5800), remote(1), payload=DATA[5800:5840]))
    assert connection.snd_max == local(1 + 5840)
    # The peer acknowledges everything it got: an ACK of what we sent, taken.
    script.receive(incoming(remote(1), local(1 + 5840)))
    assert connection.snd.una == local(1 + 5840)
    assert "ack_of_unsent_data" not in connection.drops


def test_the_peer_acknowledging_all_it_received_is_always_taken():
    """The peer acknowledges every byte that reached it, segment after segment, until all is
    delivered: each of its ACKs must be taken, never dropped as acknowledging unsent data."""
    script = partly_acknowledged()
    connection = script.connection
    for _ in range(3):
        script.receive(incoming(remote(1), local(1 + 5800)))
    received_up_to = local(1 + 5800)
    for _ in range(4):
        for segment in connection.transmit(script.now):
            if segment.payload:
                received_up_to = seq_add(segment.seq, len(segment.payload))
        script.receive(incoming(remote(1), received_up_to))
        assert connection.snd.una == received_up_to
        assert "ack_of_unsent_data" not in connection.drops
        if received_up_to == local(1 + len(DATA)):
            break
    assert connection.snd.una == connection.snd_max == local(1 + len(DATA))
    assert connection.state is State.ESTABLISHED
