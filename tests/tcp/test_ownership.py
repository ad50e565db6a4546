"""One owner for every fact of a connection (issue 10): the send side, the receive side and the
timer set change their own variables; everyone else asks them through methods.

These tests read the source (no behaviour is involved): an assignment to a field of one of those
objects anywhere but in its own module fails here, naming the file and line."""

from __future__ import annotations

import ast
from pathlib import Path

import ustack
from ustack.tcp.receive_side import ReceiveSide
from ustack.tcp.send_side import SendSide
from ustack.tcp.timer_set import TimerSet

PACKAGE = Path(ustack.__file__).parent
# The attribute a Connection keeps each part under, the part's class, and its own module.
PARTS = {"snd": (SendSide, "send_side.py"), "rcv": (ReceiveSide, "receive_side.py"), "timers": (TimerSet, "timer_set.py")}


def _part_of(target: ast.expr) -> str | None:
    """'snd' for `self.snd.nxt = ...`, `connection.snd.nxt = ...` or `snd.nxt = ...` (a local
    alias), else None."""
    if not isinstance(target, ast.Attribute):
        return None
    holder = target.value
    if isinstance(holder, ast.Attribute) and holder.attr in PARTS:
        return holder.attr
    if isinstance(holder, ast.Name) and holder.id in PARTS:
        return holder.id
    return None


def _assignment_targets(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        else:
            continue
        for target in targets:
            yield from (target.elts if isinstance(target, ast.Tuple) else [target])


def test_no_module_assigns_a_field_of_a_part_it_does_not_own():
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for target in _assignment_targets(tree):
            part = _part_of(target)
            if part is not None and path.name != PARTS[part][1]:
                offences.append(f"{path.relative_to(PACKAGE)}:{target.lineno} assigns {part}.{target.attr}")
    assert not offences, "ask the owner instead:\n" + "\n".join(offences)


def test_the_parts_have_slots_and_no_dict():
    """Each part is per connection, so each keeps its fields in slots (scripts/bench_memory.py)."""
    from ustack.tcp import Connection

    for cls in (SendSide, ReceiveSide, TimerSet, Connection):
        assert "__dict__" not in dir(cls), cls.__name__


def test_the_ownership_check_catches_an_outside_assignment():
    """The check above must be able to fail: a write from outside is found, a read is not."""
    tree = ast.parse("def f(self, snd):\n    self.snd.nxt = 1\n    snd.una += 2\n    x = self.rcv.nxt\n")
    found = [(_part_of(target), target.attr) for target in _assignment_targets(tree) if _part_of(target)]
    assert found == [("snd", "nxt"), ("snd", "una")]


def test_an_idle_established_connection_holds_no_buffer_and_no_timer():
    """What keeps an idle connection small (scripts/bench_memory.py): the receive buffer is made
    by the first data, at IRS + 1 as if made on the SYN, the send buffer by the first write, at
    ISS + 1, and no timer means no deadline list."""
    from tcp_script import ACK, BUFFER, CONFIG, PSH, established, incoming, local, outgoing, remote  # noqa: PLC0415

    script = established()
    connection = script.connection
    assert connection.receive_buffer is None and connection.timers_armed() == {}
    assert connection.send_buffer is None and connection.send_space == CONFIG.send_buffer_size
    assert connection.snapshot().rcv_wnd == BUFFER  # the window is the whole (future) buffer
    script.receive(incoming(remote(1), local(1), payload=b"abc"))
    assert connection.receive_buffer.rcv_nxt == remote(4) == connection.rcv_nxt
    assert connection.readable == 3 and list(connection.timers_armed()) == ["delayed_ack"]
    assert connection.recv(10, script.now) == b"abc"
    script.advance_to_next_timer()
    # The edge does not move for 3 bytes read (receiver SWS avoidance, RFC 9293 3.8.6.2.2).
    script.expect(outgoing(local(1), remote(4), window=BUFFER - 3))
    assert connection.timers_armed() == {}
    assert connection.send(b"xy", script.now) == 2 and connection.send_buffer.start_seq == local(1)
    script.expect(outgoing(local(1), remote(4), ACK | PSH, window=BUFFER - 3, payload=b"xy"))


def test_a_connections_drops_are_found_among_its_counters():
    """`ustack stats` and the stack's totals of ended connections find counters by type; the
    connection's `drops`, kept in a slot and made at the first drop, must be found too."""
    from collections import Counter

    from tcp_script import PSH, established, incoming, remote  # noqa: PLC0415
    from ustack.stack import counter_attributes

    script = established()
    assert counter_attributes(script.connection) == {}
    script.receive(incoming(remote(1), 0, PSH, payload=b"x"))  # no ACK bit: dropped
    assert counter_attributes(script.connection) == {"drops": Counter({"no_ack": 1})}


def test_connection_counter_slots_name_every_counter_it_holds():
    """counter_attributes reads only Connection.COUNTER_SLOTS: every slot that holds a Counter
    must be listed there, or its counts would be lost when the connection ends."""
    from collections import Counter

    from tcp_script import PSH, established, incoming, remote  # noqa: PLC0415
    from ustack.tcp.connection import Connection

    script = established()
    script.receive(incoming(remote(1), 0, PSH, payload=b"x"))  # no ACK bit: dropped, makes `drops`
    slots = [name for cls in Connection.__mro__ for name in getattr(cls, "__slots__", ())]
    holding = {name for name in slots if isinstance(getattr(script.connection, name, None), Counter)}
    assert holding and holding <= set(Connection.COUNTER_SLOTS)
    assert set(Connection.COUNTER_SLOTS) <= set(slots)
