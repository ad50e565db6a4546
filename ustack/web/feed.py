"""What the web view knows, turned into JSON messages for the page (ustack/web/server.py sends
them as server-sent events). It is fed by the same sources as the ladders, `ss` and the labs:

- as a follower of the one WireWatch pipeline (ustack/trace/live.py): each packet in wire order
  (lost ones with their note) and each state change our connections report;
- the connections' snapshots (AsyncStack.snapshots, what `ustack ss` shows), sampled a few times
  a second by `sample()`.

    feed = WebFeed("ustack serve")
    watch.followers.append(feed)            # the WireWatch of --ladder, of a lab, or a plain one
    feed.schedule = loop.call_soon          # one ladder message per round of the runtime
    feed.listeners.append(print)            # each message, as a dict with a "type"
    feed.sample(loop.time(), astack.snapshots())

The messages:

    hello   everything a page that just connected needs (sent to it alone, see `hello()`)
    packet  one tcpdump line: {key, time, direction, line, lost}
    ladder  a connection's ladder so far: {key, title, rows, states, last, truncated}
    table   the connection table as `ss` shows it, and one chart sample per connection
    forget  a connection no longer kept: {key}

Bounded memory, whatever runs: at most MAX_CONNECTIONS connections are kept (the oldest go
first, ended ones before open ones); per connection, at most MAX_LADDER_SEGMENTS segments are
drawn on its ladder (later ones are only counted, in `truncated`), MAX_PACKET_LINES tcpdump
lines and MAX_SAMPLES chart samples are kept. Methods are called from the stack's thread;
`hello()` may be called from the web server's: a lock keeps the two apart.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable

from ..control import to_jsonable
from ..tcp.events import StateChanged
from ..tcp.state import State
from ..trace.labels import Numbering, arrow_label
from ..trace.model import LEFT, RIGHT, Arrow, StateMark
from ..trace.recorder import LOCAL, LadderRecorder
from ..wire import parse_packet
from ..wire.errors import WireError
from ..wire.ipv4 import address_text
from ..wire.ipv6 import endpoint_text as endpoint_text_of
from ..wire.tcp import ACK, SYN
from ..wire.text import format_packet

MAX_CONNECTIONS = 32
MAX_LADDER_SEGMENTS = 300  # a course's connection fits; a bulk transfer's ladder stops there
MAX_PACKET_LINES = 500  # per connection
MAX_SAMPLES = 600  # per connection: five minutes at SAMPLE_INTERVAL
MAX_OTHER_LINES = 200  # packets of no connection we follow (strays, ICMP)
TRUNCATED_STEP = 100  # past the limit, a ladder message only every this many segments (for the count)
SAMPLE_INTERVAL = 0.5  # seconds between two snapshots of the connections

OTHER = "other"  # the key of the packets of no connection


def endpoint_text(address: int | bytes, port: int) -> str:
    """'10.77.0.2:80', '[fd00:77::2]:80' (as ss writes them: wire/ipv6.endpoint_text)."""
    return endpoint_text_of(address_text(address), port)


def base_key(local: tuple[int, int], remote: tuple[int, int]) -> str:
    """Our side first: '10.77.0.2:80>10.77.0.1:41234' (a later connection on the same four numbers
    gets '#2', '#3' appended)."""
    return f"{endpoint_text(*local)}>{endpoint_text(*remote)}"


class _Watched:
    """One connection the page can select: its ladder recorder, its lines and chart samples."""

    def __init__(self, key: str, local, remote, remote_label: str) -> None:
        self.key = key
        self.recorder = LadderRecorder(local_label="ustack", remote_label=remote_label)
        self.title = f"{endpoint_text(*local)} (ustack) \u2194 {endpoint_text(*remote)} ({remote_label})"
        self.syn_sequence: dict[str, int] = {}  # direction -> the sequence number of its SYN
        self.segments = 0
        self.truncated = 0  # segments not drawn (past MAX_LADDER_SEGMENTS)
        self.lines: deque[dict] = deque(maxlen=MAX_PACKET_LINES)
        self.samples: deque[list] = deque(maxlen=MAX_SAMPLES)
        self.ended = False  # our side reported CLOSED
        self.core = None  # the stack's Connection, once it reported a state change


class WebFeed:
    def __init__(self, title: str = "ustack", remote_label: str = "kernel") -> None:
        self.title = title
        self.remote_label = remote_label
        self.listeners: list[Callable[[dict], None]] = []
        # How to run flush() after the current round (loop.call_soon); None: flush at once.
        self.schedule: Callable[[Callable[[], None]], object] | None = None
        self.start: float | None = None  # the time of the first thing seen: charts start there
        self.table: list[dict] = []
        self._connections: OrderedDict[str, _Watched] = OrderedDict()
        self._current: dict[str, str] = {}  # base key -> the key of its latest connection
        self._other: deque[dict] = deque(maxlen=MAX_OTHER_LINES)
        self._dirty: set[str] = set()
        self._flush_pending = False
        self._lock = threading.RLock()

    # --- the WireWatch follower ----------------------------------------------------------------

    def record(self, now: float, packet: bytes, direction: str, lost_note: str = "") -> None:
        with self._lock:
            self._record(now, bytes(packet), direction, lost_note)

    def state_changed(self, now: float, core_connection, change: StateChanged) -> None:
        with self._lock:
            local = (core_connection.local_address, core_connection.local_port)
            remote = (core_connection.remote_address, core_connection.remote_port)
            if None in local or None in remote:
                return
            watched = self._connections.get(self._current.get(base_key(local, remote), ""))
            if watched is None or (watched.core is not None and watched.core is not core_connection):
                if change.new is not State.LISTEN and change.old is not State.CLOSED:
                    return  # the last words of a connection we no longer keep
                watched = self._start(now, local, remote)
            watched.core = core_connection
            watched.recorder.on_state(now, LOCAL, change.old, change.new, change.cause)
            if change.new is State.CLOSED:
                watched.ended = True
            self._changed(watched)

    # --- snapshots -------------------------------------------------------------------------------

    def sample(self, now: float, snapshots: list) -> None:
        """The connection table (as `ss`), and a chart sample for each connection we follow."""
        from ..commands.ss import describe  # `ss`'s own rows: one owner for how a row reads

        with self._lock:
            if self.start is None:
                self.start = now
            answer = {"program": self.title, "pid": _pid(), "now": now}
            rows = []
            samples = {}
            for snapshot in snapshots:
                connection = to_jsonable(snapshot)
                described = describe(connection, answer)
                key = None
                if snapshot.state is not State.LISTEN:
                    key = self._current.get(base_key(snapshot.local, snapshot.remote))
                rows.append({"key": key, "cells": list(described["cells"][:5]), "state": snapshot.state.value,
                             "info": described["info"]})
                watched = self._connections.get(key) if key else None
                if watched is not None:
                    point = [round(now - self.start, 3), snapshot.cwnd,
                             None if snapshot.srtt is None else round(snapshot.srtt * 1000, 3),
                             snapshot.snd_wnd, snapshot.rcv_wnd]
                    watched.samples.append(point)
                    samples[key] = point
            self.table = rows
            self._publish({"type": "table", "time": round(now - self.start, 3), "rows": rows, "samples": samples})

    # --- for a page that just connected ------------------------------------------------------------

    def hello(self) -> dict:
        with self._lock:
            return {
                "type": "hello", "title": self.title,
                "limits": {"connections": MAX_CONNECTIONS, "ladder_segments": MAX_LADDER_SEGMENTS,
                           "packet_lines": MAX_PACKET_LINES, "samples": MAX_SAMPLES},
                "table": self.table,
                "connections": [dict(self._ladder_message(watched), lines=list(watched.lines),
                                     samples=list(watched.samples)) for watched in self._connections.values()],
                "other": list(self._other),
            }

    def detach(self) -> None:
        """The loop of `schedule` is ending (a lab is over): send what waits, flush at once from now on."""
        self.schedule = None
        self.flush()
        with self._lock:  # its stack is gone: no connection is live any more
            self.table = []
            self._publish({"type": "table", "time": None, "rows": [], "samples": {}})

    def flush(self) -> None:
        """Send the ladders that changed since the last flush (once per round of the runtime)."""
        with self._lock:
            self._flush_pending = False
            for key in [key for key in self._connections if key in self._dirty]:
                self._publish(self._ladder_message(self._connections[key]))
            self._dirty.clear()

    # --- inside --------------------------------------------------------------------------------

    def _record(self, now: float, packet: bytes, direction: str, lost_note: str) -> None:
        if self.start is None:
            self.start = now
        line = {"time": round(now - self.start, 6), "direction": direction, "line": format_packet(packet),
                "lost": lost_note}
        try:
            parsed = parse_packet(packet)
        except WireError:
            parsed = None
        tcp = parsed.tcp if parsed is not None else None
        if tcp is None:
            self._other.append(line)
            self._publish({"type": "packet", "key": OTHER, **line})
            return
        ip = parsed.ip
        ours, theirs = ((ip.src, tcp.src_port), (ip.dst, tcp.dst_port))
        if direction == "in":
            ours, theirs = theirs, ours
        watched = self._connections.get(self._current.get(base_key(ours, theirs), ""))
        opening = tcp.flags & SYN and not tcp.flags & ACK
        if watched is not None and opening:
            # A SYN with a new initial sequence number on the same four numbers opens a new
            # connection (RFC 9293 3.6.1, e.g. from TIME-WAIT): the old one is complete.
            if watched.syn_sequence.setdefault(direction, tcp.seq) != tcp.seq:
                watched = None
        if watched is None:
            if not opening:
                self._other.append(line)
                self._publish({"type": "packet", "key": OTHER, **line})
                return
            watched = self._start(now, ours, theirs)
            watched.syn_sequence[direction] = tcp.seq
        watched.lines.append(line)
        self._publish({"type": "packet", "key": watched.key, **line})
        watched.segments += 1
        if watched.segments > MAX_LADDER_SEGMENTS:
            watched.truncated += 1
            if watched.truncated % TRUNCATED_STEP == 1:  # the ladder itself no longer changes: only its count
                self._changed(watched)
            return
        watched.recorder.on_packet(now, parsed, direction, dropped=bool(lost_note), note=lost_note)
        self._changed(watched)

    def _start(self, now: float, local, remote) -> _Watched:
        base = base_key(local, remote)
        key, number = base, 1
        while key in self._connections:
            number += 1
            key = f"{base}#{number}"
        watched = _Watched(key, local, remote, self.remote_label)
        self._connections[key] = watched
        self._current[base] = key
        while len(self._connections) > MAX_CONNECTIONS:
            self._forget()
        return watched

    def _forget(self) -> None:
        """Let go of the oldest ended connection (or, if none has ended, the oldest)."""
        key = next((key for key, watched in self._connections.items() if watched.ended), None)
        if key is None:
            key = next(iter(self._connections))
        del self._connections[key]
        self._dirty.discard(key)
        for base, current in list(self._current.items()):
            if current == key:
                del self._current[base]
        self._publish({"type": "forget", "key": key})

    def _changed(self, watched: _Watched) -> None:
        self._dirty.add(watched.key)
        if self.schedule is None:
            self.flush()
        elif not self._flush_pending:
            self._flush_pending = True
            self.schedule(self.flush)

    def _ladder_message(self, watched: _Watched) -> dict:
        ladder = watched.recorder.ladder()
        numbering = Numbering(ladder, relative=True)
        origin = self.start or 0.0
        rows = []
        states: list[str | None] = [None, None]
        last = None
        for item in ladder.items:
            if isinstance(item, Arrow):
                rows.append({"kind": "arrow", "time": round(item.time - origin, 6), "from": item.from_side,
                             "label": arrow_label(item, numbering), "type": item.kind, "note": item.note})
            elif isinstance(item, StateMark):
                old = states[item.side]
                states[item.side] = item.state.value
                rows.append({"kind": "state", "time": round(item.time - origin, 6), "side": item.side,
                             "state": item.state.value, "inferred": item.inferred})
                if old is not None and old != item.state.value:
                    last = {"side": item.side, "old": old, "new": item.state.value}
        return {"type": "ladder", "key": watched.key, "title": watched.title, "rows": rows,
                "states": {"local": states[LEFT], "remote": states[RIGHT]}, "last": last,
                "ended": watched.ended, "truncated": watched.truncated}

    def _publish(self, message: dict) -> None:
        for listener in list(self.listeners):
            listener(message)


def _pid() -> int:
    import os

    return os.getpid()
