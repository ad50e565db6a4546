"""TcpStreamReader (ustack/aio/runtime.py): read(n) takes data straight from the connection's
receive buffer; the transport only wakes the reader (issue 12).

What must still hold:
- every byte arrives, in order, whatever the sizes of the writes and the reads (seeded random
  sizes, the seed printed), and whatever mix of read / readline / readuntil / readexactly;
- the fast path is the path: a plain read loop never goes through asyncio's own buffer
  (data_received is not called, the reader's buffer stays empty);
- backpressure is the TCP window itself: a reader that does not read lets the receive buffer
  fill and the window close, the sender's data waits in its send buffer, and reading opens the
  window again; transport.pause_reading() stops read() from taking anything;
- the end of the stream comes after the last byte (read() gives b"", at_eof() is true);
- data that arrived before a reset is not the reader's to read after it: the reset is raised,
  as asyncio's reader does.

Two hosts over a memory link (tests/stack/twohosts.py) on the loop's clock; no sleeps: every
wait is for a condition, with a timeout as a hang guard.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random

import pytest
from twohosts import FAST_CONFIG, run_async, stack_pair

from ustack.aio.runtime import TcpStreamReader

SMALL_WINDOW = 32 * 1024
SMALL_WINDOW_CONFIG = dataclasses.replace(FAST_CONFIG, receive_buffer_size=SMALL_WINDOW)


async def connected(pair, port: int = 9000):
    """(client reader, client writer, server reader, server writer) of one new connection."""
    accepted: asyncio.Future = asyncio.get_running_loop().create_future()

    async def keep(reader, writer):
        accepted.set_result((reader, writer))
        await asyncio.Event().wait()  # held open until the test ends (the stack closes it)

    await pair.b.start_server(keep, port=port)
    client_reader, client_writer = await pair.a.open_connection(pair.b_address, port)
    server_reader, server_writer = await asyncio.wait_for(accepted, 10)
    return client_reader, client_writer, server_reader, server_writer


def counting_data_received(reader: TcpStreamReader) -> list[int]:
    """How often asyncio's push path (feed_data) is taken from now on."""
    calls = [0]
    original = reader.feed_data

    def feed_data(data):
        calls[0] += 1
        original(data)

    reader.feed_data = feed_data
    return calls


@run_async
async def test_random_writes_and_reads_arrive_intact_without_asyncios_buffer(seed):
    rng = random.Random(seed)
    data = rng.randbytes(3_000_000)
    async with stack_pair() as pair:
        _, writer, reader, _ = await connected(pair)
        assert isinstance(reader, TcpStreamReader)
        pushed = counting_data_received(reader)

        async def send():
            position = 0
            while position < len(data):
                size = rng.choice([1, 100, 1447, 1448, 1449, 65535, 65536, 65537, 300_000])
                writer.write(data[position:position + size])
                position += size
                await writer.drain()
            writer.write_eof()

        sender = asyncio.ensure_future(send())
        received = bytearray()
        read_rng = random.Random(seed + 1)
        while chunk := await reader.read(read_rng.choice([1, 7, 1448, 65536, 262144, 1 << 20])):
            assert type(chunk) is bytes
            received += chunk
        await sender
        assert received == data
        assert reader.at_eof() and await reader.read(100) == b""
        assert pushed == [0] and not reader._buffer  # the fast path, every time


@run_async
async def test_line_and_exact_reads_mixed_with_reads_keep_the_order(seed):
    rng = random.Random(seed)
    lines = [rng.randbytes(rng.randrange(0, 3000)).replace(b"\n", b"x") + b"\n" for _ in range(300)]
    data = b"".join(lines)
    async with stack_pair() as pair:
        _, writer, reader, _ = await connected(pair)
        writer.write(data)
        writer.write_eof()
        received = bytearray()
        while not reader.at_eof():
            how = rng.choice(["read", "readline", "readuntil", "readexactly"])
            if how == "read":
                piece = await reader.read(rng.randrange(1, 5000))
            elif how == "readline":
                piece = await reader.readline()
            elif how == "readuntil":
                try:
                    piece = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as error:
                    piece = error.partial
            else:
                try:
                    piece = await reader.readexactly(rng.randrange(0, 4000))
                except asyncio.IncompleteReadError as error:
                    piece = error.partial
            received += piece
        assert received == data


@run_async
async def test_a_reader_that_does_not_read_closes_the_window_and_reading_opens_it(seed):
    rng = random.Random(seed)
    data = rng.randbytes(400_000)
    async with stack_pair(config=SMALL_WINDOW_CONFIG) as pair:
        _, writer, reader, server_writer = await connected(pair)
        writer.write(data)
        server_connection = server_writer.transport.get_extra_info("connection")
        client_connection = writer.transport.get_extra_info("connection")
        # Nobody reads: the receive buffer fills, the window the client sees closes, and the
        # rest waits on the client's side.
        await pair.wait_until(lambda: server_connection.readable == SMALL_WINDOW and client_connection.snd.wnd == 0)
        assert reader._buffer == bytearray()  # nothing went to asyncio's buffer behind our back
        assert client_connection.snd.capacity - client_connection.snd.free_space == len(data) - SMALL_WINDOW
        # Paused, read() takes nothing (it waits), and nothing moves.
        server_writer.transport.pause_reading()
        waiting = asyncio.ensure_future(reader.read(1000))
        await pair.wait_until(lambda: reader._waiter is not None)
        assert not waiting.done() and server_connection.readable == SMALL_WINDOW
        server_writer.transport.resume_reading()
        received = bytearray(await asyncio.wait_for(waiting, 10))
        while len(received) < len(data):
            received += await reader.read(rng.choice([100, 5000, 70000]))
        assert received == data


@run_async
async def test_a_reset_is_raised_by_the_next_read():
    async with stack_pair() as pair:
        client_reader, writer, reader, _ = await connected(pair)
        writer.write(b"before the reset")
        await pair.wait_until(lambda: reader._transport._connection.readable == 16)
        writer.transport.abort()  # RST
        with pytest.raises(ConnectionResetError):
            while await asyncio.wait_for(reader.read(100), 10):
                pass
