"""What one start_server connection costs the asyncio loop (issue 12, connections per second).

Every handler ends with `writer.close(); await writer.wait_closed()`, and asyncio's own transports
tell the protocol connection_lost one loop iteration after close(), which resolves the future
wait_closed() awaits, which wakes the task one more iteration later, whose end runs the server's
done-callback one more after that: three loop callbacks and three iterations per connection for
nothing but bookkeeping. ustack's stream protocol hears connection_lost inside close(), and the
handler's task does the done-callback's work in its own last step, so:

- `writer.close(); await writer.wait_closed()` returns without the task leaving its step, on the
  server's streams and on open_connection's;
- a handler that returns is let go (and its connection closed) in that same step;
- so an echo connection costs the server's side two loop callbacks: its task's first step and
  the wake-up of its read; cancelling the task or an exception it lets out still closes the
  connection, and a task cancelled before its first step (asyncio.run at shutdown) leaves no
  handler coroutine that was never awaited;
- the peer's address text is made when asked for, alone (`ustack serve` logs it per request).

Two hosts over a memory link (tests/stack/twohosts.py) on the loop's clock; no sleeps: every
wait is for a condition, with a timeout as a hang guard.
"""

from __future__ import annotations

import asyncio

from twohosts import FAST_CONFIG, run_async, stack_pair

from ustack.aio.transport import TcpTransport


@run_async
async def test_wait_closed_after_close_returns_in_the_same_step():
    async with stack_pair(config=FAST_CONFIG) as pair:
        loop = asyncio.get_running_loop()
        seen: dict[str, bool] = {}

        async def answer_and_close(reader, writer):
            writer.write(await reader.read(100))
            await writer.drain()
            writer.close()
            marker = loop.create_future()
            loop.call_soon(marker.set_result, None)  # runs once the task leaves its step
            await writer.wait_closed()
            seen["server waited"] = marker.done()

        await pair.b.start_server(answer_and_close, port=7)
        reader, writer = await pair.a.open_connection(pair.b_address, 7)
        writer.write(b"hi")
        assert await asyncio.wait_for(reader.read(), 10) == b"hi"  # the answer, then the FIN
        writer.close()
        marker = loop.create_future()
        loop.call_soon(marker.set_result, None)
        await writer.wait_closed()
        seen["client waited"] = marker.done()
        await pair.wait_until(lambda: "server waited" in seen)
        assert seen == {"server waited": False, "client waited": False}
        # The close itself still happens on the wire: both FINs, then TIME-WAIT and CLOSED.
        await pair.wait_until(lambda: pair.connections() == 0)


@run_async
async def test_a_handler_that_returns_is_let_go_in_its_last_step():
    async with stack_pair(config=FAST_CONFIG) as pair:
        loop = asyncio.get_running_loop()
        at_next_callback: list[tuple[bool, int]] = []
        handler_task: list[asyncio.Task] = []

        def look() -> None:
            at_next_callback.append((handler_task[0].done(), len(pair.b._client_tasks)))

        async def answer(reader, writer):
            handler_task.append(asyncio.current_task())
            writer.write(await reader.read(100))
            writer.close()
            await writer.wait_closed()
            loop.call_soon(look)  # the first callback after the handler's return

        await pair.b.start_server(answer, port=7)
        reader, writer = await pair.a.open_connection(pair.b_address, 7)
        writer.write(b"hi")
        assert await asyncio.wait_for(reader.read(), 10) == b"hi"
        await pair.wait_until(lambda: bool(at_next_callback))
        assert at_next_callback == [(True, 0)]  # finished and let go, nothing left to run for it
        writer.close()


