"""The Character Generator service, RFC 864.

Over TCP the server sends without pause until the client closes, and throws away what it receives.
The data is the pattern RFC 864 suggests: lines of 72 characters taken from the 95 printable ASCII
characters, each line starting one character further along, ended by CR LF.
"""

from __future__ import annotations

import asyncio

from .closing import close_quietly

PRINTABLE = bytes(range(32, 127))  # the 95 printable ASCII characters, space to tilde
LINE_LENGTH = 72
LINES_PER_WRITE = 64  # about 4.6 KB per write: large enough to fill segments, small for drain()


def chargen_lines(start: int, count: int) -> bytes:
    """`count` lines of the RFC 864 pattern, the first one starting at character `start`."""
    doubled = PRINTABLE + PRINTABLE  # so that every line is one slice
    lines = []
    for index in range(start, start + count):
        offset = index % len(PRINTABLE)
        lines.append(doubled[offset : offset + LINE_LENGTH] + b"\r\n")
    return b"".join(lines)


# The pattern repeats after 95 lines, so it is computed once for every client.
# Two cycles back to back, so that any run of LINES_PER_WRITE lines is one slice.
_TWO_CYCLES = chargen_lines(0, 2 * len(PRINTABLE))
_LINE_BYTES = LINE_LENGTH + 2


async def handle_chargen(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    client_gone = asyncio.Event()

    async def discard_input() -> None:
        # RFC 864: "Data received is thrown away". Reading also notices the client's FIN.
        try:
            while await reader.read(65536):
                pass
        except (ConnectionError, OSError):
            pass
        client_gone.set()

    reader_task = asyncio.ensure_future(discard_input())
    line = 0
    try:
        while not client_gone.is_set():
            start = (line % len(PRINTABLE)) * _LINE_BYTES
            chunk = _TWO_CYCLES[start : start + LINES_PER_WRITE * _LINE_BYTES]
            writer.write(chunk)
            line += LINES_PER_WRITE
            await writer.drain()  # backpressure: never more than the send buffer in flight
    except (ConnectionError, OSError):
        pass
    finally:
        reader_task.cancel()
        await close_quietly(writer)
