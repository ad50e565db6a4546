"""The asyncio API over two ustack hosts: streams, flow control, half-close, errors, idling."""

from __future__ import annotations

import asyncio
import errno
import random

from twohosts import A_ADDRESS, B_ADDRESS, FAST_CONFIG, run_async, stack_pair

from dataclasses import replace


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


@run_async
async def test_echo_round_trip(seed):
    async with stack_pair(seed) as pair:
        server = await pair.b.start_server(echo, port=7)
        assert server.port == 7 and server.is_serving()
        reader, writer = await pair.a.open_connection(B_ADDRESS, 7)
        assert writer.get_extra_info("peername") == (B_ADDRESS, 7)
        host, port = writer.get_extra_info("sockname")
        assert host == A_ADDRESS and port > 1023
        writer.write(b"hello, ustack\n")
        assert await reader.readline() == b"hello, ustack\n"
        writer.close()
        await writer.wait_closed()
        assert await reader.read() == b""  # the server closed after our FIN
        server.close()
        await server.wait_closed()
        # Idle means zero: after TIME-WAIT (2 * msl) nothing is left, no timer is armed.
        await pair.wait_until(pair.idle)
        assert not pair.a.timer_armed and not pair.b.timer_armed
        assert not pair.a._transports and not pair.b._transports


@run_async
async def test_a_megabyte_each_way_survives_five_percent_loss(seed):
    size = 1 << 20
    generator = random.Random(seed)
    upload = generator.randbytes(size)
    download = generator.randbytes(size)
    received_by_server = bytearray()

    async def exchange(reader, writer):
        async def read_all():
            while data := await reader.read(65536):
                received_by_server.extend(data)

        reading = asyncio.ensure_future(read_all())
        writer.write(download)
        await writer.drain()
        await reading
        writer.close()

    async with stack_pair(seed, loss=0.05) as pair:
        await pair.b.start_server(exchange, port=5001)
        reader, writer = await pair.a.open_connection(B_ADDRESS, 5001)

        async def send_all():
            writer.write(upload)
            await writer.drain()
            writer.write_eof()

        # Both directions at once; gather so that an error in either is the test's error.
        received_by_client, _ = await asyncio.gather(reader.read(), send_all())
        assert len(received_by_client) == size and received_by_client == download
        await pair.wait_until(lambda: len(received_by_server) == size)
        assert bytes(received_by_server) == upload
        # The loss was real: packets were dropped both ways and the client had to retransmit.
        assert pair.link_a.counters["dropped_inbound"] > 0 and pair.link_b.counters["dropped_inbound"] > 0
        assert writer.get_extra_info("connection").snapshot().retransmissions > 0
        writer.close()
        await pair.wait_until(lambda: pair.connections() == 0, timeout=20)


