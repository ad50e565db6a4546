"""The driver's rounds (ustack/aio/driver.py): what each loop iteration must still do after the
cuts made for the echo and connection rows of issue 12.

- A round that handed data to an application queues the round that sends its reply and leaves
  the one timer to that round: at the end of every round with no round queued behind it, the
  timer is armed at or before the stack's earliest deadline (no lost wake-up), and a delayed ACK
  for data nobody answers still leaves on its timer, before any retransmission.
- The reply written in the iteration after the data arrived goes out in that same iteration
  (one round, one packet), data before the FIN, and Nagle still holds a second small write back.
- An echo costs the server one transmit: the round that hands the data to the handler leaves
  it to the round queued behind the handler's task; an answer written inside data_received
  still leaves in the round of the data.
- A start_server handler that ends is let go (in its task's last step).
- An HTTP answer leaves in the iteration after its request, carrying the request's ACK.

Two hosts over a memory link (tests/stack/twohosts.py) on the loop's clock; no sleeps: every
wait is for a condition, with a timeout as a hang guard.
"""

from __future__ import annotations

import asyncio
import dataclasses

from twohosts import FAST_CONFIG, run_async, stack_pair

from ustack.apps import HttpFileServer
from ustack.tcp.config import TcpConfig

# The delayed ACK (10 ms) far below any retransmission timeout (at least 0.5 s), so a lost
# delayed-ACK timer shows as a retransmission, never as a slow run.
DELAYED_ACK_CONFIG = TcpConfig(msl=0.1, initial_rto=1.0, min_rto=0.5, max_rto=2.0, delayed_ack_timeout=0.01)
# The same with Linux's longest delayed ACK (200 ms), for a count of transmits that a pause of the
# process longer than the timeout would change: on PyPy a JIT compile or a collector step of more
# than 10 ms fired the 10 ms timer between an echo's data and its answer (one transmit more).
PATIENT_ACK_CONFIG = dataclasses.replace(DELAYED_ACK_CONFIG, delayed_ack_timeout=0.2)


def checking_timer(astack, failures: list[str]):
    """Wrap astack's round: after each one that queued no other, the timer must be armed at or
    before the stack's earliest deadline."""
    original = astack._round

    def round_then_check(now: float, **how) -> None:
        original(now, **how)
        if astack._round_scheduled or astack._closed:
            return
        deadline = astack.stack.next_deadline()
        if deadline is not None and (astack._timer_deadline is None or astack._timer_deadline > deadline):
            failures.append(f"timer at {astack._timer_deadline} after a round, the stack's deadline {deadline}")

    astack._round = round_then_check
    return original


def recording_sent(astack, received: bool = False) -> list[tuple]:
    """(TCP payload, FIN set) of every IPv4 packet astack sends, in order; with `received`,
    also ("<", TCP payload) for every packet it receives, in the same list."""
    sent: list[tuple] = []

    def observer(now: float, kind: str, item) -> None:
        if kind in "<>":
            tcp = item[(item[0] & 0x0F) * 4:]
            payload = bytes(tcp[(tcp[12] >> 4) * 4:])
            if kind == ">":
                sent.append((payload, bool(tcp[13] & 0x01)))
            elif received:
                sent.append(("<", payload))

    astack.add_observer(observer)
    return sent


@run_async
async def test_data_nobody_answers_is_acknowledged_on_the_delayed_ack_timer():
    async with stack_pair(config=DELAYED_ACK_CONFIG) as pair:
        failures: list[str] = []
        checking_timer(pair.b, failures)
        received = bytearray()

        async def read_only(reader, writer):
            while data := await reader.read(1000):
                received.extend(data)

        await pair.b.start_server(read_only, port=9)
        _, writer = await pair.a.open_connection(pair.b_address, 9)
        connection = writer.transport.get_extra_info("connection")
        for _ in range(5):  # one small segment at a time, each acknowledged before the next
            writer.write(b"x" * 100)
            await pair.wait_until(lambda: connection.snd_una == connection.snd_nxt)
        assert bytes(received) == b"x" * 500
        assert connection.snapshot().retransmissions == 0  # every ACK came on B's delayed-ACK timer
        assert failures == []
        writer.close()


@run_async
async def test_an_echo_reply_leaves_in_one_round_after_the_data_and_before_the_fin():
    async with stack_pair(config=FAST_CONFIG) as pair:
        failures: list[str] = []
        checking_timer(pair.b, failures)

        async def echo_once_then_close(reader, writer):
            writer.write(await reader.read(100))
            writer.close()

        await pair.b.start_server(echo_once_then_close, port=7)
        reader, writer = await pair.a.open_connection(pair.b_address, 7)
        sent = recording_sent(pair.b)
        writer.write(b"ping")
        # The data is read before the FIN is seen: the reply, then the end of stream.
        assert await asyncio.wait_for(reader.read(100), 10) == b"ping"
        assert await asyncio.wait_for(reader.read(100), 10) == b""
        # B's reply and its FIN leave together in one segment, sent by the round queued behind
        # the handler: the data was not acknowledged on its own first.
        assert sent[0] == (b"ping", True)
        assert failures == []
        writer.close()


