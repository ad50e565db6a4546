"""The blocking socket facade (ustack.sock) over IPv6: AF_INET6 sockets, the standard 4-tuples,
v4-mapped addresses on a dual-stack host, and the errors the socket module raises. The tuple
shapes are checked against the kernel's own sockets on ::1 (loopback only)."""

from __future__ import annotations

import errno
import random
import socket

import pytest

from test_sock import HANG_GUARD, Background, wait_idle
from twohosts import A_ADDRESS, B_ADDRESS, FAST_CONFIG
from ustack import sock
from ustack.link import FaultInjector, Faults, MemoryLink
from ustack.stack import Stack
from ustack.wire.ipv4 import address_value

A6, B6 = "fd00:77::1", "fd00:77::2"


@pytest.fixture
def networks(seed):
    """Two dual-stack hosts (A: 10.77.0.1 + fd00:77::1, B: 10.77.0.2 + fd00:77::2), 2% loss each way."""
    memory_a, memory_b = MemoryLink.pair()
    link_a = FaultInjector(memory_a, seed=seed, inbound=Faults(drop=0.02))
    link_b = FaultInjector(memory_b, seed=seed + 1, inbound=Faults(drop=0.02))
    stack_a = Stack(address_value(A_ADDRESS), FAST_CONFIG, address6=A6, mtu=link_a.mtu, port_seed=seed)
    stack_b = Stack(address_value(B_ADDRESS), FAST_CONFIG, address6=B6, mtu=link_b.mtu, port_seed=seed + 1)
    network_a = sock.Network(stack_a, link_a, default_timeout=HANG_GUARD)
    network_b = sock.Network(stack_b, link_b, default_timeout=HANG_GUARD)
    try:
        yield network_a, network_b
    finally:
        network_a.close()
        network_b.close()
        link_a.close()
        link_b.close()


def test_echo_over_af_inet6_with_four_tuples(networks, seed):
    network_a, network_b = networks
    payload = random.Random(seed).randbytes(200_000)
    listening = network_b.socket(socket.AF_INET6)
    listening.bind(("::", 0))
    listening.listen()
    port = listening.getsockname()[1]
    assert listening.getsockname() == ("::", port, 0, 0)

    def serve_one():
        connection, address = listening.accept()
        with connection:
            names = (connection.getsockname(), connection.getpeername())
            while data := connection.recv(65536):
                connection.sendall(data)
        return address, names

    server = Background(serve_one)
    with sock.create_connection((B6, port), timeout=10, network=network_a) as client:
        assert client.family == socket.AF_INET6
        sending = Background(client.sendall, payload)
        received = client.recv(len(payload), sock.MSG_WAITALL)
        sending.result()
        client.shutdown(sock.SHUT_WR)
        assert client.recv(10) == b""
        assert client.getpeername() == (B6, port, 0, 0)
        client_name = client.getsockname()
        assert client_name[0] == A6 and client_name[2:] == (0, 0)
    assert received == payload
    address, (server_name, server_peer) = server.result()
    assert address == server_peer == client_name
    assert server_name == (B6, port, 0, 0)
    listening.close()
    wait_idle(network_a)
    wait_idle(network_b)


def test_dual_stack_listener_shows_ipv4_peers_v4_mapped(networks):
    """As Linux with IPV6_V6ONLY off: an AF_INET6 listener on "::" accepts IPv4 too, and an AF_INET6
    client reaches IPv4 through ::ffff:a.b.c.d (RFC 4291 2.5.5.2)."""
    network_a, network_b = networks
    listening = sock.create_server(("::", 8080), family=socket.AF_INET6, dualstack_ipv6=True, network=network_b)
    assert listening.getsockopt(sock.IPPROTO_IPV6, sock.IPV6_V6ONLY) == 0
    plain = sock.create_connection((B_ADDRESS, 8080), timeout=10, network=network_a)
    accepted, address = listening.accept()
    assert plain.family == socket.AF_INET and plain.getpeername() == (B_ADDRESS, 8080)
    assert address == ("::ffff:" + A_ADDRESS, plain.getsockname()[1], 0, 0)
    assert accepted.getsockname() == ("::ffff:" + B_ADDRESS, 8080, 0, 0)

    mapped = network_a.socket(socket.AF_INET6)
    mapped.connect(("::ffff:" + B_ADDRESS, 8080))
    second, second_address = listening.accept()
    assert mapped.getpeername() == ("::ffff:" + B_ADDRESS, 8080, 0, 0)
    assert second_address == mapped.getsockname() and second_address[0] == "::ffff:" + A_ADDRESS
    mapped.sendall(b"over IPv4")
    assert second.recv(100) == b"over IPv4"
    for each in (plain, accepted, mapped, second, listening):
        each.close()


