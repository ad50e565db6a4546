"""Network namespaces for ustack: a private little network where the Linux kernel is ustack's peer
and nothing leaks to the machine's real interfaces.

    with Namespace("ust-lab-1") as namespace:              # created now, removed at the end
        link = setup_tun_in_namespace(namespace, "ustun0", host_address="10.77.0.1/24",
                                      peer_address="10.77.0.2")   # kernel side up
        ...                                                 # ustack answers as 10.77.0.2
        namespace.run(["ping", "-c", "1", "10.77.0.2"])     # a command inside the namespace

(ustack's own defaults for those addresses live in ustack/network.py, which builds on this.)
    # on leaving (normally, on an exception or on Ctrl-C): processes started with run/popen are
    # killed by PID, links we made are closed, and the namespace is removed if we created it.

Namespaces, links, addresses and routes are managed through netlink (pyroute2), not by running
`ip`. Only Namespace.run()/popen() start programs, through `ip netns exec NAME ...`, which enters
the namespace and then becomes the program (so the PID we keep is the program's own).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from .link.base import LinkError
from .link.tun import TUN_PATH, TunLink

_VALID_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class NamespaceError(LinkError):
    """A namespace could not be created, entered or configured (one line for the user)."""


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) and SIGTERM until the block ends, then act on them as usual.

    Creating or taking down a namespace is a few steps (kill our programs, close the TUN device,
    remove the namespace); a KeyboardInterrupt raised between two of them would leave the rest
    undone, and the namespace behind. Inside the block a signal is only noted; when the block
    ends the previous handlers are back and the noted signal is raised again, so it has exactly
    the effect it would have had, just a little later. Blocks nest. Only the main thread can set
    signal handlers (and only it receives signals): elsewhere the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()
    noted: list[int] = []

    def note(signal_number, frame) -> None:
        if os.getpid() != owner:
            # A child forked inside the block (pyroute2 forks netlink helpers) inherits this
            # handler: it must end as the signal says, not outlive its parent.
            signal.signal(signal_number, signal.SIG_DFL)
            os.kill(os.getpid(), signal_number)
            return
        noted.append(signal_number)

    held = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.signal(number, note) for number in held}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)  # None: set outside Python
        for number in dict.fromkeys(noted):  # once each, in the order they came
            signal.raise_signal(number)


def namespace_exists(name: str) -> bool:
    return name in netns.listnetns()


def namespace_test_problems(tools: Iterable[str], install_hint: str = "") -> list[str]:
    """For the test suites that use the real kernel as the peer (tests/interop, tests/labs): what
    this machine lacks to run them, each as a fix-it sentence: root, /dev/net/tun, and each
    program of `tools` not on PATH (followed by `install_hint`). Empty when nothing is missing."""
    problems = []
    if os.geteuid() != 0:
        problems.append("they must run as root (sudo ./scripts/test)")
    if not os.path.exists(TUN_PATH):
        problems.append(f"{TUN_PATH} is missing (modprobe tun; in a container: --device /dev/net/tun)")
    for tool in tools:
        if shutil.which(tool) is None:
            problems.append(f"`{tool}` is not installed{install_hint}")
    return problems


class Namespace:
    """A named network namespace, created if missing; on close removes only what it created."""

    def __init__(self, name: str, create_if_missing: bool = True) -> None:
        if not _VALID_NAME.match(name) or name in (".", ".."):
            raise NamespaceError(f"{name!r} is not a usable namespace name (letters, digits, . _ -)")
        self.name = name
        self.create_if_missing = create_if_missing
        self.created = False
        self.closed = False
        self._owned_links: list = []  # TunLinks to close (closing the fd deletes the device)
        self._owned_interfaces: list[str] = []  # veth ends we added, deleted by name
        self._processes: list[subprocess.Popen] = []

    # --- life cycle ----------------------------------------------------------------------------

    def open(self) -> "Namespace":
        if namespace_exists(self.name):
            return self
        if not self.create_if_missing:
            raise NamespaceError(f"network namespace {self.name!r} does not exist")
        if os.geteuid() != 0:
            raise NamespaceError(f"creating network namespace {self.name!r} needs root")
        # Ctrl-C waits until `created` says whether the namespace is ours to remove.
        with signals_held():
            try:
                netns.create(self.name)
            except OSError as error:
                # A failure half way can leave the empty mount point /run/netns/NAME behind; remove
                # it only if nothing is mounted on it (else it is somebody else's namespace).
                path = os.path.join(netns.NETNS_RUN_DIR, self.name)
                if os.path.isfile(path) and not os.path.ismount(path):
                    os.unlink(path)
                raise NamespaceError(f"cannot create network namespace {self.name!r}: {error}") from None
            self.created = True
        return self

    def __enter__(self) -> "Namespace":
        try:
            return self.open()
        except BaseException:  # e.g. Ctrl-C held until just after the namespace was made
            self.close()
            raise

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Undo what we did, in reverse order; keep going past individual failures. Ctrl-C and
        SIGTERM wait until it is done (signals_held), so they cannot cut it half way."""
        if self.closed:
            return
        with signals_held():
            self._close()

    def _close(self) -> None:
        self.closed = True
        problems: list[str] = []
        for process in reversed(self._processes):
            stop_process(process)
        self._processes.clear()
        for link in reversed(self._owned_links):
            try:
                link.close()
            except Exception as error:  # pragma: no cover - best effort cleanup
                problems.append(f"closing {link}: {error}")
        self._owned_links.clear()
        if self._owned_interfaces and namespace_exists(self.name):
            try:
                with self.ipr() as ipr:
                    for interface in self._owned_interfaces:
                        for index in ipr.link_lookup(ifname=interface):
                            delete_link_if_present(ipr, index)
            except NetlinkError as error:
                problems.append(f"deleting {self._owned_interfaces}: {error}")
        self._owned_interfaces.clear()
        if self.created and namespace_exists(self.name):
            try:
                netns.remove(self.name)
            except OSError as error:
                problems.append(f"removing namespace {self.name}: {error}")
        if problems:
            raise NamespaceError("; ".join(problems))

    # --- inside the namespace ------------------------------------------------------------------

    def ipr(self) -> IPRoute:
        """A netlink handle acting inside this namespace (use it in a `with`)."""
        return IPRoute(netns=self.name, flags=0)  # flags=0: never create it behind our back

    def own_link(self, link) -> None:
        """Close this link (a TunLink) when the namespace is closed."""
        self._owned_links.append(link)

    def own_interface(self, name: str) -> None:
        """Delete this interface (inside the namespace) when the namespace is closed."""
        self._owned_interfaces.append(name)

    @property
    def pids(self) -> list[int]:
        """PIDs of the programs started with popen() that are still running."""
        return [process.pid for process in self._processes if process.poll() is None]

    def command(self, args: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def popen(self, args: list[str], **kwargs) -> subprocess.Popen:
        """Start a program inside the namespace; it is killed (by PID) when the namespace closes.

        Start the program itself, not a shell around it: only the PID we started is signalled."""
        process = subprocess.Popen(self.command(args), **kwargs)
        self._processes.append(process)
        return process

    def run(
        self,
        args: list[str],
        timeout: float = 30.0,
        capture_output: bool = True,
        input: str | None = None,
        check: bool = False,
    ) -> subprocess.CompletedProcess:
        """Run a program inside the namespace to completion; it is killed if timeout passes."""
        pipe = subprocess.PIPE if capture_output else None
        process = self.popen(args, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                             stdout=pipe, stderr=pipe, text=True)
        try:
            stdout, stderr = process.communicate(input, timeout=timeout)
        finally:
            stop_process(process)
            self._processes.remove(process)
        result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        if check:
            result.check_returncode()
        return result

    def __repr__(self) -> str:
        return f"Namespace({self.name!r}, created={self.created})"


def delete_link_if_present(ipr: IPRoute, index: int) -> None:
    """Delete interface `index`; one already gone is what we wanted. Deleting one end of a veth
    pair takes the other with it, and the kernel does that asynchronously: removing the peer's
    namespace a moment earlier can leave the link visible to a lookup and gone by the delete."""
    try:
        ipr.link("del", index=index)
    except NetlinkError as error:
        if error.code != errno.ENODEV:
            raise


def stop_process(process: subprocess.Popen, grace: float = 2.0) -> int:
    """End one process we started: SIGTERM, `grace` seconds to finish, then SIGKILL (this PID
    only, never by name). Returns its exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def _as_namespace(namespace: "Namespace | str") -> Namespace:
    if isinstance(namespace, Namespace):
        return namespace
    # A bare name: an existing namespace we must not remove; whatever we add to it, the caller
    # cleans up by closing the link we return.
    return Namespace(namespace, create_if_missing=False).open()


def _set_sysctl(namespace: str | None, path: str, value: str) -> None:
    """Write /proc/sys/... as seen from inside the namespace (this thread enters it briefly), or
    from this process's own namespace if `namespace` is None."""
    if namespace is not None:
        netns.pushns(namespace)
    try:
        with open(f"/proc/sys/{path}", "w") as file:
            file.write(value)
    finally:
        if namespace is not None:
            netns.popns()


def _configure_ipv6(namespace: str | None, tun_name: str, enabled: bool) -> None:
    """IPv6 on the TUN device off, or on without duplicate address detection and router
    solicitations (see setup_tun_in_namespace)."""
    conf = f"net/ipv6/conf/{tun_name}"
    if not enabled:
        try:
            _set_sysctl(namespace, f"{conf}/disable_ipv6", "1")
        except OSError:
            pass  # a kernel without IPv6: nothing to switch off
        return
    try:
        _set_sysctl(namespace, f"{conf}/accept_dad", "0")
        _set_sysctl(namespace, f"{conf}/router_solicitations", "0")
        _set_sysctl(namespace, f"{conf}/disable_ipv6", "0")
    except OSError as error:
        raise NamespaceError(f"cannot turn IPv6 on for {tun_name}: {error.strerror} (is IPv6 disabled in this kernel?)") from None


def setup_tun_in_namespace(
    namespace: "Namespace | str | None",
    tun_name: str,
    mtu: int = 1500,
    *,
    host_address: str | None,
    peer_address: str | None,
    host_address6: str | None = None,
    peer_address6: str | None = None,
    offload: bool = True,
    multi_queue: bool = False,
    software_offload: bool = True,
    gso_max_size: int | None = None,
) -> TunLink:
    """Create a TUN device inside the namespace and make it a working link to ustack.

    The kernel side gets host_address (with its prefix) and, if given, host_address6 (IPv6, with
    its prefix); the device and the namespace's `lo` go up; if ustack's own address (peer_address,
    peer_address6) is outside the host prefix a host route to it through the device is added.
    Without host_address6, IPv6 is switched off on the device (this also silences router
    solicitations and MLD reports); with it, duplicate address detection is off on the device
    (accept_dad=0: a point-to-point TUN has nobody to collide with, and a tentative address could
    not be used for a second or so) and so are router solicitations. Either family may be None,
    not both. Returns the TunLink, whose fd works from here.
    If a Namespace object is given, the link is also closed when the namespace closes.
    With namespace=None the device is made in this process's own namespace, configured the same
    way except that `lo` is left alone (it is the machine's)."""
    space = None if namespace is None else _as_namespace(namespace)
    if host_address is None and host_address6 is None:
        raise NamespaceError("the TUN device needs an IPv4 or an IPv6 address")
    try:
        host = None if host_address is None else ipaddress.IPv4Interface(host_address)
        peer = None if peer_address is None else ipaddress.IPv4Address(peer_address)
        host6 = None if host_address6 is None else ipaddress.IPv6Interface(host_address6)
        peer6 = None if peer_address6 is None else ipaddress.IPv6Address(peer_address6)
    except ValueError as error:
        raise NamespaceError(f"bad address: {error}") from None
    space_name = None if space is None else space.name
    link = TunLink(tun_name, mtu=mtu, namespace=space_name, offload=offload,  # offload: link/tun.py
                   multi_queue=multi_queue,  # more queues: link.attach_queue()
                   software_offload=software_offload, gso_max_size=gso_max_size)
    try:
        _configure_ipv6(space_name, tun_name, enabled=host6 is not None)
        with IPRoute() if space is None else space.ipr() as ipr:
            index = ipr.link_lookup(ifname=tun_name)[0]
            if host is not None:
                ipr.addr("add", index=index, address=str(host.ip), prefixlen=host.network.prefixlen)
            if host6 is not None:
                ipr.addr("add", index=index, address=str(host6.ip), prefixlen=host6.network.prefixlen)
            ipr.link("set", index=index, state="up")
            if space is not None:
                for loopback in ipr.link_lookup(ifname="lo"):
                    ipr.link("set", index=loopback, state="up")
            if host is not None and peer is not None and peer not in host.network:
                ipr.route("add", dst=f"{peer}/32", oif=index)
            if host6 is not None and peer6 is not None and peer6 not in host6.network:
                ipr.route("add", dst=f"{peer6}/128", oif=index, family=socket.AF_INET6)
    except NetlinkError as error:
        link.close()
        where = "" if space is None else f" in {space.name}"
        raise NamespaceError(f"cannot configure {tun_name}{where}: {error}") from None
    except BaseException:  # KeyboardInterrupt included: never leave a half-made device behind
        link.close()
        raise
    if isinstance(namespace, Namespace):
        namespace.own_link(link)
    return link


# Receive Packet Steering (Documentation/networking/scaling.rst): each receive queue of a device
# has a CPU mask in sysfs; with one set, the kernel hands every packet the device receives to the
# backlog of a CPU of the mask (chosen by the flow's hash) instead of running IP and TCP at once on
# the CPU that received it. sysfs shows the devices of the namespace it was mounted in, so inside
# a namespace the masks are written by a shell that `ip netns exec` starts there (it mounts a
# sysfs of the namespace's own); for several queues, one mask each.
_WRITE_RPS_MASKS = ('[ -d /sys/class/net/"$1" ] || { echo "no such device" >&2; exit 1; }; '
                    'for queue in /sys/class/net/"$1"/queues/rx-*/rps_cpus; do echo "$2" > "$queue" || exit 1; done; '
                    'cat /sys/class/net/"$1"/queues/rx-*/rps_cpus')


def cpu_mask_text(cpus: Iterable[int]) -> str:
    """CPUs as the kernel writes a cpumask in sysfs: hex, in comma-separated groups of 32 CPUs
    ({1} -> "2", {0, 33} -> "2,00000001")."""
    mask = sum(1 << cpu for cpu in set(cpus))
    groups = []
    while True:
        groups.append(mask & 0xFFFFFFFF)
        mask >>= 32
        if not mask:
            break
    return ",".join([format(groups[-1], "x"), *(format(group, "08x") for group in reversed(groups[:-1]))])


def steer_received_packets(namespace: "Namespace | str | None", device: str, cpus: Iterable[int]) -> None:
    """Receive Packet Steering on every receive queue of `device` (in `namespace`; None: this
    process's own): the kernel's IP and TCP work for each packet the device receives runs on one
    of `cpus` (an empty set: where it arrived, the kernel's default). For a TUN device, what it
    receives is what ustack writes: without steering the kernel's TCP takes each packet inside
    ustack's write(2), on ustack's CPU (`ustack serve --cpu`). The device is ours, and the
    setting goes with it; NamespaceError if the kernel does not take the mask as given."""
    cpus = frozenset(cpus)
    mask = cpu_mask_text(cpus)
    if not _VALID_NAME.match(device):
        raise NamespaceError(f"{device!r} is not a network device name")
    name = None if namespace is None else (namespace.name if isinstance(namespace, Namespace) else namespace)
    try:
        if name is None:
            queues = sorted(glob.glob(f"/sys/class/net/{device}/queues/rx-*/rps_cpus"))
            if not queues:
                raise OSError(errno.ENODEV, "no such device")
            for path in queues:
                with open(path, "w") as file:
                    file.write(mask)
            masks = [Path(path).read_text() for path in queues]
        else:
            result = subprocess.run(["ip", "netns", "exec", name, "sh", "-c", _WRITE_RPS_MASKS, "sh", device, mask],
                                    capture_output=True, text=True, timeout=30)
            if result.returncode != 0:
                raise OSError(0, result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed")
            masks = result.stdout.split()
    except OSError as error:
        raise NamespaceError(f"cannot steer {device}'s received packets to CPUs {cpu_list_text(cpus)}: "
                             f"{error.strerror or error}") from None
    read_back = {int(text.replace(",", ""), 16) for text in masks}
    if read_back != {int(mask.replace(",", ""), 16)}:  # the kernel drops CPUs it cannot use
        raise NamespaceError(f"cannot steer {device}'s received packets to CPUs {cpu_list_text(cpus)}: "
                             f"the kernel kept {', '.join(sorted(set(masks)))}")


def cpu_list_text(cpus: Iterable[int]) -> str:
    """CPUs as taskset -c and /proc's Cpus_allowed_list write them, one by one ({2, 0} -> "0,2")."""
    return ",".join(map(str, sorted(cpus))) or "none"


class VethPair(NamedTuple):
    name_a: str
    name_b: str
    address_a: str
    address_b: str


def create_veth_pair(
    namespace_a: Namespace,
    namespace_b: Namespace,
    name_a: str = "ust-veth-a",
    name_b: str = "ust-veth-b",
    address_a: str = "10.78.0.1/24",
    address_b: str = "10.78.0.2/24",
    mtu: int = 1500,
) -> VethPair:
    """Join two namespaces with a veth pair (a virtual cable), addressed and up on both ends.

    Used to measure kernel-to-kernel TCP beside ustack. Deleting one end deletes both; the pair is
    deleted when namespace_a closes (and disappears anyway with either namespace)."""
    for name in (name_a, name_b):
        if len(name.encode()) > 15:
            raise NamespaceError(f"interface name {name!r} is longer than 15 characters")
    try:
        interface_a = ipaddress.IPv4Interface(address_a)
        interface_b = ipaddress.IPv4Interface(address_b)
    except ValueError as error:
        raise NamespaceError(f"bad address: {error}") from None
    try:
        with namespace_a.ipr() as ipr:
            ipr.link("add", ifname=name_a, kind="veth", mtu=mtu,
                     peer={"ifname": name_b, "net_ns_fd": namespace_b.name, "mtu": mtu})
        namespace_a.own_interface(name_a)
        for space, name, interface in ((namespace_a, name_a, interface_a),
                                       (namespace_b, name_b, interface_b)):
            with space.ipr() as ipr:
                index = ipr.link_lookup(ifname=name)[0]
                ipr.addr("add", index=index, address=str(interface.ip),
                         prefixlen=interface.network.prefixlen)
                ipr.link("set", index=index, state="up")
                for loopback in ipr.link_lookup(ifname="lo"):
                    ipr.link("set", index=loopback, state="up")
    except NetlinkError as error:
        raise NamespaceError(f"cannot create veth pair {name_a}/{name_b}: {error}") from None
    return VethPair(name_a, name_b, address_a, address_b)
