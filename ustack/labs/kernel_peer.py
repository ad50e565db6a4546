"""The kernel's side of a lab: a small program, run inside the lab's namespace, that drives one
ordinary Linux TCP socket on command.

A lab starts it as `ip netns exec NS python3 kernel_peer.py` and talks to it over its stdin and
stdout, one line each way:

    listen 8000          ->  {"ok": true}
    accept               ->  {"ok": true, "peer": "10.77.0.2:40123"}   (blocks until a client)
    (started with --ipv6, its sockets are AF_INET6: "peer": "[fd00:77::2]:40123")
    send 1000            ->  {"ok": true, "sent": 1000}
    recv 100 2.0         ->  {"ok": false, "error": "ECONNRESET", "text": "Connection reset by peer"}

So the lab decides exactly when the kernel connects, sends, shuts down or closes, while ustack
runs in the lab's own event loop. Everything the kernel does is the kernel's ordinary behaviour
for these system calls: this file adds no TCP logic, it only makes the calls a program would.

Standard library only, so it runs under any python3 inside the namespace.
"""

from __future__ import annotations

import errno
import json
import socket
import struct
import sys

PATTERN = b"abcdefghijklmnopqrstuvwxyz0123456789"


def endpoint(address: tuple) -> str:
    """A socket address as ss writes it: 10.77.0.2:40123, [fd00:77::2]:40123."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Peer:
    def __init__(self, family: int = socket.AF_INET) -> None:
        self.family = family  # AF_INET6 with --ipv6: the lab runs over IPv6
        self.listener: socket.socket | None = None
        self.sock: socket.socket | None = None
        self.receive_buffer: int | None = None  # SO_RCVBUF to set before connect/listen

    # --- socket set-up ---------------------------------------------------------------------------
    def _new_socket(self) -> socket.socket:
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.receive_buffer is not None:
            # Before listen/connect, so the window scale offered on the SYN fits the small buffer.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        return sock

    def do_rcvbuf(self, size: str) -> dict:
        self.receive_buffer = int(size)
        if self.sock is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        return {}

    def do_listen(self, port: str, backlog: str = "16") -> dict:
        self.listener = self._new_socket()
        self.listener.bind(("::" if self.family == socket.AF_INET6 else "0.0.0.0", int(port)))
        self.listener.listen(int(backlog))
        return {}

    def do_accept(self, timeout: str = "30") -> dict:
        self.listener.settimeout(float(timeout))
        self.sock, peer = self.listener.accept()
        self.sock.settimeout(None)
        return {"peer": endpoint(peer)}

    def do_close_listener(self) -> dict:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        return {}

    def do_connect(self, host: str, port: str, timeout: str = "30") -> dict:
        self.sock = self._new_socket()
        self.sock.settimeout(float(timeout))
        self.sock.connect((host, int(port)))
        self.sock.settimeout(None)
        local = self.sock.getsockname()
        return {"local": endpoint(local)}

    def do_nodelay(self) -> dict:
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return {}

    # --- data --------------------------------------------------------------------------------------
    def do_send(self, count: str) -> dict:
        data = (PATTERN * (int(count) // len(PATTERN) + 1))[: int(count)]
        self.sock.sendall(data)
        return {"sent": len(data)}

    def do_say(self, *words: str) -> dict:
        data = " ".join(words).encode()
        self.sock.sendall(data)
        return {"sent": len(data)}

    def do_oob(self, byte: str) -> dict:
        # MSG_OOB: the kernel sends this byte with URG set and the urgent pointer after it.
        sent = self.sock.send(byte.encode()[:1], socket.MSG_OOB)
        return {"sent": sent}

    def do_recv(self, count: str = "65536", timeout: str = "10") -> dict:
        self.sock.settimeout(float(timeout))
        try:
            data = self.sock.recv(int(count))
        finally:
            self.sock.settimeout(None)
        return {"received": len(data), "text": data.decode("latin-1"), "eof": not data}

    def do_recv_exactly(self, count: str, timeout: str = "10") -> dict:
        """Read until `count` bytes have arrived (or the end of stream)."""
        wanted = int(count)
        self.sock.settimeout(float(timeout))
        received = 0
        try:
            while received < wanted:
                chunk = self.sock.recv(min(65536, wanted - received))
                if not chunk:
                    break
                received += len(chunk)
        finally:
            self.sock.settimeout(None)
        return {"received": received}

    def do_recv_oob(self) -> dict:
        data = self.sock.recv(1, socket.MSG_OOB)
        return {"received": len(data), "text": data.decode("latin-1")}

    # --- raw packets ---------------------------------------------------------------------------------
    def do_raw(self, *packets_in_hex: str) -> dict:
        """Send whole IP packets, given in hex, through a raw socket (IPPROTO_RAW: the header is
        ours, for IPv4 and, on Linux, for IPv6 too): the lab's way to put packets with made-up
        source addresses on the wire, from inside the namespace."""
        raw = socket.socket(self.family, socket.SOCK_RAW, socket.IPPROTO_RAW)
        sent = 0
        try:
            for text in packets_in_hex:
                packet = bytes.fromhex(text)
                if self.family == socket.AF_INET6:
                    destination = socket.inet_ntop(socket.AF_INET6, packet[24:40])
                else:
                    destination = socket.inet_ntoa(packet[16:20])
                raw.sendto(packet, (destination, 0))
                sent += 1
        finally:
            raw.close()
        return {"sent": sent}

    # --- ending --------------------------------------------------------------------------------------
    def do_shutdown(self) -> dict:
        self.sock.shutdown(socket.SHUT_WR)  # FIN after the queued data; reading goes on
        return {}

    def do_close(self) -> dict:
        self.sock.close()
        self.sock = None
        return {}

    def do_abort(self) -> dict:
        # SO_LINGER on with a zero timeout: close() sends RST instead of FIN (the usual abort).
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
        self.sock = None
        return {}



def _error_reply(error: BaseException) -> dict:
    if isinstance(error, socket.timeout):
        return {"ok": False, "error": "TIMEOUT", "text": "timed out"}
    if isinstance(error, OSError) and error.errno:
        return {"ok": False, "error": errno.errorcode.get(error.errno, str(error.errno)), "text": error.strerror}
    return {"ok": False, "error": type(error).__name__, "text": str(error)}


def main() -> int:
    peer = Peer(socket.AF_INET6 if "--ipv6" in sys.argv[1:] else socket.AF_INET)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        handler = getattr(peer, f"do_{words[0]}", None)
        if handler is None:
            reply = {"ok": False, "error": "EINVAL", "text": f"unknown command {words[0]!r}"}
        else:
            try:
                reply = {"ok": True, **handler(*words[1:])}
            except Exception as error:  # every failure is an answer the lab shows
                reply = _error_reply(error)
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