def test_bind_and_connect_errors_follow_the_socket_module(networks):
    network_a, network_b = networks
    six = network_a.socket(socket.AF_INET6)
    assert six.getsockname() == ("::", 0, 0, 0)
    for call in (six.bind, six.connect):
        with pytest.raises(socket.gaierror) as caught:
            call((B_ADDRESS, 80))  # an IPv4 literal on an AF_INET6 socket, as the socket module answers
        assert caught.value.errno == socket.EAI_ADDRFAMILY
    with pytest.raises(socket.gaierror):
        network_a.socket().connect((B6, 80))
    with pytest.raises(TypeError, match="AF_INET6 address must be a tuple"):
        six.bind((A6,))
    with pytest.raises(TypeError):
        six.bind((A6, 0, 0, 0, 0))
    with pytest.raises(OverflowError):
        six.bind((A6, 0, 1 << 20))
    with pytest.raises(OSError) as caught:
        six.bind(("fd00:99::1", 0))
    assert caught.value.errno == errno.EADDRNOTAVAIL
    six.bind((A6, 0, 0, 0))
    assert six.getsockname()[0] == A6 and six.getsockname()[2:] == (0, 0) and six.getsockname()[1] > 0
    with pytest.raises(ConnectionRefusedError):
        six.connect((B6, 9))  # nobody listens: B answers the SYN with RST
    six.close()
    with pytest.raises(OSError) as caught:
        network_a.socket(socket.AF_UNIX)
    assert caught.value.errno == errno.EAFNOSUPPORT
    wait_idle(network_a)


def test_getaddrinfo_and_create_server_for_numeric_ipv6(networks):
    network_a, network_b = networks
    assert sock.getaddrinfo(B6, "http") == [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (B6, 80, 0, 0))]
    assert sock.getaddrinfo(None, 80, socket.AF_INET6, flags=socket.AI_PASSIVE)[0][4] == ("::", 80, 0, 0)
    for host, family in ((B_ADDRESS, socket.AF_INET6), (B6, socket.AF_INET)):
        with pytest.raises(socket.gaierror) as caught:
            sock.getaddrinfo(host, 80, family)
        assert caught.value.errno == socket.EAI_ADDRFAMILY
    with pytest.raises(ValueError, match="requires AF_INET6"):
        sock.create_server(("", 0), dualstack_ipv6=True, network=network_b)
    server = sock.create_server((B6, 0), family=socket.AF_INET6, network=network_b)
    port = server.getsockname()[1]
    assert server.getsockname() == (B6, port, 0, 0)
    with sock.create_connection((B6, port), timeout=10, network=network_a) as client:
        accepted, _ = server.accept()
        accepted.sendall(b"hello")
        assert client.recv(5, sock.MSG_WAITALL) == b"hello"
        accepted.close()
    with pytest.raises(ConnectionRefusedError):
        sock.create_connection((B_ADDRESS, port), timeout=10, network=network_a)  # B listens on its IPv6 address only
    server.close()


def _kernel_shapes() -> dict:
    """The same calls on the kernel's sockets over ::1 (loopback, nothing leaves the host)."""
    shapes = {}
    with socket.socket(socket.AF_INET6) as listening:
        shapes["unbound"] = listening.getsockname()
        listening.bind(("::", 0))
        listening.listen()
        port = listening.getsockname()[1]
        shapes["listening"] = listening.getsockname()[:1] + listening.getsockname()[2:]
        with socket.create_connection(("::1", port)) as client:
            accepted, address = listening.accept()
            with accepted:
                shapes["accepted"] = (len(address), address == client.getsockname(), client.family,
                                      accepted.getsockname()[1] == port, client.getpeername()[2:])
        for host in ("127.0.0.1",):
            try:
                socket.socket(socket.AF_INET6).connect((host, port))
            except socket.gaierror as error:
                shapes["ipv4 literal"] = (type(error), error.errno)
    return shapes


