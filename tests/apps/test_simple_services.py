"""Echo (RFC 862), Discard (RFC 863) and Chargen (RFC 864) against sockets on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import threading

from ustack.apps.chargen import LINE_LENGTH, PRINTABLE, chargen_lines, handle_chargen
from ustack.apps.discard import handle_discard
from ustack.apps.echo import handle_echo


def connect(server) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return client


def read_to_end(client: socket.socket) -> bytes:
    chunks = []
    while chunk := client.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_echo_returns_each_line_and_closes_after_our_half_close(serve_on_loopback):
    server = serve_on_loopback(handle_echo)
    with connect(server) as client:
        client.sendall(b"hello\n")
        assert client.recv(100) == b"hello\n"
        client.sendall(b"second line\n")
        client.shutdown(socket.SHUT_WR)
        assert read_to_end(client) == b"second line\n"  # then EOF: the server closed its side
    server.wait_handler_finished()


def test_echo_carries_four_megabytes_both_ways_at_once(serve_on_loopback):
    # The client sends everything before reading anything it can: without backpressure in the
    # echo loop this would still pass, but a broken drain()/read interplay would deadlock here.
    server = serve_on_loopback(handle_echo)
    data = os.urandom(4 * 1024 * 1024)
    with connect(server) as client:
        def send_all():
            client.sendall(data)
            client.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send_all)
        sender.start()
        echoed = read_to_end(client)
        sender.join(30)
    assert echoed == data


def test_discard_reads_everything_and_sends_nothing(serve_on_loopback):
    server = serve_on_loopback(handle_discard)
    with connect(server) as client:
        client.sendall(os.urandom(1024 * 1024))
        client.shutdown(socket.SHUT_WR)
        assert read_to_end(client) == b""
    server.wait_handler_finished()


def test_chargen_pattern_is_rfc_864(serve_on_loopback):
    server = serve_on_loopback(handle_chargen)
    wanted = 200 * (LINE_LENGTH + 2)  # more than one 95-line cycle
    with connect(server) as client:
        received = b""
        while len(received) < wanted:
            received += client.recv(65536)
    server.wait_handler_finished()  # it notices we left and stops
    lines = received[:wanted].split(b"\r\n")[:200]
    assert lines[0] == PRINTABLE[:LINE_LENGTH]  # ' !"#$%&...' as in RFC 864
    assert lines[1] == PRINTABLE[1:LINE_LENGTH + 1]
    assert lines[95] == lines[0]  # the pattern repeats every 95 lines
    assert all(len(line) == LINE_LENGTH for line in lines)
    assert received[:wanted] == chargen_lines(0, 200)


def test_chargen_throws_away_what_it_receives(serve_on_loopback):
    server = serve_on_loopback(handle_chargen)
    with connect(server) as client:
        client.sendall(b"ignored\r\n" * 1000)
        first = client.recv(LINE_LENGTH + 2, socket.MSG_WAITALL)
    server.wait_handler_finished()
    assert first == PRINTABLE[:LINE_LENGTH] + b"\r\n"


def test_discard_takes_ustacks_pieces_as_they_are_256_kb_at_a_time():
    # On ustack's streams (which have read_chunks) discard drops what the receive buffer holds
    # without joining it into bytes first, and takes up to 256 KB a read (issue 12: a sink for
    # bench.py's uploads at MTU 65535); a joined read() would be one more copy of every byte.
    import asyncio

    from ustack.apps.discard import READ_SIZE

    class PiecesReader:
        def __init__(self, pieces):
            self.pieces, self.sizes = list(pieces), []

        async def read_chunks(self, size):
            self.sizes.append(size)
            return [self.pieces.pop(0), memoryview(b"more")] if self.pieces else []

        async def read(self, size):
            raise AssertionError("discard joined the pieces into bytes")

    class Writer:
        closed = False

        def close(self):
            self.closed = True

        async def wait_closed(self):
            pass

    reader, writer = PiecesReader([b"a" * 1000, b"b" * 70000]), Writer()
    asyncio.run(handle_discard(reader, writer))
    assert reader.sizes == [READ_SIZE] * 3 and READ_SIZE == 256 * 1024
    assert writer.closed