@run_async
async def test_nagle_holds_the_second_small_write_of_the_reply_round_until_the_ack():
    async with stack_pair(config=DELAYED_ACK_CONFIG) as pair:

        async def two_small_writes(reader, writer):
            await reader.read(100)
            writer.write(b"a")
            await asyncio.sleep(0)  # a later iteration: the first write has left already
            writer.write(b"b")
            await writer.drain()

        await pair.b.start_server(two_small_writes, port=7)
        reader, writer = await pair.a.open_connection(pair.b_address, 7)
        wire = recording_sent(pair.b, received=True)
        writer.write(b"go")
        assert await asyncio.wait_for(reader.readexactly(2), 10) == b"ab"
        # "a" left at once, with the ACK of "go"; "b" waited (RFC 9293 3.7.4, Nagle) for A's
        # (delayed) ACK of "a": never two small segments unacknowledged at once.
        data = [entry for entry in wire if entry[1] != b""]
        assert data[:2] == [("<", b"go"), (b"a", False)]
        after_a = wire[wire.index((b"a", False)) + 1:]
        assert after_a[0] == ("<", b"")  # A's ACK of "a" came before anything else left B
        assert (b"b", False) in after_a
        writer.close()


@run_async
async def test_a_finished_handler_is_let_go():
    async with stack_pair(config=FAST_CONFIG) as pair:

        async def answer(reader, writer):
            writer.write(await reader.read(100))
            await writer.drain()
            writer.close()

        await pair.b.start_server(answer, port=7)
        for _ in range(3):
            reader, writer = await pair.a.open_connection(pair.b_address, 7)
            writer.write(b"hi")
            assert await asyncio.wait_for(reader.read(), 10) == b"hi"
            writer.close()
        await pair.wait_until(lambda: not pair.b._client_tasks)
        assert pair.b._client_tasks == {}


@run_async
async def test_an_http_answer_carries_the_ack_of_its_request(tmp_path):
    """HttpFileServer answers in the loop iteration after the request (it waits for a request
    under asyncio.timeout, not wait_for's extra task): the answer and the FIN carry the ACK of
    the request and the window update of its read, with no bare ACK sent before them."""
    (tmp_path / "small.html").write_text("<p>hello</p>\n" * 20)
    async with stack_pair(config=FAST_CONFIG) as pair:
        await pair.b.start_server(HttpFileServer(tmp_path), port=80)
        for _ in range(3):
            reader, writer = await pair.a.open_connection(pair.b_address, 80)
            wire = recording_sent(pair.b, received=True)
            writer.write(b"GET /small.html HTTP/1.0\r\nHost: x\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), 10)
            assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"<p>hello</p>\n" * 20)
            pair.b.remove_observer(pair.b._observers[-1])
            request_at = wire.index(("<", b"GET /small.html HTTP/1.0\r\nHost: x\r\n\r\n"))
            first_reply = wire[request_at + 1]
            assert first_reply[0] == answer and first_reply[1] is True  # the whole answer and the FIN
            writer.close()


def counting_transmits(astack) -> list[int]:
    """[calls of astack's stack.transmit, packets they returned], counted from now on."""
    counts = [0, 0]
    original = astack.stack.transmit

    def transmit(now: float) -> list[bytes]:
        packets = original(now)
        counts[0] += 1
        counts[1] += len(packets)
        return packets

    astack.stack.transmit = transmit
    return counts


@run_async
async def test_an_echo_costs_the_server_one_transmit():
    """The round that hands the data to the handler leaves the transmit to the round queued
    behind the handler's task: one transmit per echo, the answer with the ACK on it (before,
    a first transmit per echo found nothing to send and only armed the delayed-ACK timer)."""
    async with stack_pair(config=PATIENT_ACK_CONFIG) as pair:

        async def echo(reader, writer):
            while data := await reader.read(100):
                writer.write(data)

        await pair.b.start_server(echo, port=7)
        reader, writer = await pair.a.open_connection(pair.b_address, 7)
        writer.write(b"warm")
        assert await asyncio.wait_for(reader.readexactly(4), 10) == b"warm"
        counts = counting_transmits(pair.b)
        for index in range(20):
            writer.write(b"%02d" % index)
            assert await asyncio.wait_for(reader.readexactly(2), 10) == b"%02d" % index
        assert counts == [20, 20]
        writer.close()


class SameCallbackEcho(asyncio.Protocol):
    """Answers inside data_received (no task): the round that delivered must transmit itself."""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data.upper())


@run_async
async def test_an_answer_written_inside_data_received_leaves_in_the_round_of_the_data():
    async with stack_pair(config=DELAYED_ACK_CONFIG) as pair:
        server = await pair.b.create_server(SameCallbackEcho, port=7)
        reader, writer = await pair.a.open_connection(pair.b_address, 7)
        seen: list[tuple[str, bytes, int]] = []  # (direction, TCP payload, b's round number)

        def observer(now: float, kind: str, item) -> None:
            if kind in "<>":
                tcp = item[(item[0] & 0x0F) * 4:]
                payload = bytes(tcp[(tcp[12] >> 4) * 4:])
                if payload:
                    seen.append((kind, payload, pair.b.counters["rounds"]))

        pair.b.add_observer(observer)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 10) == b"PING"
        # Received before its round began (the round counter moves at its start), answered in it.
        (_, _, arrival_round), (_, answer, answer_round) = seen[:2]
        assert answer == b"PING" and answer_round == arrival_round + 1
        writer.close()
        server.close()
