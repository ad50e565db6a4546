"""The blocking socket facade (ustack.sock), used from ordinary threads."""

from __future__ import annotations

import errno
import random
import socket
import struct
import threading

import pytest

from twohosts import A_ADDRESS, B_ADDRESS, FAST_CONFIG, make_host
from ustack import sock
from ustack.link import FaultInjector, Faults, MemoryLink
from ustack.tcp.state import State

JOIN_TIMEOUT = 30.0  # a hang guard, never a measurement
HANG_GUARD = 20.0


@pytest.fixture
def networks(seed):
    """Two hosts, each with its blocking-socket Network, 2% of packets lost each way."""
    yield from _networks(seed, loss=0.02)


@pytest.fixture
def lossless_networks(seed):
    """For tests about a single RST: TCP never retransmits one, so a lost RST is never known."""
    yield from _networks(seed, loss=0.0)


def _networks(seed, loss):
    memory_a, memory_b = MemoryLink.pair()
    link_a = FaultInjector(memory_a, seed=seed, inbound=Faults(drop=loss))
    link_b = FaultInjector(memory_b, seed=seed + 1, inbound=Faults(drop=loss))
    # Every socket call gets a hang guard; tests that need another timeout set their own.
    network_a = sock.Network(make_host(A_ADDRESS, link_a, FAST_CONFIG, seed), link_a, default_timeout=HANG_GUARD)
    network_b = sock.Network(make_host(B_ADDRESS, link_b, FAST_CONFIG, seed + 1), link_b, default_timeout=HANG_GUARD)
    try:
        yield network_a, network_b
    finally:
        network_a.close()
        network_b.close()
        link_a.close()
        link_b.close()


class Background:
    """Run `function` in a thread; `result()` joins it and re-raises what it raised."""

    def __init__(self, function, *args):
        self._outcome: list = []
        self._thread = threading.Thread(target=self._run, args=(function, args), daemon=True)
        self._thread.start()

    def _run(self, function, args):
        try:
            self._outcome.append(("value", function(*args)))
        except BaseException as error:  # handed to the test thread
            self._outcome.append(("error", error))

    def result(self):
        self._thread.join(JOIN_TIMEOUT)
        assert not self._thread.is_alive(), "background thread hung"
        kind, value = self._outcome[0]
        if kind == "error":
            raise value
        return value


def wait_idle(network: sock.Network) -> None:
    stack = network.stack
    network.call(network.runtime.wait_until(lambda: not stack.connections and stack.next_deadline() is None, 10.0))
    assert not network.runtime.timer_armed


def connected_pair(networks, port: int):
    """B listens on `port`, A connects with create_connection, B accepts:
    (listening, client, server_side)."""
    network_a, network_b = networks
    listening = network_b.socket()
    listening.bind(("", port))
    listening.listen()
    client = sock.create_connection((B_ADDRESS, port), timeout=10, network=network_a)
    server_side, _ = listening.accept()
    return listening, client, server_side


def echo_from_threads(networks, payload: bytes) -> tuple[bytes, tuple]:
    """B echoes one connection from a thread; A sends `payload` from another thread while this
    one receives the echo. Returns (the echo, the client address B's accept() gave)."""
    network_a, network_b = networks
    listening = network_b.socket()
    listening.bind(("", 7))
    listening.listen(5)

    def serve_one():
        connection, address = listening.accept()
        with connection:
            while data := connection.recv(65536):
                connection.sendall(data)
        return address

    server = Background(serve_one)
    with sock.create_connection((B_ADDRESS, 7), timeout=10, network=network_a) as client:
        sending = Background(client.sendall, payload)
        received = bytearray()
        while len(received) < len(payload):
            data = client.recv(65536)
            assert data, "the echo ended early"
            received.extend(data)
        sending.result()
        client.shutdown(sock.SHUT_WR)
        assert client.recv(10) == b""  # the server closes after our FIN
        assert client.getpeername() == (B_ADDRESS, 7)
    address = server.result()
    listening.close()
    return bytes(received), address


def test_blocking_echo_from_threads(networks, seed):
    payload = random.Random(seed).randbytes(300_000)
    received, address = echo_from_threads(networks, payload)
    assert received == payload
    assert address[0] == A_ADDRESS
    wait_idle(networks[0])
    wait_idle(networks[1])


def test_recv_times_out_with_etimedout_and_loses_nothing(networks):
    network_a, network_b = networks
    listening = network_b.socket()
    listening.bind((B_ADDRESS, 8000))
    listening.listen()
    client = network_a.socket()
    client.connect((B_ADDRESS, 8000))
    server_side, _ = listening.accept()
    client.settimeout(0.2)
    with pytest.raises(TimeoutError) as caught:
        client.recv(100)
    assert caught.value.errno == errno.ETIMEDOUT
    server_side.sendall(b"late")
    client.settimeout(10)
    assert client.recv(100) == b"late"
    for each in (client, server_side, listening):
        each.close()