@run_async
async def test_drain_blocks_while_the_peer_does_not_read(seed):
    size = 4 << 20
    payload = bytes(range(256)) * (size // 256)
    server_side: asyncio.Future = asyncio.get_running_loop().create_future()

    async def hold(reader, writer):
        server_side.set_result((reader, writer))

    async with stack_pair(seed) as pair:
        await pair.b.start_server(hold, port=9)
        reader, writer = await pair.a.open_connection(B_ADDRESS, 9)
        connection = writer.get_extra_info("connection")
        writer.write(payload)
        draining = asyncio.ensure_future(writer.drain())
        peer_reader, peer_writer = await server_side
        # The server's StreamReader stops reading at its limit; the receive buffer fills, the
        # window closes, our send buffer fills: the data waits in the transport, drain() waits.
        await pair.wait_until(lambda: connection.snapshot().snd_wnd == 0 and connection.send_space == 0)
        assert "persist" in connection.snapshot().timers
        assert not draining.done()
        assert writer.transport.get_write_buffer_size() > 0
        # The peer reads: the window reopens and drain() returns.
        assert await peer_reader.readexactly(size) == payload
        await asyncio.wait_for(draining, 10)
        writer.close()
        peer_writer.close()


@run_async
async def test_pause_reading_closes_the_window_and_resume_reopens_it(seed):
    size = 1 << 20
    payload = random.Random(seed).randbytes(size)
    loop = asyncio.get_running_loop()
    transports: asyncio.Future = loop.create_future()
    received = bytearray()

    class Paused(asyncio.Protocol):
        def connection_made(self, transport):
            transport.pause_reading()
            transports.set_result(transport)

        def data_received(self, data):
            received.extend(data)

    async with stack_pair(seed) as pair:
        await pair.b.create_server(Paused, port=2000)
        reader, writer = await pair.a.open_connection(B_ADDRESS, 2000)
        sender = writer.get_extra_info("connection")
        writer.write(payload)
        transport = await transports
        receiver = transport.get_extra_info("connection")
        assert not transport.is_reading()
        await pair.wait_until(lambda: sender.snapshot().snd_wnd == 0 and receiver.snapshot().rcv_wnd == 0)
        assert not received  # nothing was handed to the protocol while paused
        # It all waits in the core: the buffer is full up to the last step of the scaled window
        # (RFC 7323 2.3: the window field cannot describe less than 1 << shift bytes).
        assert 0 <= FAST_CONFIG.receive_buffer_size - receiver.readable < 1 << receiver.receive_shift
        assert "persist" in sender.snapshot().timers  # the sender probes the zero window
        transport.resume_reading()
        await pair.wait_until(lambda: len(received) == size)
        assert bytes(received) == payload
        assert sender.snapshot().snd_wnd > 0
        writer.close()
        transport.close()


@run_async
async def test_write_eof_half_closes(seed):
    async def answer_after_eof(reader, writer):
        question = await reader.read()  # everything up to the client's FIN
        writer.write(b"you said " + question)
        writer.close()

    async with stack_pair(seed) as pair:
        await pair.b.start_server(answer_after_eof, port=80)
        reader, writer = await pair.a.open_connection(B_ADDRESS, 80)
        connection = writer.get_extra_info("connection")
        assert writer.can_write_eof()
        writer.write(b"ping")
        writer.write_eof()
        # Half-closed: we can still read what the server sends after our FIN.
        assert await reader.read() == b"you said ping"
        assert connection.state.value in ("TIME-WAIT", "CLOSED")
        await writer.wait_closed()


@run_async
async def test_abort_resets_the_peer(seed):
    outcome: asyncio.Future = asyncio.get_running_loop().create_future()

    async def wait_for_data(reader, writer):
        try:
            await reader.read(1)
        except Exception as error:
            outcome.set_result(error)
        else:
            outcome.set_result(None)

    async with stack_pair(seed) as pair:
        await pair.b.start_server(wait_for_data, port=25)
        reader, writer = await pair.a.open_connection(B_ADDRESS, 25)
        await pair.wait_until(lambda: len(pair.b._transports) == 1)
        writer.transport.abort()
        error = await asyncio.wait_for(outcome, 10)
        assert isinstance(error, ConnectionResetError) and error.errno == errno.ECONNRESET
        await pair.wait_until(lambda: pair.connections() == 0)


@run_async
async def test_connecting_to_a_closed_port_is_refused_at_once(seed):
    async with stack_pair(seed) as pair:
        try:
            # The RST answers the first SYN: no retransmission is involved, so this is quick.
            await asyncio.wait_for(pair.a.open_connection(B_ADDRESS, 4444), 2.0)
        except ConnectionRefusedError as error:
            assert error.errno == errno.ECONNREFUSED
        else:
            raise AssertionError("connect to a closed port succeeded")
        assert pair.connections() == 0


@run_async
async def test_connect_times_out_when_nothing_answers(seed):
    config = replace(FAST_CONFIG, syn_retries=2, initial_rto=0.05)
    async with stack_pair(seed, config=config) as pair:
        rule = pair.link_b.drop_when(lambda packet: True, count=1000, direction="inbound")
        try:
            await pair.a.open_connection(B_ADDRESS, 80)
        except TimeoutError as error:
            assert error.errno == errno.ETIMEDOUT
        else:
            raise AssertionError("connect succeeded though every packet was dropped")
        assert rule.remaining == 1000 - 3  # the SYN and its two retransmissions
        await pair.wait_until(pair.idle)
        assert not pair.a.timer_armed


@run_async
async def test_create_server_and_create_connection_with_plain_protocols(seed):
    loop = asyncio.get_running_loop()
    log: list = []
    client_done: asyncio.Future = loop.create_future()

    class Shouter(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            log.append(("server made", transport.get_extra_info("peername")[0]))

        def data_received(self, data):
            self.transport.write(data.upper())

        def eof_received(self):
            log.append("server eof")
            return False  # close when the client is done

        def connection_lost(self, exc):
            log.append(("server lost", exc))

    class Client(asyncio.Protocol):
        def __init__(self):
            self.data = bytearray()

        def connection_made(self, transport):
            transport.write(b"quiet please")
            transport.write_eof()

        def data_received(self, data):
            self.data.extend(data)

        def eof_received(self):
            log.append("client eof")

        def connection_lost(self, exc):
            client_done.set_result(exc)

    async with stack_pair(seed) as pair:
        server = await pair.b.create_server(Shouter, B_ADDRESS, 8080)
        transport, protocol = await pair.a.create_connection(Client, B_ADDRESS, 8080)
        assert isinstance(protocol, Client)
        assert await asyncio.wait_for(client_done, 10) is None
        assert bytes(protocol.data) == b"QUIET PLEASE"
        await pair.wait_until(lambda: ("server lost", None) in log)
        assert log[0] == ("server made", A_ADDRESS)
        assert "server eof" in log and "client eof" in log
        server.close()
        await server.wait_closed()
        await pair.wait_until(pair.idle)
        assert not pair.a.timer_armed and not pair.b.timer_armed


@run_async
async def test_reset_reaches_a_plain_protocol_as_connection_lost(seed):
    loop = asyncio.get_running_loop()
    lost: asyncio.Future = loop.create_future()

    class Victim(asyncio.Protocol):
        def connection_lost(self, exc):
            lost.set_result(exc)

    async with stack_pair(seed) as pair:
        await pair.b.create_server(Victim, port=1234)
        reader, writer = await pair.a.open_connection(B_ADDRESS, 1234)
        await pair.wait_until(lambda: len(pair.b._transports) == 1)
        writer.transport.abort()
        error = await asyncio.wait_for(lost, 10)
        assert isinstance(error, ConnectionResetError)


@run_async
async def test_listening_twice_on_a_port_is_address_in_use(seed):
    async with stack_pair(seed) as pair:
        await pair.b.start_server(echo, port=7)
        try:
            await pair.b.start_server(echo, port=7)
        except OSError as error:
            assert error.errno == errno.EADDRINUSE
        else:
            raise AssertionError("a second listener on the same port was allowed")


@run_async
async def test_observers_see_packets_and_state_changes(seed):
    seen: list = []
    async with stack_pair(seed) as pair:
        pair.a.add_observer(lambda now, kind, item: seen.append((kind, item)))
        await pair.b.start_server(echo, port=7)
        reader, writer = await pair.a.open_connection(B_ADDRESS, 7)
        writer.write(b"x")
        await reader.readexactly(1)
        writer.close()
        await pair.wait_until(lambda: pair.connections() == 0)
        kinds = {kind for kind, _ in seen}
        assert kinds == {"<", ">", "event"}
        changes = [(str(item.event.old), str(item.event.new)) for kind, item in seen if kind == "event" and hasattr(item.event, "new")]
        assert changes[:2] == [("CLOSED", "SYN-SENT"), ("SYN-SENT", "ESTABLISHED")]
        assert changes[-1] == ("TIME-WAIT", "CLOSED")


@run_async
async def test_snapshots_list_listeners_and_connections(seed):
    async with stack_pair(seed) as pair:
        await pair.b.start_server(echo, port=7)
        reader, writer = await pair.a.open_connection(B_ADDRESS, 7)
        await pair.wait_until(lambda: len(pair.b._transports) == 1)
        states = sorted(snapshot.state.value for snapshot in pair.b.snapshots())
        assert states == ["ESTABLISHED", "LISTEN"]
        listening = [snapshot for snapshot in pair.b.snapshots() if snapshot.state.value == "LISTEN"][0]
        assert listening.local[1] == 7
        writer.close()


@run_async
async def test_exhausted_retransmissions_reach_the_reader_as_timeout_error(seed):
    config = replace(FAST_CONFIG, max_retransmissions=3, max_rto=0.2)
    async with stack_pair(seed, config=config) as pair:
        await pair.b.start_server(echo, port=7)
        reader, writer = await pair.a.open_connection(B_ADDRESS, 7)
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        pair.link_b.drop_when(lambda packet: True, count=1_000_000, direction="inbound")  # B goes dark
        writer.write(b"anyone there?")
        try:
            await reader.read()
        except TimeoutError as error:
            assert error.errno == errno.ETIMEDOUT
        else:
            raise AssertionError("the reader saw no error though the peer went silent")
        # Three retransmission timeouts (a tail loss probe, RFC 8985 7, may go before them).
        assert writer.get_extra_info("connection").retransmission_timeouts == 3
        assert writer.is_closing()


@run_async
async def test_a_tracer_in_the_link_gets_state_changes_on_the_packet_lines(seed):
    from ustack.link import Tracer

    lines: list[str] = []
    tracers: list[Tracer] = []

    def wrap(link):
        tracers.append(Tracer(link, output=lines.append))
        return tracers[-1]

    async with stack_pair(seed, wrap_a=wrap) as pair:
        pair.a.add_observer(tracers[0].observe)  # an observer like any other
        await pair.b.start_server(echo, port=7)
        reader, writer = await pair.a.open_connection(B_ADDRESS, 7)
        writer.write(b"x")
        assert await reader.readexactly(1) == b"x"
        writer.close()
        await pair.wait_until(lambda: pair.connections() == 0)
    print("\n".join(lines))
    established = [line for line in lines if "SYN-SENT -> ESTABLISHED" in line]
    assert len(established) == 1 and " < " in established[0] and "Flags [S.]" in established[0]
    assert any(line.strip() == "CLOSED -> SYN-SENT" for line in lines)
    assert "TIME-WAIT -> CLOSED" in lines[-1]  # the timer's change, on a line of its own


@run_async
async def test_many_connections_come_and_go_and_leave_nothing_behind(seed):
    async with stack_pair(seed) as pair:
        server = await pair.b.start_server(echo, port=7)

        async def one(number: int) -> bytes:
            reader, writer = await pair.a.open_connection(B_ADDRESS, 7)
            writer.write(b"%d" % number)
            writer.write_eof()
            answer = await reader.read()
            writer.close()
            await writer.wait_closed()
            return answer

        answers = await asyncio.gather(*(one(number) for number in range(100)))
        assert answers == [b"%d" % number for number in range(100)]
        server.close()
        await server.wait_closed()
        await pair.wait_until(pair.idle)
        for runtime in (pair.a, pair.b):
            stack = runtime.stack
            assert not runtime.timer_armed and not runtime._transports and not runtime._dirty
            assert not stack.connections and not stack.listeners
            assert not stack.timer_heap.heap and not stack.timer_heap.entries and not stack._touched
            assert not stack.timer_heap.time_wait_queue and not stack.timer_heap.queued


@run_async
async def test_giving_up_on_a_connect_leaves_nothing_behind(seed):
    async with stack_pair(seed) as pair:
        pair.link_b.drop_when(lambda packet: True, count=1_000_000, direction="inbound")  # B is dark
        try:
            await asyncio.wait_for(pair.a.open_connection(B_ADDRESS, 80), 0.05)
        except TimeoutError as error:
            assert error.errno is None  # wait_for's own timeout, not the core's ETIMEDOUT
        else:
            raise AssertionError("connected to a host that drops everything")
        # The attempt was aborted: no SYN-SENT connection keeps retransmitting.
        await pair.wait_until(pair.idle)
        assert not pair.a.timer_armed and not pair.a._transports


@run_async
async def test_no_packet_sent_is_larger_than_the_mtu_under_loss(seed):
    # Data flowing both ways under loss: data segments then carry SACK blocks, and the payload
    # must shrink to make room for them (RFC 9293 3.7.1: the MSS excludes options), or the link
    # drops the packet as too large.
    oversized: list[int] = []
    async with stack_pair(seed, loss=0.05) as pair:
        for runtime in (pair.a, pair.b):
            mtu = runtime.link.mtu
            runtime.add_observer(lambda now, kind, item, mtu=mtu: kind == ">" and len(item) > mtu and oversized.append(len(item)))
        payload = random.Random(seed).randbytes(512 * 1024)
        await pair.b.start_server(echo, port=7)
        reader, writer = await pair.a.open_connection(B_ADDRESS, 7)
        writer.write(payload)
        writer.write_eof()
        reading = asyncio.ensure_future(reader.read())
        await pair.wait_until(lambda: reading.done() or bool(oversized), timeout=20)
        reading.cancel()
        writer.close()
    assert not oversized, f"{len(oversized)} packets larger than the MTU, e.g. {oversized[0]} bytes"
    assert reading.result() == payload


def run_reporting_loop_errors(main) -> list[dict]:
    """asyncio.run(main()), returning what reached the loop's exception handler, shutdown included
    (where asyncio.run cancels the tasks still running)."""
    reported: list[dict] = []

    async def guarded():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: reported.append(context))
        await asyncio.wait_for(main(), 60)

    asyncio.run(guarded())
    return reported


def test_a_handler_still_running_when_the_program_stops_is_cancelled_without_a_traceback(seed):
    # Ctrl-C on `ustack serve` during a download: asyncio.run() cancels the handler's task. No
    # "Exception in callback ..." traceback may come out of that (asyncio 3.11's own
    # StreamReaderProtocol callback raised on a cancelled task).
    async def main():
        async with stack_pair(seed) as pair:
            started = asyncio.Event()

            async def waits_forever(reader, writer):  # a keep-alive connection, say
                started.set()
                await asyncio.Event().wait()

            await pair.b.start_server(waits_forever, port=7)
            await pair.a.open_connection(B_ADDRESS, 7)
            await asyncio.wait_for(started.wait(), 10)

    assert run_reporting_loop_errors(main) == []


def test_an_exception_a_handler_lets_out_is_reported_and_its_connection_closed(seed):
    async def main():
        async with stack_pair(seed) as pair:
            async def broken(reader, writer):
                raise ValueError("a bug in the handler")

            await pair.b.start_server(broken, port=7)
            reader, _ = await pair.a.open_connection(B_ADDRESS, 7)
            assert await asyncio.wait_for(reader.read(), 10) == b""  # closed: FIN, not left hanging

    reported = run_reporting_loop_errors(main)
    assert [(context["message"], type(context["exception"])) for context in reported] == [
        ("Unhandled exception in client_connected_cb", ValueError)]
