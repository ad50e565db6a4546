"""What every app does last: close its side of the connection and wait for the close to finish."""

from __future__ import annotations

import asyncio


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    """Close, and wait until closed; a client that already reset or vanished is no error here
    (there is no one left to tell)."""
    writer.close()
    try:
        await writer.wait_closed()
    except (ConnectionError, OSError):
        pass
