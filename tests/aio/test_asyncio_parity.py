"""AsyncStack against asyncio's own API: the standard keywords, Server, BufferedProtocol, and the
errors a protocol's callbacks see. Two ustack hosts over a memory link (tests/stack/twohosts.py)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest
from twohosts import A_ADDRESS, B_ADDRESS, run_async, stack_pair

from ustack.stack import Stack


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


# --- Stack addresses ------------------------------------------------------------------------------
@pytest.mark.parametrize("address", ["10.77.0.2", ipaddress.IPv4Address("10.77.0.2"), 0x0A4D0002])
def test_stack_takes_an_address_as_ipaddress_does(address):
    assert Stack(address).address == 0x0A4D0002


@pytest.mark.parametrize("address, reason", [
    ("10.77.0.300", "not an IP address"), ("ustack", "not an IP address"), (True, "not an IP address"),
    ("::1", "IPv6"), ("fd00:77::2", "address6"), ("127.0.0.1", "host's address"), ("224.0.0.1", "host's address"), ("0.0.0.0", "host's address"),
])
def test_a_bad_stack_address_is_a_value_error_naming_it(address, reason):
    with pytest.raises(ValueError) as raised:
        Stack(address)
    assert repr(address) in str(raised.value) and reason in str(raised.value)


# --- the standard keywords ------------------------------------------------------------------------
@run_async
async def test_standard_keywords_are_taken_and_impossible_ones_refused(seed):
    async with stack_pair(seed) as pair:
        server = await pair.b.start_server(echo, port=7, reuse_address=True, backlog=10, ssl=None, family=socket.AF_INET)
        reader, writer = await pair.a.open_connection(B_ADDRESS, 7, ssl=None, local_addr=(A_ADDRESS, 40123),
                                                      happy_eyeballs_delay=0.25, family=socket.AF_INET, proto=0, flags=0)
        assert writer.get_extra_info("sockname") == (A_ADDRESS, 40123)
        writer.write(b"ping\n")
        assert await reader.readline() == b"ping\n"
        for keywords, message in [({"ssl": True}, "ssl"), ({"sock": object()}, "sock"),
                                  ({"family": socket.AF_UNIX}, "AF_INET and AF_INET6"), ({"server_hostname": "x"}, "ssl")]:
            with pytest.raises(ValueError, match=message):
                await pair.a.open_connection(B_ADDRESS, 7, **keywords)
        with pytest.raises(socket.gaierror) as raised:  # an IPv4 host with AF_INET6, as asyncio's getaddrinfo says
            await pair.a.open_connection(B_ADDRESS, 7, family=socket.AF_INET6)
        assert raised.value.errno == socket.EAI_ADDRFAMILY
        with pytest.raises(ValueError, match="reuse_port"):
            await pair.b.create_server(asyncio.Protocol, port=8, reuse_port=True)
        with pytest.raises(TypeError, match="no_such_option"):
            await pair.a.open_connection(B_ADDRESS, 7, no_such_option=1)
        with pytest.raises(OSError) as raised:
            await pair.a.open_connection(B_ADDRESS, 7, local_addr=("10.1.2.3", 0))
        assert raised.value.errno == 99  # EADDRNOTAVAIL
        writer.close()
        server.close()
        await server.wait_closed()


@run_async
async def test_server_sockets_and_start_serving_false(seed):
    async with stack_pair(seed) as pair:
        server = await pair.b.start_server(echo, B_ADDRESS, 0, start_serving=False)
        host, port = server.sockets[0].getsockname()
        assert host == B_ADDRESS and 1024 < port < 65536
        assert not server.is_serving()
        with pytest.raises(ConnectionRefusedError):  # not listening yet: the SYN is answered with RST
            await pair.a.open_connection(B_ADDRESS, port)
        with pytest.raises(OSError) as raised:  # but the port is taken
            await pair.b.start_server(echo, port=port)
        assert raised.value.errno == 98  # EADDRINUSE
        await server.start_serving()
        assert server.is_serving()
        reader, writer = await pair.a.open_connection(B_ADDRESS, port)
        writer.write(b"up\n")
        assert await reader.readline() == b"up\n"
        writer.close()
        async with server:
            pass
        assert not server.is_serving() and server.sockets == ()


@run_async
async def test_serve_forever_starts_a_server_and_cancelling_it_closes_it(seed):
    async with stack_pair(seed) as pair:
        server = await pair.b.start_server(echo, port=9, start_serving=False)
        task = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0)  # one loop step (not a wait for time): the task's first step listens
        assert server.is_serving()
        reader, writer = await pair.a.open_connection(B_ADDRESS, 9)
        writer.write(b"x\n")
        assert await reader.readline() == b"x\n"
        writer.close()
        await pair.a.wait_until(lambda: not pair.b._transports, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving()
        with pytest.raises(ConnectionRefusedError):
            await pair.a.open_connection(B_ADDRESS, 9)


# --- protocols ------------------------------------------------------------------------------------
class Collector(asyncio.BufferedProtocol):
    def __init__(self, fail_after: int | None = None) -> None:
        self.buffer = bytearray(1000)
        self.received = bytearray()
        self.fail_after = fail_after
        self.lost: asyncio.Future = asyncio.get_running_loop().create_future()

    def get_buffer(self, size_hint: int) -> bytearray:
        return self.buffer

    def buffer_updated(self, count: int) -> None:
        self.received += self.buffer[:count]
        if self.fail_after is not None and len(self.received) >= self.fail_after:
            raise RuntimeError("the protocol gives up")

    def connection_lost(self, exc) -> None:
        self.lost.set_result(exc)


@run_async
async def test_buffered_protocol_gets_the_data_through_its_buffer(seed):
    payload = bytes(range(256)) * 40  # 10240 bytes: several get_buffer() rounds of 1000
    async with stack_pair(seed) as pair:

        async def send(reader, writer):
            writer.write(payload)
            await writer.drain()
            writer.close()

        await pair.b.start_server(send, port=7)
        transport, protocol = await pair.a.create_connection(Collector, B_ADDRESS, 7)
        assert await asyncio.wait_for(protocol.lost, 5) is None
        assert bytes(protocol.received) == payload


@run_async
async def test_a_failing_callback_resets_and_connection_lost_gets_its_error(seed):
    loop = asyncio.get_running_loop()
    reported = []
    loop.set_exception_handler(lambda loop, context: reported.append(context["message"]))
    async with stack_pair(seed) as pair:
        peer_reader = asyncio.get_running_loop().create_future()

        async def send(reader, writer):
            writer.write(b"z" * 5000)
            peer_reader.set_result(reader)

        await pair.b.start_server(send, port=7)
        transport, protocol = await pair.a.create_connection(lambda: Collector(fail_after=1), B_ADDRESS, 7)
        error = await asyncio.wait_for(protocol.lost, 5)
        assert isinstance(error, RuntimeError) and str(error) == "the protocol gives up"
        assert reported == ["protocol.buffer_updated() call failed"]
        with pytest.raises(ConnectionResetError):  # the peer saw the RST
            await asyncio.wait_for((await peer_reader).read(), 5)


# --- the control socket ---------------------------------------------------------------------------
@run_async
async def test_every_asyncstack_answers_ustack_ss_unless_told_not_to(seed):
    from ustack import control

    async with stack_pair(seed) as pair:
        await pair.b.start_server(echo, port=7)
        reader, writer = await pair.a.open_connection(B_ADDRESS, 7)
        survey = await asyncio.to_thread(control.survey)
        assert survey.problems == []
        [answer] = survey.answers  # one control socket per process, for both stacks
        assert answer["address"] == f"{A_ADDRESS}, {B_ADDRESS}"
        states = sorted(item["state"] for item in answer["connections"])
        assert states == ["ESTABLISHED", "ESTABLISHED", "LISTEN"]
        writer.close()
    assert (await asyncio.to_thread(control.survey)).answers == []  # gone with the stacks

    from ustack.aio import AsyncStack
    from ustack.link import MemoryLink

    link, _ = MemoryLink.pair()
    async with AsyncStack(Stack(B_ADDRESS), link, control=False):
        assert (await asyncio.to_thread(control.survey)).answers == []
    link.close()
