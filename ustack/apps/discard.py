"""The Discard service, RFC 863: "simply throw away any data it receives", until the client closes."""

from __future__ import annotations

import asyncio

from .closing import close_quietly

READ_SIZE = 65536


async def handle_discard(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        # Reading is what reopens the receive window, so a discard server is a fast sink.
        while await reader.read(READ_SIZE):
            pass
    except (ConnectionError, OSError):
        pass
    finally:
        await close_quietly(writer)
