"""An asyncio echo server on ustack, reached by the kernel through a real TUN device.

Run as root:  python docs/examples/asyncio_tun_server.py [NAMESPACE]

open_tun_stack makes the namespace (default ust-example) and the TUN device inside it: ustack is
10.77.0.2, the kernel 10.77.0.1. A kernel client (Python's own socket module, started in the
namespace with `ip netns exec`) sends a line and prints the echo. Leaving the `async with`
removes the device and the namespace.
"""

import asyncio
import sys

from ustack.aio import open_tun_stack

KERNEL_CLIENT = """
import socket
with socket.create_connection(("10.77.0.2", 7), timeout=5) as client:
    client.sendall(b"hello, ustack\\n")
    print("kernel got:", client.makefile("rb").readline().decode().strip())
"""


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        writer.write(line)
        await writer.drain()
    writer.close()


async def main(namespace: str) -> None:
    async with open_tun_stack(namespace=namespace) as astack:
        server = await astack.start_server(echo, port=7)
        print("ustack listening on", server.sockets[0].getsockname())
        client = await asyncio.create_subprocess_exec("ip", "netns", "exec", namespace, sys.executable, "-c", KERNEL_CLIENT)
        await client.wait()
        server.close()
        await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "ust-example"))
