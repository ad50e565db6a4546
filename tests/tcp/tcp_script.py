"""Scripted tests of one connection, smoltcp style.

A test plays the peer: it feeds the connection one segment at a time (`script.receive(...)`,
built from a template with a few fields overridden), then requires EXACTLY the segments the
connection transmits (`script.expect(...)`), then nothing (`script.expect_nothing()`). Time is
virtual: `script.advance(seconds)` moves the clock and fires due timers.

Numbers: our ISS and the peer's sit just below 2**32 so that every transfer wraps. Options are off
in CONFIG so that segments stay short to write; test_options.py turns them on.

Fixtures reach a state only through real transitions (`established()` performs the handshake),
never by setting fields.
"""

from __future__ import annotations

from ustack.tcp import Connection, State, TcpConfig
from ustack.tcp.events import StateChanged, segment_summary
from ustack.tcp.seq import seq_add
from ustack.wire.tcp import ACK, FIN, NO_OPTIONS, PSH, RST, SYN, TcpOptions, TcpSegment

LOCAL_ADDRESS, REMOTE_ADDRESS = 0x0A000001, 0x0A000002
LOCAL_PORT, REMOTE_PORT = 40000, 80
LOCAL_ISS = 0xFFFFFF00  # 256 bytes before the wrap
REMOTE_ISS = 0xFFFFFFF0  # 16 bytes before the wrap
BUFFER = 16384
CONFIG = TcpConfig(
    mss=1460,
    receive_buffer_size=BUFFER,
    send_buffer_size=BUFFER,
    window_scaling=False,
    sack=False,
    timestamps=False,
    # The scripts spell out RFC 5681/6582 arithmetic segment by segment (halving on loss);
    # CUBIC, the default, has its own tests (test_cubic.py).
    congestion_control="newreno",
    # Segment by segment, the scripts expect a window to leave at once; pacing (off by default)
    # spreads it over the round trip and has its own tests (test_pacing.py).
    pacing=False,
    # The scripts count segments with RFC 896's Nagle (a short tail waits while anything is in
    # flight); Minshall's variant, the default as in Linux, has its own tests (test_nagle.py).
    nagle_minshall=False,
)
PEER_WINDOW = 8192
AFTER_FIN = BUFFER - 1  # our window once the peer's FIN has taken a sequence number


def local(n: int) -> int:
    """Our sequence number n bytes after ISS (the SYN is byte 0)."""
    return seq_add(LOCAL_ISS, n)


def remote(n: int) -> int:
    """The peer's sequence number n bytes after its ISS."""
    return seq_add(REMOTE_ISS, n)


def incoming(seq: int, ack: int = 0, flags: int = ACK, window: int = PEER_WINDOW, **fields) -> TcpSegment:
    """A segment from the peer (the template every test overrides)."""
    return TcpSegment(REMOTE_PORT, LOCAL_PORT, seq, ack, flags, window, **fields)


def outgoing(seq: int, ack: int = 0, flags: int = ACK, window: int = BUFFER, **fields) -> TcpSegment:
    """A segment we expect the connection to send."""
    return TcpSegment(LOCAL_PORT, REMOTE_PORT, seq, ack, flags, window, **fields)


def describe(segments) -> str:
    return "\n    ".join(segment_summary(s) + (f" {s.options}" if s.options != NO_OPTIONS else "") for s in segments) or "(nothing)"


class Script:
    def __init__(self, connection: Connection, now: float = 0.0):
        self.connection = connection
        self.now = now

    # --- driving ---
    def receive(self, segment: TcpSegment) -> None:
        self.connection.receive(segment, self.now)

    def advance(self, seconds: float) -> None:
        """Move virtual time and fire whatever timers fall due on the way, in order."""
        target = self.now + seconds
        while True:
            deadline = self.connection.next_deadline()
            if deadline is None or deadline > target:
                break
            self.now = max(self.now, deadline)
            self.connection.on_timer(self.now)
            pending = self.connection.transmit(self.now)
            if pending:
                raise AssertionError(
                    f"timer at t={self.now} produced segments the test did not expect:\n    {describe(pending)}"
                    "\n(use advance_to_next_timer() and expect())"
                )
        self.now = target

    def advance_to_next_timer(self) -> float:
        deadline = self.connection.next_deadline()
        assert deadline is not None, "no timer armed"
        self.now = max(self.now, deadline)
        self.connection.on_timer(self.now)
        return round(deadline, 9)  # 0.2 + 0.4 is 0.6000000000000001 in binary

    # --- checking ---
    def expect(self, *expected: TcpSegment) -> None:
        got = self.connection.transmit(self.now)
        if got != list(expected):
            raise AssertionError(
                f"at t={self.now} in {self.connection.state.value}\n  expected:\n    {describe(expected)}"
                f"\n  got:\n    {describe(got)}"
            )

    def expect_nothing(self) -> None:
        self.expect()

    def state_changes(self) -> list[tuple[State, State]]:
        return [(e.old, e.new) for e in self.connection.events() if isinstance(e, StateChanged)]

    @property
    def state(self) -> State:
        return self.connection.state


