"""ustack/apps/http.py against real clients (curl, http.client, raw sockets) on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import subprocess

import pytest

from ustack.apps.http import CHUNK_SIZE, HttpFileServer

TWENTY_MEGABYTES = 20 * 1024 * 1024
curl_missing = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text("<h1>hello from ustack</h1>\n")
    (root / "notes.txt").write_text("plain text\n")
    (root / "docs").mkdir()
    (root / "docs" / "a b.txt").write_text("spaced\n")
    (tmp_path / "secret.txt").write_text("outside the site\n")  # must never be served
    return root


@pytest.fixture
def server(site, serve_on_loopback):
    """A server that takes uploads (`ustack serve --allow-upload`)."""
    return serve_on_loopback(HttpFileServer(site, allow_upload=True))


@pytest.fixture
def read_only_server(site, serve_on_loopback):
    """The default: uploads off."""
    return serve_on_loopback(HttpFileServer(site))


def request(server, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def raw_request(server, data: bytes) -> bytes:
    """Send bytes as they are (no client normalising the path) and read until the server closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
        client.sendall(data)
        client.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := client.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_get_serves_the_file_with_its_length_and_type(server):
    status, headers, body = request(server, "GET", "/notes.txt")
    assert status == 200
    assert body == b"plain text\n"
    assert headers["Content-Length"] == str(len(body))
    assert headers["Content-Type"] == "text/plain"


def test_get_of_the_root_serves_index_html(server):
    status, headers, body = request(server, "GET", "/")
    assert (status, body) == (200, b"<h1>hello from ustack</h1>\n")
    assert headers["Content-Type"] == "text/html"


def test_directory_without_slash_redirects_and_lists_without_index(server):
    status, headers, _ = request(server, "GET", "/docs")
    assert status == 301 and headers["Location"] == "/docs/"
    status, _, body = request(server, "GET", "/docs/")
    assert status == 200
    assert b'<a href="a%20b.txt">a b.txt</a>' in body


def test_percent_encoded_names_and_query_strings(server):
    status, _, body = request(server, "GET", "/docs/a%20b.txt?version=2")
    assert (status, body) == (200, b"spaced\n")


def test_head_has_the_headers_of_get_and_no_body(server):
    _, get_headers, get_body = request(server, "GET", "/notes.txt")
    status, headers, body = request(server, "HEAD", "/notes.txt")
    assert status == 200 and body == b""
    assert headers["Content-Length"] == get_headers["Content-Length"] == str(len(get_body))


def test_missing_file_is_404(server):
    status, _, body = request(server, "GET", "/nothing-here.html")
    assert status == 404 and b"not found" in body


def test_other_methods_are_405_with_allow(server):
    status, headers, _ = request(server, "DELETE", "/notes.txt")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD, PUT, POST"  # (this server takes uploads)


