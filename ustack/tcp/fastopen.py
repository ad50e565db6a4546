"""TCP Fast Open (RFC 7413): data on the SYN, for clients that have talked to the server before.

A normal handshake costs a round trip before the first byte of a request can go out. With Fast
Open the server hands the client a cookie, a keyed hash of the client's address only the server
can make (RFC 7413 4.1.2); on later connections the client puts the cookie and its first data on
the SYN, and a server that finds the cookie valid delivers the data to the application at once and
acknowledges it with the SYN-ACK (4.2). Without a valid cookie, the data on the SYN is dropped as
in any handshake, and the SYN-ACK carries a fresh cookie (4.1.2, 4.2.1); the client sends the data
again after the handshake (4.2.2).

The cookie proves the client can receive at its address, so a flood of spoofed SYNs cannot make
the server accept data; a flood with stolen cookies is bounded by the listener's Fast Open queue
(RFC 7413 5.1): at most that many connections accepted with SYN data may still be in SYN-RECEIVED.

Who owns what here:
  * the server's cookie: IsnGenerator.fast_open_cookie (isn.py), from the stack's one secret;
  * the client's cookie cache, per server address: FastOpenCookieCache, one per Stack;
  * the decision for a SYN at a listener: answer_syn, called by Listener.receive;
  * a connection's Fast Open state: ServerFastOpen / ClientFastOpen in Connection.fast_open,
    read by the SYN paths of arrival.py and output.py.

The switches (TcpConfig): fast_open_client (default on, as Linux's net.ipv4.tcp_fastopen=1: a
connection asks for Fast Open only when the application does, Stack.connect(fast_open=True)),
fast_open_server (default off), fast_open_queue (every listener's queue unless its TCP_FASTOPEN
option set one) and fast_open_cookie_required.

Counters (Listener.counters for the server, FastOpenCookieCache.counters for the client):
  fast_open_accepted          a valid cookie: the SYN's data (if any) delivered (4.2)
  fast_open_cookie_requested  a SYN asked for a cookie and got one (4.1.1)
  fast_open_cookie_invalid    SYN data with a wrong cookie: dropped, a fresh cookie sent (4.1.2)
  fast_open_queue_full        SYN data beyond the listener's Fast Open queue: dropped (5.1)
  fast_open_no_cookie_accepted  SYN data accepted without a cookie (fast_open_cookie_required off)
  fast_open_syn_data_sent / fast_open_syn_data_acked / fast_open_syn_data_not_acked (client, 4.2.2)
  fast_open_cookie_cached (client: a SYN-ACK brought a cookie)
"""

from __future__ import annotations

from collections import Counter, OrderedDict

from ustack.tcp.seq import seq_add
from ustack.tcp.state import SYN_RECEIVED

FAST_OPEN_MIN_COOKIE = 4  # bytes, RFC 7413 4.1.1 (at most 16: wire/codec.py's FAST_OPEN_MAX_COOKIE)
CACHE_ENTRIES = 1024  # server addresses a client remembers cookies for (oldest forgotten first)
SYN_OPTION_SPACE = 40  # what a SYN's options may take; SYN data leaves room for all of it


class FastOpenCookieCache:
    """The client's cookies, per server address (RFC 7413 4.1.3: a client caches the cookie with
    the server's MSS, and keys it by the server's IP address). Bounded: the least recently used
    entry goes first."""

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self.entries = entries
        # address -> (cookie or None, the server's MSS or None, experimental form)
        self._cookies: OrderedDict = OrderedDict()
        self.counters: Counter[str] = Counter()  # the client's outcomes, for all connections of a stack

    def get(self, address) -> tuple[bytes | None, int | None, bool] | None:
        found = self._cookies.get(address)
        if found is not None:
            self._cookies.move_to_end(address)
        return found

    def remember(self, address, cookie: bytes | None, mss: int | None, experimental: bool = False) -> None:
        self._cookies[address] = (cookie, mss, experimental)
        self._cookies.move_to_end(address)
        while len(self._cookies) > self.entries:
            self._cookies.popitem(last=False)

    def forget(self, address) -> None:
        self._cookies.pop(address, None)

    def __len__(self) -> int:
        return len(self._cookies)


