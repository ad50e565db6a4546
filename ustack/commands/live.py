"""What `serve` and `connect` share once their arguments are parsed: ustack.network's network
built from the network flags (its failures as one line), the --ladder recorder, the TCP settings
and the control socket.

    ladders = make_ladders(args, sys.stdout)
    with sigterm_as_interrupt(), open_network(args, ladders=ladders) as network:
        stack = network.make_stack(tcp_config(args))
        ...
        control = await start_control_server(network, astack, "ustack serve")
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import sys

from ..network import USTACK_ADDRESS, NetworkError, NetworkSettings, UstackNetwork
from .errors import CliError
from .faults import faults_from_args


@contextlib.contextmanager
def open_network(args: argparse.Namespace, trace_output=None, ladders=None, queues: int = 1, rps_cpus=None):
    """The UstackNetwork of the network flags, open for the block and always closed after it
    (`rps_cpus`: NetworkSettings.rps_cpus, from serve's --cpu)."""
    check_addresses(args)
    ipv4, ipv6 = not args.no_ipv4, not args.no_ipv6
    inbound, outbound = faults_from_args(args) or (None, None)
    settings = NetworkSettings(
        namespace=args.netns, tun=args.tun, address=args.addr if ipv4 else None,
        host_interface=args.host_addr if ipv4 else None, address6=args.addr6 if ipv6 else None,
        host_interface6=args.host_addr6 if ipv6 else None, mtu=args.mtu,
        pcap=args.pcap, trace_output=(trace_output or sys.stdout) if args.trace else None,
        seed=args.seed, inbound_faults=inbound, outbound_faults=outbound, program=f"ustack {args.command}",
        offload=not args.no_offload, software_offload=not args.no_software_offload,
        gso_max_size=args.gso_max_size, queues=queues,
        rps_cpus=rps_cpus)
    network = UstackNetwork(settings, watch=ladders)
    try:
        with network:
            yield network
    except NetworkError as error:
        raise CliError(str(error)) from None


def check_addresses(args: argparse.Namespace) -> None:
    """ustack's address and the kernel's must be two hosts facing each other across the device,
    in each family that is on."""
    if not args.no_ipv6:
        if ipaddress.IPv6Interface(args.host_addr6).ip == ipaddress.IPv6Address(args.addr6):
            raise CliError(f"--addr6 {args.addr6} and --host-addr6 {args.host_addr6} must be different addresses")
        if args.mtu < 1280:  # RFC 8200 5: the kernel turns IPv6 off on a smaller link
            raise CliError(f"--mtu {args.mtu} is below IPv6's minimum of 1280: raise it or add --no-ipv6")
    if args.no_ipv4:
        return
    address, host_interface = args.addr, args.host_addr
    host = ipaddress.IPv4Interface(host_interface)
    ours = ipaddress.IPv4Address(address)
    if host.ip == ours:
        raise CliError(f"--addr {address} and --host-addr {host_interface} must be different addresses")
    if ours in (host.network.network_address, host.network.broadcast_address):
        raise CliError(f"--addr {address} is the network or broadcast address of --host-addr {host_interface}; "
                       f"give ustack a host address in it (like {USTACK_ADDRESS})")


def tcp_config(args: argparse.Namespace):
    """The TcpConfig the flags ask for (--msl)."""
    from ..tcp import TcpConfig

    return TcpConfig() if args.msl is None else TcpConfig(msl=args.msl)


def make_ladders(args: argparse.Namespace, output):
    """The LiveLadders that --ladder asks for, or None."""
    if args.ladder is None or args.ladder is False:
        return None
    from ..trace.live import LiveLadders

    port = None if args.ladder is True else args.ladder or None  # connect: a flag; serve: 0 = any port
    # Colour only for a person at a terminal (and never when NO_COLOR is set, no-color.org).
    colour = hasattr(output, "isatty") and output.isatty() and "NO_COLOR" not in os.environ
    return LiveLadders(output=output, port=port, relative=args.relative, colour=colour)


async def start_control_server(network: UstackNetwork, astack, program: str, worker: dict | None = None):
    """This process's control socket (what `ustack ss` asks), started; a failure is one line."""
    try:
        return await network.start_control(astack, program, worker=worker)
    except NetworkError as error:
        raise CliError(str(error)) from None
