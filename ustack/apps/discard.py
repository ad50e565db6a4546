"""The Discard service, RFC 863: "simply throw away any data it receives", until the client closes."""

from __future__ import annotations

import asyncio

from .closing import close_quietly
from .reading import read_some

# The most bytes one read takes. Reading is what reopens the receive window, so a discard server
# is a fast sink as long as each read is cheap. On ustack's streams the pieces are dropped as the
# receive buffer held them, not joined into bytes first, up to 256 KB at once: uploads to it at
# MTU 65535 took serve 867-883 us of CPU per MB, against 1,017-1,317 with joined 64 KB reads, and
# ran at 1,137-1,294 MB/s against 824-944 (issue 12, fourteenth pass). asyncio's StreamReader
# copies either way.
READ_SIZE = 256 * 1024


async def handle_discard(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while await read_some(reader, READ_SIZE):
            pass
    except (ConnectionError, OSError):
        pass
    finally:
        await close_quietly(writer)
