"""The Echo service, RFC 862: "any data received is sent back", until the client closes."""

from __future__ import annotations

import asyncio

from .closing import close_quietly

READ_SIZE = 65536


async def handle_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                break
            writer.write(data)
            # Backpressure: a client that sends but never reads fills our send buffer; waiting
            # here stops us reading, which in turn closes our receive window to it.
            await writer.drain()
        # The client half-closed: everything has been echoed, so close our side too.
        if writer.can_write_eof():
            writer.write_eof()
        await writer.drain()
    except (ConnectionError, OSError):
        pass  # the client reset or vanished: nothing left to echo to
    finally:
        await close_quietly(writer)
