"""The command line's own vocabulary: argparse types that turn a bad value into one line (argparse
prints it and exits 2), the check that an output file can be written, and the flags shared by the
commands that run ustack on a TUN device (`serve`, `connect`), with ustack.network's defaults.
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import os
from typing import NamedTuple

from ..network import DEFAULT_MTU, KERNEL_INTERFACE, KERNEL_INTERFACE6, TUN_NAME, USTACK_ADDRESS, USTACK_ADDRESS6
from ..host_addresses import why_not_a_host_address
from .errors import CliError
from .faults import add_fault_arguments


class AddressFamily(NamedTuple):
    """What the address arguments of one family say and check: its name, ipaddress's classes,
    an example with a prefix, and the longest prefix that leaves room for two hosts (the kernel's
    end of the TUN device and ustack's)."""

    name: str
    address: type
    interface: type
    example: str
    longest_prefix: int


IPV4 = AddressFamily("IPv4", ipaddress.IPv4Address, ipaddress.IPv4Interface, KERNEL_INTERFACE, 30)
IPV6 = AddressFamily("IPv6", ipaddress.IPv6Address, ipaddress.IPv6Interface, KERNEL_INTERFACE6, 126)


def host_address(family: AddressFamily, text: str) -> str:
    """One host's address of `family` (--addr, --addr6, a HOST), in its usual spelling."""
    try:
        address = family.address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an {family.name} address") from None
    _require_host_address(text, address)
    return str(address)


def host_interface(family: AddressFamily, text: str) -> str:
    """The kernel's address with its prefix (--host-addr, --host-addr6), like 10.77.0.1/24."""
    if "/" not in text:
        raise argparse.ArgumentTypeError(f"{text!r} needs a prefix length, like {family.example}")
    try:
        interface = family.interface(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an {family.name} address with a prefix "
                                         f"(like {family.example})") from None
    if interface.network.prefixlen > family.longest_prefix:
        raise argparse.ArgumentTypeError(f"{text!r}: the prefix must leave room for two hosts "
                                         f"(/{family.longest_prefix} or shorter)")
    _require_host_address(text, interface.ip)
    # The network's own address is no host's: IPv4's (RFC 1122 3.3.6) and IPv6's, the subnet-router
    # anycast address (RFC 4291 2.6.1); nor is IPv4's broadcast address (IPv6 has none).
    reserved = {interface.network.network_address}
    if family is IPV4:
        reserved.add(interface.network.broadcast_address)
    if interface.ip in reserved:
        what = "the network's own address or its broadcast address" if family is IPV4 else "the network's own address"
        raise argparse.ArgumentTypeError(f"{text!r} is not a host's address: it is {what} "
                                         f"(a host's is like {family.example})")
    return str(interface)


def _require_host_address(text: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    """One host's address, as a TUN device's two ends need: the kernel would quietly accept others
    on the device and then never deliver a packet to it (the rule: ustack/host_addresses.py)."""
    why = why_not_a_host_address(address)
    if why is not None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a host's address: {why}")


# The argparse types: each family's pair, and any address (IPv6 when it has a colon).
ipv4_address = functools.partial(host_address, IPV4)
ipv6_address = functools.partial(host_address, IPV6)
ipv4_interface = functools.partial(host_interface, IPV4)
ipv6_interface = functools.partial(host_interface, IPV6)


def ip_address(text: str) -> str:
    """An IPv4 or an IPv6 address (IPv6 when it has a colon), checked like --addr or --addr6."""
    return host_address(IPV6 if ":" in text else IPV4, text)


def mtu_value(text: str) -> int:
    value = _integer(text, "MTU")
    if not 68 <= value <= 65535:  # RFC 791: every IPv4 link carries 68 bytes; 65535 is the IPv4 maximum
        raise argparse.ArgumentTypeError(f"MTU {value} is outside 68..65535")
    return value


def gso_size_value(text: str) -> int:
    from ..wire.segment import LARGEST_BIG_PACKET, LARGEST_PACKET

    value = _integer(text, "size in bytes")
    if not LARGEST_PACKET <= value <= LARGEST_BIG_PACKET:
        raise argparse.ArgumentTypeError(f"gso_max_size {value} is outside {LARGEST_PACKET}..{LARGEST_BIG_PACKET}")
    return value


def seconds_value(text: str) -> float:
    value = _number(text, "number of seconds")
    if not 0.0 <= value <= 3600.0 or value != value:
        raise argparse.ArgumentTypeError(f"{text} seconds is outside 0..3600")
    return value


def port_value(text: str) -> int:
    value = _integer(text, "port")
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is outside 1..65535")
    return value


def _queue_length(text: str, what: str) -> int:
    value = _integer(text, what)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{what} {value} is outside 1..65535")
    return value


def backlog_value(text: str) -> int:
    """A listen backlog: the SYN queue and accept queue of each listener."""
    return _queue_length(text, "backlog")


def fast_open_queue_value(text: str) -> int:
    """How many Fast Open connections may wait for their handshake per listener (RFC 7413 5.1)."""
    return _queue_length(text, "Fast Open queue length")


def retries_value(text: str) -> int:
    value = _integer(text, "retry count")
    if not 0 <= value <= 20:
        raise argparse.ArgumentTypeError(f"retry count {value} is outside 0..20")
    return value


def interface_name(text: str) -> str:
    if not 1 <= len(text.encode()) <= 15 or "/" in text or text.strip() != text or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"{text!r} is not a usable interface name (1 to 15 characters)")
    return text


def namespace_name(text: str) -> str:
    if not text or len(text) > 64 or not all(c.isalnum() or c in "_.-" for c in text) or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"{text!r} is not a usable namespace name (letters, digits, . _ -)")
    return text