def test_tuple_shapes_match_the_kernel_socket_module(networks):
    network_a, network_b = networks
    ours = {}
    listening = network_b.socket(socket.AF_INET6)
    ours["unbound"] = listening.getsockname()
    listening.bind(("::", 0))
    listening.listen()
    port = listening.getsockname()[1]
    ours["listening"] = listening.getsockname()[:1] + listening.getsockname()[2:]
    with sock.create_connection((B6, port), network=network_a) as client:
        accepted, address = listening.accept()
        with accepted:
            ours["accepted"] = (len(address), address == client.getsockname(), client.family,
                                accepted.getsockname()[1] == port, client.getpeername()[2:])
    try:
        network_a.socket(socket.AF_INET6).connect((B_ADDRESS, port))
    except socket.gaierror as error:
        ours["ipv4 literal"] = (type(error), error.errno)
    listening.close()
    assert ours == _kernel_shapes()


def test_ipv6_v6only_and_af_inet_listeners_keep_to_their_family(networks):
    """Linux's rules on a dual-stack host: an AF_INET listener never sees IPv6, an IPV6_V6ONLY one
    never IPv4 (and cannot connect to a v4-mapped address: ENETUNREACH); the option is set before bind."""
    network_a, network_b = networks
    only_four = network_b.socket()
    only_four.bind(("", 9004))
    only_four.listen()
    only_six = network_b.socket(socket.AF_INET6)
    assert only_six.getsockopt(sock.IPPROTO_IPV6, sock.IPV6_V6ONLY) == 0
    only_six.setsockopt(sock.IPPROTO_IPV6, sock.IPV6_V6ONLY, 1)
    assert only_six.getsockopt(sock.IPPROTO_IPV6, sock.IPV6_V6ONLY) == 1
    only_six.bind(("::", 9006))
    only_six.listen()
    assert only_six.getsockname() == ("::", 9006, 0, 0) and only_four.getsockname() == ("0.0.0.0", 9004)
    with pytest.raises(ConnectionRefusedError):
        sock.create_connection((B6, 9004), timeout=10, network=network_a)
    with pytest.raises(ConnectionRefusedError):
        sock.create_connection((B_ADDRESS, 9006), timeout=10, network=network_a)
    with sock.create_connection((B6, 9006), timeout=10, network=network_a), \
         sock.create_connection((B_ADDRESS, 9004), timeout=10, network=network_a):
        assert only_six.accept()[1][0] == A6
        four_address = only_four.accept()[1]
        assert len(four_address) == 2 and four_address[0] == A_ADDRESS

    errors = {}
    for name, action in [
        ("set after bind", lambda: only_six.setsockopt(sock.IPPROTO_IPV6, sock.IPV6_V6ONLY, 0)),
        ("set on AF_INET", lambda: network_a.socket().setsockopt(sock.IPPROTO_IPV6, sock.IPV6_V6ONLY, 1)),
        ("get on AF_INET", lambda: network_a.socket().getsockopt(sock.IPPROTO_IPV6, sock.IPV6_V6ONLY)),
    ]:
        with pytest.raises(OSError) as caught:
            action()
        errors[name] = caught.value.errno
    v6_only = network_a.socket(socket.AF_INET6)
    v6_only.setsockopt(sock.IPPROTO_IPV6, sock.IPV6_V6ONLY, 1)
    with pytest.raises(OSError) as caught:
        v6_only.connect(("::ffff:" + B_ADDRESS, 9004))
    errors["mapped connect"] = caught.value.errno
    assert errors == {"set after bind": errno.EINVAL, "set on AF_INET": errno.ENOPROTOOPT,
                      "get on AF_INET": errno.EOPNOTSUPP, "mapped connect": errno.ENETUNREACH}
    for each in (only_four, only_six, v6_only):
        each.close()
