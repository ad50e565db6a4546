"""HttpFileServer's uploads, byte by byte, on both kinds of streams the app runs on: asyncio's over
the kernel's sockets (127.0.0.1, serve_on_loopback) and ustack's own (two stacks over a memory
link, tests/stack/twohosts.py): a Content-Length body goes from the stream to the file without
passing through h11 (issue 12), and h11 must still see the request, the answer, the keep-alive or
close, and whatever the client sent after the body.

Every test is a client coroutine, run once per kind of stream by the `with_server` fixture.
No sleeps: every wait is for bytes or the end of the stream, with a timeout as a hang guard.
"""

from __future__ import annotations

import asyncio
import os
import random

import h11
import pytest
from twohosts import stack_pair

from ustack.apps import http
from ustack.apps.http import READ_SIZE, HttpFileServer

SIX_MEGABYTES = 6 * 1024 * 1024
HANG_GUARD = 30.0


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "notes.txt").write_bytes(b"plain text\n")
    return root


@pytest.fixture(params=["kernel", "ustack"])
def with_server(request, site, serve_on_loopback, monkeypatch, tmp_path):
    """with_server(client) runs `await client(connect)` on a new event loop, against an upload
    server for `site`; `await connect()` opens a connection to it: (reader, writer)."""
    if request.param == "kernel":
        server = serve_on_loopback(HttpFileServer(site, allow_upload=True))

        async def main(client):
            await client(lambda: asyncio.open_connection("127.0.0.1", server.port))
    else:
        monkeypatch.setenv("USTACK_RUN_DIR", str(tmp_path))  # control sockets here, not /run/ustack

        async def main(client):
            async with stack_pair() as pair:
                await pair.b.start_server(HttpFileServer(site, allow_upload=True), port=80)
                await client(lambda: pair.a.open_connection(pair.b_address, 80))

    return lambda client: asyncio.run(asyncio.wait_for(main(client), HANG_GUARD))


