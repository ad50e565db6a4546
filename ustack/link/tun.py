"""A Linux TUN device: the kernel routes IPv4 packets to it, we read them from a file descriptor,
and whatever we write comes out of the device as if a host behind it had sent it.

    link = TunLink("ustun0", mtu=1500)                     # in the current namespace
    link = TunLink("ustun0", namespace="ust-lab-1")        # inside a named namespace

The device is opened with IFF_TUN | IFF_NO_PI: each read is exactly one IP packet with no extra
header in front, each write is one packet. The fd is non-blocking; receive_batch() reads until the
kernel says EAGAIN (or max_packets), so one wake-up of the event loop handles a whole burst.

Namespaces: the kernel puts a new TUN device in the network namespace of whoever opened
/dev/net/tun. So to create it inside a namespace we move this thread there for the few
microseconds of the open (pyroute2.netns.pushns), and come straight back (popns). The fd keeps
working from the root namespace: only the device and its routes live in the other one. (pushns
saves /proc/self/ns/net, the main thread's namespace: create links from the main thread.)

This class only creates the device, sets its MTU and queue length; addresses, routes and "up" are
the job of ustack.netns.setup_tun_in_namespace. Closing the fd deletes the device (it is not
persistent), so nothing is left behind.
"""

from __future__ import annotations

import errno
import os

import pytun

from .base import Link, LinkError

TUN_PATH = "/dev/net/tun"
# The kernel's default transmit queue for a TUN device is 500 packets, which a burst of 64 KiB
# windows overflows; packets past it are dropped by the kernel before we ever see them.
DEFAULT_TXQUEUELEN = 10000
IPV4_VERSION = 4
IPV6_VERSION = 6


class TunLink(Link):
    def __init__(
        self,
        name: str = "ustun0",
        mtu: int = 1500,
        namespace: str | None = None,
        txqueuelen: int = DEFAULT_TXQUEUELEN,
    ) -> None:
        super().__init__()
        if not 68 <= mtu <= 65535:  # RFC 791: every IPv4 link carries at least 68 bytes
            raise LinkError(f"TUN mtu {mtu} is outside 68..65535")
        if len(name.encode()) > 15:  # IFNAMSIZ is 16 including the final NUL
            raise LinkError(f"TUN name {name!r} is longer than 15 characters")
        self.name = name
        self.mtu = mtu
        self.namespace = namespace
        self._device = _open_tun(name, namespace)
        try:
            _configure(name, namespace, mtu, txqueuelen)
            os.set_blocking(self._device.fileno(), False)
        except BaseException:
            self._device.close()
            raise
        self._fd = self._device.fileno()

    def layer_name(self) -> str:
        return f"TunLink({self.name})"

    def fileno(self) -> int:
        return self._fd

    def read_packet(self) -> bytes | None:
        packet = os.read(self._fd, self.mtu)
        # IFF_NO_PI: no protocol field, the version nibble tells IPv4 from IPv6 (the stack takes
        # both); anything else is dropped by name.
        if not packet or packet[0] >> 4 not in (IPV4_VERSION, IPV6_VERSION):
            self.count_drop("not_ip")
            return None
        return packet

    def send(self, packet: bytes, now: float) -> None:
        if len(packet) > self.mtu:
            self.count_drop("larger_than_mtu")
            return
        try:
            os.write(self._fd, packet)
        except BlockingIOError:
            self.count_drop("queue_full")
            return
        except OSError as error:
            if error.errno == errno.ENOBUFS:
                self.count_drop("queue_full")
            elif error.errno in (errno.EINVAL, errno.EIO):  # the kernel refused the packet
                self.count_drop("rejected_by_kernel")
            else:
                raise LinkError(f"writing to TUN {self.name}: {error.strerror}") from None
            return
        self.counters["packets_out"] += 1
        self.counters["bytes_out"] += len(packet)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._device.close()


def _open_tun(name: str, namespace: str | None) -> "pytun.TunTapDevice":
    if not os.path.exists(TUN_PATH):
        raise LinkError(f"{TUN_PATH} is missing: load the tun module (modprobe tun) or, in a "
                        "container, pass the device in (--device /dev/net/tun)")
    if namespace is None:
        return _create_device(name)
    from pyroute2 import netns

    if namespace not in netns.listnetns():
        raise LinkError(f"network namespace {namespace!r} does not exist")
    try:
        netns.pushns(namespace)
    except OSError as error:
        raise LinkError(f"cannot enter network namespace {namespace!r}: {error.strerror}") from None
    try:
        return _create_device(name, f" in namespace {namespace}")
    finally:
        netns.popns()


def _create_device(name: str, where: str = "") -> "pytun.TunTapDevice":
    # IFF_TUN_EXCL: only a new device. Without it the kernel would hand us an existing persistent
    # TUN device of that name (`ip tuntap add`), which we would then readdress and leave changed,
    # since closing our fd deletes only a device we created.
    try:
        return pytun.TunTapDevice(name=name, flags=pytun.IFF_TUN | pytun.IFF_NO_PI | pytun.IFF_TUN_EXCL)
    except pytun.Error as error:
        reason = str(error.args[-1]) if error.args else str(error)
        if error.args and error.args[0] == errno.EBUSY:
            raise LinkError(f"cannot create TUN {name}: a network device named {name!r} already exists{where} "
                            "(another ustack? choose another name)") from None
        if os.geteuid() != 0 or "not permitted" in reason:
            raise LinkError(f"cannot create TUN {name}: {reason} (needs root or CAP_NET_ADMIN)") from None
        raise LinkError(f"cannot create TUN {name}: {reason}") from None


def _configure(name: str, namespace: str | None, mtu: int, txqueuelen: int) -> None:
    # Through netlink in the device's namespace (pytun's ioctl would act on the namespace of this
    # thread, which is not the device's one).
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        with IPRoute(netns=namespace, flags=0) if namespace else IPRoute() as ipr:
            index = ipr.link_lookup(ifname=name)[0]
            ipr.link("set", index=index, mtu=mtu, txqlen=txqueuelen)
    except NetlinkError as error:
        raise LinkError(f"cannot set mtu {mtu} / txqueuelen on TUN {name}: {error}") from None
