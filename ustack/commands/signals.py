"""How a ustack process that built a network stops: Ctrl-C (SIGINT) and SIGTERM both end it
through its cleanup, so the TUN device and the namespace always go with it.

    with sigterm_as_interrupt(), open_network(args) as network:   # setting up: KeyboardInterrupt
        asyncio.run(main(network))                                 # running: stop_on_signals()

Used by `serve`, `connect`, `lab` and scripts/bench.py. (Holding signals while tearing down is
ustack.netns.signals_held.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM behaves like Ctrl-C (KeyboardInterrupt) inside the block, so that a process stopped
    while still setting up also takes its TUN device and namespace down. (Once the event loop
    runs, its own signal handlers take over, with stop_on_signals.)

    Only in this process: pyroute2 forks helper processes for namespace work and stops them with
    SIGTERM; they inherit this handler, and must simply end, not raise in the middle of netlink
    work (which once left the TUN device unconfigured)."""
    main_pid = os.getpid()

    def handler(signal_number, frame):
        if os.getpid() != main_pid:
            os._exit(128 + signal_number)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_on_signals() -> asyncio.Event:
    """An event that SIGINT (Ctrl-C) and SIGTERM set, once the event loop runs (its handlers take
    over from sigterm_as_interrupt's), so that the command ends through its cleanup."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    return stop
