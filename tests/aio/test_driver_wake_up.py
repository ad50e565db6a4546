"""What a wake-up of the driver costs on an echo (ustack/aio/driver.py): its reads.

- A request/response peer (sequential echoes) sends one segment at a time: once a read to the
  end of the queue has found a single packet, the following wake-ups read that one packet and
  stop, without the read that only finds the queue empty (EAGAIN): fewer than 1.25 reads per
  echo on the server, where reading to the end costs two.
- A burst still comes in as batches after a run of echoes: the packets of a 64 KB write reach
  the receiver in wake-ups of several packets (at most MAX_SINGLE_READS wake-ups of one), and
  every byte arrives in order.
- The rule itself, wake-up by wake-up on a scripted link: the streak of single reads grows to
  MAX_SINGLE_READS, a batch of several ends it, and a lone pure ACK (a download's) never starts
  one: software GRO thins runs of them only in reads to the end.

Two hosts over a memory link (tests/stack/twohosts.py) on the loop's clock; each read of the
server's memory link is counted by wrapping its read_packet. No sleeps: every wait is for a
condition, with a timeout as a hang guard.
"""

from __future__ import annotations

import asyncio

from test_driver_rounds import DELAYED_ACK_CONFIG
from twohosts import run_async, stack_pair

from ustack.aio.driver import MAX_SINGLE_READS, Driver
from ustack.link.base import Link

ECHOES = 200


async def echo(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
    writer.close()


def counting_reads(pair) -> list[int]:
    """[reads, reads that found the queue empty] of B's memory link, from now on."""
    memory = pair.link_b.inner
    original = memory.read_packet
    counts = [0, 0]

    def read_packet():
        counts[0] += 1
        try:
            return original()
        except BlockingIOError:
            counts[1] += 1
            raise

    memory.read_packet = read_packet
    return counts


def counting_batches(pair) -> list[int]:
    """The size of every batch B's driver takes from its link on a wake-up or timer."""
    sizes: list[int] = []
    link = pair.link_b
    original = link.receive_batch

    def receive_batch(now, max_packets=64):
        batch = original(now, max_packets)
        sizes.append(len(batch))
        return batch

    link.receive_batch = receive_batch
    return sizes


@run_async
async def test_sequential_echoes_skip_the_read_that_finds_the_queue_empty():
    async with stack_pair(config=DELAYED_ACK_CONFIG) as pair:
        await pair.b.start_server(echo, port=7)
        reader, writer = await pair.a.open_connection(pair.b_address, 7)
        writer.write(b"warm")
        assert await asyncio.wait_for(reader.readexactly(4), 10) == b"warm"
        counts = counting_reads(pair)
        for index in range(ECHOES):
            writer.write(b"%05d" % index)
            assert await asyncio.wait_for(reader.readexactly(5), 10) == b"%05d" % index
        reads, empty = counts
        # Reading to the end every time: 2 reads per echo, one of them empty. With the streak
        # rule, one empty read per MAX_SINGLE_READS + 1 echoes once the streak is long.
        assert reads < ECHOES * 1.25, counts
        assert empty < ECHOES * 0.25, counts
        writer.close()


@run_async
async def test_a_burst_after_echoes_is_still_read_in_batches():
    async with stack_pair(config=DELAYED_ACK_CONFIG) as pair:
        received = bytearray()

        async def sink(reader, writer):
            while data := await reader.read(65536):
                received.extend(data)

        await pair.b.start_server(echo, port=7)
        await pair.b.start_server(sink, port=9)
        reader, writer = await pair.a.open_connection(pair.b_address, 7)
        for index in range(ECHOES):  # a long streak of one-packet wake-ups on B
            writer.write(b"%05d" % index)
            assert await asyncio.wait_for(reader.readexactly(5), 10) == b"%05d" % index
        _, bulk_writer = await pair.a.open_connection(pair.b_address, 9)
        await pair.wait_until(lambda: len(pair.b._transports) == 2)
        sizes = counting_batches(pair)
        payload = bytes(range(256)) * 256  # 64 KB: 45 segments, in flights the window allows
        bulk_writer.write(payload)
        await pair.wait_until(lambda: len(received) == len(payload))
        assert bytes(received) == payload
        # The streak of one-packet reads ends at the first read to the end that finds more.
        batched = [size for size in sizes if size > 1]
        assert batched and max(sizes) >= 4, sizes
        first_batch = next(index for index, size in enumerate(sizes) if size > 1)
        assert first_batch <= MAX_SINGLE_READS, sizes
        writer.close()
        bulk_writer.close()


class ScriptedLink(Link):
    """A link whose every receive_batch hands over the next list of `script` (cut to max_packets)
    and records the max_packets it was asked for."""

    def __init__(self, script: list[list[bytes]]) -> None:
        super().__init__()
        self.script = script
        self.asked: list[int] = []

    def receive_batch(self, now: float, max_packets: int = 64) -> list[bytes]:
        self.asked.append(max_packets)
        return self.script.pop(0)[:max_packets]


class CountingStack:
    """Stands in for the Stack: only counts the packets it is fed."""

    def __init__(self) -> None:
        self.received = 0

    def receive(self, packet: bytes, now: float) -> None:
        self.received += 1


def wake_ups(script: list[list[bytes]]) -> tuple[list[int], int]:
    """The max_packets of each wake-up's read over `script`, and the packets fed to the stack."""
    stack, link = CountingStack(), ScriptedLink(script)
    driver = Driver(stack, link, max_batch=64)
    while link.script:
        driver._receive_on_wake_up(0.0)
    return link.asked, stack.received


def ipv4_tcp(payload: bytes) -> bytes:
    """An IPv4 packet (total length set) holding a TCP header with time stamps (32 bytes), ACK."""
    tcp = bytes(12) + bytes([8 << 4, 0x10]) + bytes(18) + payload
    return bytes([0x45, 0]) + (20 + len(tcp)).to_bytes(2, "big") + bytes(5) + bytes([6]) + bytes(10) + tcp


REQUEST = ipv4_tcp(b"x")  # one byte of data is a request
PURE_ACK = ipv4_tcp(b"")


def test_one_request_per_wake_up_reads_one_packet_for_ever_longer_runs():
    asked, received = wake_ups([[REQUEST]] * 12)
    # A read to the end found one: one single read; again: two; ... (the streak, at most 8).
    assert asked == [64, 1, 64, 1, 1, 64, 1, 1, 1, 64, 1, 1] and received == 12


def test_a_batch_of_several_ends_the_single_reads_at_the_next_read_to_the_end():
    asked, received = wake_ups([[REQUEST], [REQUEST], [REQUEST] * 3, [REQUEST], [REQUEST]])
    # After the batch of three, the streak starts again from one.
    assert asked == [64, 1, 64, 64, 1] and received == 7


def test_lone_pure_acks_keep_every_read_to_the_end():
    asked, received = wake_ups([[PURE_ACK]] * 6)
    assert asked == [64] * 6 and received == 6