class ServerFastOpen:
    """A listener's child born of a SYN with a Fast Open option: the cookie its SYN-ACK carries (if
    any, in the form the client used) and whether the SYN's data was accepted."""

    __slots__ = ("cookie_to_send", "experimental", "accept_data", "syn_data_acked")
    hold_syn = False  # (a client's question, ClientFastOpen)

    def __init__(self, cookie_to_send: bytes | None, experimental: bool, accept_data: bool,
                 syn_data: bool = False) -> None:  # fmt: skip
        self.cookie_to_send = cookie_to_send
        self.experimental = experimental
        self.accept_data = accept_data  # a Fast Open connection: data on its SYN is taken
        self.syn_data_acked = accept_data and syn_data  # there was some (Linux's TCPI_OPT_SYN_DATA)

    def syn_held(self, connection) -> bool:
        return False  # a SYN-ACK never waits

    def synack_options(self, options):
        if self.cookie_to_send is None:
            return options
        return options._replace(fast_open=self.cookie_to_send, fast_open_experimental=self.experimental)


class ClientFastOpen:
    """An active open that asked for Fast Open: the cookie known for the server (None: the SYN asks
    for one), in which form the server speaks it, and how much data the SYN carried."""

    __slots__ = ("cache", "cookie", "server_mss", "experimental", "send_without_cookie", "syn_data",
                 "syn_data_acked", "hold_syn", "option_sent")  # fmt: skip
    accept_data = False  # (a server's question, ServerFastOpen)

    def __init__(self, cache: FastOpenCookieCache, address, send_without_cookie: bool = False) -> None:
        self.cache = cache
        known = cache.get(address)
        self.cookie, self.server_mss, self.experimental = known if known is not None else (None, None, False)
        self.send_without_cookie = send_without_cookie
        self.syn_data = 0  # bytes our first SYN carried
        self.syn_data_acked = False  # ... and the SYN-ACK acknowledged them all
        self.option_sent = False  # our first SYN carried the option
        # Hold the SYN back until there is data to put on it (Linux's TCP_FASTOPEN_CONNECT: the
        # connect() returns at once and the first write sends SYN and data together).
        self.hold_syn = False

    @property
    def may_send_data(self) -> bool:
        """Would our SYN carry data? Only with a cookie, unless cookies are not required."""
        return self.cookie is not None or self.send_without_cookie

    def syn_room(self, config) -> int:
        """How many bytes of data the SYN may carry: the MSS (the one the server gave with its
        cookie, if smaller than ours), less room for every option a SYN may have."""
        mss = min(self.server_mss or config.mss, config.mss)
        return max(mss - SYN_OPTION_SPACE, 0)

    def syn_held(self, connection) -> bool:
        """True while the SYN waits for data (hold_syn); the first data, a FIN or ABORT ends it."""
        snd = connection.snd
        if self.hold_syn and not snd.fin_queued and (snd.buffer is None or not snd.buffer.length):
            return True
        self.hold_syn = False
        return False

    def syn(self, connection, options, first: bool) -> tuple:
        """(options, payload) of our SYN. The first SYN carries the cookie (or asks for one) and,
        with a cookie (or when cookies are not required), data. Without a cookie to give and with
        cookies not required the option is left out (Linux's tcp_fastopen 0x4). A SYN sent again
        carries neither option nor data, in case a middlebox drops SYNs with options or data it
        does not know (RFC 7413 4.1.3, 7.4): the data follows the handshake (4.2.2)."""
        snd = connection.snd
        if not first:
            if self.syn_data:
                snd.syn_data_not_resent()
            return options, b""
        if self.cookie is not None or not self.send_without_cookie:
            options = options._replace(fast_open=self.cookie or b"", fast_open_experimental=self.experimental)
            self.option_sent = True
        if snd.buffer is None or not snd.buffer.length or not self.may_send_data:
            return options, b""
        payload = bytes(snd.buffer.peek(seq_add(snd.iss, 1), self.syn_room(connection.config)))
        self.syn_data = len(payload)
        if payload:
            self.cache.counters["fast_open_syn_data_sent"] += 1
        return options, payload

    def synack_options(self, options):
        return options  # a simultaneous open: our SYN-ACK carries no Fast Open option

    def synack(self, connection, segment) -> None:
        """Our SYN was acknowledged by `segment`, a SYN-ACK: remember a cookie it brought, and
        release the SYN's data it acknowledged or send the rest again at once (RFC 7413 4.2.2).
        A server that ignored our request in the option of kind 34 is asked next time in the
        experimental form (kind 254), which older servers know, as Linux does."""
        cookie = segment.options.fast_open
        if cookie and (len(cookie) < FAST_OPEN_MIN_COOKIE or len(cookie) % 2):
            # RFC 7413 4.1.1: a cookie is 4 to 16 bytes. As Linux (tcp_parse_fastopen_option, which
            # also wants an even length), one of another length is no cookie: the one we had stays.
            cookie = None
        counters = self.cache.counters
        if cookie and self.option_sent:  # a cookie we did not ask for is not kept
            self.cache.remember(connection.remote_address, cookie, segment.options.mss,
                                segment.options.fast_open_experimental)
            counters["fast_open_cookie_cached"] += 1
        else:  # the server's MSS, for the size of our next SYN's data; the form to ask in
            ignored = self.option_sent and self.cookie is None and not connection.snd.syn_retransmitted
            self.cache.remember(connection.remote_address, self.cookie, segment.options.mss,
                                self.experimental or ignored)
        if not self.syn_data:
            return
        if connection.snd.syn_data_answered(segment.ack, self.syn_data):
            counters["fast_open_syn_data_acked"] += 1
            self.syn_data_acked = True
        else:
            counters["fast_open_syn_data_not_acked"] += 1  # sent again now, not after a timeout