def test_accept_times_out_and_connections_wait_in_the_accept_queue(networks):
    network_a, network_b = networks
    listening = network_b.socket()
    listening.bind(("", 8001))
    listening.listen(4)
    listening.settimeout(0.1)
    with pytest.raises(TimeoutError) as caught:
        listening.accept()
    assert caught.value.errno == errno.ETIMEDOUT
    client = sock.create_connection((B_ADDRESS, 8001), timeout=10, network=network_a)
    client.sendall(b"early")
    # The handshake completed in the core, but nobody called accept(): no transport yet.
    assert not network_b.runtime._transports
    listening.settimeout(10)
    server_side, address = listening.accept()
    assert address == client.getsockname()
    assert server_side.recv(5) == b"early"
    for each in (client, server_side, listening):
        each.close()


def test_connect_to_a_closed_port_is_econnrefused(networks):
    network_a, _ = networks
    client = network_a.socket()
    client.settimeout(10)
    with pytest.raises(ConnectionRefusedError) as caught:
        client.connect((B_ADDRESS, 9))
    assert caught.value.errno == errno.ECONNREFUSED
    assert network_a.socket().connect_ex((B_ADDRESS, 9)) == errno.ECONNREFUSED


def test_binding_a_listening_port_is_eaddrinuse(networks):
    _, network_b = networks
    first = network_b.socket()
    first.bind(("", 7))
    first.listen()
    second = network_b.socket()
    with pytest.raises(OSError) as caught:
        second.bind(("", 7))
    assert caught.value.errno == errno.EADDRINUSE
    first.close()
    second.bind(("", 7))  # free again once the first socket is closed
    second.listen()
    second.close()


def test_reset_is_econnreset_then_sending_is_epipe(lossless_networks):
    listening, client, server_side = connected_pair(lossless_networks, 8002)
    server_side.setsockopt(sock.SOL_SOCKET, sock.SO_LINGER, struct.pack("ii", 1, 0))
    server_side.close()  # SO_LINGER on with 0 seconds: an abortive close, RST
    with pytest.raises(ConnectionResetError) as caught:
        client.recv(10)
    assert caught.value.errno == errno.ECONNRESET
    with pytest.raises(BrokenPipeError) as caught:
        client.send(b"anyone?")
    assert caught.value.errno == errno.EPIPE
    client.close()
    listening.close()


def test_send_after_shutdown_is_epipe(networks):
    listening, client, server_side = connected_pair(networks, 8003)
    client.shutdown(sock.SHUT_WR)
    with pytest.raises(BrokenPipeError) as caught:
        client.send(b"x")
    assert caught.value.errno == errno.EPIPE
    assert server_side.recv(10) == b""  # the server sees our FIN
    server_side.sendall(b"still open this way")
    assert client.recv(100) == b"still open this way"
    for each in (client, server_side, listening):
        each.close()


def test_socket_options_reach_the_connection(networks):
    network_a, network_b = networks
    listening = network_b.socket()
    listening.setsockopt(sock.SOL_SOCKET, sock.SO_RCVBUF, 16384)
    listening.bind(("", 8004))
    listening.listen()
    client = network_a.socket()
    client.setsockopt(sock.SOL_SOCKET, sock.SO_SNDBUF, 32768)
    client.setsockopt(sock.SOL_SOCKET, sock.SO_KEEPALIVE, 1)
    client.settimeout(10)
    client.connect((B_ADDRESS, 8004))
    server_side, _ = listening.accept()
    client_connection = client._stream.transport.get_extra_info("connection")
    server_connection = server_side._stream.transport.get_extra_info("connection")
    assert client_connection.config.send_buffer_size == 32768
    assert client_connection.config.keepalive is True
    assert server_connection.config.receive_buffer_size == 16384
    assert client.getsockopt(sock.SOL_SOCKET, sock.SO_SNDBUF) == 32768
    assert client.getsockopt(sock.IPPROTO_TCP, sock.TCP_NODELAY) == 0
    client.setsockopt(sock.IPPROTO_TCP, sock.TCP_NODELAY, 1)  # live, on a connected socket
    assert client_connection.config.nagle is False
    assert client.getsockopt(sock.IPPROTO_TCP, sock.TCP_NODELAY) == 1
    with pytest.raises(OSError) as caught:
        client.setsockopt(sock.SOL_SOCKET, socket.SO_BROADCAST, 1)
    assert caught.value.errno == errno.ENOPROTOOPT
    for each in (client, server_side, listening):
        each.close()


