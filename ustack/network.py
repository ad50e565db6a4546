"""ustack's little network: the one place that builds (and always takes down) the TUN device, the
namespace around it, the chain of links the stack talks through, and the stack on top. `ustack
serve`, `ustack connect`, the labs and scripts/bench.py all run on it; the addresses below are
the only copy of ustack's defaults.

    settings = NetworkSettings(namespace="ust-lab", pcap="run.pcap")
    with UstackNetwork(settings) as network:   # namespace, TUN (kernel side up), link chain
        stack = network.make_stack(config)      # ustack's Stack at settings.address
        ...                                     # AsyncStack(stack, network.link) + network.observers
    # on leaving, also on errors and Ctrl-C: the link chain is closed (pcap flushed, TUN device
    # gone), then the namespace is closed: the programs started in it are stopped (by PID) and
    # it is removed if, and only if, we created it.

The chain of links, outermost first (each only when asked for):

    Tracer > FaultInjector > WireTap > Gate > PcapWriter > TunLink

The pcap sits next to the device, so it holds what really crossed the wire (as tcpdump on the
interface would see it); the tracer sits next to the stack, so it shows what the stack sent and
received, with the state changes each packet caused. The WireTap (ustack/trace/live.py) sees the
wire just inside the FaultInjector, which tells it what it dropped: the ladders of `--ladder` and
of the labs both come from there. The Gate (a lab's hand on the wire) holds back packets from the
kernel until the lab lets them through.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .link.base import LinkError

# ustack's defaults, everywhere: the kernel's side of the TUN device, and ustack's own address.
KERNEL_ADDRESS = "10.77.0.1"
KERNEL_INTERFACE = f"{KERNEL_ADDRESS}/24"  # the kernel's address with its prefix, on the device
USTACK_ADDRESS = "10.77.0.2"
# The same for IPv6: a unique local prefix (RFC 4193) of our own, ::1 the kernel's, ::2 ustack's.
KERNEL_ADDRESS6 = "fd00:77::1"
KERNEL_INTERFACE6 = f"{KERNEL_ADDRESS6}/64"
USTACK_ADDRESS6 = "fd00:77::2"
TUN_NAME = "ustun0"
DEFAULT_MTU = 1500
TUN_DEVICE = "/dev/net/tun"


class NetworkError(LinkError):
    """The network could not be built (one line for the user)."""


@dataclass
class NetworkSettings:
    namespace: str | None = None  # a network namespace (created if missing); None: this process's own
    tun: str = TUN_NAME
    address: str | None = USTACK_ADDRESS  # ustack's (None: no IPv4)
    host_interface: str | None = KERNEL_INTERFACE  # the kernel's, with its prefix
    address6: str | None = USTACK_ADDRESS6  # ustack's IPv6 address (None: no IPv6)
    host_interface6: str | None = KERNEL_INTERFACE6  # the kernel's IPv6 address, with its prefix
    mtu: int = DEFAULT_MTU
    pcap: str | None = None  # record the wire in this file
    trace_output: TextIO | None = None  # a Tracer writes one line per packet here
    loss: float = 0.0  # drop this fraction of the packets each way (a FaultInjector with `seed`)
    seed: int = 0
    faults: bool = False  # a FaultInjector even without loss (for scripted drops)
    # Everything the FaultInjector can do, per direction ("inbound" reaches ustack); when given,
    # these replace `loss`. The command line builds them (ustack/commands/faults.py).
    inbound_faults: object | None = None
    outbound_faults: object | None = None
    program: str = "ustack"  # who runs this network, for the marker (`ustack ss`, `ustack cleanup`)
    offload: bool = True  # checksum/TSO offloads on the TUN device where the kernel offers them (link/tun.py)
    # Without them, join and cut segments in the link instead (software GRO/GSO, link/tun.py);
    # False: every segment as it comes (the labs).
    software_offload: bool = True
    # The longest TCP packet handed to the device to cut (BIG TCP above 65535: link/tun.py);
    # None: the link's default (256 KiB with offloads on Linux 6.3 or later, else 65535).
    gso_max_size: int | None = None
    # Queues of the TUN device, one per worker process (ustack/workers.py); above 1 the link chain
    # is the bare TunLink of each queue (`network.queues`): no pcap, tracer, faults or gate.
    queues: int = 1
    # Receive Packet Steering on the TUN device (netns.steer_received_packets): the kernel's work
    # for the packets ustack writes runs on these CPUs, not inside ustack's write on its own CPU
    # (`ustack serve --cpu`). None: the kernel's default (none).
    rps_cpus: frozenset[int] | None = None


def check_can_create_tun() -> None:
    """NetworkError, with what to do, if this process cannot make a TUN device."""
    if not os.path.exists(TUN_DEVICE):
        raise NetworkError(f"{TUN_DEVICE} is missing: load the tun module (modprobe tun) or, in a container, "
                           "pass the device in (docker run --device /dev/net/tun --cap-add NET_ADMIN)")
    if os.geteuid() != 0:
        raise NetworkError("needs root to create a TUN device and a network namespace (try: sudo ustack ...)")


class UstackNetwork:
    """The TUN device and everything around it, for one ustack process.

    `watch` (a ustack.trace.live.WireWatch) gets a WireTap in the chain and hears of every drop;
    `wire_layer(link)`, if given, makes the middleware that sits just above the wire (the labs'
    Gate) and is kept as `self.gate`."""

    def __init__(self, settings: NetworkSettings, watch=None, wire_layer=None) -> None:
        self.settings = settings
        self.watch = watch
        self.wire_layer = wire_layer
        self.namespace = None  # the ustack.netns.Namespace, with settings.namespace
        self.link = None  # the outermost link of the chain: what the stack talks to
        self.device = None  # the TunLink itself
        self.queues: list = []  # with settings.queues > 1: every queue's TunLink, `device` first
        self.fault = None  # the FaultInjector, if any
        self.gate = None  # what wire_layer made, if any
        self.record = None  # our marker file (see write_record), removed on close
        # When the namespace existed already: None if someone else's (left alone on exit), or the
        # record of the dead ustack that made it (then adopted: removed on exit, see adopt_leftover).
        self.reused_from: dict | None = None
        self.observers: list = []  # for AsyncStack.add_observer: the Tracer's, when tracing

    def __enter__(self) -> "UstackNetwork":
        try:
            self.open()
        except BaseException:  # Ctrl-C included: nothing half made stays behind
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def open(self) -> None:
        check_can_create_tun()
        from .link import FaultInjector, Faults, PcapWriter, Tracer
        from .netns import Namespace, setup_tun_in_namespace, steer_received_packets

        settings = self.settings
        try:
            if settings.namespace:
                self.namespace = Namespace(settings.namespace)
                self.namespace.open()
                if not self.namespace.created:
                    self.reused_from = adopt_leftover(self.namespace)
            if settings.queues > 1 and (settings.pcap or settings.trace_output is not None or settings.loss > 0
                                        or settings.faults or settings.inbound_faults is not None
                                        or settings.outbound_faults is not None or self.wire_layer is not None
                                        or self.watch is not None):
                raise NetworkError("--workers takes no --pcap, --trace, faults (--loss ...), --ladder, --plot or --web: "
                                   "each worker has its own queue and nothing sees the whole wire")
            check_subnet_free(settings)
            self.record = write_record(self)
            # Without a namespace: in this process's own.
            self.device = link = setup_tun_in_namespace(self.namespace, settings.tun, settings.mtu,
                                                        host_address=settings.host_interface,
                                                        peer_address=settings.address,
                                                        host_address6=settings.host_interface6,
                                                        peer_address6=settings.address6, offload=settings.offload,
                                                        multi_queue=settings.queues > 1,
                                                        software_offload=settings.software_offload,
                                                        gso_max_size=settings.gso_max_size)
            self.queues = [link]
            while len(self.queues) < settings.queues:
                self.queues.append(link.attach_queue())
            if settings.rps_cpus:  # once every queue is there: each has its own mask
                steer_received_packets(self.namespace, settings.tun, settings.rps_cpus)
            if settings.pcap:
                try:
                    link = PcapWriter(link, settings.pcap)
                except OSError as error:
                    raise NetworkError(f"cannot write {settings.pcap}: {error.strerror}") from None
            if self.wire_layer is not None:
                link = self.gate = self.wire_layer(link)
            on_drop = None
            if self.watch is not None:
                from .trace.live import WireTap

                link = WireTap(link, self.watch)
                on_drop = self.watch.on_drop
            if settings.inbound_faults is not None or settings.outbound_faults is not None:
                link = self.fault = FaultInjector(link, seed=settings.seed, on_drop=on_drop,
                                                  inbound=settings.inbound_faults or Faults(),
                                                  outbound=settings.outbound_faults or Faults())
            elif settings.loss > 0 or settings.faults:
                faults = Faults(drop=settings.loss)
                link = self.fault = FaultInjector(link, seed=settings.seed, inbound=faults, outbound=faults,
                                                  on_drop=on_drop)
            if settings.trace_output is not None:
                link = Tracer(link, output=settings.trace_output)
                self.observers.append(link.observe)  # state changes, on the lines of their packets
            self.link = link
        except NetworkError:
            raise
        except LinkError as error:  # (the namespace's own errors too)
            raise NetworkError(str(error)) from None

    def close(self) -> None:
        """Undo everything, innermost last; safe to call twice and after a failed open().
        Ctrl-C and SIGTERM wait until it is done, so that they cannot cut it half way."""
        from .netns import signals_held

        with signals_held():
            self._close()

    def _close(self) -> None:
        link, self.link = self.link, None
        device, self.device = self.device, None
        namespace, self.namespace = self.namespace, None
        queues, self.queues = self.queues[1:], []
        try:
            for queue in queues:  # the further queues; the device goes with the last one
                queue.close()
            if link is not None:
                link.close()  # closes the whole chain: pcap flushed, TUN fd closed (device gone)
            elif device is not None:
                device.close()
        except (LinkError, OSError) as error:
            print(f"ustack: while closing the link: {error}", file=sys.stderr)
        if namespace is not None:
            try:
                namespace.close()  # stops what we started in it; removes it only if we created it
            except (LinkError, OSError) as error:
                print(f"ustack: while removing namespace {namespace.name}: {error}", file=sys.stderr)
        record, self.record = self.record, None
        if record is not None:
            record.unlink(missing_ok=True)  # last: if we die before this, `ustack cleanup` finds what is left

    @property
    def created_namespace(self) -> bool:
        return bool(self.namespace is not None and self.namespace.created)

    def make_stack(self, config=None, secret: bytes | None = None):
        """A fresh Stack at our addresses, for this link's MTU. `secret`: the key of its ISNs and
        SYN cookies (random if None); workers share one, so that a cookie one of them made
        validates on any other (ustack/workers.py)."""
        from .stack import Stack
        from .tcp import TcpConfig
        from .tcp.isn import IsnGenerator
        from .tcp.syn_cookies import SynCookies
        from .wire.ipv4 import address_value
        from .wire.ipv6 import address6_value
        from .wire.segment import LARGEST_PACKET

        settings = self.settings
        stack = Stack(None if settings.address is None else address_value(settings.address), config or TcpConfig(),
                      address6=None if settings.address6 is None else address6_value(settings.address6), mtu=settings.mtu,
                      segmentation_offload=bool(self.device is not None and getattr(self.device, "cuts_large_segments", False)),
                      partial_checksums=bool(self.device is not None and getattr(self.device, "takes_partial_checksums", False)),
                      gso_max_size=getattr(self.device, "gso_max_size", LARGEST_PACKET),
                      isn_generator=None if secret is None else IsnGenerator(secret))
        if secret is not None:
            stack.syn_cookies = SynCookies(secret=secret)
        return stack

    async def start_control(self, astack, program: str, directory: Path | None = None, worker: dict | None = None):
        """This process's control socket (what `ustack ss` asks), started; NetworkError if it cannot.
        `worker`: which worker this process is (ustack/workers.py), for the answers."""
        from .control import ControlServer, stack_statistics

        control = ControlServer(astack.snapshots, program=program, address=self.settings.address, directory=directory,
                                statistics_provider=lambda: stack_statistics(astack.stack, astack), worker=worker)
        try:
            await control.start()
        except OSError as error:
            raise NetworkError(f"control socket: {error}") from None
        return control

    def how_to_run(self, command: str) -> str:
        """A shell command line that runs `command` where the kernel side of the TUN is."""
        if self.settings.namespace:
            return f"ip netns exec {self.settings.namespace} {command}"
        return command



# --------------------------------------------------------------------------------------------
# Who made what: a marker per running ustack, so a second one, `ustack ss` and `ustack cleanup`
# can tell which namespace and device belong to which process, also after a SIGKILL.
# --------------------------------------------------------------------------------------------
RECORD_SUFFIX = ".network"


def write_record(network: UstackNetwork) -> Path | None:
    """<run directory>/<pid>.network: our pid, namespace (and whether we created it), device and
    addresses, written before the device is made and removed after the namespace is gone. Only a
    record whose pid no longer runs is a leftover. None if the run directory cannot be written
    (a ustack without a marker still works; it is just not found by `ustack cleanup`)."""
    from .control import run_directory

    settings = network.settings
    record = {"pid": os.getpid(), "program": settings.program,
              "namespace": settings.namespace, "created_namespace": network.created_namespace,
              "tun": settings.tun, "address": settings.address, "host_interface": settings.host_interface}
    directory = run_directory()
    path = directory / f"{os.getpid()}{RECORD_SUFFIX}"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(record) + "\n")
        os.replace(temporary, path)
    except OSError:
        return None
    return path


def read_records(directory: Path | None = None) -> list[dict]:
    """Every ustack network marker, each with "alive" (does its pid still run?), by pid."""
    from .control import _process_exists, run_directory

    directory = directory or run_directory()
    records = []
    try:
        paths = sorted(directory.glob(f"*{RECORD_SUFFIX}"))
    except OSError:
        return records
    for path in paths:
        if not path.stem.isdigit():
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being written right now, or not ours: nothing to judge it by
        if not isinstance(record, dict) or record.get("pid") != int(path.stem):
            continue
        record["alive"] = _process_exists(record["pid"])
        record["path"] = str(path)
        records.append(record)
    return records


def leftovers(directory: Path | None = None) -> list[dict]:
    """Markers of ustacks that died without cleaning up (SIGKILL, a crash): their pid is gone."""
    return [record for record in read_records(directory) if not record["alive"]]


def remove_leftover(record: dict) -> list[str]:
    """Remove what a dead ustack made (its namespace, if it created it; its TUN device died with
    its file descriptor) and its marker. Returns what was removed, as words for the user."""
    from .netns import namespace_exists
    from pyroute2 import netns

    from .control import socket_path

    removed = []
    name = record.get("namespace")
    if name and record.get("created_namespace") and namespace_exists(name):
        netns.remove(name)
        removed.append(f"namespace {name}")
    marker = Path(record["path"])
    socket_path(record["pid"], marker.parent).unlink(missing_ok=True)  # its control socket, if left too
    marker.unlink(missing_ok=True)
    return removed


def adopt_leftover(namespace) -> dict | None:
    """An existing namespace we are about to use: if a dead ustack created it (its marker says
    so), it is a leftover and becomes ours to remove on exit; its marker goes."""
    for record in leftovers():
        if record.get("namespace") == namespace.name and record.get("created_namespace"):
            namespace.created = True
            Path(record["path"]).unlink(missing_ok=True)
            return record
    return None


def check_subnet_free(settings: NetworkSettings) -> None:
    """NetworkError if the kernel side's subnet is already on an interface where our device would
    go (a second `ustack serve` in the same namespace): the kernel would then route the traffic to
    the first device, and the second ustack would say ready and never see a packet."""
    from pyroute2 import IPRoute

    # Each family that is on: (the kernel side's network, the netlink family of its addresses).
    wanted = [(ipaddress.ip_interface(text).network, family)
              for text, family in ((settings.host_interface, 2), (settings.host_interface6, 10)) if text is not None]
    try:
        with IPRoute(netns=settings.namespace, flags=0) if settings.namespace else IPRoute() as ipr:
            names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
            taken = [(names.get(entry["index"], "?"), entry.get_attr("IFA_ADDRESS"), entry["prefixlen"], family)
                     for _, family in wanted for entry in ipr.get_addr(family=family)]
    except OSError:
        return  # cannot look: creating the device will say what is wrong
    for device, address, prefix, family in taken:
        network = ipaddress.ip_interface(f"{address}/{prefix}").network
        clash = next((mine for mine, its_family in wanted if its_family == family and network.overlaps(mine)), None)
        if clash is not None and not network.is_loopback and not network.is_link_local:
            where = f"namespace {settings.namespace}" if settings.namespace else "this namespace"
            owner = next((f" by ustack pid {record['pid']} ({record.get('program', 'ustack')})"
                          for record in read_records() if record["alive"] and record.get("tun") == device
                          and record.get("namespace") == settings.namespace), "")
            raise NetworkError(f"{clash} is already in use in {where} ({address}/{prefix} on {device}{owner}); "
                               f"stop it, or use another --netns or --host-addr")
