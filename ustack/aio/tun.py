"""open_tun_stack: a ustack on a real TUN device, brought up and down from inside a running loop.

    from ustack.aio import open_tun_stack

    async def main():
        async with open_tun_stack(namespace="ust-demo") as astack:   # ustack is 10.77.0.2
            server = await astack.start_server(handle, port=7)      # the kernel is 10.77.0.1
            await server.serve_forever()

    asyncio.run(main())   # as root: it makes a network namespace and a TUN device

The network itself (namespace, TUN device, pcap, faults) is made by ustack/network.py's
UstackNetwork, the one owner of that set-up, with the same settings `ustack serve` has. Its calls
block (pyroute2 runs its own event loop, which cannot run inside ours: "This event loop is
already running"), so they run in a worker thread. Leaving the block, also on an error or a
cancellation, stops the stack (see AsyncStack.close for `grace`), closes the device and removes
the namespace if it was created here.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator

from ..network import KERNEL_INTERFACE, TUN_NAME, USTACK_ADDRESS, NetworkSettings, UstackNetwork
from ..stack import Stack
from ..tcp.config import TcpConfig
from .runtime import AsyncStack


@contextlib.asynccontextmanager
async def open_tun_stack(
    *,
    namespace: str | None = None,
    address: str = USTACK_ADDRESS,
    host_interface: str = KERNEL_INTERFACE,
    tun: str = TUN_NAME,
    mtu: int = 1500,
    config: TcpConfig | None = None,
    pcap: str | None = None,
    control: bool = True,
    program: str | None = None,
    grace: float = 0.0,
    **settings: Any,
) -> AsyncIterator[AsyncStack]:
    """A started AsyncStack on a new TUN device, for `async with`.

    `namespace`: the network namespace to put the device in (created if missing, removed on exit
    if created here); None puts it in this process's own namespace. `address` is ustack's,
    `host_interface` the kernel's side of the device with its prefix. `pcap` records the wire.
    Other keywords are NetworkSettings fields (`loss`, `seed`, `trace_output`). `grace` seconds
    let open connections finish on exit before they are reset. The network is at `astack.network`
    (its `how_to_run("curl ...")` tells how to reach ustack from the kernel's side).
    Raises ValueError for a bad address and ustack.network.NetworkError (one line) if the
    network cannot be built (no root, no /dev/net/tun, a device name in use)."""
    stack = Stack(address, config or TcpConfig(), mtu=mtu)  # ValueError for a bad address, before any set-up
    network = UstackNetwork(NetworkSettings(namespace=namespace, tun=tun, address=address,
                                            host_interface=host_interface, mtu=mtu, pcap=pcap, **settings))
    try:
        await asyncio.to_thread(network.open)
    except BaseException:
        await asyncio.shield(asyncio.to_thread(network.close))
        raise
    try:
        astack = AsyncStack(stack, network.link, control=control, program=program)
        astack.network = network
        for observer in network.observers:
            astack.add_observer(observer)
        await astack.start()
        try:
            yield astack
        finally:
            await astack.close(grace)
    finally:
        # Shielded: a cancelled task still takes its device and namespace down.
        await asyncio.shield(asyncio.to_thread(network.close))
