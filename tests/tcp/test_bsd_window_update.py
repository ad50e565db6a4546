"""window_advertisement="free_space" (BSD's policy, used by the FreeBSD conformance profile):
when a read frees space, a window update of its own goes out only if it is worth a segment."""

from __future__ import annotations

import dataclasses

from tcp_script import *  # noqa: F403

BSD = dataclasses.replace(CONFIG, window_advertisement="free_space")  # 16 KiB buffer, MSS 1460


def test_a_read_sends_an_update_once_the_window_can_grow_by_a_quarter_of_the_buffer():
    script = established(BSD)
    connection = script.connection
    for n in range(4):
        script.receive(incoming(remote(1 + 1460 * n), local(1), payload=bytes(1460)))
    # RFC 9293 3.8.6.3: every second full segment is acknowledged; the window is the free space.
    script.expect(outgoing(local(1), remote(1 + 4 * 1460), window=BUFFER - 4 * 1460))
    # Two segments' worth freed is not a quarter of the buffer (4096): no update of its own.
    assert len(connection.recv(2920, script.now)) == 2920
    script.expect_nothing()
    # Twice that is: the update advertises the whole buffer again.
    assert len(connection.recv(2920, script.now)) == 2920
    script.expect(outgoing(local(1), remote(1 + 4 * 1460), window=BUFFER))
    script.expect_nothing()


def test_a_read_that_frees_less_than_two_segments_sends_nothing():
    script = established(BSD)
    connection = script.connection
    script.receive(incoming(remote(1), local(1), payload=bytes(1000), flags=ACK | PSH))
    script.advance_to_next_timer()  # the delayed ACK
    script.expect(outgoing(local(1), remote(1001), window=BUFFER - 1000))
    assert len(connection.recv(1000, script.now)) == 1000
    script.expect_nothing()  # 1000 bytes < 2 * MSS: it rides on the next segment we send
