"""The same small programs on Python's `socket` module (the kernel, over 127.0.0.1) and on
`ustack.sock` (two ustack hosts over a memory link), with their results compared: an echo through
makefile(), recv flags, select() on fileno(), sendfile, socketserver.TCPServer and http.client.

Each program gets a Backend: `listen()` gives a listening socket, `connect(address)` a client
socket, `server_class` a socketserver.TCPServer that listens on the backend."""

from __future__ import annotations

import errno
import functools
import http.client
import http.server
import io
import select
import selectors
import socket
import socketserver
import threading

import pytest

from twohosts import A_ADDRESS, B_ADDRESS, FAST_CONFIG, make_host
from ustack import sock
from ustack.link import MemoryLink

JOIN_TIMEOUT = 20.0  # a hang guard, never a measurement


class KernelBackend:
    name = "kernel"

    def listen(self):
        return socket.create_server(("127.0.0.1", 0))

    def connect(self, address):
        return socket.create_connection(address, timeout=JOIN_TIMEOUT)

    def server(self, handler):
        return socketserver.TCPServer(("127.0.0.1", 0), handler)

    def http_connection(self, address):
        return http.client.HTTPConnection(*address, timeout=JOIN_TIMEOUT)

    def close(self):
        pass


class UstackBackend:
    name = "ustack"

    def __init__(self):
        self.link_a, self.link_b = MemoryLink.pair()
        self.client = sock.Network(make_host(A_ADDRESS, self.link_a, FAST_CONFIG, 1), self.link_a, default_timeout=JOIN_TIMEOUT)
        self.host = sock.Network(make_host(B_ADDRESS, self.link_b, FAST_CONFIG, 2), self.link_b, default_timeout=JOIN_TIMEOUT)

    def listen(self):
        return sock.create_server((B_ADDRESS, 0), network=self.host)

    def connect(self, address):
        return sock.create_connection(address, timeout=JOIN_TIMEOUT, network=self.client)

    def server(self, handler):
        network = self.host

        class UstackTCPServer(socketserver.TCPServer):
            def __init__(self):
                super().__init__((B_ADDRESS, 0), handler, bind_and_activate=False)
                self.socket.close()  # the kernel socket TCPServer made: ours instead
                self.socket = network.socket()
                self.server_bind()
                self.server_activate()

        return UstackTCPServer()

    def http_connection(self, address):
        connection = http.client.HTTPConnection(*address, timeout=JOIN_TIMEOUT)
        connection._create_connection = functools.partial(sock.create_connection, network=self.client)
        return connection

    def close(self):
        self.client.close()
        self.host.close()
        self.link_a.close()
        self.link_b.close()


@pytest.fixture(params=["kernel", "ustack"])
def backend(request, monkeypatch, tmp_path):
    monkeypatch.setenv("USTACK_RUN_DIR", str(tmp_path))
    chosen = KernelBackend() if request.param == "kernel" else UstackBackend()
    yield chosen
    chosen.close()


def in_thread(function, *args):
    """Run function(*args) in a thread; the returned callable joins it and gives its result."""
    outcome = []

    def run():
        try:
            outcome.append((True, function(*args)))
        except BaseException as error:
            outcome.append((False, error))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def result():
        thread.join(JOIN_TIMEOUT)
        assert outcome, "thread hung"
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    return result


RESULTS: dict[str, dict[str, object]] = {}


def record(backend, program, result):
    """Keep one program's result per backend; once both ran, they must be equal."""
    results = RESULTS.setdefault(program, {})
    results[backend.name] = result
    if len(results) == 2:
        assert results["kernel"] == results["ustack"], f"{program}: the kernel and ustack disagree"


# --- the programs ---------------------------------------------------------------------------------
def test_line_protocol_through_makefile(backend):
    listening = backend.listen()
    address = listening.getsockname()

    def serve():
        connection, _ = listening.accept()
        assert f"laddr={connection.getsockname()}" in repr(connection)  # the accepted socket's own address
        with connection, connection.makefile("rb") as lines, connection.makefile("wb") as replies:
            count = 0
            for line in lines:
                count += 1
                replies.write(b"%d %s" % (count, line.upper()))
                replies.flush()
        return count

    served = in_thread(serve)
    with backend.connect(address) as client, client.makefile("rw", encoding="ascii", newline="\n") as stream:
        answers = []
        for word in ("alpha", "beta", "gamma"):
            stream.write(word + "\n")
            stream.flush()
            answers.append(stream.readline())
        client.shutdown(socket.SHUT_WR)
        assert stream.read() == ""
    result = (answers, served())
    listening.close()
    assert result == (["1 ALPHA\n", "2 BETA\n", "3 GAMMA\n"], 3)
    record(backend, "line protocol", result)


def test_recv_flags_and_recv_into(backend):
    listening = backend.listen()
    client = backend.connect(listening.getsockname())
    server_side, _ = listening.accept()
    outcome = []
    with pytest.raises(BlockingIOError) as raised:
        server_side.recv(10, socket.MSG_DONTWAIT)
    outcome.append(raised.value.errno == errno.EAGAIN)
    client.sendall(b"0123456789")
    outcome.append(server_side.recv(4, socket.MSG_PEEK | socket.MSG_WAITALL))
    outcome.append(server_side.recv(4, socket.MSG_PEEK))  # still there
    waiting = in_thread(server_side.recv, 15, socket.MSG_WAITALL)  # needs data not sent yet
    client.sendall(b"abcde")
    outcome.append(waiting())
    buffer = bytearray(8)
    client.sendall(b"xyz")
    outcome.append((server_side.recv_into(buffer, 2), bytes(buffer)))
    outcome.append((server_side.recv_into(memoryview(buffer)[4:]), bytes(buffer)))
    outcome.append(server_side.getblocking())
    server_side.setblocking(False)
    outcome.append(server_side.getblocking())
    client.close()
    server_side.setblocking(True)
    outcome.append(server_side.recv(10, socket.MSG_WAITALL))  # the end of stream cuts it short
    for item in (server_side, listening):
        item.close()
    assert outcome[0] and outcome[1] == b"0123" and outcome[3] == b"0123456789abcde"
    record(backend, "recv flags", outcome)