def answer_syn(listener, syn, remote_address, config) -> ServerFastOpen | None:
    """RFC 7413 4.1.2 and 4.2 at a listener, for a SYN that passed its checks. None: not a Fast
    Open handshake (the listener takes no Fast Open, or the SYN asks for nothing), so data on the
    SYN is dropped as without Fast Open."""
    queue = listener.fast_open_queue or config.fast_open_queue
    if not config.fast_open_server or queue <= 0:
        return None
    option = syn.options.fast_open
    required = config.fast_open_cookie_required
    if option is None and (required or not syn.payload):
        return None
    counters = listener.counters
    valid = listener.isn_generator.fast_open_cookie(remote_address)
    cookie_ok = option == valid
    # Send a fresh cookie unless the client already holds the right one (4.1.2).
    reply = None if cookie_ok or option is None else valid
    experimental = syn.options.fast_open_experimental
    if not cookie_ok and required:
        counters["fast_open_cookie_requested" if option == b"" else "fast_open_cookie_invalid"] += 1
        if syn.payload:
            listener.drops["data_on_syn"] += 1  # the client sends it again (4.2.2)
        return ServerFastOpen(reply, experimental, False)
    if _pending(listener) >= queue:
        counters["fast_open_queue_full"] += 1  # RFC 7413 5.1: a plain handshake instead
        if syn.payload:
            listener.drops["data_on_syn"] += 1
        return ServerFastOpen(reply, experimental, False)
    # A Fast Open connection, even with no data on its SYN: the application may accept it and
    # send before the handshake completes (4.2).
    counters["fast_open_accepted" if cookie_ok else "fast_open_no_cookie_accepted"] += 1
    return ServerFastOpen(reply, experimental, True, bool(syn.payload))


def _pending(listener) -> int:
    """Children accepted with SYN data whose handshake has not completed (the Fast Open queue).
    Pruned here: a child that left SYN-RECEIVED no longer counts."""
    pending = listener.fast_open_pending
    pending[:] = [child for child in pending if child.state is SYN_RECEIVED]
    return len(pending)
