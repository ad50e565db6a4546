"""TCP Fast Open on ustack.sock (ustack/sock/fastopen.py) against the kernel's sockets: the same
program runs on Python's `socket` module in a private network namespace (unshare --net, over its
loopback, with net.ipv4.tcp_fastopen=3: client and server) and on two ustack hosts over a memory
link, and their answers must be equal.

The program: a Fast Open listener (TCP_FASTOPEN); a first connect with TCP_FASTOPEN_CONNECT, which
has no cookie yet, so it is an ordinary connect whose SYN asks for one; a second, which returns at
once (the SYN waits), and whose first call, a blocking sendto() WITHOUT MSG_FASTOPEN, sends the
data on the SYN and returns with the handshake; a sendto(MSG_FASTOPEN) on a fresh socket; and a
sendto() on an unconnected socket without it (EPIPE). After each connection it reads how many
active opens had their SYN's data acknowledged: the kernel's TcpExt TCPFastOpenActive counter,
ustack's fast_open_syn_data_acked (tcp/fastopen.py)."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import socket
import subprocess
import sys

from test_sock import HANG_GUARD
from twohosts import A_ADDRESS, B_ADDRESS, FAST_CONFIG, make_host
from ustack import sock
from ustack.link import MemoryLink


def fast_open_program(server_socket, client_socket, host: str, syn_data_acked, names) -> dict:
    """The calls, on any socket API: `server_socket()`/`client_socket()` make sockets, `names`
    gives TCP_FASTOPEN, TCP_FASTOPEN_CONNECT and MSG_FASTOPEN, `syn_data_acked()` the count."""
    TCP_FASTOPEN, TCP_FASTOPEN_CONNECT, MSG_FASTOPEN = names
    answers: dict = {}
    listener = server_socket()
    listener.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN, 5)
    listener.bind((host, 0))
    listener.listen()
    address = listener.getsockname()

    def served() -> bytes:
        connection, _ = listener.accept()
        data = connection.recv(100)
        connection.close()
        return data

    first = client_socket()
    first.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1)
    answers["first connect"] = first.connect(address)  # no cookie yet: the SYN asks for one
    answers["first sendall"] = first.sendall(b"warm-up")
    answers["first served"] = served().decode()
    answers["first: SYN data acked"] = syn_data_acked()
    first.close()

    second = client_socket()
    second.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1)
    answers["option"] = second.getsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT)
    answers["second connect"] = second.connect(address)  # a cookie now: returns at once
    try:
        answers["second peer"] = list(second.getpeername())
    except OSError as error:  # Linux: no peer to name while the SYN waits (inet_getname in SYN-SENT)
        answers["second peer"] = errno.errorcode[error.errno]
    answers["second: SYN data acked before sending"] = syn_data_acked()
    answers["second sendto"] = second.sendto(b"on the SYN", 0, address)  # blocking, no MSG_FASTOPEN
    answers["second: SYN data acked"] = syn_data_acked()  # already: it returned with the handshake
    answers["second served"] = served().decode()
    second.close()

    third = client_socket()
    answers["third sendto"] = third.sendto(b"connect and send", MSG_FASTOPEN, address)
    answers["third: SYN data acked"] = syn_data_acked()
    answers["third served"] = served().decode()
    try:
        third.sendto(b"again", MSG_FASTOPEN, address)
    except OSError as error:
        answers["third sendto MSG_FASTOPEN again"] = errno.errorcode[error.errno]
    third.close()

    fourth = client_socket()
    try:
        fourth.sendto(b"nowhere", 0, address)
    except OSError as error:
        answers["unconnected sendto"] = errno.errorcode[error.errno]
    fourth.close()
    listener.close()
    return answers


KERNEL_PROGRAM = r"""
import json, socket, subprocess
from test_sock_fastopen import fast_open_program
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
subprocess.run(["sysctl", "-qw", "net.ipv4.tcp_fastopen=3"], check=True)

def syn_data_acked():
    lines = open("/proc/net/netstat").read().splitlines()
    names, values = (line.split() for line in lines if line.startswith("TcpExt:"))
    return int(dict(zip(names, values))["TCPFastOpenActive"])

names = (socket.TCP_FASTOPEN, getattr(socket, "TCP_FASTOPEN_CONNECT", 30), socket.MSG_FASTOPEN)
print(json.dumps(fast_open_program(socket.socket, socket.socket, "127.0.0.1", syn_data_acked, names)))
"""


def kernel_answers() -> dict:
    result = subprocess.run(["unshare", "--net", sys.executable, "-c", KERNEL_PROGRAM],
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, f"the kernel's side failed (needs root for unshare --net): {result.stderr}"
    return json.loads(result.stdout)


def ustack_answers() -> dict:
    link_a, link_b = MemoryLink.pair()
    server_config = dataclasses.replace(FAST_CONFIG, fast_open_server=True)  # Linux's tcp_fastopen bit 0x2
    client = sock.Network(make_host(A_ADDRESS, link_a, FAST_CONFIG, 1), link_a, default_timeout=HANG_GUARD)
    server = sock.Network(make_host(B_ADDRESS, link_b, server_config, 2), link_b, default_timeout=HANG_GUARD)
    try:
        def syn_data_acked() -> int:
            return client.stack.fast_open_cookies.counters["fast_open_syn_data_acked"]

        names = (sock.TCP_FASTOPEN, sock.TCP_FASTOPEN_CONNECT, sock.MSG_FASTOPEN)
        return json.loads(json.dumps(fast_open_program(server.socket, client.socket, B_ADDRESS, syn_data_acked, names)))
    finally:
        client.close()
        server.close()
        link_a.close()
        link_b.close()


def test_fast_open_calls_answer_as_the_kernels_do():
    kernel = kernel_answers()
    # What the kernel does, spelled out (so a change of its rules shows here too).
    assert kernel["second connect"] is None and kernel["second: SYN data acked before sending"] == 0
    assert kernel["second sendto"] == len(b"on the SYN") and kernel["second: SYN data acked"] == 1
    assert kernel["third sendto"] == len(b"connect and send") and kernel["third: SYN data acked"] == 2
    assert kernel["unconnected sendto"] == "EPIPE"
    ours = ustack_answers()
    assert kernel["second peer"] == "ENOTCONN"
    assert ours == kernel
