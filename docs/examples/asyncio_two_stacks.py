"""Two ustack hosts in one process, joined by a memory link: no root, no TUN device.

Run:  python docs/examples/asyncio_two_stacks.py

Host A (10.0.0.1) opens a connection to host B (10.0.0.2), which serves a tiny line protocol with
asyncio streams, exactly as asyncio.start_server / asyncio.open_connection would.
"""

import asyncio

from ustack.aio import AsyncStack
from ustack.link import MemoryLink
from ustack.stack import Stack


async def shout(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        writer.write(line.upper())
        await writer.drain()
    writer.close()


async def main() -> None:
    link_a, link_b = MemoryLink.pair()
    async with AsyncStack(Stack("10.0.0.1"), link_a) as host_a, AsyncStack(Stack("10.0.0.2"), link_b) as host_b:
        async with await host_b.start_server(shout, "10.0.0.2", 7000) as server:
            print("B serves on", server.sockets[0].getsockname())
            reader, writer = await host_a.open_connection("10.0.0.2", 7000)
            for word in ("hello", "world"):
                writer.write(word.encode() + b"\n")
                print("A got:", (await reader.readline()).decode().strip())
            writer.close()
            await writer.wait_closed()
    link_a.close()
    link_b.close()


if __name__ == "__main__":
    asyncio.run(main())
