"""Several blocking calls waiting on one socket at once: each is woken by the change it waits for.

A socket is used from two threads as with kernel sockets: recv() in one while sendall() waits for
room in another, or two threads in accept() on one listening socket. Their coroutines wait in
the stack's loop on the same loop-side half (_Stream, _Listening); a single wake-up slot let the
second waiter take the first one's place, so the first slept through the data it waited for (a
recv() that timed out with the echo sitting in its buffer).

The loop-side halves are driven directly on an event loop, with a stand-in transport: the order
in which the calls start waiting is then fixed, and the tests are deterministic. The last test
runs the blocking facade from threads, with a payload large enough that sendall() waits.
"""

from __future__ import annotations

import asyncio
import random

from ustack.sock.streams import SEND_AHEAD, _Listening, _Stream

from test_sock import echo_from_threads, networks  # noqa: F401  (a fixture)


class StandInTransport:
    """What _Stream asks of its transport: write buffer accounting and reading on/off."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.pending = 0

    def set_write_buffer_limits(self, high: int) -> None:
        self.high = high

    def get_write_buffer_size(self) -> int:
        return self.pending

    def write(self, data: bytes) -> None:
        self.written += data
        self.pending += len(data)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def settle() -> None:
    """Let every ready callback and task step run (the waiting coroutines reach their await)."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_recv_and_a_paused_send_waiting_at_once_are_each_woken():
    async def scene():
        stream = _Stream()
        transport = StandInTransport()
        stream.connection_made(transport)
        receiving = asyncio.ensure_future(stream.recv(100))  # waits first: nothing has arrived
        await settle()
        stream.pause_writing()
        sending = asyncio.ensure_future(stream.send(b"more"))  # then waits for room
        await settle()
        assert not receiving.done() and not sending.done()

        stream.data_received(b"echo")
        await settle()
        assert receiving.done(), "recv() slept through the data it waited for"
        assert receiving.result() == b"echo"
        assert not sending.done()  # still no room

        stream.resume_writing()
        await settle()
        assert sending.done(), "send() slept through the room it waited for"
        assert sending.result() == 4 and transport.written == b"more"

    asyncio.run(asyncio.wait_for(scene(), 10.0))


def test_a_paused_send_then_recv_waiting_are_each_woken():
    """The other order: send() waits first, recv() second."""

    async def scene():
        stream = _Stream()
        transport = StandInTransport()
        stream.connection_made(transport)
        stream.pause_writing()
        sending = asyncio.ensure_future(stream.send(b"more"))
        await settle()
        receiving = asyncio.ensure_future(stream.recv(100))
        await settle()

        stream.resume_writing()
        await settle()
        assert sending.done(), "send() slept through the room it waited for"
        stream.data_received(b"echo")
        await settle()
        assert receiving.done(), "recv() slept through the data it waited for"
        assert receiving.result() == b"echo"

    asyncio.run(asyncio.wait_for(scene(), 10.0))


class StandInServer:
    def is_serving(self) -> bool:
        return True


class StandInRuntime:
    def request_round(self) -> None:
        pass


def test_two_accepts_waiting_at_once_each_get_a_connection():
    async def scene():
        listening = _Listening(StandInRuntime())
        listening.server = StandInServer()
        first = asyncio.ensure_future(listening.accept())
        second = asyncio.ensure_future(listening.accept())
        await settle()
        assert listening.waiting == 2
        arrivals = [_Stream(), _Stream()]
        for stream in arrivals:
            listening._arrived(stream)
            await settle()
        assert first.done() and second.done(), "an accept() slept through its connection"
        assert {id(first.result()), id(second.result())} == {id(stream) for stream in arrivals}

    asyncio.run(asyncio.wait_for(scene(), 10.0))


def test_echo_from_threads_larger_than_the_send_buffers(networks, seed):
    """sendall() in one thread waits for room while the main thread waits in recv(): a payload
    beyond the send buffer and SEND_AHEAD together, so that both really wait at once."""
    size = networks[0].stack.config.send_buffer_size + SEND_AHEAD + 512 * 1024
    payload = random.Random(seed).randbytes(size)
    received, _ = echo_from_threads(networks, payload)
    assert received == payload
