"""Two ustack hosts in one process, joined by a memory link with a seeded FaultInjector.

    async with stack_pair(seed, loss=0.05) as pair:
        server = await pair.b.start_server(handle, port=7)
        reader, writer = await pair.a.open_connection(pair.b_address, 7)

Host A is 10.77.0.1, host B 10.77.0.2. Real time (the asyncio loop's clock), with short timers
so that losses and TIME-WAIT resolve quickly. Tests never sleep: they await real conditions
(`AsyncStack.wait_until`) with a timeout. The seed is printed, so a failing run shows it.
"""

from __future__ import annotations

import asyncio
import functools
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass

from ustack.aio import AsyncStack
from ustack.link import FaultInjector, Faults, MemoryLink
from ustack.stack import Stack
from ustack.tcp.config import TcpConfig
from ustack.wire.ipv4 import address_value

A_ADDRESS = "10.77.0.1"
B_ADDRESS = "10.77.0.2"
TEST_TIMEOUT = 60.0  # a hang guard for a whole test, never a measurement

# Short timers: a lost segment costs tens of milliseconds, TIME-WAIT (2 * msl) 0.2 s.
FAST_CONFIG = TcpConfig(msl=0.1, initial_rto=0.2, min_rto=0.05, max_rto=1.0, persist_min=0.05, persist_max=0.5)


def default_seed() -> int:
    return int(os.environ.get("USTACK_TEST_SEED", "20261121"))


def run_async(test):
    """Run an async test function on a fresh event loop, with a hang guard."""

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        async def guarded():
            return await asyncio.wait_for(test(*args, **kwargs), TEST_TIMEOUT)

        return asyncio.run(guarded())

    return wrapper


@dataclass
class Pair:
    a: AsyncStack
    b: AsyncStack
    link_a: FaultInjector
    link_b: FaultInjector
    a_address: str = A_ADDRESS
    b_address: str = B_ADDRESS

    @property
    def stacks(self) -> tuple[Stack, Stack]:
        return self.a.stack, self.b.stack

    async def wait_until(self, predicate, timeout: float = 10.0) -> None:
        """Wait for a condition on either host: re-checked after every round of either runtime."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def check() -> bool:
            if predicate():
                if not done.done():
                    done.set_result(None)
                return True
            return False

        waiters = [asyncio.ensure_future(self.a.wait_until(check)), asyncio.ensure_future(self.b.wait_until(check))]
        try:
            await asyncio.wait_for(done, timeout)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    def connections(self) -> int:
        return len(self.a.stack.connections) + len(self.b.stack.connections)

    def idle(self) -> bool:
        """Nothing left anywhere: no connection, no deadline, no timer armed."""
        return (
            self.connections() == 0
            and self.a.stack.next_deadline() is None
            and self.b.stack.next_deadline() is None
            and self.link_a.next_deadline() is None
            and self.link_b.next_deadline() is None
        )


def make_host(address: str, link, config: TcpConfig, seed: int) -> Stack:
    return Stack(address_value(address), config, mtu=link.mtu, port_seed=seed)


@asynccontextmanager
async def stack_pair(seed: int = 1, loss: float = 0.0, config: TcpConfig = FAST_CONFIG, wrap_a=None, **fault_options):
    """Host A and host B joined back to back. `loss` drops that share of packets arriving at
    each host; fault_options go to Faults for both directions of both hosts. `wrap_a(link)`
    may put a middleware (a Tracer, say) on top of host A's link."""
    memory_a, memory_b = MemoryLink.pair()
    faults = Faults(drop=loss, **fault_options)
    link_a = FaultInjector(memory_a, seed=seed, inbound=faults)
    link_b = FaultInjector(memory_b, seed=seed + 1, inbound=faults)
    host_a = make_host(A_ADDRESS, link_a, config, seed)
    host_b = make_host(B_ADDRESS, link_b, config, seed + 1)
    top_a = wrap_a(link_a) if wrap_a else link_a
    try:
        async with AsyncStack(host_a, top_a) as a, AsyncStack(host_b, link_b) as b:
            yield Pair(a, b, link_a, link_b)
    finally:
        link_a.close()
        link_b.close()
