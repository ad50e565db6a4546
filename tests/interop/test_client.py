"""ustack as the client, the kernel as the server: `ustack connect` (a separate process, like a
user runs it) and the asyncio API in this process (AsyncStack.open_connection over a TunLink),
each against the kernel's `nc -l` (bulk data both ways) and `python3 -m http.server`."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys

import pytest
from interop_helpers import (HOST_ADDRESS, IO_TIMEOUT, finished, kernel_sockets, run_cli, run_client, wait_for,
                             wait_for_kernel_listener)

MEGABYTE = 1024 * 1024
NC_PORT = 5000
HTTP_PORT = 8000


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def start_nc_listener(namespace, to_send, received):
    """The kernel's `nc -l`: sends the file `to_send`, writes what arrives into `received`, and
    half-closes after its input (-N), so both directions end with a FIN."""
    with to_send.open("rb") as stdin, received.open("wb") as stdout:
        server = namespace.popen(["nc", "-4", "-N", "-l", str(NC_PORT)], stdin=stdin, stdout=stdout,
                                 stderr=subprocess.PIPE)
    wait_for_kernel_listener(namespace.name, NC_PORT)
    return server


def start_http_server(namespace, directory):
    """The kernel's `python3 -m http.server` on the namespace's any-address, speaking HTTP/1.1
    (keep-alive) instead of its default 1.0."""
    server = namespace.popen([sys.executable, "-m", "http.server", str(HTTP_PORT), "--bind", "0.0.0.0",
                              "--directory", str(directory), "--protocol", "HTTP/1.1"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    wait_for_kernel_listener(namespace.name, HTTP_PORT)
    return server


def split_http_response(response: bytes) -> tuple[str, dict[str, str], bytes]:
    head, separator, body = response.partition(b"\r\n\r\n")
    assert separator, f"no end of headers in {response[:200]!r}"
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return status_line, headers, body


@pytest.fixture
def files(tmp_path):
    """Two different random 2 MB files (one for each direction) and a served directory."""
    client_data = os.urandom(2 * MEGABYTE)
    server_data = os.urandom(2 * MEGABYTE)
    (tmp_path / "client.bin").write_bytes(client_data)
    (tmp_path / "server.bin").write_bytes(server_data)
    site = tmp_path / "site"
    site.mkdir()
    (site / "page.bin").write_bytes(server_data[: MEGABYTE + 12345])
    return tmp_path


# --- `ustack connect`: a process of its own ----------------------------------------------------


def test_ustack_connect_to_kernel_nc_moves_2_megabytes_each_way(namespace, files, interop_pcap):
    # The namespace exists before ustack connect and the kernel listens on its any-address, so
    # the listener is ready before the TUN device (and the address it will get) exists.
    server = start_nc_listener(namespace, files / "server.bin", files / "server-received.bin")
    with (files / "client.bin").open("rb") as stdin:
        result = run_cli("connect", "--netns", namespace.name, "--pcap", str(interop_pcap), HOST_ADDRESS,
                         str(NC_PORT), stdin=stdin, text=False)
    assert result.returncode == 0, result.stderr.decode()
    assert sha256(result.stdout) == sha256((files / "server.bin").read_bytes())
    assert server.wait(timeout=IO_TIMEOUT) == 0, server.stderr.read()
    assert sha256((files / "server-received.bin").read_bytes()) == sha256((files / "client.bin").read_bytes())


def test_ustack_connect_gets_a_file_from_kernel_http_server(namespace, files, interop_pcap):
    start_http_server(namespace, files / "site")
    request = b"GET /page.bin HTTP/1.0\r\nHost: kernel\r\n\r\n"
    result = run_cli("connect", "--netns", namespace.name, "--pcap", str(interop_pcap), HOST_ADDRESS,
                     str(HTTP_PORT), input=request, text=False)
    assert result.returncode == 0, result.stderr.decode()
    status, headers, body = split_http_response(result.stdout)
    expected = (files / "site" / "page.bin").read_bytes()
    assert status.split()[1] == "200", status
    assert int(headers["content-length"]) == len(expected)
    assert sha256(body) == sha256(expected)


# --- the asyncio API in this process -------------------------------------------------------------


def test_asyncio_open_connection_to_kernel_nc_moves_2_megabytes_each_way(tun_in_namespace, files):
    setup = tun_in_namespace
    server = start_nc_listener(setup.namespace, files / "server.bin", files / "server-received.bin")
    to_send = (files / "client.bin").read_bytes()

    async def client(astack):
        reader, writer = await astack.open_connection(setup.host_address, NC_PORT)

        async def send():
            for start in range(0, len(to_send), 100_000):  # writes of uneven size, with backpressure
                writer.write(to_send[start:start + 100_000])
                await writer.drain()
            writer.write_eof()  # our FIN; the kernel's nc then sees the end of its input

        _, received = await asyncio.gather(send(), reader.read())
        writer.close()
        await writer.wait_closed()
        await finished(astack, writer)
        return received

    received = run_client(setup, client)
    assert sha256(received) == sha256((files / "server.bin").read_bytes())
    assert server.wait(timeout=IO_TIMEOUT) == 0, server.stderr.read()
    assert sha256((files / "server-received.bin").read_bytes()) == sha256(to_send)


def test_asyncio_open_connection_gets_files_from_kernel_http_server_on_one_connection(tun_in_namespace, files):
    setup = tun_in_namespace
    start_http_server(setup.namespace, files / "site")
    expected = (files / "site" / "page.bin").read_bytes()

    async def client(astack):
        reader, writer = await astack.open_connection(setup.host_address, HTTP_PORT)
        # HTTP/1.1 keep-alive: two requests on the same connection, then the server closes
        # after the second one (Connection: close).
        bodies = []
        for close in (False, True):
            writer.write(b"GET /page.bin HTTP/1.1\r\nHost: kernel\r\n" + (b"Connection: close\r\n" if close else b"")
                         + b"\r\n")
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status, headers, _ = split_http_response(head)
            assert status.split()[1] == "200", status
            bodies.append(await reader.readexactly(int(headers["content-length"])))
        assert await reader.read() == b""  # the server closed after the second response
        writer.close()
        await writer.wait_closed()
        await finished(astack, writer)
        return bodies

    bodies = run_client(setup, client)
    assert [sha256(body) for body in bodies] == [sha256(expected)] * 2
    # The kernel closed first, so the kernel holds TIME-WAIT for this connection.
    wait_for(lambda: kernel_sockets(setup.namespace.name, "state", "time-wait", f"sport = :{HTTP_PORT}"), 5.0,
             "the kernel's TIME-WAIT after it closed first")

