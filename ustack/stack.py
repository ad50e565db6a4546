"""The interface: IPv4, IPv6, ICMP and ICMPv6 in and out, and the demultiplexer in front of the TCP core.

Sans-IO like the core (DESIGN.md rules 1 and 2): bytes come in through `receive(packet, now)`,
bytes go out through `transmit(now)`, time moves through `next_deadline()` / `on_timer(now)`.
The runtime (ustack/aio) owns the TUN fd and the clock; this file owns the tables:

- connections, keyed by the 4-tuple (local address, local port, remote address, remote port);
  IPv4 addresses are ints and IPv6 addresses 16-byte bytes, never equal to each other, so one
  table holds both families (ustack/wire/ipv6.py);
- listeners, keyed by (local address, local port), where address 0 means "any of ours", of both
  families, like a Linux AF_INET6 socket bound to :: with IPV6_V6ONLY off (RFC 3493 5.3), and
  our IPv4 or IPv6 address means that family only (also for 0.0.0.0 and a V6ONLY ::, since the
  host has one address per family): so an IPv4 and an IPv6 listener can share a port, and the
  lookup (the exact address, then 0) picks the one of the segment's family (listening_clash);
- the timers' deadlines, in one heap for all connections (timer_heap.py);
- drop counters by reason (DESIGN.md rule 8).

Lookup order for an arriving TCP segment follows RFC 9293 3.10.7: a connection that matches the
4-tuple exactly, then a listener on the port, else the segment is answered as if in state CLOSED
(3.10.7.1): an RST unless it carries one.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import random
from collections import Counter
from typing import Iterable, NamedTuple

from .counters import counter_attributes
from .reassembly import Ipv4Reassembly, Ipv6Reassembly, ReassemblyLimits
from .host_addresses import host_address
from .stack6 import Ipv6Side
from .stack_calls import EPHEMERAL_PORTS, Address, StackError, UserCalls
from .timer_heap import TimerHeap
from .tcp import Connection, Listener, State, TcpConfig, reset_for_unmatched
from .tcp.state import CLOSED, TIME_WAIT
from .tcp.time_wait import TimeWait
from .tcp.ecn import EcnCapableSegment
from .tcp.isn import IsnGenerator
from .tcp.config import MOST_OFFLOAD_SEGMENTS
from .tcp.options import TIMESTAMP_OPTION_SPACE
from .tcp.ratelimit import PerSecondLimit
from .tcp.fastopen import FastOpenCookieCache
from .tcp.syn_cookies import SynCookies
from .wire import WireError, build_icmp_packet, build_tcp_packet, parse_packet
from .wire.codec import PARTIAL_CHECKSUM_FROM
from .wire.segment import LARGEST_BIG_PACKET, LARGEST_PACKET as LARGEST_SUPER_SEGMENT
from .wire.fragment import fragment_ipv4
from .wire.icmp import DESTINATION_UNREACHABLE, ECHO_REPLY, ECHO_REQUEST, PARAMETER_PROBLEM, TIME_EXCEEDED
from .wire.icmp import IcmpMessage
from .wire.ipv4 import CE, ECT_0, NOT_ECT, PROTOCOL_ICMP, Ipv4Header
from .wire.ipv6 import IPV6_HEADER_LENGTH, MINIMUM_MTU as IPV6_MINIMUM_MTU
from .wire.tcp import ACK, RST, SYN, TcpSegment

DEFAULT_TTL = 64
# The most sockets (connections in any state, TIME-WAIT included, plus listeners) one Stack holds
# by default: a bound on its tables' memory, like a process's file descriptor limit.
DEFAULT_MAX_CONNECTIONS = 65536
# At most this many configs with segmentation offload set are remembered (_offload_config):
# a stack's own configs and a few per-socket ones.
_OFFLOAD_CONFIGS_KEPT = 32

# RFC 9293 3.9.2.2: source quench MUST be discarded (MUST-55); these three reach TCP.
ICMP_ERRORS_FOR_TCP = frozenset({DESTINATION_UNREACHABLE, TIME_EXCEEDED, PARAMETER_PROBLEM})

# RFC 1122 3.2.1.3: source addresses no host can have, by first octet: 0/8 ("this network"),
# 127/8 (loopback, which "MUST NOT appear outside a host"), 224/4 (multicast, RFC 1112) and 240/4
# (reserved, with the limited broadcast 255.255.255.255). Such a datagram is discarded silently
# (3.2.1.3 (g)): answering it would send a SYN-ACK, a RST or an echo reply to a group or to
# everyone (RFC 1122 4.2.3.10).
INVALID_SOURCE_FIRST_OCTETS = frozenset({0, 127, *range(224, 256)})

ConnectionKey = tuple[Address, int, Address, int]  # (local address, local port, remote address, remote port)
_SYN_ACK_RST = SYN | ACK | RST
_MAY_OPEN = (SYN, ACK)  # of those three bits, what a segment that may open a connection has
# The COUNTER_SLOTS of Connection and of TimeWait: `_drops` is their only Counter (Stack._forget).
_DROPS_ONLY = Connection.COUNTER_SLOTS


class StackEvent(NamedTuple):
    """Something a connection reported, tagged with the connection it came from."""

    connection: Connection
    event: object


class Stack(UserCalls, Ipv6Side):
    """One host with a TCP/IP stack: an IPv4 address, an IPv6 address or both, any number of
    listeners and connections. `address=None` turns IPv4 off, `address6=None` (the default) IPv6.

    Two policies can be fixed for tests, scripts and simulations, so that a run repeats exactly:
    `isn_generator=IsnGenerator(fixed_isn=N)` starts every connection at sequence number N, and
    `port_seed` fixes where the walk through the ephemeral ports starts."""

    def __init__(
        self,
        address: int | str | ipaddress.IPv4Address | None,
        config: TcpConfig | None = None,
        *,
        address6: bytes | str | ipaddress.IPv6Address | None = None,
        mtu: int = 1500,
        isn_generator: IsnGenerator | None = None,
        port_seed: int | None = None,
        ttl: int = DEFAULT_TTL,
        reassembly_limits: ReassemblyLimits | None = None,
        segmentation_offload: bool = False,
        partial_checksums: bool | None = None,
        gso_max_size: int = LARGEST_SUPER_SEGMENT,
        max_connections: int | None = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        if max_connections is not None and max_connections < 1:
            raise ValueError("max_connections must be at least 1 or None")
        if address is None and address6 is None:
            raise ValueError("a stack needs an IPv4 address, an IPv6 address or both")
        self.address = None if address is None else host_address(address)
        self.address6 = None if address6 is None else host_address(address6)
        if type(self.address) is bytes or (address6 is not None and type(self.address6) is not bytes):
            given = address if type(self.address) is bytes else address6
            raise ValueError(f"{given!r}: the IPv4 address goes in `address`, the IPv6 address in `address6`")
        self.max_connections = max_connections  # see _has_room
        self.mtu = mtu
        # TSO (link/tun.py): the link cuts a TCP segment larger than the MTU into segments of the
        # MTU minus its headers. A connection whose own segments are exactly that size (the peer's
        # MSS is at least ours) may then hand down up to 64 KB at once (TcpConfig.offload_segments),
        # over IPv4 and IPv6 alike (TSO4, TSO6): k*(MTU-60)+80 <= k*(MTU-40)+60 <= 65535 bytes.
        # Up to `gso_max_size` bytes where the link takes BIG TCP packets (TunLink.gso_max_size),
        # as Linux's device settings gso_ipv4_max_size and gso_max_size let its own TCP build
        # them: over IPv4 with Total Length 0 (csrc/ipv4.c), over IPv6 as jumbograms (RFC 2675:
        # an 8-byte hop-by-hop header more, csrc/ipv6.c). Below 64 KB nothing changes.
        if not LARGEST_SUPER_SEGMENT <= gso_max_size <= LARGEST_BIG_PACKET:
            raise ValueError(f"gso_max_size must be in {LARGEST_SUPER_SEGMENT}..{LARGEST_BIG_PACKET}, "
                             f"got {gso_max_size}")
        self.offload_segments = self.offload_segments6 = 1
        if segmentation_offload:
            self.offload_segments = max(1, min(MOST_OFFLOAD_SEGMENTS, (gso_max_size - 60) // (mtu - 40)))
            self.offload_segments6 = max(1, min(64, 65475 // (mtu - 40)))
            if gso_max_size > LARGEST_SUPER_SEGMENT:
                # (IPv6's segments carry 20 bytes less than the MTU less 40, and a jumbogram's
                # headers are at most 40 + 8 + 60 bytes: k*(MTU-60) + 108 <= gso_max_size)
                self.offload_segments6 = max(1, min(MOST_OFFLOAD_SEGMENTS, (gso_max_size - 108) // (mtu - 60)))
        # Such a link takes packets with their TCP checksum partial (build_tcp_packet, as
        # SegmentParts): every one larger than the MTU, which it cuts (TSO, or in software from
        # the parts). Those the MTU carries too, from PARTIAL_CHECKSUM_FROM bytes on, only where
        # the link asks for them (`partial_checksums`, by default whenever segmentation_offload):
        # the TUN link's vnet header hands the kernel the partial checksum (NEEDS_CSUM), and on
        # PyPy a link without offloads completes the sum where the parts lie rather than have a
        # 64 KB packet joined (link/tun.py PARTS_WITHOUT_OFFLOADS). Elsewhere a packet built
        # whole is summed by the same C call that builds it (with the payload then still in
        # cache for the one copy behind the headers).
        if partial_checksums is None:
            partial_checksums = segmentation_offload
        self.partial_checksum_over = (min(mtu, PARTIAL_CHECKSUM_FROM) if partial_checksums
                                      else mtu if segmentation_offload else 0)
        # Configs with offload_segments changed, by (id of the config they copy, the count): the
        # copy with the config it was made from (_offload_config).
        self._offload_configs: dict[tuple[int, int], tuple[TcpConfig, TcpConfig]] = {}
        # Our MSS follows from the MTU (RFC 9293 3.7.1): the MTU less the IP and TCP headers, so
        # one per family (IPv6's header is 40 bytes: MSS = MTU - 60).
        self.config = (config or TcpConfig()).fit_to_mtu(mtu)
        if address6 is not None and mtu < IPV6_MINIMUM_MTU:
            raise ValueError(f"IPv6 needs a link MTU of at least {IPV6_MINIMUM_MTU} (RFC 8200 5), not {mtu}")
        self.config6 = self.config if address6 is None else (config or TcpConfig()).fit_to_mtu(mtu, IPV6_HEADER_LENGTH)
        self.ttl = ttl
        self.isn_generator = isn_generator or IsnGenerator()
        self.syn_cookies = SynCookies()  # one rotating cookie secret for all our listeners (RFC 4987 3.6)
        self.fast_open_cookies = FastOpenCookieCache()  # the client's Fast Open cookies (RFC 7413 4.1.3)
        self.connections: dict[ConnectionKey, Connection] = {}
        self.listeners: dict[tuple[int, int], Listener] = {}
        self.drops: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()
        # The counters of connections that have ended, summed by name (Counter attributes such as
        # `drops`), so that `ustack stats` totals outlive the connections that counted them.
        self.ended_connection_counters: dict[str, Counter[str]] = {}
        self.reassembly = Ipv4Reassembly(reassembly_limits, drops=self.drops, counters=self.counters)
        self.reassembly6 = Ipv6Reassembly(reassembly_limits, drops=self.drops, counters=self.counters)
        self._listener_config6: dict[Listener, tuple[TcpConfig, TcpConfig]] = {}  # stack6._ipv6_config_of
        # RFC 6437 3: one flow label per IPv6 connection, kept while it lives.
        self._flow_labels: dict[Connection, int] = {}
        # One budget for the ACKs all our connections send in answer to unacceptable segments
        # (TcpConfig.unacceptable_ack_limit per second): forged segments spread over many
        # connections cannot make us send more.
        self.unacceptable_ack_budget = PerSecondLimit(self.config.unacceptable_ack_limit)
        # Connections that may have something to send: touched by a packet, a user call or a timer.
        self._touched: dict[Connection, None] = {}
        self.timer_heap = TimerHeap()  # each connection's next deadline (timer_heap.py)
        self._control_replies: list[bytes] = []  # RSTs for unmatched segments, ICMP replies
        self._events: list[StackEvent] = []
        # Whether anybody reads events(): the tracer, `--web`, the labs, the tests. The asyncio
        # runtime turns this off while nothing observes it (aio/runtime.py): then the dozen events
        # of every connection's life are not made at all (events_wanted).
        self._events_wanted = True
        self._born_of: dict[Connection, Listener] = {}  # passive connections, for the listener's count
        # Touched since the runtime last asked (drain_active): every touch writes it along with
        # _touched (both in order of first touch), so transmit() has no set to merge.
        self._active: dict[Connection, None] = {}
        self._port_random = random.Random(port_seed)
        self._next_ephemeral = self._port_random.randrange(len(EPHEMERAL_PORTS))
        # RFC 6864 4.1: a fragmented datagram needs an identification unique for its source,
        # destination and protocol while its fragments may live; a counter from a random start.
        self._next_identification = self._port_random.randrange(1 << 16)
        # The same for IPv6's 32-bit fragment identification (RFC 8200 4.5, RFC 7739).
        self._next_identification6 = self._port_random.randrange(1 << 32)

    # ----------------------------------------------------------------------------------------
    # Packets in
    # ----------------------------------------------------------------------------------------
    def receive(self, packet: bytes, now: float) -> None:
        """Process one IPv4 or IPv6 packet from the link."""
        try:
            parsed = parse_packet(packet)
        except WireError as error:
            self.drops[error.reason] += 1
            return
        ip = parsed.ip
        if ip.version == 6:
            self._receive_ipv6(parsed, now)
            return
        if ip.dst != self.address:
            self.drops["ipv4_not_our_address"] += 1
            return
        if ip.src >> 24 in INVALID_SOURCE_FIRST_OCTETS or ip.src == ip.dst:
            # Our own address as the source of a packet from the link is forged too (the "LAND"
            # attack: a SYN from us to us would have us answer ourselves in a loop).
            self.drops["ipv4_bad_source_address"] += 1
            return
        segment = parsed.tcp
        if segment is not None and not (ip.more_fragments or ip.fragment_offset):
            # The common case, a whole TCP segment, straight to the demultiplexer (what _deliver
            # would do with it, one call fewer per packet); and the commonest of all, a segment
            # for a connection that is not CLOSED, to that connection without _receive_tcp's
            # checks (one call fewer per packet).
            self.counters["packets_in"] += 1
            key = (ip.dst, segment.dst_port, ip.src, segment.src_port)
            connection = self.connections.get(key)
            if connection is None or connection.state is CLOSED:
                self._receive_tcp(ip, segment, now, key, connection)
            else:
                self._to_connection(connection, ip, segment, key, now)
            return
        self._deliver(parsed, now, self.reassembly, self._receive_icmp, "ipv4_protocol")

    def _deliver(self, parsed, now: float, reassembly, receive_icmp, unsupported: str) -> None:
        """A packet for us from a possible source, of either family: counted, put together if it
        is a fragment (RFC 791 3.2, RFC 8200 4.5: held until the whole datagram is here, which
        then goes on as one packet), and handed to TCP or to the family's ICMP."""
        self.counters["packets_in"] += 1
        ip = parsed.ip
        if ip.more_fragments or ip.fragment_offset:
            parsed = reassembly.receive(parsed, now)
            if parsed is None:
                return
            ip = parsed.ip
        if parsed.tcp is not None:
            self._receive_tcp(ip, parsed.tcp, now)
        elif parsed.icmp is not None:
            receive_icmp(ip, parsed.icmp, now)
        else:
            self.drops[f"{unsupported}_{ip.protocol}_not_supported"] += 1

    def _receive_tcp(self, ip: Ipv4Header, segment: TcpSegment, now: float, key: ConnectionKey | None = None,
                     connection: Connection | None = None) -> None:
        """A TCP segment for us, of either family: to its connection, else to a listener, else
        answered as in CLOSED. `key` and `connection`: the 4-tuple and its table entry, when
        the caller (receive's IPv4 fast path) has looked them up already."""
        if key is None:
            key = (ip.dst, segment.dst_port, ip.src, segment.src_port)
            connection = self.connections.get(key)
        if connection is not None and connection.state is CLOSED and connection.is_finished:
            # A timer closed it (TIME-WAIT's end) and the transmit() that forgets it has not run
            # yet (the runtime reads packets first): a CLOSED connection has no TCB (RFC 9293
            # 3.10.7.1), so the segment goes on as if it were gone, to a listener (a new SYN of
            # the 4-tuple gets its SYN-ACK, not the CLOSED state's reset).
            self._forget(connection)
            connection = None
        if connection is not None:
            self._to_connection(connection, ip, segment, key, now)
        else:
            self._to_listener(ip, segment, key, now)

    def _to_connection(self, connection: Connection | TimeWait, ip, segment: TcpSegment,
                       key: ConnectionKey, now: float) -> None:
        """A segment for the connection (or TIME-WAIT record) of its 4-tuple."""
        # The IP header's ECN field (RFC 3168 5): for IPv4 the low two bits of the TOS byte, read
        # here in place of the header's `ecn` property (a call fewer per packet).
        if (ip.tos & CE if ip.__class__ is Ipv4Header else ip.ecn) == CE:
            connection.congestion_experienced()  # RFC 3168 6.1.3: the IP header's news
        connection.receive(segment, now)
        self._touched[connection] = self._active[connection] = None  # as _touch does
        if self._events_wanted:
            self._collect_events(connection)
        if connection.state is CLOSED:
            self._after_closing_segment(connection, ip, segment, key, now)

    def _after_closing_segment(self, connection: Connection | TimeWait, ip, segment: TcpSegment,
                               key: ConnectionKey, now: float) -> None:
        """`segment` left `connection` CLOSED. RFC 1122 4.2.2.13, RFC 6191: if it was a new SYN
        that ended the TIME-WAIT of this 4-tuple, the old connection goes and the SYN goes on to
        the listener as a new connection request."""
        record = connection if connection.__class__ is TimeWait else connection.time_wait
        if record is None or record.reopening_syn is None:
            return
        syn, record.reopening_syn = record.reopening_syn, None
        self._forget(connection)
        self._to_listener(ip, syn, key, now)

    def _to_listener(self, ip, segment: TcpSegment, key: ConnectionKey, now: float) -> None:
        """A segment of no connection: to the listener on its port, else answered as in CLOSED."""
        listener = self.listeners.get((ip.dst, segment.dst_port)) or self.listeners.get((0, segment.dst_port))
        if listener is not None:
            if segment.flags & _SYN_ACK_RST in _MAY_OPEN and not self._has_room():
                # A new connection request, or an ACK that may return a SYN cookie: dropped
                # without a reply (the client retries; a stray ACK misses only its RST).
                self.drops["stack_connection_limit"] += 1
                return
            # The child records events from its start only if anybody reads them: otherwise its
            # first state changes (LISTEN, SYN-RECEIVED) are not even described.
            if type(ip.dst) is bytes:
                # A dual-stack listener (or one bound to our IPv6 address): the child's local
                # address is the SYN's destination and its MSS leaves room for IPv6's header.
                new_connection = listener.receive(ip.src, segment, now, local_address=ip.dst,
                                                  config=self._ipv6_config_of(listener),
                                                  record_events=self._events_wanted)
            else:
                new_connection = listener.receive(ip.src, segment, now, record_events=self._events_wanted)
            if new_connection is not None:
                new_connection.unacceptable_ack_budget = self.unacceptable_ack_budget
                self.connections[key] = new_connection
                new_connection.key = key  # one tuple for the table, the timer heap, a TimeWait record
                self._born_of[new_connection] = listener
                listener.open_connections += 1
                self._touch(new_connection)
            if listener._replies:
                self._collect_listener_output(listener, now)
            return
        # RFC 9293 3.10.7.1: no TCB, so answer as the CLOSED state does.
        self.drops["tcp_no_connection"] += 1
        reply = reset_for_unmatched(segment)
        if reply is not None:
            self.counters["resets_sent"] += 1
            self._control_replies.append(build_tcp_packet(ip.dst, ip.src, reply, ttl=self.ttl))

    def _collect_listener_output(self, listener: Listener, now: float) -> None:
        for remote_address, reply in listener.transmit(now):
            local_address = listener.local_address
            if type(local_address) is not type(remote_address):  # a dual-stack listener's other family
                local_address = self.address6 if type(remote_address) is bytes else self.address
            self._control_replies.append(build_tcp_packet(local_address, remote_address, reply, ttl=self.ttl))

    def _receive_icmp(self, ip: Ipv4Header, message: IcmpMessage, now: float) -> None:
        if message.type == ECHO_REQUEST:
            # RFC 792 / RFC 1122 3.2.2.6: echo the identifier, sequence number and data back.
            reply = message._replace(type=ECHO_REPLY, code=0)
            packet = build_icmp_packet(ip.dst, ip.src, reply, ttl=self.ttl)
            if len(packet) > self.mtu:
                # The request came in fragments (the reply is as long): it leaves in fragments.
                header = Ipv4Header(ip.dst, ip.src, PROTOCOL_ICMP, self.ttl, identification=self._identification(),
                                    dont_fragment=False)
                fragments = fragment_ipv4(header, packet[20:], self.mtu)
                self._control_replies.extend(fragments)
                self.counters["fragments_created"] += len(fragments)
            else:
                self._control_replies.append(packet)
            self.counters["icmp_echo_replies"] += 1
        elif message.type in ICMP_ERRORS_FOR_TCP and message.quoted_tcp is not None:
            # RFC 9293 3.9.2.2 (MUST-54): TCP acts on the ICMP errors IP passes up, directed to
            # the connection that sent the quoted datagram: its source is our side of it.
            quoted_ip, quoted = message.quoted_ip, message.quoted_tcp
            key = (quoted_ip.src, quoted.src_port, quoted_ip.dst, quoted.dst_port)
            connection = self.connections.get(key)
            if connection is None:
                self.drops["icmp_error_no_connection"] += 1
                return
            if message.type == DESTINATION_UNREACHABLE:
                connection.on_icmp_unreachable(message.code, message.next_hop_mtu, quoted.seq, now)
            else:
                connection.on_icmp_soft_error(message.type, message.code, quoted.seq, now)
            self._touch(connection)
        else:
            self.drops[f"icmp_type_{message.type}_ignored"] += 1

    # ----------------------------------------------------------------------------------------
    # Packets out, time
    # ----------------------------------------------------------------------------------------
    def transmit(self, now: float) -> list[bytes]:
        """Every packet due now: replies to unmatched segments, then each touched connection's."""
        if not self._touched and not self._control_replies:
            return []  # nothing touched since the last call: the common answer to a poll
        packets = self._control_replies
        self._control_replies = []
        touched = self._touched  # (each is in the active set already: _touch)
        self._touched = {}
        ttl = self.ttl
        offload_segments = self.offload_segments
        offload = offload_segments > 1
        if offload:  # (worked out only for a link that takes several segments at once)
            offload_segments6 = self.offload_segments6
            # (a segment that fills the MTU, less its TCP header and the options it leaves room for)
            mss_filling_mtu, mss_filling_mtu6 = self.mtu - 40, self.mtu - IPV6_HEADER_LENGTH - 20
        partial_over = self.partial_checksum_over  # larger packets: checksum left partial (build_tcp_packet)
        events_wanted = self._events_wanted
        arm = self.timer_heap.arm
        for connection in touched:
            if offload and connection.__class__ is not TimeWait:  # a TIME-WAIT record sends bare ACKs
                # Several segments at once only while the connection's segment size is what the
                # link cuts at: its send MSS plus the timestamp option it leaves room for, plus
                # the IP and TCP headers, fill the MTU (a smaller peer MSS or a lowered path MTU
                # switch it off again). Worked out here, for every connection a transmit looks
                # at; the config changes only when this changes (_offload_config).
                segment_size = connection.send_mss + (TIMESTAMP_OPTION_SPACE if connection.timestamps_enabled else 0)
                if type(connection.local_address) is bytes:
                    if segment_size == mss_filling_mtu6:
                        if connection.config.offload_segments != offload_segments6:
                            self._offload_config(connection, offload_segments6)
                    elif connection.config.offload_segments != 1:
                        self._offload_config(connection, 1)
                elif segment_size == mss_filling_mtu:
                    if connection.config.offload_segments != offload_segments:
                        self._offload_config(connection, offload_segments)
                elif connection.config.offload_segments != 1:
                    self._offload_config(connection, 1)
            segments = connection.transmit(now)
            if segments:
                key = connection.key  # (local address, local port, remote address, remote port): set by us
                if key is None:
                    local_address, remote_address = connection.local_address, connection.remote_address
                else:
                    local_address, remote_address = key[0], key[2]
                if type(local_address) is bytes:
                    # IPv6: the flow label (RFC 6437), and the ECN field in the traffic class.
                    flow_label = self._flow_label(connection)
                    for segment in segments:
                        ecn = ECT_0 if segment.__class__ is EcnCapableSegment else NOT_ECT
                        packets.append(build_tcp_packet(local_address, remote_address, segment, ttl, tos=ecn,
                                                        flow_label=flow_label, partial_checksum_over=partial_over))
                else:
                    for segment in segments:
                        # RFC 3168 6.1.2: ECT(0) on the data segments of an ECN connection (ecn.py);
                        # the ECN field is the low bits of IPv4's TOS byte and of IPv6's traffic
                        # class (RFC 8200 7), which build_tcp_packet takes as `tos` in both families.
                        if segment.__class__ is EcnCapableSegment:
                            packets.append(build_tcp_packet(local_address, remote_address, segment, ttl, tos=ECT_0,
                                                            partial_checksum_over=partial_over))
                        else:
                            packets.append(build_tcp_packet(local_address, remote_address, segment, ttl,
                                                            partial_checksum_over=partial_over))
            if events_wanted:
                self._collect_events(connection)
            state = connection.state
            if state is CLOSED and connection.is_finished:
                self._forget(connection)
                continue
            if state is TIME_WAIT and connection.__class__ is not TimeWait:
                connection = self._keep_only_time_wait(connection)
            arm(connection, connection.timers.next_deadline())  # as _arm does
        if packets:
            self.counters["packets_out"] += len(packets)
        return packets

    def _offload_config(self, connection: Connection, wanted: int) -> None:
        """Let `connection` hand the link `wanted` segments at once (transmit decides when):
        what connection.reconfigure(now, offload_segments=wanted) does (a live setting that
        changes nothing else), but with one copy of the config for all the connections that share
        it (a listener's children), not a copy (dataclasses.replace) per connection."""
        config = connection.config
        key = (id(config), wanted)
        made = self._offload_configs.get(key)
        if made is None or made[0] is not config:
            if len(self._offload_configs) >= _OFFLOAD_CONFIGS_KEPT:
                self._offload_configs.clear()  # per-socket configs (setsockopt) come and go
            made = self._offload_configs[key] = (config, dataclasses.replace(config, offload_segments=wanted))
        connection.config = made[1]

    def _holding_fragments(self) -> bool:
        """Whether either family's reassembly holds a datagram (each one held counts at least its
        overhead in memory_used): asked first, the runtime's every loop iteration and each timer
        skip four calls into reassembly.py, which almost never holds anything."""
        return bool(self.reassembly.reassembler.memory_used or self.reassembly6.reassembler.memory_used)

    def next_deadline(self) -> float | None:
        deadline = self.timer_heap.next_deadline(self.connections)
        if not self._holding_fragments():
            return deadline
        reassembly_deadline = self.reassembly.next_deadline()
        reassembly6_deadline = self.reassembly6.next_deadline()
        if reassembly6_deadline is not None:
            reassembly_deadline = reassembly6_deadline if reassembly_deadline is None else min(reassembly_deadline, reassembly6_deadline)
        if deadline is None or reassembly_deadline is None:
            return reassembly_deadline if deadline is None else deadline
        return min(deadline, reassembly_deadline)

    def on_timer(self, now: float) -> None:
        if self._holding_fragments():
            self.reassembly.on_timer(now)
            self.reassembly6.on_timer(now)
        for connection in self.timer_heap.pop_due(now, self.connections):
            connection.on_timer(now)
            self._touch(connection)

    def _touch(self, connection: Connection) -> None:
        self._touched[connection] = self._active[connection] = None
        # Collect events as they happen, so a tracer can put a state change on the line of the
        # packet (or the timer, or the user call) that caused it.
        if self._events_wanted:
            self._collect_events(connection)

    def _arm(self, connection: Connection | TimeWait) -> None:
        self.timer_heap.arm(connection, connection.timers.next_deadline())

    def _keep_only_time_wait(self, connection: Connection) -> TimeWait:
        """A connection that has entered TIME-WAIT (and sent what it owed) is replaced in every
        table by its TimeWait record (tcp/time_wait.py), which does all TIME-WAIT does: the
        full Connection, its buffers, congestion control and timers, goes unless the
        application still holds it."""
        record = connection.time_wait
        key = record.key
        if self.connections.get(key) is connection:
            # The entry's value only: deleting and adding the key would leave a dummy slot, and
            # a table that churns through TIME-WAIT would grow past what it holds.
            self.connections[key] = record
        # The connection's timers go; the record's one deadline is armed by the caller (transmit),
        # into the timer heap's TIME-WAIT queue (timer_heap.py).
        self.timer_heap.disarm(connection)
        if self._flow_labels:  # (IPv6 connections only: an IPv4 stack's stays empty)
            flow_label = self._flow_labels.pop(connection, None)
            if flow_label is not None:
                self._flow_labels[record] = flow_label
        listener = self._born_of.pop(connection, None)
        if listener is not None:
            self._born_of[record] = listener
        return record

    def _forget(self, connection: Connection) -> None:
        """A connection that is CLOSED with nothing left to send leaves no trace (DESIGN rule 6)."""
        key = connection.key
        if self.connections.get(key) is connection:
            del self.connections[key]
            # Most connections end having counted nothing: their one Counter slot (`_drops`, made
            # at the first drop) is still None, and counter_attributes need not be asked.
            if connection.COUNTER_SLOTS != _DROPS_ONLY or connection._drops is not None:
                for name, counter in counter_attributes(connection).items():
                    if counter:
                        self.ended_connection_counters.setdefault(name, Counter()).update(counter)
        self.timer_heap.disarm(connection)
        if self._flow_labels:  # (IPv6 connections only)
            self._flow_labels.pop(connection, None)
        listener = self._born_of.pop(connection, None)
        if listener is not None:
            listener.open_connections -= 1
            if not self._born_of:
                self._born_of = {}  # a dict keeps its largest size: an idle stack gives it back

    def _collect_events(self, connection: Connection | TimeWait) -> None:
        events = connection.events()
        if events:
            if connection.__class__ is TimeWait:
                # Reported as the Connection's while the application holds it (time_wait.py), so
                # that an observer sees one connection from its SYN to CLOSED.
                connection = connection.owner or connection
            self._events.extend([StackEvent(connection, event) for event in events])

    @property
    def events_wanted(self) -> bool:
        """Whether anybody reads events(). Off, the connections record none (the state changes'
        causes are not even put into words) and events() stays empty; switched on again, every
        connection the stack holds records from then on."""
        return self._events_wanted

    @events_wanted.setter
    def events_wanted(self, wanted: bool) -> None:
        self._events_wanted = wanted
        for connection in self.connections.values():
            connection.record_events(wanted)

    def drain_active(self) -> list[Connection]:
        """The connections that received, sent or timed out since the last call.

        The runtime looks at these (readable data, end of stream, state, error, send space) after
        each batch, level-triggered: it never misses a change and never scans idle connections.
        Those touched since the last transmit() are among them (they stay due for it): a runtime
        may hand received data to the application before it transmits."""
        active = self._active  # the connections touched since the last transmit() among them
        self._active = {}
        return list(active)

    def events(self) -> list[StackEvent]:
        """Drain what happened since the last call, connection by connection, in order (nothing
        while `events_wanted` is off)."""
        events = self._events
        self._events = []
        return events

    def _identification(self) -> int:
        self._next_identification = (self._next_identification + 1) & 0xFFFF
        return self._next_identification

    def poke(self, connection: Connection) -> None:
        """Tell the stack that a user call on `connection` may have produced output or new timers.

        The runtime calls this after conn.send/recv/shutdown/close/abort, then transmit(). A
        connection in TIME-WAIT is represented by its record once the stack keeps that alone."""
        if connection.__class__ is not TimeWait:
            record = connection.time_wait
            if record is not None and self.connections.get(record.key) is record:
                connection = record
        self._touched[connection] = self._active[connection] = None  # _touch, in line: a poke follows every user call
        if self._events_wanted:
            self._collect_events(connection)

    def all_connections(self) -> Iterable[Connection]:
        """Every connection the stack knows, including those still in a listener's SYN queue."""
        return list(self.connections.values())

    def state_counts(self) -> Counter[str]:
        return Counter(connection.state.value for connection in self.connections.values())



__all__ = ["Stack", "StackError", "StackEvent", "State", "EPHEMERAL_PORTS"]
