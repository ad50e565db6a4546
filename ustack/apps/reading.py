"""How an app takes what a stream received next, on ustack's streams and asyncio's alike."""

from __future__ import annotations


async def read_some(reader, size: int) -> list:
    """What the stream received next, at most `size` bytes, as a list of bytes-like pieces; [] at
    its end (a reset counts as one). ustack's streams hand over what they received without joining
    it into one bytes object first (TcpStreamReader.read_chunks): an app that copies the pieces
    somewhere anyway (h11's buffer, a file write) or drops them (discard) saves that copy. On
    asyncio's StreamReader it is one read(size)."""
    read_chunks = getattr(reader, "read_chunks", None)
    try:
        chunks = await read_chunks(size) if read_chunks else [await reader.read(size)]
    except ConnectionError:
        return []
    return chunks if chunks and chunks[0] else []