# ---------------------------------------------------------------------- fixtures by real transitions
def syn_sent(config: TcpConfig = CONFIG) -> Script:
    connection = Connection.open_active(config, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, LOCAL_ISS, 0.0)
    script = Script(connection)
    window = min(config.receive_buffer_size, 0xFFFF)
    script.expect(outgoing(LOCAL_ISS, 0, SYN, window=window, options=TcpOptions(mss=config.mss)))
    script.expect_nothing()
    return script


def established(config: TcpConfig = CONFIG) -> Script:
    """Active open: SYN, SYN-ACK, ACK."""
    script = syn_sent(config)
    script.receive(incoming(remote(0), local(1), SYN | ACK, options=TcpOptions(mss=1460)))
    script.expect(outgoing(local(1), remote(1)))
    assert script.state is State.ESTABLISHED
    return script


def listening(config: TcpConfig = CONFIG) -> Script:
    connection = Connection.open_passive(config, LOCAL_ADDRESS, LOCAL_PORT, LOCAL_ISS, 0.0)
    return Script(connection)


def syn_received(config: TcpConfig = CONFIG) -> Script:
    script = listening(config)
    script.receive(incoming(remote(0), 0, SYN, options=TcpOptions(mss=1460)))
    script.expect(outgoing(local(0), remote(1), SYN | ACK, options=TcpOptions(mss=config.mss)))
    assert script.state is State.SYN_RECEIVED
    return script


def established_passive(config: TcpConfig = CONFIG) -> Script:
    script = syn_received(config)
    script.receive(incoming(remote(1), local(1)))
    script.expect_nothing()
    assert script.state is State.ESTABLISHED
    return script


def fin_wait_1() -> Script:
    script = established()
    script.connection.close(script.now)
    script.expect(outgoing(local(1), remote(1), ACK | FIN))
    assert script.state is State.FIN_WAIT_1
    return script


def fin_wait_2() -> Script:
    script = fin_wait_1()
    script.receive(incoming(remote(1), local(2)))
    script.expect_nothing()
    assert script.state is State.FIN_WAIT_2
    return script


def close_wait() -> Script:
    script = established()
    script.receive(incoming(remote(1), local(1), ACK | FIN))
    # The FIN takes one sequence number; the window's right edge stays put (RFC 9293 3.8.6.2.2).
    script.expect(outgoing(local(1), remote(2), window=AFTER_FIN))
    assert script.state is State.CLOSE_WAIT
    return script


def last_ack() -> Script:
    script = close_wait()
    script.connection.close(script.now)
    script.expect(outgoing(local(1), remote(2), ACK | FIN, window=AFTER_FIN))
    assert script.state is State.LAST_ACK
    return script


def closing() -> Script:
    script = fin_wait_1()
    script.receive(incoming(remote(1), local(1), ACK | FIN))  # their FIN, not acking ours
    script.expect(outgoing(local(2), remote(2), window=AFTER_FIN))
    assert script.state is State.CLOSING
    return script


def time_wait() -> Script:
    script = fin_wait_2()
    script.receive(incoming(remote(1), local(2), ACK | FIN))
    script.expect(outgoing(local(2), remote(2), window=AFTER_FIN))
    assert script.state is State.TIME_WAIT
    return script


__all__ = [name for name in dir() if not name.startswith("_")] + ["ACK", "FIN", "PSH", "RST", "SYN"]