@run_async
async def test_an_echo_connection_costs_the_server_two_loop_callbacks():
    async with stack_pair(config=FAST_CONFIG) as pair:
        loop = asyncio.get_running_loop()
        server_tasks: set[asyncio.Task] = set()

        async def answer_once(reader, writer):
            server_tasks.add(asyncio.current_task())
            writer.write(await reader.read(100))
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        await pair.b.start_server(answer_once, port=7)
        for _ in range(3):
            server_tasks.clear()
            scheduled: list[object] = []  # the callbacks scheduled, in order (rounds aside)
            schedule = loop.call_soon

            def recording(callback, *args, **options):
                if getattr(callback, "__func__", None) is not type(pair.b)._scheduled_round:
                    scheduled.append(callback)
                return schedule(callback, *args, **options)

            loop.call_soon = recording
            try:
                reader, writer = await pair.a.open_connection(pair.b_address, 7)
                writer.write(b"hi")
                assert await asyncio.wait_for(reader.read(), 10) == b"hi"
                writer.close()
                await writer.wait_closed()
                await pair.wait_until(lambda: not pair.b._client_tasks and not pair.b._transports)
            finally:
                del loop.call_soon  # the class's own again
            (task,) = server_tasks

            def for_the_server(callback) -> bool:
                owner = getattr(callback, "__self__", None)  # a task's step or wake-up; a method
                if owner is task:
                    return True
                if isinstance(owner, TcpTransport):
                    return owner._server is not None  # an accepted connection's transport
                return getattr(getattr(callback, "func", None), "__self__", None) is pair.b  # a done-callback

            server_side = [callback for callback in scheduled if for_the_server(callback)]
            # The task's first step, and its wake-up when the request arrives: nothing for the
            # close, the end of wait_closed, or letting the finished task go.
            assert len(server_side) == 2, server_side


@run_async
async def test_a_cancelled_handler_closes_its_connection():
    async with stack_pair(config=FAST_CONFIG) as pair:
        started = asyncio.Event()

        async def waits_forever(reader, writer):
            started.set()
            await asyncio.Event().wait()

        await pair.b.start_server(waits_forever, port=7)
        reader, writer = await pair.a.open_connection(pair.b_address, 7)
        await asyncio.wait_for(started.wait(), 10)
        (task,) = pair.b._client_tasks.values()
        task.cancel()
        assert await asyncio.wait_for(reader.read(), 10) == b""  # its FIN: closed, not left hanging
        assert task.cancelled()
        await pair.wait_until(lambda: not pair.b._client_tasks)
        writer.close()


@run_async
async def test_peername_is_made_alone_when_asked_for(monkeypatch):
    """`ustack serve` logs every request's peername; the sockname text is made only if asked."""
    import ustack.aio.transport as transport_module

    made: list[tuple] = []
    make = transport_module._socket_address

    def counting(address, port):
        made.append((address, port))
        return make(address, port)

    monkeypatch.setattr(transport_module, "_socket_address", counting)
    async with stack_pair(config=FAST_CONFIG) as pair:
        names: list[tuple] = []

        async def tell(reader, writer):
            names.append(writer.get_extra_info("peername"))
            names.append(writer.get_extra_info("peername"))
            writer.close()

        await pair.b.start_server(tell, port=7)
        reader, writer = await pair.a.open_connection(pair.b_address, 7)
        assert await asyncio.wait_for(reader.read(), 10) == b""
        local = writer.get_extra_info("sockname")
        assert names == [local, local]  # the server's peer is the client's own address
        # One text for the server's two peername questions, one for the client's sockname.
        assert len(made) == 2
        assert writer.get_extra_info("sockname") == local and len(made) == 2  # kept
        assert writer.get_extra_info("cipher", "none") == "none"
        writer.close()


@run_async
async def test_a_handler_task_cancelled_before_its_first_step_leaves_no_unawaited_coroutine():
    """asyncio.run cancels every task at shutdown, also one made in the last iteration that
    never took a step: its handler must not be a coroutine made and never awaited (Python
    prints "RuntimeWarning: coroutine ... was never awaited" for it)."""
    import gc
    import warnings

    async with stack_pair(config=FAST_CONFIG) as pair:
        loop = asyncio.get_running_loop()
        ran: list[str] = []
        made: list[asyncio.Task] = []

        async def handler(reader, writer):
            ran.append("handler")

        make_task = loop.create_task

        def cancelled_at_once(coroutine, **options):
            task = make_task(coroutine, **options)
            if getattr(coroutine, "__qualname__", "").endswith("_run_client"):
                task.cancel()  # before its first step, as asyncio.run's shutdown would
                made.append(task)
            return task

        loop.create_task = cancelled_at_once
        try:
            await pair.b.start_server(handler, port=7)
            reader, writer = await pair.a.open_connection(pair.b_address, 7)
            await pair.wait_until(lambda: bool(made))  # accepted: its task made, in a round
            await asyncio.wait_for(asyncio.wait(made), 10)
        finally:
            del loop.create_task
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del made[:]
            pair.b._client_tasks.clear()  # (AsyncStack.close() aborts the connection itself)
            gc.collect()
        assert ran == []
        assert [str(warning.message) for warning in caught if "never awaited" in str(warning.message)] == []
        writer.close()