def test_malformed_request_is_400(server):
    reply = raw_request(server, b"THIS IS NOT HTTP\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize("target", [
    b"/../secret.txt",
    b"/docs/../../secret.txt",
    b"/%2e%2e/secret.txt",
    b"/..%2fsecret.txt",
    b"/docs/%2E%2E/%2E%2E/secret.txt",
])
def test_path_traversal_is_refused(server, target):
    reply = raw_request(server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 403 ")
    assert b"outside the site" not in reply


def test_symlink_leading_out_is_refused(server, site):
    (site / "escape").symlink_to(site.parent / "secret.txt")
    status, _, body = request(server, "GET", "/escape")
    assert status == 403 and b"outside the site" not in body


def test_upload_outside_is_refused_and_writes_nothing(server, site):
    reply = raw_request(server, b"PUT /../planted.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                b"Connection: close\r\n\r\nhello")
    assert reply.startswith(b"HTTP/1.1 403 ")
    assert not (site.parent / "planted.txt").exists()


@curl_missing
def test_curl_path_as_is_traversal_is_refused(server):
    result = subprocess.run(
        ["curl", "-s", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}",
         f"http://127.0.0.1:{server.port}/../secret.txt"],
        capture_output=True, text=True, timeout=30)
    assert result.stdout == "403"


def test_keep_alive_serves_several_requests_on_one_connection(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        bodies = []
        for path in ["/notes.txt", "/", "/missing", "/notes.txt"]:
            connection.request("GET", path)
            response = connection.getresponse()
            bodies.append((response.status, response.read()))
            local_port = connection.sock.getsockname()[1]
            if path == "/notes.txt" and len(bodies) == 1:
                first_local_port = local_port
            assert local_port == first_local_port  # the same TCP connection every time
    finally:
        connection.close()
    assert [status for status, _ in bodies] == [200, 200, 404, 200]
    assert server.connections_seen == 1


def test_put_creates_then_replaces_and_post_stores_too(server, site):
    status, headers, _ = request(server, "PUT", "/uploads/new.txt", body=b"first")
    assert status == 201 and headers["Location"] == "/uploads/new.txt"
    assert (site / "uploads" / "new.txt").read_bytes() == b"first"
    status, _, body = request(server, "PUT", "/uploads/new.txt", body=b"second")
    assert (status, body) == (204, b"")
    assert (site / "uploads" / "new.txt").read_bytes() == b"second"
    status, _, _ = request(server, "POST", "/posted.bin", body=bytes(range(256)))
    assert status == 201
    assert (site / "posted.bin").read_bytes() == bytes(range(256))
    assert not [p for p in site.rglob(".upload-*")]  # no temporary file left behind


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_uploads_are_refused_by_default_and_nothing_is_written(read_only_server, site, method):
    before = (site / "notes.txt").read_bytes()
    status, headers, body = request(read_only_server, method, "/notes.txt", body=b"overwritten")
    assert status == 405 and headers["Allow"] == "GET, HEAD" and b"--allow-upload" in body
    status, _, _ = request(read_only_server, method, "/new.txt", body=b"new")
    assert status == 405
    assert (site / "notes.txt").read_bytes() == before and not (site / "new.txt").exists()
    assert sorted(p.name for p in site.iterdir()) == ["docs", "index.html", "notes.txt"]


@curl_missing
def test_refused_upload_does_not_wait_for_a_large_body(read_only_server, site, tmp_path):
    source = tmp_path / "big.bin"
    source.write_bytes(bytes(2 * 1024 * 1024))  # curl sends "Expect: 100-continue" for this
    result = subprocess.run(["curl", "-sS", "-T", str(source), "-w", "%{http_code}", "-o", "/dev/null",
                             f"http://127.0.0.1:{read_only_server.port}/big.bin"],
                            capture_output=True, text=True, timeout=30)
    assert result.stdout == "405" and not (site / "big.bin").exists()


@pytest.mark.parametrize("target", [
    b"/../planted.txt", b"/docs/../../planted.txt", b"/%2e%2e/planted.txt", b"/..%2fplanted.txt",
    b"//tmp/planted.txt", b"http://x/../planted.txt",
])
def test_allowed_upload_never_escapes_by_traversal(server, site, target):
    reply = raw_request(server, b"PUT " + target + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                b"Connection: close\r\n\r\nhello")
    written_outside = [p for p in site.parent.rglob("planted.txt") if site not in p.parents]
    assert not written_outside and not os.path.exists("/tmp/planted.txt")
    # Either refused, or (for "//tmp/...", whose "tmp" is a host name to urlsplit) stored inside.
    assert reply.startswith(b"HTTP/1.1 403 ") or list(site.rglob("planted.txt"))


def test_allowed_upload_never_escapes_through_symlinks(server, site):
    outside = site.parent / "outside"
    outside.mkdir()
    (site / "linked-dir").symlink_to(outside)  # a directory link leading out
    (site / "linked-file").symlink_to(site.parent / "secret.txt")  # a file link leading out
    (site / "dangling").symlink_to(site.parent / "created-by-upload.txt")  # to a file not yet there
    for path in ["/linked-dir/planted.txt", "/linked-file", "/dangling"]:
        status, _, _ = request(server, "PUT", path, body=b"planted")
        assert status == 403, path
    assert list(outside.iterdir()) == []
    assert (site.parent / "secret.txt").read_text() == "outside the site\n"
    assert not (site.parent / "created-by-upload.txt").exists()


def test_put_onto_a_directory_is_409(server):
    status, _, _ = request(server, "PUT", "/docs", body=b"x")
    assert status == 409


def test_a_file_is_read_in_reads_no_larger_than_what_is_left_of_it(site, serve_on_loopback, monkeypatch):
    """Every read asks for at most the rest of the announced length plus one byte (to see a file
    that grew): a small file's request never makes a chunk-sized buffer (a read allocates all it is
    asked for first: ~70 us a request on PyPy with 1 MiB chunks). The body is the same."""
    asked = []
    real_open = open

    class CountedFile:
        def __init__(self, file):
            self.file = file

        def read(self, size=-1):
            asked.append(size)
            return self.file.read(size)

        def __getattr__(self, name):
            return getattr(self.file, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            return self.file.__exit__(*exc_info)

    monkeypatch.setattr("builtins.open", lambda *arguments, **options: CountedFile(real_open(*arguments, **options)))
    (site / "three.bin").write_bytes(b"x" * (2 * 1000 + 10))
    server = serve_on_loopback(HttpFileServer(site, chunk_size=1000))
    assert request(server, "GET", "/notes.txt")[2] == b"plain text\n"
    assert server.handlers_finished.acquire(timeout=10)  # the client can have the body before the last read
    assert asked == [12, 1]
    asked.clear()
    assert request(server, "GET", "/three.bin")[2] == b"x" * 2010
    assert server.handlers_finished.acquire(timeout=10)
    assert asked == [1000, 1000, 11, 1]


@pytest.fixture
def big_file(site):
    data = os.urandom(TWENTY_MEGABYTES)
    (site / "big.bin").write_bytes(data)
    return hashlib.sha256(data).hexdigest()


@curl_missing
def test_curl_downloads_20_megabytes_intact(server, big_file, tmp_path):
    output = tmp_path / "downloaded.bin"
    result = subprocess.run(["curl", "-sS", "--fail", "-o", str(output), f"http://127.0.0.1:{server.port}/big.bin"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(output.read_bytes()).hexdigest() == big_file


@curl_missing
def test_curl_uploads_20_megabytes_intact(server, site, tmp_path):
    data = os.urandom(TWENTY_MEGABYTES)
    source = tmp_path / "upload.bin"
    source.write_bytes(data)
    # curl -T sends "Expect: 100-continue" for a body this large: the server must answer it.
    result = subprocess.run(["curl", "-sS", "--fail", "-T", str(source), "-w", "%{http_code}",
                             f"http://127.0.0.1:{server.port}/incoming/upload.bin"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("201")
    stored = site / "incoming" / "upload.bin"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_http_client_round_trips_20_megabytes(server, site):
    data = os.urandom(TWENTY_MEGABYTES)
    status, _, _ = request(server, "POST", "/roundtrip.bin", body=data)
    assert status == 201
    status, _, body = request(server, "GET", "/roundtrip.bin")
    assert status == 200
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()


def test_large_download_is_paced_by_drain(site, big_file, serve_on_loopback):
    """While the client reads slowly, the server must hold at most about one chunk plus the
    transport's high-water mark in memory, not the whole file (backpressure through drain())."""
    largest_buffer = 0

    class MeasuringWriter:
        def __init__(self, writer):
            self._writer = writer

        def write(self, data):
            nonlocal largest_buffer
            self._writer.write(data)
            largest_buffer = max(largest_buffer, self._writer.transport.get_write_buffer_size())

        def __getattr__(self, name):
            return getattr(self._writer, name)

    files = HttpFileServer(site)

    async def handler(reader, writer):
        await files(reader, MeasuringWriter(writer))

    server = serve_on_loopback(handler)
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.settimeout(30)
        client.connect(("127.0.0.1", server.port))
        client.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        digest = hashlib.sha256()
        received = b""
        while chunk := client.recv(16384):
            received += chunk
            if b"\r\n\r\n" in received:
                digest.update(received.split(b"\r\n\r\n", 1)[1])
                break
        while chunk := client.recv(16384):
            digest.update(chunk)
    assert digest.hexdigest() == big_file
    # One chunk (1 MiB) and the high-water mark at most: not the whole 20 MB file.
    assert largest_buffer <= CHUNK_SIZE + 2 * 65536, f"the server buffered {largest_buffer} bytes"


def test_idle_keep_alive_connection_is_closed_after_the_timeout(site, serve_on_loopback):
    server = serve_on_loopback(HttpFileServer(site, keep_alive_timeout=0.2))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
        client.sendall(b"GET /notes.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while not reply.endswith(b"plain text\n"):
            reply += client.recv(65536)
        # Now idle: the server closes the connection by itself (recv returns b"" = its FIN),
        # well before this socket's own 10 s timeout.
        assert client.recv(65536) == b""
    server.wait_handler_finished()
    assert reply.startswith(b"HTTP/1.1 200 ")