@pytest.mark.parametrize("call", ["bind", "connect"])
@pytest.mark.parametrize("address, error", [
    (("", -1), OverflowError),
    (("", 70000), OverflowError),
    (("", "80"), TypeError),
    ("10.77.0.1", TypeError),
    (("10.77.0.1", 80, 0), TypeError),
])
def test_bad_addresses_raise_what_the_socket_module_raises(networks, call, address, error):
    # The same exception a kernel socket gives (checked beside it), and nothing bound: a bad port
    # must not be taken as "port -1" and refuse the next, good bind().
    network_a, _ = networks
    kernel_socket = socket.socket()
    try:
        with pytest.raises(error):
            getattr(kernel_socket, call)(address)
    finally:
        kernel_socket.close()
    ours = network_a.socket()
    with pytest.raises(error):
        getattr(ours, call)(address)
    if call == "bind":
        ours.bind(("", 8090))
        assert ours.getsockname() == ("0.0.0.0", 8090)  # as a kernel socket says it
    ours.close()


def test_closed_socket_is_ebadf(networks):
    network_a, _ = networks
    client = network_a.socket()
    client.close()
    with pytest.raises(OSError) as caught:
        client.connect((B_ADDRESS, 7))
    assert caught.value.errno == errno.EBADF


def test_non_blocking_recv_is_eagain_until_data_arrives(networks):
    listening, client, server_side = connected_pair(networks, 8005)
    client.setblocking(False)
    with pytest.raises(BlockingIOError) as caught:
        client.recv(10)
    assert caught.value.errno == errno.EAGAIN
    server_side.sendall(b"now")
    client.settimeout(10)
    assert client.recv(10) == b"now"
    for each in (client, server_side, listening):
        each.close()


def test_keepalive_switched_on_in_close_wait_detects_a_dead_peer(lossless_networks):
    """RFC 1122 4.2.3.6: keepalive runs in CLOSE-WAIT too (the peer half-closed, we may still send).
    Switched on there, the core arms its timer and, the peer gone, aborts with ETIMEDOUT. Lossless,
    so B's FIN is acknowledged before B goes dark and no retransmitted FIN resets the idle time."""
    network_a, network_b = lossless_networks
    listening, client, server_side = connected_pair(lossless_networks, 8008)
    client_connection = client._stream.transport.get_extra_info("connection")
    server_connection = server_side._stream.transport.get_extra_info("connection")
    server_side.shutdown(sock.SHUT_WR)
    assert client.recv(10) == b""  # B's FIN: A is in CLOSE-WAIT
    network_b.call(network_b.runtime.wait_until(lambda: server_connection.state is State.FIN_WAIT_2, 10.0))
    network_b.link.drop_when(lambda packet: True, count=1_000_000, direction="inbound")  # B goes dark
    assert client_connection.state is State.CLOSE_WAIT
    client.setsockopt(sock.IPPROTO_TCP, sock.TCP_KEEPIDLE, 0.2)
    client.setsockopt(sock.IPPROTO_TCP, sock.TCP_KEEPINTVL, 0.1)
    client.setsockopt(sock.IPPROTO_TCP, sock.TCP_KEEPCNT, 2)
    client.setsockopt(sock.SOL_SOCKET, sock.SO_KEEPALIVE, 1)
    network_a.call(network_a.runtime.wait_until(lambda: client_connection.state is State.CLOSED, 10.0))
    assert client.getsockopt(sock.SOL_SOCKET, sock.SO_ERROR) == errno.ETIMEDOUT
    for each in (client, server_side, listening):
        each.close()


def test_keepalive_switched_on_after_connect_detects_a_dead_peer(networks):
    _, network_b = networks
    listening, client, server_side = connected_pair(networks, 8006)
    client.setsockopt(sock.IPPROTO_TCP, sock.TCP_KEEPIDLE, 0.2)
    client.setsockopt(sock.IPPROTO_TCP, sock.TCP_KEEPINTVL, 0.1)
    client.setsockopt(sock.IPPROTO_TCP, sock.TCP_KEEPCNT, 2)
    client.setsockopt(sock.SOL_SOCKET, sock.SO_KEEPALIVE, 1)
    assert client.getsockopt(sock.IPPROTO_TCP, sock.TCP_KEEPCNT) == 2
    network_b.link.drop_when(lambda packet: True, count=1_000_000, direction="inbound")  # B goes dark
    with pytest.raises(TimeoutError) as caught:
        client.recv(10)  # only keepalive can end this wait before the hang guard
    assert caught.value.errno == errno.ETIMEDOUT
    assert caught.value.strerror == "Connection timed out"  # the core's, not the socket timeout's
    for each in (client, server_side, listening):
        each.close()
