"""D-SACK (RFC 2883): the ACK of a segment that repeats data we hold reports the repeated range
as its first SACK block; and a D-SACK from the peer is not news of data it holds."""

from __future__ import annotations

import dataclasses

from tcp_script import *  # noqa: F403
from ustack.tcp import Connection

SACK = dataclasses.replace(CONFIG, sack=True)  # SACK on, timestamps and window scaling off


def established_with_sack(config=SACK) -> Script:
    """Active open offering and getting SACK-permitted (RFC 2018 2)."""
    connection = Connection.open_active(config, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
    script = Script(connection)
    script.expect(outgoing(local(0), 0, SYN, options=TcpOptions(mss=1460, sack_permitted=True)))
    script.receive(incoming(remote(0), local(1), SYN | ACK, options=TcpOptions(mss=1460, sack_permitted=True)))
    script.expect(outgoing(local(1), remote(1)))
    assert connection.sack_permitted
    return script


def sack(*blocks) -> TcpOptions:
    return TcpOptions(sack_blocks=tuple(blocks))


def test_a_repeated_segment_is_reported_once_per_copy():
    # RFC 2883 4.1.1: our ACK was lost (here: still delayed) and the peer sent the segment again.
    script = established_with_sack()
    script.receive(incoming(remote(1), local(1), payload=b"a" * 100))
    script.expect_nothing()  # the ACK is delayed (RFC 9293 3.8.6.3)
    script.receive(incoming(remote(1), local(1), payload=b"a" * 100))
    duplicate = (remote(1), remote(101))
    script.expect(outgoing(local(1), remote(101), window=BUFFER - 100, options=sack(duplicate)))
    script.expect_nothing()
    # A third copy is a new duplicate arrival: reported again (RFC 2883 4).
    script.receive(incoming(remote(1), local(1), payload=b"a" * 100))
    script.expect(outgoing(local(1), remote(101), window=BUFFER - 100, options=sack(duplicate)))
    assert script.connection.readable == 100


def test_a_partly_old_segment_reports_the_old_part_and_is_acknowledged_at_once():
    script = established_with_sack()
    script.receive(incoming(remote(1), local(1), payload=b"a" * 100))
    script.expect_nothing()
    script.receive(incoming(remote(51), local(1), payload=b"a" * 50 + b"b" * 50))
    script.expect(outgoing(local(1), remote(151), window=BUFFER - 150, options=sack((remote(51), remote(101)))))
    assert script.connection.recv(1000, script.now) == b"a" * 100 + b"b" * 50


def test_a_duplicate_of_out_of_order_data_comes_first_then_the_block_that_holds_it():
    # RFC 2883 4, rule 4: the second block is the (larger) block of queued data it repeats.
    script = established_with_sack()
    script.receive(incoming(remote(201), local(1), payload=b"c" * 100))
    script.expect(outgoing(local(1), remote(1), options=sack((remote(201), remote(301)))))
    script.receive(incoming(remote(401), local(1), payload=b"e" * 100))
    script.expect(outgoing(local(1), remote(1), options=sack((remote(401), remote(501)), (remote(201), remote(301)))))
    script.receive(incoming(remote(251), local(1), payload=b"c" * 25))
    script.expect(
        outgoing(
            local(1), remote(1),
            options=sack((remote(251), remote(276)), (remote(201), remote(301)), (remote(401), remote(501))),
        )
    )
    # The next ACK has ordinary SACK blocks only: the duplicate was reported.
    script.receive(incoming(remote(601), local(1), payload=b"g" * 10))
    script.expect(
        outgoing(
            local(1), remote(1),
            options=sack((remote(601), remote(611)), (remote(201), remote(301)), (remote(401), remote(501))),
        )
    )


def test_filling_the_hole_with_a_segment_that_overlaps_held_data():
    script = established_with_sack()
    script.receive(incoming(remote(101), local(1), payload=b"b" * 100))
    script.expect(outgoing(local(1), remote(1), options=sack((remote(101), remote(201)))))
    # 1:151 fills the hole and repeats 101:151; the duplicate now lies below the ACK.
    script.receive(incoming(remote(1), local(1), payload=b"a" * 100 + b"b" * 50))
    script.expect(outgoing(local(1), remote(201), window=BUFFER - 200, options=sack((remote(101), remote(151)))))
    assert script.connection.recv(1000, script.now) == b"a" * 100 + b"b" * 100


def test_only_the_first_segment_sent_carries_the_dsack_block():
    script = established_with_sack()
    connection = script.connection
    script.receive(incoming(remote(1), local(1), payload=b"a" * 100))
    script.receive(incoming(remote(1), local(1), payload=b"a" * 100))
    connection.send(bytes(2920), script.now)
    # The first segment gives up 12 bytes of data to the option (nop, nop, sack with one block)
    # so that the packet still fits the MTU; the second one is full-sized again, and Nagle
    # (RFC 9293 3.7.4) holds the last 12 bytes while data is unacknowledged.
    script.expect(
        outgoing(local(1), remote(101), window=BUFFER - 100, options=sack((remote(1), remote(101))), payload=bytes(1448)),
        outgoing(local(1449), remote(101), window=BUFFER - 100, payload=bytes(1460)),
    )


def test_no_dsack_when_it_is_turned_off_or_sack_was_not_negotiated():
    script = established_with_sack(dataclasses.replace(SACK, dsack=False))
    script.receive(incoming(remote(1), local(1), payload=b"a" * 100))
    script.receive(incoming(remote(1), local(1), payload=b"a" * 100))
    script.expect(outgoing(local(1), remote(101), window=BUFFER - 100))
    script = established()  # CONFIG: SACK off
    script.receive(incoming(remote(1), local(1), payload=b"a" * 100))
    script.receive(incoming(remote(1), local(1), payload=b"a" * 100))
    script.expect(outgoing(local(1), remote(101), window=BUFFER - 100))


def test_dsack_blocks_from_the_peer_are_not_new_sack_information():
    # RFC 6675 2 counts an ACK whose window changed as a duplicate only if it reports newly
    # SACKed data; a D-SACK (RFC 2883) reports data received twice, so it must not count.
    script = established_with_sack()
    connection = script.connection
    connection.send(bytes(4 * 1460), script.now)
    assert len(connection.transmit(script.now)) == 4
    script.receive(incoming(remote(1), local(1461)))  # the first segment is acknowledged
    for n, window in enumerate((8000, 7900, 7800)):
        repeated = (local(1 + 100 * n), local(101 + 100 * n))  # below SEG.ACK: a D-SACK
        script.receive(incoming(remote(1), local(1461), window=window, options=sack(repeated)))
    assert connection.snd.duplicate_acks == 0 and connection.snd.peer_sack_blocks == ()
    script.expect_nothing()  # no fast retransmit
    # A D-SACK inside the second block (RFC 2883 4) is recognised too; the real block counts.
    held = (local(2921), local(4381))
    script.receive(incoming(remote(1), local(1461), window=7700, options=sack((local(3001), local(3101)), held)))
    assert connection.snd.peer_sack_blocks == (held,) and connection.snd.duplicate_acks == 1


def test_with_timestamps_the_dsack_block_is_one_of_three():
    # The timestamp option leaves room for three SACK blocks (RFC 2018 3): the D-SACK block,
    # the block it repeats, and the most recent other one.
    from test_options import SHIFT, established_with_timestamps

    script = established_with_timestamps()
    window = (1 << 20) >> SHIFT
    ts = (5001, 10)
    held = [(remote(101 + 200 * n), remote(201 + 200 * n)) for n in range(3)]
    for left, _ in held:
        script.receive(incoming(left, local(1), payload=bytes(100), options=TcpOptions(timestamps=ts)))
        script.connection.transmit(script.now)
    script.receive(incoming(remote(111), local(1), payload=bytes(10), options=TcpOptions(timestamps=ts)))
    blocks = ((remote(111), remote(121)), held[0], held[2])
    script.expect(outgoing(local(1), remote(1), window=window, options=TcpOptions(sack_blocks=blocks, timestamps=(10, 5000))))


def test_in_order_data_after_a_duplicate_replaces_its_d_sack_as_the_full_processing_does():
    # RFC 2883 4: a D-SACK block reports the most recent packet only. Two segments arrive before
    # we transmit (one batch from the link): a copy of old data, then new in-order data. The
    # ACK is for the newest packet, which repeated nothing: no D-SACK block. The fast path used
    # to keep the older block while the full processing (_note_duplicate) dropped it.
    script = established_with_sack()
    script.receive(incoming(remote(1), local(1), payload=b"a" * 100))
    script.expect_nothing()  # delayed
    script.receive(incoming(remote(1), local(1), payload=b"a" * 100))  # a copy: D-SACK due
    script.receive(incoming(remote(101), local(1), payload=b"b" * 100))  # then in order
    script.expect(outgoing(local(1), remote(201), window=BUFFER - 200))
    script.expect_nothing()


def test_with_timestamps_a_repeated_in_order_segment_is_reported_with_no_hole_held():
    # The ACK's options are made once per transmit (output._acknowledgement_fields), which asks
    # for SACK blocks only when there may be some: a D-SACK block, with nothing held out of
    # order, is one (RFC 2883 4.1.1: our ACK was lost and the peer sent the segment again).
    from test_options import SHIFT, established_with_timestamps

    script = established_with_timestamps()
    ts = (5001, 10)
    script.receive(incoming(remote(1), local(1), payload=bytes(100), options=TcpOptions(timestamps=ts)))
    script.connection.transmit(script.now)
    script.receive(incoming(remote(1), local(1), payload=bytes(100), options=TcpOptions(timestamps=ts)))
    duplicate = (remote(1), remote(101))
    script.expect(outgoing(local(1), remote(101), window=((1 << 20) - 100) >> SHIFT,
                           options=TcpOptions(sack_blocks=(duplicate,), timestamps=(10, 5001))))  # fmt: skip
