"""What `ustack serve` and `ustack connect` share: the network flags, and building (and always
taking down) the TUN device, the namespace, the link middlewares and the stack on top.

    with UstackNetwork(args) as network:       # TUN (in the namespace), addresses, middlewares
        stack = network.make_stack()           # ustack's Stack at --addr with --msl, --mtu
        ...                                    # AsyncStack(stack, network.link)
    # on leaving, also on errors and Ctrl-C: the link is closed (which deletes the TUN device)
    # and the namespace is removed if, and only if, we created it.

The chain of links, outermost first: Tracer (--trace) > FaultInjector (--loss) > WireTap
(--ladder) > PcapWriter (--pcap) > TunLink. The pcap sits next to the device, so it holds what
really crossed the wire (as tcpdump on the interface would see it); the tracer sits next to the
stack, so it shows what the stack sent and received, with the state changes each packet caused.
The ladder's tap sees the wire too, and the FaultInjector tells it what it dropped
(ustack/commands/live_ladder.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import signal
import sys

from ..cli import CliError

DEFAULT_TUN = "ustun0"
DEFAULT_ADDRESS = "10.77.0.2"
DEFAULT_HOST_ADDRESS = "10.77.0.1/24"
TUN_DEVICE = "/dev/net/tun"


# --------------------------------------------------------------------------------------------
# Argument types: each turns a bad value into one line (argparse prints it and exits 2)
# --------------------------------------------------------------------------------------------
def ipv4_address(text: str) -> str:
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IPv4 address") from None
    _require_host_address(text, address)
    return str(address)


def ipv4_interface(text: str) -> str:
    if "/" not in text:
        raise argparse.ArgumentTypeError(f"{text!r} needs a prefix length, like 10.77.0.1/24")
    try:
        interface = ipaddress.IPv4Interface(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IPv4 address with a prefix (like 10.77.0.1/24)") from None
    if interface.network.prefixlen > 30:
        raise argparse.ArgumentTypeError(f"{text!r}: the prefix must leave room for two hosts (/30 or shorter)")
    _require_host_address(text, interface.ip)
    if interface.ip in (interface.network.network_address, interface.network.broadcast_address):
        raise argparse.ArgumentTypeError(f"{text!r} is not a host's address: it is the network's own address or "
                                         "its broadcast address (a host's is like 10.77.0.1/24)")
    return str(interface)


def _require_host_address(text: str, address: ipaddress.IPv4Address) -> None:
    """One host's address, as a TUN device's two ends need: the kernel would quietly accept
    others on the device and then never deliver a packet to it (and 127.0.0.1/8 on a device in
    this machine's own namespace would get in the way of its loopback)."""
    if address in _THIS_NETWORK:  # RFC 1122 3.2.1.3
        why = "0.0.0.0/8 means 'this network'"
    elif address.is_loopback:
        why = "loopback never leaves the kernel, and ustack is reached through the TUN device"
    elif address.is_multicast:
        why = "it is a multicast address"
    elif address == _LIMITED_BROADCAST or address.is_reserved:
        why = "it is a broadcast or reserved address"
    else:
        return
    raise argparse.ArgumentTypeError(f"{text!r} is not a host's address: {why}")


_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def mtu_value(text: str) -> int:
    value = _integer(text, "MTU")
    if not 68 <= value <= 65535:  # RFC 791: every IPv4 link carries 68 bytes; 65535 is the IPv4 maximum
        raise argparse.ArgumentTypeError(f"MTU {value} is outside 68..65535")
    return value


def loss_probability(text: str) -> float:
    value = _number(text, "number")
    if not 0.0 <= value < 1.0:  # 1.0 would drop everything: no connection could ever start
        raise argparse.ArgumentTypeError(f"loss {text} is not in [0, 1)")
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


def seed_value(text: str) -> int:
    return _integer(text, "seed")


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
    group.add_argument("--tun", metavar="NAME", type=interface_name, default=DEFAULT_TUN,
                       help=f"name of the TUN device (default {DEFAULT_TUN})")
    group.add_argument("--addr", metavar="IP", type=ipv4_address, default=DEFAULT_ADDRESS,
                       help=f"ustack's own address (default {DEFAULT_ADDRESS})")
    group.add_argument("--host-addr", metavar="IP/PREFIX", type=ipv4_interface, default=DEFAULT_HOST_ADDRESS,
                       help=f"the kernel's address on the TUN device (default {DEFAULT_HOST_ADDRESS})")
    group.add_argument("--mtu", metavar="N", type=mtu_value, default=1500, help="MTU of the TUN device (68..65535, default 1500)")
    group.add_argument("--no-offload", action="store_true",
                       help="no checksum/TSO offloads on the TUN device (on by default where the kernel offers them)")
    group.add_argument("--pcap", metavar="FILE", type=path_value,
                       help="record every packet on the wire in this pcap file")
    group.add_argument("--trace", action="store_true", help="print one line per packet, with the state changes it caused")
    group.add_argument("--loss", metavar="P", type=loss_probability, default=0.0,
                       help="drop this fraction of the packets in each direction (0 <= P < 1)")
    group.add_argument("--seed", metavar="N", type=seed_value, default=0,
                       help="seed of the packet loss, so a run can be repeated (default 0)")
    group.add_argument("--msl", metavar="SECONDS", type=seconds_value,
                       help="maximum segment lifetime; TIME-WAIT lasts twice this (default 30)")


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


def make_ladders(args: argparse.Namespace, output):
    """The LiveLadders that --ladder asks for, or None."""
    if args.ladder is None or args.ladder is False:
        return None
    from .live_ladder import LiveLadders

    port = None if args.ladder is True else args.ladder or None  # connect: a flag; serve: 0 = any port
    # Colour only for a person at a terminal (and never when NO_COLOR is set, no-color.org).
    colour = hasattr(output, "isatty") and output.isatty() and "NO_COLOR" not in os.environ
    return LiveLadders(output=output, port=port, relative=args.relative, colour=colour)


# --------------------------------------------------------------------------------------------
# Building the network
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM behaves like Ctrl-C (KeyboardInterrupt) inside the block, so that a process stopped
    while still setting up also takes its TUN device and namespace down. (Once the event loop
    runs, its own signal handlers take over.)

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


async def start_control_server(astack, program: str, address: str):
    """This process's control socket (what `ustack ss` asks), started; a failure is one line."""
    from ..control import ControlServer

    control = ControlServer(astack.snapshots, program=program, address=address)
    try:
        await control.start()
    except OSError as error:
        raise CliError(f"control socket: {error}") from None
    return control


def check_can_create_tun() -> None:
    if not os.path.exists(TUN_DEVICE):
        raise CliError(f"{TUN_DEVICE} is missing: load the tun module (modprobe tun) or, in a container, "
                       "pass the device in (docker run --device /dev/net/tun --cap-add NET_ADMIN)")
    if os.geteuid() != 0:
        raise CliError("needs root to create a TUN device and a network namespace (try: sudo ustack ...)")


class UstackNetwork:
    """The TUN device and everything around it, for one ustack process."""

    def __init__(self, args: argparse.Namespace, trace_output=None, ladders=None) -> None:
        self.args = args
        self.trace_output = trace_output or sys.stdout
        self.ladders = ladders  # a LiveLadders (--ladder), fed by a WireTap and on_drop
        host = ipaddress.IPv4Interface(args.host_addr)
        address = ipaddress.IPv4Address(args.addr)
        if host.ip == address:
            raise CliError(f"--addr {args.addr} and --host-addr {args.host_addr} must be different addresses")
        if address in (host.network.network_address, host.network.broadcast_address):
            raise CliError(f"--addr {args.addr} is the network or broadcast address of --host-addr {args.host_addr}; "
                           "give ustack a host address in it (like 10.77.0.2)")
        self.namespace = None
        self.link = None  # the outermost link of the chain
        self.device = None  # the TunLink itself

    def __enter__(self) -> "UstackNetwork":
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def open(self) -> None:
        check_can_create_tun()
        from ..link import FaultInjector, Faults, LinkError, PcapWriter, Tracer

        args = self.args
        try:
            from ..netns import Namespace, setup_tun_in_namespace

            if args.netns:
                self.namespace = Namespace(args.netns)
                self.namespace.open()
            # Without --netns: in this process's own namespace.
            self.device = setup_tun_in_namespace(self.namespace, args.tun, args.mtu, args.host_addr, args.addr,
                                                 offload=not getattr(args, "no_offload", False))
            link = self.device
            if args.pcap:
                try:
                    link = PcapWriter(link, args.pcap)
                except OSError as error:
                    raise CliError(f"cannot write {args.pcap}: {error.strerror}") from None
            on_drop = None
            if self.ladders is not None:
                from .live_ladder import WireTap

                link = WireTap(link, self.ladders)
                on_drop = self.ladders.on_drop
            if args.loss > 0:
                faults = Faults(drop=args.loss)
                link = FaultInjector(link, seed=args.seed, inbound=faults, outbound=faults, on_drop=on_drop)
            if args.trace:
                link = Tracer(link, output=self.trace_output)
            self.link = link
        except LinkError as error:
            raise CliError(str(error)) from None

    def close(self) -> None:
        """Undo everything, innermost last; safe to call twice and after a failed open().
        Ctrl-C and SIGTERM wait until it is done, so that they cannot cut it half way."""
        from ..netns import signals_held

        with signals_held():
            self._close()

    def _close(self) -> None:
        from ..link import LinkError

        link, self.link = self.link, None
        device, self.device = self.device, None
        namespace, self.namespace = self.namespace, None
        try:
            if link is not None:
                link.close()  # closes the whole chain: pcap flushed, TUN fd closed (device gone)
            elif device is not None:
                device.close()
        except (LinkError, OSError) as error:
            print(f"ustack: while closing the link: {error}", file=sys.stderr)
        if namespace is not None:
            try:
                namespace.close()  # removes it only if we created it
            except (LinkError, OSError) as error:
                print(f"ustack: while removing namespace {namespace.name}: {error}", file=sys.stderr)

    @property
    def created_namespace(self) -> bool:
        return bool(self.namespace is not None and self.namespace.created)

    def make_stack(self):
        from ..stack import Stack
        from ..tcp import TcpConfig
        from ..wire.ipv4 import address_value

        config = TcpConfig() if self.args.msl is None else TcpConfig(msl=self.args.msl)
        return Stack(address_value(self.args.addr), config, mtu=self.args.mtu)

    def how_to_run(self, command: str) -> str:
        """A shell command line that runs `command` where the kernel side of the TUN is."""
        if self.args.netns:
            return f"ip netns exec {self.args.netns} {command}"
        return command
