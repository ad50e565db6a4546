"""Writes larger than the send buffer (issue 12's bulk path in ustack/aio/transport.py): what does
not fit waits in the transport and goes into the send buffer through a view as ACKs make room;
every byte arrives once and in order, whatever the writes' sizes and types, through loss."""

from __future__ import annotations

import asyncio
import random

from twohosts import B_ADDRESS, FAST_CONFIG, run_async, stack_pair

from dataclasses import replace


@run_async
async def test_writes_of_every_size_and_type_beyond_the_send_buffer_arrive_whole(seed):
    rng = random.Random(seed)
    print(f"seed={seed}")
    config = replace(FAST_CONFIG, send_buffer_size=100_000)  # most writes wait in the transport
    payload = rng.randbytes(3 << 20)
    received: asyncio.Future = asyncio.get_running_loop().create_future()

    async def read_all(reader, writer):
        received.set_result(await reader.readexactly(len(payload)))
        writer.close()

    async with stack_pair(seed, loss=0.02, config=config) as pair:
        await pair.b.start_server(read_all, port=9)
        reader, writer = await pair.a.open_connection(B_ADDRESS, 9)
        offset = 0
        while offset < len(payload):
            size = rng.choice([1, 700, 65_536, 250_000])
            piece = payload[offset:offset + size]
            kind = rng.randrange(3)  # the transport takes any bytes-like object
            writer.write(piece if kind == 0 else bytearray(piece) if kind == 1 else memoryview(piece))
            offset += len(piece)
            if rng.random() < 0.3:
                await writer.drain()
        assert writer.transport.get_write_buffer_size() > 0  # the transport holds what waits
        assert await asyncio.wait_for(received, 60) == payload, f"seed={seed}"
        writer.close()
