"""What the runtime's leaner rounds (issue 12, echo and connection rows) must still do.

- A batch of segments whose every connection handed a waiting reader data is not transmitted in
  the round of the data: each answer leaves with its ACK in the round queued behind the tasks
  (one transmit for the batch, a packet per answer). One connection in the batch touched by
  anything else (data for a reader busy elsewhere) and the round of the data transmits at once.
- A reader that takes everything up to the peer's FIN sees the end of stream in that same
  iteration: an application that then closes sends one segment, its FIN carrying the ACK of
  the peer's, never a bare ACK first.
- Through all of it the one timer stays at or before the stack's earliest deadline after every
  round (checking_timer), and a stack left idle disarms it.

Two hosts over a memory link (tests/stack/twohosts.py) on the loop's clock; no sleeps: every
wait is for a condition, with a timeout as a hang guard.
"""

from __future__ import annotations

import asyncio

from ustack.compat import asyncio_timeout
from test_driver_rounds import DELAYED_ACK_CONFIG, PATIENT_ACK_CONFIG, checking_timer, counting_transmits, recording_sent
from twohosts import FAST_CONFIG, run_async, stack_pair


async def echo(reader, writer):
    while data := await reader.read(100):
        writer.write(data)
    writer.close()


@run_async
async def test_a_batch_of_requests_to_waiting_readers_is_answered_in_one_transmit():
    # A 200 ms delayed ACK: with 10 ms, a pause of the JIT or the collector on PyPy between the
    # warm-ups and the requests fired A's timer for the echoes' ACK, one batch more into B (seen
    # once in CI, 12 batches against 11); the requests carry that ACK otherwise.
    async with stack_pair(config=PATIENT_ACK_CONFIG) as pair:
        failures: list[str] = []
        checking_timer(pair.b, failures)
        await pair.b.start_server(echo, port=7)
        streams = [await pair.a.open_connection(pair.b_address, 7) for _ in range(3)]
        for reader, writer in streams:  # every handshake over, every handler waiting to read
            writer.write(b"warm")
            assert await asyncio.wait_for(reader.readexactly(4), 10) == b"warm"
        # B reads to the end at its next wake-up, as after any batch of several: the warm-ups'
        # lone requests started a run of one-packet reads (driver.py, _receive_on_wake_up, its
        # own tests in test_driver_wake_up.py), which would take the three one by one.
        pair.b._single_reads_left = pair.b._single_streak = 0
        batches = pair.b.counters["batches"]
        counts = counting_transmits(pair.b)
        sent = recording_sent(pair.b)
        for index, (_, writer) in enumerate(streams):  # one round of A: one batch into B
            writer.write(b"%d" % index)
        for index, (reader, _) in enumerate(streams):
            assert await asyncio.wait_for(reader.readexactly(1), 10) == b"%d" % index
        assert pair.b.counters["batches"] == batches + 1  # the three requests came in together
        # One transmit, in the round behind the handlers; each answer carries its ACK (no bare
        # ACK went out before them).
        assert counts == [1, 3]
        assert sorted(payload for payload, _ in sent) == [b"0", b"1", b"2"]
        assert failures == []
        for _, writer in streams:
            writer.close()


