"""HttpFileServer's uploads over ustack's own streams (TcpStreamReader, issue 12): the body path
that the upload benchmark measures, from the client's bytes to the stored file.

- Content-Length bodies of sizes around the app's read size and the segment size, and chunked
  bodies with random chunk sizes, are stored intact (seeded random sizes, the seed printed), and
  the connection serves the next request (h11 saw the end of the message);
- Expect: 100-continue gets its 100 before the body is sent;
- a body that ends early (the client closes or resets) leaves the old file as it was and no
  temporary file behind.

Two hosts over a memory link (tests/stack/twohosts.py); no sleeps: every wait is for a
condition, with a timeout as a hang guard.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from twohosts import run_async, stack_pair

from ustack.apps import HttpFileServer
from ustack.apps.http import READ_SIZE


async def read_response(reader) -> tuple[int, bytes]:
    """(status, body) of one response with Content-Length (or none), read from the stream."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await asyncio.wait_for(reader.readexactly(length), 10)


def sizes_to_try(rng: random.Random) -> list[int]:
    edges = [0, 1, 1447, 1448, 1449, 65535, 65536, READ_SIZE - 1, READ_SIZE, READ_SIZE + 1, 2 * READ_SIZE]
    return edges + [rng.randrange(1, 4 * READ_SIZE) for _ in range(4)]


@run_async
async def test_content_length_uploads_are_stored_intact_and_the_connection_goes_on(tmp_path, seed):
    rng = random.Random(seed)
    async with stack_pair() as pair:
        await pair.b.start_server(HttpFileServer(tmp_path, allow_upload=True), port=80)
        reader, writer = await pair.a.open_connection(pair.b_address, 80)
        for index, size in enumerate(sizes_to_try(rng)):
            body = rng.randbytes(size)
            writer.write(b"PUT /up%d.bin HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (index, size))
            # In random pieces, so the body's edges fall anywhere in the segments.
            position = 0
            while position < size:
                step = rng.choice([1, 1000, 1448, 70000, 300000])
                writer.write(body[position:position + step])
                position += step
                await writer.drain()
            status, _ = await read_response(reader)  # same connection: keep-alive after each body
            assert status == 201, (index, size)
            assert (tmp_path / f"up{index}.bin").read_bytes() == body, (index, size)
        writer.close()


@run_async
async def test_chunked_uploads_are_stored_intact(tmp_path, seed):
    rng = random.Random(seed)
    async with stack_pair() as pair:
        await pair.b.start_server(HttpFileServer(tmp_path, allow_upload=True), port=80)
        reader, writer = await pair.a.open_connection(pair.b_address, 80)
        for index in range(4):
            body = rng.randbytes(rng.randrange(0, 3 * READ_SIZE))
            writer.write(b"POST /chunked%d.bin HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" % index)
            position = 0
            while position < len(body):
                piece = body[position:position + rng.choice([1, 10, 4096, 65536, READ_SIZE + 3])]
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                position += len(piece)
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            status, _ = await read_response(reader)
            assert status == 201
            assert (tmp_path / f"chunked{index}.bin").read_bytes() == body
        writer.close()


@run_async
async def test_expect_100_continue_is_answered_before_the_body(tmp_path, seed):
    body = random.Random(seed).randbytes(READ_SIZE + 5)
    async with stack_pair() as pair:
        await pair.b.start_server(HttpFileServer(tmp_path, allow_upload=True), port=80)
        reader, writer = await pair.a.open_connection(pair.b_address, 80)
        writer.write(b"PUT /c.bin HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert interim.startswith(b"HTTP/1.1 100 ")
        writer.write(body)
        status, _ = await read_response(reader)
        assert status == 201 and (tmp_path / "c.bin").read_bytes() == body
        writer.close()


@pytest.mark.parametrize("ending", ["close", "reset"])
@run_async
async def test_a_body_that_ends_early_leaves_the_old_file(tmp_path, seed, ending):
    old = b"the old contents\n"
    (tmp_path / "kept.bin").write_bytes(old)
    body = random.Random(seed).randbytes(2 * READ_SIZE)
    async with stack_pair() as pair:
        handler = HttpFileServer(tmp_path, allow_upload=True)
        finished = asyncio.Event()

        async def handle(reader, writer):
            try:
                await handler(reader, writer)
            finally:
                finished.set()

        await pair.b.start_server(handle, port=80)
        reader, writer = await pair.a.open_connection(pair.b_address, 80)
        writer.write(b"PUT /kept.bin HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (len(body) + 1))
        writer.write(body)  # one byte short
        await writer.drain()
        await pair.wait_until(lambda: any(path.name.startswith(".upload-") for path in tmp_path.iterdir()))
        if ending == "close":
            writer.close()
        else:
            writer.transport.abort()
        await asyncio.wait_for(finished.wait(), 10)
        assert (tmp_path / "kept.bin").read_bytes() == old
        assert [path.name for path in tmp_path.iterdir()] == ["kept.bin"]
