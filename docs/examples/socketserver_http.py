"""The standard library's socketserver and http.client, unchanged, over ustack sockets.

Run:  python docs/examples/socketserver_http.py

socketserver.TCPServer only needs its socket replaced by a ustack one (it waits with selectors on
fileno(), reads with makefile()); http.client only needs its _create_connection.
"""

import functools
import http.client
import http.server
import socketserver
import threading

from ustack import sock
from ustack.link import MemoryLink
from ustack.stack import Stack


class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"hello from ustack, you asked for {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class UstackTCPServer(socketserver.TCPServer):
    def __init__(self, network: sock.Network, address, handler) -> None:
        super().__init__(address, handler, bind_and_activate=False)
        self.socket.close()  # the kernel socket TCPServer made; a ustack one instead
        self.socket = network.socket()
        self.server_bind()
        self.server_activate()


def main() -> None:
    link_a, link_b = MemoryLink.pair()
    with sock.Network(Stack("10.0.0.1"), link_a) as client_host, sock.Network(Stack("10.0.0.2"), link_b) as server_host:
        with UstackTCPServer(server_host, ("10.0.0.2", 80), Hello) as server:
            thread = threading.Thread(target=server.serve_forever, args=(0.1,))
            thread.start()
            connection = http.client.HTTPConnection("10.0.0.2", 80, timeout=10)
            connection._create_connection = functools.partial(sock.create_connection, network=client_host)
            for path in ("/", "/index.html"):
                connection.request("GET", path)
                response = connection.getresponse()
                print(response.status, response.read().decode().strip())
            connection.close()
            server.shutdown()
            thread.join()
    link_a.close()
    link_b.close()


if __name__ == "__main__":
    main()