async def read_response(reader) -> tuple[int, dict[bytes, bytes], bytes]:
    """(status, headers with lower-case names, body) of one response framed by Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head[:-4].split(b"\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(b":") for line in lines)}
    body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return int(status_line.split(b" ")[1]), headers, body


def put_head(path: str, length: int, *extra: bytes, version: bytes = b"1.1") -> bytes:
    return (b"PUT %s HTTP/%s\r\nHost: x\r\nContent-Length: %d\r\n" % (path.encode(), version, length)
            + b"".join(line + b"\r\n" for line in extra) + b"\r\n")


def no_temporary_files(site) -> bool:
    return not list(site.rglob(".upload-*"))


def test_a_large_upload_is_stored_byte_exact_without_passing_through_h11(with_server, site, monkeypatch):
    body = os.urandom(SIX_MEGABYTES)
    given_to_h11 = []
    receive_data = h11.Connection.receive_data

    def counting_receive_data(connection, data):
        given_to_h11.append(len(data))
        return receive_data(connection, data)

    monkeypatch.setattr(h11.Connection, "receive_data", counting_receive_data)

    async def client(connect):
        given_to_h11.clear()
        reader, writer = await connect()
        writer.write(put_head("/big.bin", len(body)) + body)
        status, headers, _ = await read_response(reader)
        assert (status, headers[b"location"]) == (201, b"/big.bin")
        writer.close()

    with_server(client)
    assert (site / "big.bin").read_bytes() == body
    assert no_temporary_files(site)
    # h11 saw the head and at most the first read's worth of the body (that came with the head),
    # not the six megabytes.
    assert sum(given_to_h11) <= READ_SIZE + 1024, f"{sum(given_to_h11)} bytes went through h11"


def test_a_request_sent_right_after_the_body_is_answered_on_the_kept_connection(with_server, site):
    body = random.Random(1).randbytes(READ_SIZE + 1000)
    # All in one write: the head, the body, the next request (a GET of what was just stored) and
    # a second upload whose body is short enough to come in whole with its head.
    pipelined = (put_head("/first.bin", len(body)) + body
                 + b"GET /first.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                 + put_head("/second.txt", 6) + b"second")

    async def client(connect):
        reader, writer = await connect()
        writer.write(pipelined)
        writer.write_eof()
        first, second, third = [await read_response(reader) for _ in range(3)]
        assert await reader.read() == b""  # then the server closes: the client ended its side
        writer.close()
        assert first[0] == 201
        assert (second[0], second[2]) == (200, body)
        assert third[0] == 201

    with_server(client)
    assert (site / "second.txt").read_bytes() == b"second"
    assert no_temporary_files(site)


@pytest.mark.parametrize("version, extra", [(b"1.0", ()), (b"1.1", (b"Connection: close",))])
def test_an_upload_that_asks_to_close_is_closed_after_the_answer(with_server, site, version, extra):
    body = random.Random(2).randbytes(100_000)

    async def client(connect):
        reader, writer = await connect()
        writer.write(put_head("/closing.bin", len(body), *extra, version=version) + body)
        status, headers, _ = await read_response(reader)
        # The server closes by itself (the client keeps its side open): without it this read
        # would wait for the keep-alive timeout, past the hang guard.
        assert await reader.read() == b""
        writer.close()
        assert status == 201 and headers[b"connection"] == b"close"

    with_server(client)
    assert (site / "closing.bin").read_bytes() == body


def test_expect_100_continue_is_answered_then_the_body_stored_and_the_connection_kept(with_server, site):
    body = random.Random(3).randbytes(2 * READ_SIZE + 7)

    async def client(connect):
        reader, writer = await connect()
        writer.write(put_head("/continued.bin", len(body), b"Expect: 100-continue"))
        interim = await reader.readuntil(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100 ")
        writer.write(body)
        assert (await read_response(reader))[0] == 201
        writer.write(b"GET /notes.txt HTTP/1.1\r\nHost: x\r\n\r\n")  # the same connection goes on
        status, _, got = await read_response(reader)
        writer.close()
        assert (status, got) == (200, b"plain text\n")

    with_server(client)
    assert (site / "continued.bin").read_bytes() == body


def test_a_client_that_closes_mid_body_leaves_no_temporary_file_and_no_target(with_server, site):
    body = random.Random(4).randbytes(READ_SIZE * 3)

    async def client(connect):
        reader, writer = await connect()
        writer.write(put_head("/broken.bin", len(body) + 1) + body)  # one byte short
        writer.write_eof()
        # The server gives up on the upload, removes its temporary file, answers 400 and closes.
        reply = await reader.read()
        writer.close()
        assert reply.startswith(b"HTTP/1.1 400 ")

    with_server(client)
    assert not (site / "broken.bin").exists()
    assert no_temporary_files(site)


@pytest.mark.parametrize("with_the_head", [1, 1000, 70_000])
def test_a_body_whose_first_bytes_came_with_the_head(with_server, site, with_the_head):
    body = random.Random(5).randbytes(READ_SIZE + 123)

    async def client(connect):
        reader, writer = await connect()
        writer.write(put_head("/split.bin", len(body)) + body[:with_the_head])
        await writer.drain()
        writer.write(body[with_the_head:])
        assert (await read_response(reader))[0] == 201
        writer.close()

    with_server(client)
    assert (site / "split.bin").read_bytes() == body


def test_a_zero_length_body_stores_an_empty_file_then_replacing_it_is_204(with_server, site):
    async def client(connect):
        reader, writer = await connect()
        writer.write(put_head("/empty.bin", 0) + put_head("/empty.bin", 0))
        first, second = await read_response(reader), await read_response(reader)
        writer.close()
        assert (first[0], second[0]) == (201, 204)

    with_server(client)
    assert (site / "empty.bin").read_bytes() == b""
    assert no_temporary_files(site)


def test_a_chunked_upload_is_still_stored(with_server, site):
    body = random.Random(6).randbytes(READ_SIZE * 2 + 99)
    pieces = [body[start:start + 70_000] for start in range(0, len(body), 70_000)]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"

    async def client(connect):
        reader, writer = await connect()
        writer.write(b"POST /chunked.bin HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked
                     + b"GET /chunked.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        first, second = await read_response(reader), await read_response(reader)
        writer.close()
        assert first[0] == 201 and (second[0], second[2]) == (200, body)

    with_server(client)
    assert (site / "chunked.bin").read_bytes() == body


def test_write_all_goes_on_after_a_short_write_and_past_iov_max(tmp_path, monkeypatch):
    """_write_all writes every piece in order even when os.writev takes fewer bytes than given
    (allowed for any write) and there are more pieces than one writev takes."""
    pieces = [bytes([index]) * size for index, size in enumerate([5, 3000, 1, 700, 2500, 10, 4000])]
    real_writev = os.writev
    monkeypatch.setattr(http, "IOV_MAX", 3)
    monkeypatch.setattr(http, "FROM_BUFFER_MOVES_YOUNG_BYTES", False)  # (CPython's way, on either Python)

    def short_writev(descriptor, buffers):
        assert len(buffers) <= 3
        return real_writev(descriptor, [b"".join(buffers)[:1000]])

    monkeypatch.setattr(os, "writev", short_writev)
    with open(tmp_path / "written.bin", "wb") as file:
        http._write_all(file.fileno(), pieces)
    assert (tmp_path / "written.bin").read_bytes() == b"".join(pieces)


def test_write_all_writes_piece_by_piece_where_from_buffer_moves_young_bytes(tmp_path, monkeypatch):
    """Where compat.FROM_BUFFER_MOVES_YOUNG_BYTES (PyPy, whose os.writev is compat's: cffi's
    from_buffer for each piece, which moved each received packet's young copy out of the
    collector's nursery), _write_all writes with os.write, one piece at a time, never os.writev:
    every piece in order, views of larger packets included, after short writes too."""
    packets = [bytes([index]) * 52 + bytes([index + 100]) * size for index, size in enumerate([5, 3000, 1, 700, 2500])]
    pieces = [memoryview(packet)[52:] for packet in packets]  # as a received super-segment's payload
    monkeypatch.setattr(http, "FROM_BUFFER_MOVES_YOUNG_BYTES", True)
    real_write, lengths = os.write, []

    def short_write(descriptor, data):
        lengths.append(len(data))
        return real_write(descriptor, bytes(data)[:1000])

    def no_writev(descriptor, buffers):
        raise AssertionError("os.writev called")

    monkeypatch.setattr(os, "write", short_write)
    monkeypatch.setattr(os, "writev", no_writev)
    with open(tmp_path / "written.bin", "wb") as file:
        assert http._write_all(file.fileno(), pieces) == sum(map(len, pieces))
    assert (tmp_path / "written.bin").read_bytes() == b"".join(pieces)
    assert lengths == [5, 3000, 2000, 1000, 1, 700, 2500, 1500, 500]  # one piece, or what is left of it, per write


def test_an_upload_lets_go_of_what_it_wrote_before_the_next_read_waits(tmp_path):
    """What one read of an upload's body gave is written and then let go of, before the next read
    waits, not when it returns: on PyPy each piece is a view of the TUN link's young copy of a
    packet, and while the read waits the link reads the next batch, whose copies fill the
    collector's nursery; a minor collection then found the pieces already written alive, and
    copied them out of it (an upload's 256 KB at a time), into memory only a major collection frees."""
    import gc
    import weakref

    class Piece(bytearray):  # a piece that a weak reference can follow (bytes and views cannot)
        pass

    body = [Piece(b"a" * 3000), Piece(b"b" * 5000)]
    still_held = []

    class Reader:
        def __init__(self):
            self.given = None

        async def read_chunks(self, size):
            if self.given is not None:
                gc.collect()  # (PyPy: no reference counts; on CPython it changes nothing)
                still_held.append(self.given() is not None)  # the last read's piece, while this one waits
            piece = body.pop(0)
            self.given = weakref.ref(piece)
            return [piece]

    connection = h11.Connection(h11.SERVER)
    connection.receive_data(put_head("/up.bin", 8000))
    request = connection.next_event()
    with open(tmp_path / "up.bin", "wb") as file:
        fresh = asyncio.run(http._store_counted_body(connection, Reader(), request, file.fileno()))
    assert (tmp_path / "up.bin").read_bytes() == b"a" * 3000 + b"b" * 5000
    assert fresh.their_state is h11.DONE  # h11 stands where it would after the body
    assert still_held == [False]


class HeldChunks:
    """A stream with ustack's read_chunks that holds `held` bytes in order, as 64 KB pieces (a
    receive buffer's super-segment payloads): each read takes what it is allowed to."""

    def __init__(self, held: int) -> None:
        self.pieces = [memoryview(bytes(65536)).toreadonly() for _ in range(held // 65536)]
        self.asked: list[int] = []

    async def read_chunks(self, size: int) -> list:
        self.asked.append(size)
        taken, chunks = 0, []
        while self.pieces and taken + len(self.pieces[0]) <= size:
            taken += len(self.pieces[0])
            chunks.append(self.pieces.pop(0))
        return chunks


def test_a_counted_body_is_taken_in_reads_of_all_the_stream_holds(tmp_path):
    # One read and one write per BODY_READ_SIZE of what waits in order, not per READ_SIZE
    # (issue 12: each read and write costs ~25 calls and a system call).
    assert http.BODY_READ_SIZE > READ_SIZE
    length = 3 * http.BODY_READ_SIZE
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(put_head("/body.bin", length))
    request = connection.next_event()
    stream = HeldChunks(length)
    with open(tmp_path / "body.bin", "wb") as file:
        asyncio.run(http._store_counted_body(connection, stream, request, file.fileno()))
    assert stream.asked == [http.BODY_READ_SIZE] * 3
    assert (tmp_path / "body.bin").stat().st_size == length
