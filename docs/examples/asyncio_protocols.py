"""asyncio Protocols over ustack: create_server with a Protocol, create_connection with a
BufferedProtocol (get_buffer / buffer_updated), and start_serving=False.

Run:  python docs/examples/asyncio_protocols.py
"""

import asyncio

from ustack.aio import AsyncStack
from ustack.link import MemoryLink
from ustack.stack import Stack


class Sender(asyncio.Protocol):
    """Server side: sends 100 kB on connect, then closes."""

    def connection_made(self, transport: asyncio.Transport) -> None:
        transport.write(bytes(range(256)) * 400)
        transport.close()


class Counter(asyncio.BufferedProtocol):
    """Client side: reads into one reusable 4 kB buffer and counts."""

    def __init__(self) -> None:
        self.buffer = bytearray(4096)
        self.total = 0
        self.done = asyncio.get_running_loop().create_future()

    def get_buffer(self, size_hint: int) -> bytearray:
        return self.buffer

    def buffer_updated(self, count: int) -> None:
        self.total += count

    def connection_lost(self, exc: Exception | None) -> None:
        self.done.set_result(exc)


async def main() -> None:
    link_a, link_b = MemoryLink.pair()
    async with AsyncStack(Stack("10.0.0.1"), link_a) as client, AsyncStack(Stack("10.0.0.2"), link_b) as host:
        server = await host.create_server(Sender, port=0, start_serving=False)
        port = server.sockets[0].getsockname()[1]
        print("port", port, "reserved; serving:", server.is_serving())
        await server.start_serving()
        transport, protocol = await client.create_connection(Counter, "10.0.0.2", port)
        error = await protocol.done
        print(f"received {protocol.total} bytes; connection_lost({error})")
        server.close()
        await server.wait_closed()
    link_a.close()
    link_b.close()


if __name__ == "__main__":
    asyncio.run(main())