def test_select_and_selectors_see_readiness(backend):
    listening = backend.listen()
    outcome = []
    outcome.append(select.select([listening], [], [], 0)[0] == [])  # nobody connecting yet
    client = backend.connect(listening.getsockname())
    outcome.append(select.select([listening], [], [], JOIN_TIMEOUT)[0] == [listening])
    server_side, _ = listening.accept()
    outcome.append(select.select([server_side], [server_side], [], 0) == ([], [server_side], []))
    with selectors.DefaultSelector() as selector:
        selector.register(server_side, selectors.EVENT_READ, "data")
        client.sendall(b"ping")
        events = selector.select(JOIN_TIMEOUT)
        outcome.append([key.data for key, _ in events])
        outcome.append(server_side.recv(100))
        outcome.append(selector.select(0))  # all read: not readable any more
        client.shutdown(socket.SHUT_WR)
        outcome.append([key.data for key, _ in selector.select(JOIN_TIMEOUT)])  # the end of stream is readable
        outcome.append(server_side.recv(100))
    for item in (client, server_side, listening):
        item.close()
    outcome.append(listening.fileno())  # -1 once closed
    assert outcome[:5] == [True, True, True, ["data"], b"ping"]
    record(backend, "select", outcome)


def test_select_sees_when_send_would_block(backend):
    listening = backend.listen()
    client = backend.connect(listening.getsockname())
    server_side, _ = listening.accept()
    client.setblocking(False)
    outcome = [select.select([], [client], [], 0)[1] == [client]]  # room to send
    sent = 0
    with pytest.raises(BlockingIOError) as raised:
        for _ in range(10_000):  # the peer reads nothing: the buffers fill, then send() would block
            sent += client.send(bytes(16384))
    outcome.append(raised.value.errno == errno.EAGAIN)
    outcome.append(select.select([], [client], [], 0)[1] == [])  # not writable while it would block
    received = 0
    while received < sent:  # the peer reads it all: room again
        received += len(server_side.recv(1 << 20))
    outcome.append(select.select([], [client], [], JOIN_TIMEOUT)[1] == [client])
    for item in (client, server_side, listening):
        item.close()
    assert outcome == [True, True, True, True]
    record(backend, "select for writing", outcome)


def test_sendfile(backend, tmp_path):
    path = tmp_path / "payload"
    path.write_bytes(bytes(range(256)) * 1000)
    listening = backend.listen()
    client = backend.connect(listening.getsockname())
    server_side, _ = listening.accept()
    received = in_thread(lambda: server_side.makefile("rb").read())
    with open(path, "rb") as file:
        sent = client.sendfile(file, offset=1000, count=200_000)
        position = file.tell()
    client.close()
    data = received()
    server_side.close()
    listening.close()
    assert (sent, position, data) == (200_000, 201_000, path.read_bytes()[1000:201_000])
    record(backend, "sendfile", (sent, position, len(data)))


class Shout(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line.upper())


def test_socketserver_tcpserver(backend):
    with backend.server(Shout) as server:
        serving = in_thread(server.serve_forever, 0.05)
        replies = []
        for word in (b"one\n", b"two\n"):
            with backend.connect(server.server_address) as client, client.makefile("rb") as answers:
                client.sendall(word + word)
                client.shutdown(socket.SHUT_WR)
                replies.append(answers.read())
        server.shutdown()
        serving()
    assert replies == [b"ONE\nONE\n", b"TWO\nTWO\n"]
    record(backend, "socketserver", replies)


class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = f"hello {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_http_client_against_a_socketserver(backend):
    with backend.server(Hello) as server:
        serving = in_thread(server.serve_forever, 0.05)
        connection = backend.http_connection(server.server_address)
        answers = []
        for path in ("/a", "/b"):  # two requests on one kept-alive connection
            connection.request("GET", path)
            response = connection.getresponse()
            answers.append((response.status, response.getheader("Content-Type"), response.read()))
        connection.close()
        server.shutdown()
        serving()
    assert answers == [(200, "text/plain", b"hello /a\n"), (200, "text/plain", b"hello /b\n")]
    record(backend, "http.client", answers)


def test_module_functions(backend):
    if backend.name == "kernel":
        module, info = socket, socket.getaddrinfo("10.77.0.2", "http", socket.AF_INET, socket.SOCK_STREAM)
    else:
        module, info = sock, sock.getaddrinfo("10.77.0.2", "http", socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(socket.gaierror):
        module.getaddrinfo("10.77.0.2", "no-such-service", socket.AF_INET, socket.SOCK_STREAM)
    previous = module.getdefaulttimeout()
    module.setdefaulttimeout(3.5)
    try:
        listening = backend.listen()
        timeout = listening.gettimeout()
        listening.close()
    finally:
        module.setdefaulttimeout(previous)
    result = ([(family, kind, proto, address) for family, kind, proto, _, address in info], timeout)
    if backend.name == "ustack":
        result = (result[0], 3.5 if timeout == JOIN_TIMEOUT else timeout)  # ours has a default_timeout: it wins
    record(backend, "module functions", result)
