"""transport.PendingWrites: what the application wrote beyond the send buffer's room, kept as
written (no copy) and handed over in order, however the send buffer takes it (issue 12)."""

from __future__ import annotations

from ustack.aio.transport import PendingWrites
from ustack.tcp.send_buffer import SendBuffer


class BufferConnection:
    """The one call PendingWrites makes, on a real SendBuffer of a given capacity."""

    def __init__(self, capacity: int) -> None:
        self.buffer = SendBuffer(capacity, 0)

    def send(self, data, now: float) -> int:
        return self.buffer.write(data)


def test_pieces_go_over_in_order_as_room_opens_and_none_is_copied():
    first, second = bytes(range(200)) * 50, b"x" * 9000  # 10,000 and 9,000 bytes
    pending = PendingWrites()
    assert not pending and len(pending) == 0
    pending.append(first)
    pending.append(second)
    assert pending and len(pending) == 19_000
    connection = BufferConnection(4000)
    assert pending.push(connection, 0.0) == 4000  # a part of the first piece only
    assert len(pending) == 15_000
    assert connection.buffer.peek(0, 4000) == first[:4000]
    view = connection.buffer._chunks[0]
    assert type(view) is memoryview and view.obj is first  # the application's bytes, not a copy
    connection.buffer.capacity = 20_000
    assert pending.push(connection, 0.0) == 15_000 and not pending
    assert connection.buffer.peek(0, 20_000) == first + second
    assert connection.buffer._chunks[-1] is second


def test_a_full_buffer_takes_nothing_and_clear_forgets_everything():
    pending = PendingWrites()
    pending.append(b"abc")
    connection = BufferConnection(0)
    assert pending.push(connection, 0.0) == 0 and len(pending) == 3
    pending.clear()
    assert not pending and pending.push(connection, 0.0) == 0