@run_async
async def test_a_batch_with_data_for_a_busy_reader_is_transmitted_in_the_round_of_the_data():
    # A 200 ms delayed ACK, as above: with 10 ms, a JIT or collector pause on PyPy before the
    # counts were read could fire a delayed-ACK timer, one round more (seen once in 12 PyPy runs,
    # on the code before and after the fourteenth pass alike).
    async with stack_pair(config=PATIENT_ACK_CONFIG) as pair:
        failures: list[str] = []
        checking_timer(pair.b, failures)
        release = asyncio.Event()
        busy_received = bytearray()

        async def busy_then_read(reader, writer):
            await release.wait()  # not reading: data for it wakes nobody
            busy_received.extend(await reader.read(100))

        await pair.b.start_server(echo, port=7)
        await pair.b.start_server(busy_then_read, port=9)
        echo_reader, echo_writer = await pair.a.open_connection(pair.b_address, 7)
        echo_writer.write(b"warm")
        assert await asyncio.wait_for(echo_reader.readexactly(4), 10) == b"warm"
        _, busy_writer = await pair.a.open_connection(pair.b_address, 9)
        await pair.wait_until(lambda: len(pair.b._transports) == 2)
        rounds = pair.b.counters["rounds"]
        counts = counting_transmits(pair.b)
        echo_writer.write(b"x")
        busy_writer.write(b"y")
        assert await asyncio.wait_for(echo_reader.readexactly(1), 10) == b"x"
        # The round of the data transmitted (the busy connection's part of the batch does not
        # wait for an answer that is not coming), then the round behind the echo handler.
        assert counts[0] == 2 and pair.b.counters["rounds"] == rounds + 2
        release.set()
        await pair.wait_until(lambda: bytes(busy_received) == b"y")
        assert failures == []
        echo_writer.close()
        busy_writer.close()


@run_async
async def test_a_client_that_closes_after_reading_to_the_end_sends_one_fin_with_the_ack():
    async with stack_pair(config=DELAYED_ACK_CONFIG) as pair:
        failures: list[str] = []
        checking_timer(pair.a, failures)

        async def answer_and_close(reader, writer):
            await reader.read(100)
            writer.write(b"answer")
            writer.close()

        await pair.b.start_server(answer_and_close, port=80)
        for _ in range(3):
            reader, writer = await pair.a.open_connection(pair.b_address, 80)
            wire = recording_sent(pair.a, received=True)
            writer.write(b"request")
            async with asyncio_timeout(10):  # (not wait_for: its own task would add an iteration)
                assert await reader.read() == b"answer"  # to the end of stream
            writer.close()
            connection = writer.transport.get_extra_info("connection")
            await pair.wait_until(lambda: connection.state.name == "CLOSED")
            pair.a.remove_observer(pair.a._observers[-1])
            answer_at = [index for index, entry in enumerate(wire) if entry[0] == "<" and entry[1] == b"answer"]
            assert len(answer_at) == 1
            # After B's answer and FIN, A sent exactly one segment: its FIN, with the ACK.
            assert [entry for entry in wire[answer_at[0] + 1:] if entry[0] != "<"] == [(b"", True)]
        assert failures == []


@run_async
async def test_an_idle_stack_disarms_its_timer():
    async with stack_pair(config=FAST_CONFIG) as pair:
        await pair.b.start_server(echo, port=7)
        for _ in range(3):
            reader, writer = await pair.a.open_connection(pair.b_address, 7)
            writer.write(b"ping")
            assert await asyncio.wait_for(reader.readexactly(4), 10) == b"ping"
            writer.close()
        for astack in (pair.a, pair.b):
            stack = astack.stack
            await astack.wait_until(lambda: not stack.connections and stack.next_deadline() is None, 10)
            assert not astack.timer_armed


@run_async
async def test_data_on_the_last_ack_of_the_handshake_is_answered_in_one_transmit():
    """The request rides on the ACK that completes the handshake (create_connection's `data`):
    the handler connection_made starts finds it at its first read, so the round of that segment
    leaves the ACK to the answer, as for a waiting reader."""
    async with stack_pair(config=DELAYED_ACK_CONFIG) as pair:
        failures: list[str] = []
        checking_timer(pair.b, failures)
        await pair.b.start_server(echo, port=7)
        counts = counting_transmits(pair.b)
        sent = recording_sent(pair.b, received=True)
        reader, writer = await pair.a.open_connection(pair.b_address, 7, data=b"request")
        assert await asyncio.wait_for(reader.readexactly(7), 10) == b"request"
        assert ("<", b"request") in sent  # one segment: the handshake's ACK with the data
        # B's transmits: the SYN-ACK, then the answer with the ACK of the request on it.
        assert counts == [2, 2]
        assert failures == []
        writer.close()
