"""Links: the devices that move IPv4 packets (TUN, a memory pair) and the middlewares that wrap
them (FaultInjector, PcapWriter, Tracer). The interface is described in ustack/link/base.py."""

from __future__ import annotations

from .base import Link, LinkClosed, LinkError, Middleware
from .fault import FaultInjector, Faults
from .memory import MemoryLink
from .pcap import PcapWriter
from .tracer import Tracer
from .tun import TunLink

__all__ = [
    "FaultInjector",
    "Faults",
    "Link",
    "LinkClosed",
    "LinkError",
    "MemoryLink",
    "Middleware",
    "PcapWriter",
    "Tracer",
    "TunLink",
]
