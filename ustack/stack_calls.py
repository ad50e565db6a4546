"""The user calls of a whole host (RFC 9293 3.10.1 OPEN and friends): listen, connect, the
ephemeral ports and the limit on sockets. A part of `Stack` (stack.py), which owns the tables
these calls fill; split from it along this seam so that each file reads in one sitting. Sans-IO
like the rest of the host (DESIGN.md rule 1)."""

from __future__ import annotations


from typing import Union

from .tcp import Connection, Listener, TcpConfig
from .tcp.fastopen import ClientFastOpen
from .wire.ipv4 import address_text
from .wire.ipv6 import IPV6_HEADER_LENGTH

Address = Union[int, bytes]  # IPv4 as an int, IPv6 as 16 bytes
# Linux's default ephemeral range (net.ipv4.ip_local_port_range).
EPHEMERAL_PORTS = range(32768, 61000)


class StackError(Exception):
    """A user call the stack cannot honour; `errno` says which socket error it would be."""

    def __init__(self, message: str, errno_value: int) -> None:
        super().__init__(message)
        self.errno = errno_value


class UserCalls:
    """Stack's user calls; the variables are Stack's (stack.py)."""

    # ----------------------------------------------------------------------------------------
    # User calls (RFC 9293 3.10.1 OPEN and friends, at the level of the whole host)
    # ----------------------------------------------------------------------------------------
    def listen(
        self,
        port: int,
        *,
        address: Address = 0,
        backlog: int = 128,
        syn_queue_size: int | None = None,
        config: TcpConfig | None = None,
        max_connections: int | None = None,
        any_address: bool = False,
    ) -> Listener:
        """Passive OPEN on `port`: `address` 0 listens on every address of ours, both families (a
        dual-stack socket); our IPv4 or our IPv6 address listens on that family only. With
        `any_address`, that address stands for its family's wildcard (0.0.0.0, or :: with
        IPV6_V6ONLY): on this host, with one address per family, the same segments reach it, and
        `ss` shows the wildcard. EADDRINUSE as listening_clash says.
        max_connections: the most connections from this listener that may exist at once (None:
        only the stack's limit); a SYN beyond it is dropped, counted."""
        if type(address) is bytes and address != self.address6:
            raise StackError(f"{address_text(address)} is not an address of this stack", _errno("EADDRNOTAVAIL"))
        if self.listening_clash(address, port):
            raise StackError(f"port {port} is already listening", _errno("EADDRINUSE"))
        self._check_room()
        family_header = IPV6_HEADER_LENGTH if type(address) is bytes else 20
        listener = Listener(
            self._config_for(config, family_header),
            address or (self.address if self.address is not None else self.address6),
            port,
            backlog=backlog,
            syn_queue_size=syn_queue_size if syn_queue_size is not None else backlog,  # as Linux's listen()
            isn_generator=self.isn_generator,
            syn_cookies=self.syn_cookies,
            max_connections=max_connections,
        )
        if address == 0:
            listener.listening_on = "*"
        elif any_address:
            listener.listening_on = "::" if type(address) is bytes else "0.0.0.0"
        self.listeners[(address, port)] = listener
        return listener

    def listening_clash(self, address: Address, port: int) -> bool:
        """Would a listener on (address, port) overlap one we have? As in Linux: the IPv4 and the
        IPv6 (IPV6_V6ONLY) listener of a port may coexist, each seeing its family's segments; a
        dual-stack one (address 0) overlaps both, so it clashes with either (EADDRINUSE)."""
        listeners = self.listeners
        if address == 0:
            return (0, port) in listeners or (self.address, port) in listeners or (self.address6, port) in listeners
        return (address, port) in listeners or (0, port) in listeners

    def close_listener(self, listener: Listener, now: float) -> None:
        """CLOSE of a listening socket (RFC 9293 3.10.4): its port takes no new connections, and
        the connections it made that nobody accepted (handshakes in progress, completed ones still
        queued) are aborted; their resets leave with the next transmit()."""
        for key, value in list(self.listeners.items()):
            if value is listener:
                del self.listeners[key]
        self._listener_config6.pop(listener, None)
        unaccepted = [*listener.syn_queue, *listener.accept_queue]
        listener.close(now)
        for connection in unaccepted:
            self._touch(connection)

    def connect(
        self, remote_address: Address, remote_port: int, now: float, *, local_port: int | None = None,
        config: TcpConfig | None = None, fast_open: bool = False,
    ) -> Connection:
        """Active OPEN: a new connection in SYN-SENT; its SYN leaves with the next transmit().
        The family of `remote_address` (an int or 16 bytes) picks our address of that family.
        fast_open: TCP Fast Open (RFC 7413, tcp/fastopen.py; MSG_FASTOPEN and TCP_FASTOPEN_CONNECT
        of sockets): the SYN asks for a cookie, or carries what is sent before the next
        transmit() with the cookie held for this server."""
        if type(remote_address) is bytes:
            local_address, header_length = self.address6, IPV6_HEADER_LENGTH
        else:
            local_address, header_length = self.address, 20
        if local_address is None:
            raise StackError(f"{address_text(remote_address)}: this stack has no address of that family",
                             _errno("ENETUNREACH"))
        self._check_room()
        if local_port is None:
            local_port = self._ephemeral_port(remote_address, remote_port)
        key = (local_address, local_port, remote_address, remote_port)
        if key in self.connections:
            raise StackError(f"{address_text(remote_address)}:{remote_port} from port {local_port} is in use", _errno("EADDRINUSE"))
        iss = self.isn_generator.generate(local_address, local_port, remote_address, remote_port, now)
        connection = Connection.open_active(self._config_for(config, header_length), local_address, local_port,
                                            remote_address, remote_port, iss, now, record_events=self._events_wanted)
        connection.unacceptable_ack_budget = self.unacceptable_ack_budget
        if fast_open and connection.config.fast_open_client:
            connection.fast_open = ClientFastOpen(self.fast_open_cookies, remote_address,
                                                  not connection.config.fast_open_cookie_required)
        self.connections[key] = connection
        connection.key = key  # one tuple for the table, the timer heap, a TimeWait record
        self._touch(connection)
        return connection

    def _has_room(self) -> bool:
        """Below max_connections, counting every connection the tables hold (TIME-WAIT and
        SYN-RECEIVED included: each costs memory until it ends) and every listener."""
        limit = self.max_connections
        return limit is None or len(self.connections) + len(self.listeners) < limit

    def _check_room(self) -> None:
        if not self._has_room():
            # Linux refuses a socket beyond the process's descriptor limit with EMFILE ("too many
            # open files"): a count configured for one process, as this limit is for one stack
            # (ENOBUFS/ENOMEM would say memory ran out, which is not what happened).
            raise StackError(f"this stack already holds max_connections={self.max_connections} sockets", _errno("EMFILE"))

    def _config_for(self, config: TcpConfig | None, ip_header_length: int = 20) -> TcpConfig:
        """A per-socket configuration (socket options), with the MSS still bounded by our MTU
        less the IP header of the connection's family."""
        if config is None:
            return self.config6 if ip_header_length == IPV6_HEADER_LENGTH else self.config
        return config.fit_to_mtu(self.mtu, ip_header_length)

    def _ephemeral_port(self, remote_address: Address, remote_port: int) -> int:
        """A local port whose 4-tuple is free, counting TIME-WAIT connections as taken, and that
        no listener holds, whether bound to the wildcard or to either of our addresses (one port
        space for both families, as in Linux).

        Walks the range from a random starting point (in the spirit of RFC 6056), so ports are not
        predictable from one connection to the next."""
        size = len(EPHEMERAL_PORTS)
        listeners = self.listeners
        local_address = self.address6 if type(remote_address) is bytes else self.address
        for _ in range(size):
            self._next_ephemeral = (self._next_ephemeral + 1) % size
            port = EPHEMERAL_PORTS[self._next_ephemeral]
            if (0, port) in listeners or (self.address, port) in listeners or (self.address6, port) in listeners:
                continue
            if (local_address, port, remote_address, remote_port) not in self.connections:
                return port
        raise StackError("no free ephemeral port", _errno("EADDRNOTAVAIL"))


def _errno(name: str) -> int:
    # errno numbers without importing os-level modules into the sans-IO layer: the errno module is
    # pure data.
    import errno

    return getattr(errno, name)
