"""The calls of the Linux scripts on descriptors that are not sockets: open, pipe, sendfile, splice.

A mixin of kernel_syscalls.KernelCalls, which keeps the script's names for descriptors: here
`files` maps a script name (`open(...) = 5`, `pipe([5, 6])`) to the real descriptor. The file a
script opens is on the machine's file system (a namespace separates networks, not files); the
scripts make their own under /tmp in a shell line first.
"""

from __future__ import annotations

import errno as errno_module
import os

from ustack.conform.profile import Unsupported
from ustack.conform.script import ArrayExpr, NameExpr, StringExpr
from ustack.conform.syscalls import Outcome


class FileCalls:
    """open, pipe, sendfile and splice on the script's descriptors (see KernelCalls)."""

    files: dict[int, int]

    def _raw_fd(self, expression) -> int:
        """The real descriptor behind a script's name, socket or file; EBADF if none."""
        name = self._value(expression)
        if name in self.files:
            return self.files[name]
        return self._sock(expression).fileno()

    def _open(self, event) -> Outcome:
        if not isinstance(event.args[0], StringExpr):
            raise Unsupported("open argument", "a path written as a string")
        flags = self._value(event.args[1]) or 0
        mode = self._value(event.args[2]) if len(event.args) > 2 else 0o644
        fd = os.open(event.args[0].value, flags, mode or 0o644)
        name = self._name_for(event)
        self.files[name] = fd
        return Outcome(name)

    def _pipe(self, event) -> Outcome:
        """pipe([5, 6]): the names are the ones the script writes in the array."""
        names = event.args[0].items if isinstance(event.args[0], ArrayExpr) else ()
        if len(names) != 2:
            raise Unsupported("pipe argument", "an array of the two descriptors' names")
        ends = os.pipe()
        for name, fd in zip(names, ends):
            self.files[self._value(name)] = fd
        return Outcome(0)

    def _sendfile(self, event) -> Outcome:
        """sendfile(out, in, [offset], count); `NULL` for the offset: from the file's position."""
        out, source = self._raw_fd(event.args[0]), self._raw_fd(event.args[1])
        offset = None if _is_null(event.args[2]) else self._value(event.args[2])
        count = self._value(event.args[3])
        if offset is None:
            return Outcome(os.sendfile(out, source, None, count))
        return Outcome(os.sendfile(out, source, offset, count))

    def _splice(self, event) -> Outcome:
        """splice(in, NULL|[off], out, NULL|[off], length, flags)."""
        source, destination = self._raw_fd(event.args[0]), self._raw_fd(event.args[2])
        source_offset = None if _is_null(event.args[1]) else self._value(event.args[1])
        destination_offset = None if _is_null(event.args[3]) else self._value(event.args[3])
        flags = self._value(event.args[5]) or 0 if len(event.args) > 5 else 0
        return Outcome(os.splice(source, destination, self._value(event.args[4]), source_offset,
                                 destination_offset, flags))

    def _close_file(self, name: int) -> bool:
        """Close a file or pipe end the script names; False if the name is not one."""
        fd = self.files.pop(name, None)
        if fd is None:
            return False
        os.close(fd)
        return True

    def close_files(self) -> None:
        for fd in self.files.values():
            try:
                os.close(fd)
            except OSError as error:
                if error.errno != errno_module.EBADF:
                    raise
        self.files.clear()


def _is_null(expression) -> bool:
    return isinstance(expression, NameExpr) and expression.name == "NULL"
