"""Blocking sockets over ustack (ustack.sock), the calls of Python's socket module.

Run:  python docs/examples/blocking_sockets.py

Two hosts over a memory link, each a sock.Network (one background thread runs its stack). The
server uses sock.create_server and makefile(); the client sock.create_connection, select() on
fileno(), recv flags and sendfile().
"""

import select
import tempfile
import threading

from ustack import sock
from ustack.link import MemoryLink
from ustack.stack import Stack


def serve(server: sock.Socket) -> None:
    connection, address = server.accept()
    # One string per print: the two threads print at the same time, and print() writes each
    # argument separately, so separate arguments could interleave with the other thread's line.
    print(f"server: accepted {connection}")
    with connection, connection.makefile("rb") as lines:
        total = sum(len(line) for line in lines)
        connection.sendall(b"%d bytes\n" % total)


def main() -> None:
    link_a, link_b = MemoryLink.pair()
    with sock.Network(Stack("10.0.0.1"), link_a) as client_host, sock.Network(Stack("10.0.0.2"), link_b) as server_host:
        server = sock.create_server(("10.0.0.2", 8000), network=server_host)
        thread = threading.Thread(target=serve, args=(server,))
        thread.start()
        client = sock.create_connection(("10.0.0.2", 8000), timeout=10, network=client_host)
        with tempfile.TemporaryFile() as file:
            file.write(b"line\n" * 1000)
            file.seek(0)
            print(f"client: sendfile sent {client.sendfile(file)}")
        client.shutdown(sock.SHUT_WR)
        readable, _, _ = select.select([client], [], [], 10)  # a real descriptor: select works
        print(f"client: readable {readable == [client]} peek: {client.recv(5, sock.MSG_PEEK)}")
        print(f"client: answer {client.recv(100, sock.MSG_WAITALL).decode().strip()}")
        client.close()
        thread.join()
        server.close()
    link_a.close()
    link_b.close()


if __name__ == "__main__":
    main()