def path_value(text: str) -> str:
    """A file or directory name: an empty one would quietly mean "none" or "here"."""
    if not text:
        raise argparse.ArgumentTypeError("an empty name is not a path")
    return text


def check_output_file(file_name: str) -> None:
    """CliError now if `file_name` clearly cannot be written (a directory, or in a directory that
    does not exist): before a run that takes a while, not after it with its results lost."""
    directory = os.path.dirname(file_name) or "."
    if os.path.isdir(file_name):
        raise CliError(f"cannot write {file_name}: it is a directory")
    if not os.path.isdir(directory):
        raise CliError(f"cannot write {file_name}: no directory {directory}")


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a {what}") from None


def _integer(text: str, what: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} {text!r} is not a whole number") from None


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("network")
    group.add_argument("--netns", metavar="NAME", type=namespace_name,
                       help="put the TUN device in this network namespace (created if missing, "
                            "and then removed on exit)")
    group.add_argument("--tun", metavar="NAME", type=interface_name, default=TUN_NAME,
                       help=f"name of the TUN device (default {TUN_NAME})")
    group.add_argument("--addr", metavar="IP", type=ipv4_address, default=USTACK_ADDRESS,
                       help=f"ustack's own address (default {USTACK_ADDRESS})")
    group.add_argument("--host-addr", metavar="IP/PREFIX", type=ipv4_interface, default=KERNEL_INTERFACE,
                       help=f"the kernel's address on the TUN device (default {KERNEL_INTERFACE})")
    group.add_argument("--addr6", metavar="IP6", type=ipv6_address, default=USTACK_ADDRESS6,
                       help=f"ustack's own IPv6 address (default {USTACK_ADDRESS6})")
    group.add_argument("--host-addr6", metavar="IP6/PREFIX", type=ipv6_interface, default=KERNEL_INTERFACE6,
                       help=f"the kernel's IPv6 address on the TUN device (default {KERNEL_INTERFACE6})")
    family = group.add_mutually_exclusive_group()
    family.add_argument("--no-ipv4", action="store_true", help="IPv6 only: no IPv4 address on either side")
    family.add_argument("--no-ipv6", action="store_true", help="IPv4 only: IPv6 switched off on the TUN device")
    group.add_argument("--mtu", metavar="N", type=mtu_value, default=DEFAULT_MTU,
                       help=f"MTU of the TUN device (68..65535, default {DEFAULT_MTU})")
    group.add_argument("--no-offload", action="store_true",
                       help="no checksum/TSO offloads on the TUN device (on by default where the kernel offers them); "
                            "ustack then joins and cuts segments itself (software GRO/GSO)")
    group.add_argument("--gso-max-size", metavar="BYTES", type=gso_size_value,
                       help="the longest TCP packet handed to the device to cut into segments (as Linux's "
                            "device setting of that name); above 65535 BIG TCP: IPv4 Total Length 0, IPv6 "
                            "jumbograms (default 262144 with offloads on Linux 6.3 or later, else 65535)")
    group.add_argument("--no-software-offload", action="store_true",
                       help="without the device's offloads, do not join or cut segments in software either: the pcap, "
                            "faults and --trace see every MTU-sized packet")
    group.add_argument("--pcap", metavar="FILE", type=path_value,
                       help="record every packet on the wire in this pcap file")
    group.add_argument("--trace", action="store_true", help="print one line per packet, with the state changes it caused")
    group.add_argument("--msl", metavar="SECONDS", type=seconds_value,
                       help="maximum segment lifetime; TIME-WAIT lasts twice this (default 30)")
    add_fault_arguments(parser)


def add_ladder_arguments(parser: argparse.ArgumentParser, with_port: bool) -> None:
    group = parser.add_argument_group("ladder diagrams")
    if with_port:
        group.add_argument("--ladder", metavar="PORT", nargs="?", type=port_value, const=0, default=None,
                           help="draw each connection (with PORT: each with this port on either side) "
                                "as a ladder diagram on stdout when it ends, or when ustack stops")
    else:
        group.add_argument("--ladder", action="store_true",
                           help="draw the connection as a ladder diagram on stderr when the command ends")
    group.add_argument("--relative", action="store_true",
                       help="ladder sequence numbers relative to each side's initial one (tcpdump without -S)")


def add_web_arguments(parser: argparse.ArgumentParser) -> None:
    """--web [ADDR:]PORT and --web-remote (ustack/web/cli.py owns them)."""
    from ..web.cli import add_web_arguments as add

    add(parser)
