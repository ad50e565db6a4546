"""What ustack takes from Python 3.10 and 3.11 that PyPy 3.9 (Debian's `pypy3`) lacks.

ustack runs on CPython 3.11 and on PyPy 3.9. PyPy's JIT runs the TCP core several times
faster (README, "On PyPy"), and Debian ships only a PyPy for Python 3.9, so ustack keeps its
code within what 3.9 can run: `from __future__ import annotations` in every module (so
`int | None` is only ever a string in an annotation), `typing.Union` where a union is a value,
and this module for the rest. Each name here is Python's own where Python has it, so on CPython
nothing changes:

- `DATACLASS_SLOTS`: `@dataclass(frozen=True, **DATACLASS_SLOTS)`, `__slots__` where dataclass
  can make them (3.10 on); PyPy's objects need no slots to be small.
- `os.readv` and `os.writev`: PyPy 3.9's `os` has neither. `install()` gives it libc's, called
  through cffi (already a dependency for the C extension), so the TUN link reads and writes its
  frames the same way on both.
- `prepared_readv(fd, buffers)`: os.readv into the same buffers again and again, through an
  iovec built once where os.readv is the stand-in above (the TUN link's reads).
- `os.sched_getaffinity` and `os.sched_setaffinity`: not in PyPy 3.9's `os` either (`serve
  --cpu`, the benchmarks' placements); libc's, the same way.
- `asyncio_timeout(delay)`: `asyncio.timeout` (3.11), or where asyncio has none `Timeout`, a
  small one with the same meaning (the block's task is cancelled at the deadline, and
  TimeoutError comes out of the block). Not put into asyncio: this module must not import it.

And one thing both have but PyPy does slowly:

- `byte_view(data)`: `memoryview(data).cast("B")`, the cast left out where the view is bytes
  already. On PyPy a slice of a cast view copies byte by byte: 90 us for 1,448 bytes, against
  2 us uncast, which made the send buffer the whole cost of a bulk transfer.
- `READ_ONLY_SLICES_COPY_BYTEWISE`: on PyPy, a slice of a read-only view of a bytearray
  (`memoryview(b).toreadonly()[a:b]`, and `.cast`, `__pypy__.newmemoryview` alike) is read one
  byte at a time by whatever reads it whole: `bytes()`, `ffi.from_buffer`, `os.write`,
  `struct.unpack_from`, `bytes.join`: 7 ms for 64 KB, against 16 us for the same slice of the
  writable view (and about 0.3 us on CPython). The TUN link handed each received super-segment
  over as such a slice, which made an upload 3.6 MB/s on PyPy; where this is True it copies them
  into bytes instead (ustack/link/vnet.py HANDS_OVER_BUFFERS).
- `FROM_BUFFER_MOVES_YOUNG_BYTES`: on PyPy, `ffi.from_buffer` of a bytes object, or of a view of
  one, that is still in the collector's nursery (where every object under ~132 KB is made) moves
  it out first: a copy, into memory that only a major collection frees. The TUN link's copy of a
  received super-segment (above) is such an object, and taking its address twice on its way up
  (the parser's C call, then this module's os.writev into the uploaded file) made an upload copy
  every byte once more and run a major collection every ~170 MB, each marking the whole heap
  (~60 MB once warm) in steps of up to 23-55 ms: 17 major collections in 2.5 GB uploaded, 8
  without (/work/bench/s13/pypybulk). A bytes object passed to C as a `char *`
  argument instead is pinned where it lies for the call, and os.write copies a view into a young
  string of its own, which dies young: the parser hands C the bytes object itself
  (ustack/wire/codec.py parse_packet), and where this is True the HTTP app writes an upload's
  pieces one os.write each (ustack/apps/http.py _write_all).

And one thing PyPy's JIT does better when told:

- `JIT_PARAMETERS`: on PyPy, `install()` makes the JIT compile sooner than its defaults say
  (pypyjit.set_param; see JIT_PARAMETERS for what and the figures). Nothing on CPython, which has
  no `pypyjit`.

`ustack/__init__.py` calls `install()` once, before anything else of ustack runs; it only adds
to `os` what is missing and never replaces what Python has.
"""

from __future__ import annotations

import functools
import os  # (loaded by every Python at start: importing it costs nothing)
import sys

# Not asyncio: the sans-IO core imports this module (DATACLASS_SLOTS, byte_view), and must not
# load an event loop's machinery with it (tests/test_layering.py). What here needs asyncio runs
# inside an event loop, where it is loaded already.

DATACLASS_SLOTS: dict = {"slots": True} if sys.version_info >= (3, 10) else {}
READ_ONLY_SLICES_COPY_BYTEWISE = sys.implementation.name == "pypy"
FROM_BUFFER_MOVES_YOUNG_BYTES = sys.implementation.name == "pypy"

_libc = None
_ffi = None


def _load_libc():
    global _libc, _ffi
    if _libc is None:
        from cffi import FFI

        ffi = FFI()
        ffi.cdef(
            """
            struct iovec { void *iov_base; size_t iov_len; };
            ssize_t readv(int fd, const struct iovec *iov, int iovcnt);
            ssize_t writev(int fd, const struct iovec *iov, int iovcnt);
            int sched_getaffinity(int pid, size_t cpusetsize, unsigned char *mask);
            int sched_setaffinity(int pid, size_t cpusetsize, const unsigned char *mask);
            """
        )
        _libc, _ffi = ffi.dlopen(None), ffi
    return _libc, _ffi


def load_vector_io() -> None:
    """Make the first os.readv/os.writev as quick as the rest: where this module supplies them
    (PyPy), cffi parses their declarations in Python on first use, ~225 ms on a cold PyPy. A link
    about to read a device calls this first (TunLink): paid inside serve's first TUN read, that
    pause fell between the runtime taking the time and reading the packets that arrived during
    it, which a FaultInjector's --delay then held for that much less (twelfth pass: the second
    ping of `--delay in:60/20` came back after 22.5 ms). Not at import: cffi's loading brings in
    modules the sans-IO layers must not (tests/test_layering.py). Nothing to do on CPython."""
    if os.readv is readv or os.writev is writev:
        _load_libc()


def _io_vector(ffi, buffers, writable: bool):
    """An iovec array over `buffers`, and the cffi buffers that must stay alive while it is used."""
    vector = ffi.new("struct iovec[]", len(buffers))
    held = []
    for index, buffer in enumerate(buffers):
        try:
            data = ffi.from_buffer(buffer, require_writable=writable)
        except BufferError as error:  # a read-only buffer to read into: os.readv's TypeError
            raise TypeError(str(error)) from None
        held.append(data)
        vector[index].iov_base = data
        vector[index].iov_len = len(data)
    return vector, held


def readv(fd: int, buffers) -> int:
    """os.readv: read into each of `buffers` in turn, in one system call; the bytes read."""
    libc, ffi = _load_libc()
    return _vector_call(ffi, libc.readv, fd, buffers, writable=True)


def writev(fd: int, buffers) -> int:
    """os.writev: write `buffers` one after the other, in one system call; the bytes written."""
    libc, ffi = _load_libc()
    return _vector_call(ffi, libc.writev, fd, buffers, writable=False)


def _vector_call(ffi, call, fd: int, buffers, writable: bool) -> int:
    vector, _held = _io_vector(ffi, buffers, writable)  # _held: alive until the call returns
    count = call(fd, vector, len(buffers))
    if count < 0:
        _raise_errno(ffi)
    return count


def prepared_readv(fd: int, buffers: list):
    """`os.readv(fd, buffers)` as a call without arguments, for buffers read into again and again
    (a TUN link's vnet header and packet buffer): the bytes read, BlockingIOError when nothing
    waits, OSError as os.readv raises it. Where os.readv is Python's own (CPython), just that
    call. Where it is this module's stand-in (PyPy), through an iovec built once, here, instead of
    at every read (an ffi.new and a from_buffer per buffer, ~0.3 us a read, issue 12's echo round
    trip): the caller makes a new one whenever a buffer is replaced, and never resizes them
    (their addresses are kept)."""
    if os.readv is not readv:
        return functools.partial(os.readv, fd, buffers)
    return _PreparedReadv(fd, buffers)


class _PreparedReadv:
    __slots__ = ("_fd", "_call", "_ffi", "_vector", "_held", "_count")

    def __init__(self, fd: int, buffers: list) -> None:
        libc, ffi = _load_libc()
        self._fd, self._call, self._ffi, self._count = fd, libc.readv, ffi, len(buffers)
        # _held keeps each buffer's address valid (and the buffer alive) as long as the vector.
        self._vector, self._held = _io_vector(ffi, buffers, writable=True)

    def __call__(self) -> int:
        count = self._call(self._fd, self._vector, self._count)
        if count < 0:
            _raise_errno(self._ffi)
        return count


CPU_SET_BYTES = 128  # glibc's cpu_set_t: 1,024 CPUs


def sched_getaffinity(pid: int) -> set[int]:
    """os.sched_getaffinity: the CPUs process (or thread) `pid` may run on (0: this one)."""
    libc, ffi = _load_libc()
    mask = ffi.new("unsigned char[]", CPU_SET_BYTES)
    if libc.sched_getaffinity(pid, CPU_SET_BYTES, mask) < 0:
        _raise_errno(ffi)
    return {byte * 8 + bit for byte in range(CPU_SET_BYTES) for bit in range(8) if mask[byte] >> bit & 1}


def sched_setaffinity(pid: int, cpus) -> None:
    """os.sched_setaffinity: let process (or thread) `pid` run on `cpus` alone (0: this one)."""
    libc, ffi = _load_libc()
    mask = ffi.new("unsigned char[]", CPU_SET_BYTES)
    for cpu in cpus:
        if not 0 <= cpu < CPU_SET_BYTES * 8:
            raise OSError(22, f"CPU {cpu} is out of range")  # EINVAL, as os.sched_setaffinity
        mask[cpu // 8] |= 1 << cpu % 8
    if libc.sched_setaffinity(pid, CPU_SET_BYTES, mask) < 0:
        _raise_errno(ffi)


def _raise_errno(ffi) -> None:
    number = ffi.errno
    # OSError picks the subclass from the number (BlockingIOError for EAGAIN), as os.readv's does.
    raise OSError(number, os.strerror(number))


class Timeout:
    """asyncio.timeout(delay) for Python 3.9 and 3.10: cancel the block's task after `delay`
    seconds (None: never), and turn that cancellation into TimeoutError as the block ends."""

    def __init__(self, delay: float | None) -> None:
        self.delay = delay
        self.expired = False
        self._handle: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> Timeout:
        import asyncio  # (loaded: see the imports above)

        if self.delay is not None:
            task = asyncio.current_task()
            self._handle = asyncio.get_running_loop().call_later(self.delay, self._expire, task)
        return self

    def _expire(self, task: asyncio.Task) -> None:
        self.expired = True
        task.cancel()

    async def __aexit__(self, kind, error, traceback) -> bool:
        import asyncio

        if self._handle is not None:
            self._handle.cancel()
        if self.expired and kind is asyncio.CancelledError:
            raise TimeoutError
        return False


def asyncio_timeout(delay: float | None):
    """`async with asyncio_timeout(delay):` asyncio.timeout where asyncio has it (3.11), else
    Timeout. Called inside an event loop, where asyncio is loaded."""
    return getattr(sys.modules["asyncio"], "timeout", Timeout)(delay)


def byte_view(data) -> memoryview:
    """A memoryview of any bytes-like object as unsigned bytes, one per item (see above)."""
    view = memoryview(data)
    if view.format == "B" and view.ndim == 1 and view.c_contiguous:
        return view
    return view.cast("B")  # raises TypeError, as it always did, for a view that is not contiguous


# PyPy's JIT compiles a loop once it has run `threshold` times (default 1,039), a function from
# its start once it has been called `function_threshold` times (1,619), and the other path of a
# guard that keeps failing (a bridge) after `trace_eagerness` failures (200). ustack's connection
# path is many short functions and branches met once or a few times per connection, and serve
# on PyPy took ~10,000 connections to warm up. Serve's CPU per connection (ab -c 20, a small
# file, in blocks of 2,000 from a fresh serve): the second block 450-555 us with these against
# 1,065-1,465 with the defaults, the third 300-480 against 890-1,050, in 4 runs of 4 alternating
# with the defaults; from the sixth on both are at 245-455. What stays the same (within this
# machine's noise): lifecycles per CPU-second once warm (bench_lifecycles.py, 4 runs each) and a
# warm download's and upload's CPU per MB; the first 100 MB moved cost more (7.6-8.5 ms per MB
# against 5.3-6.9: more is traced at once), the next few less. Measured 2026-12-07 (issue 12,
# /work/bench/s12/pypyjit). `trace_limit` stays PyPy's 6,000 (at most 16,384): at 16,000 an
# echo-only serve's "trace too long" aborts fall from 22 to 8 (set here as on the command line
# alike), the echo and connections/s gain 3-12 % (bench_trees.py), but downloads in bench.py lose
# a fifth to a third of their speed (the fourteenth and eighteenth passes, docs/benchmark-history.md).
JIT_PARAMETERS = "threshold=300,function_threshold=200,trace_eagerness=50"


def _tune_jit() -> None:
    """PyPy only: set JIT_PARAMETERS for the whole process (they hold from here on)."""
    if "pypyjit" not in sys.builtin_module_names:  # CPython: no JIT, and no search for the module
        return
    import pypyjit

    pypyjit.set_param(JIT_PARAMETERS)


def install() -> None:
    """Give `os` what ustack uses and PyPy 3.9's lacks, and set PyPy's JIT_PARAMETERS (see
    above); a no-op on CPython 3.11."""
    _tune_jit()
    if not hasattr(os, "readv"):
        os.readv = readv
    if not hasattr(os, "writev"):
        os.writev = writev
    if not hasattr(os, "sched_getaffinity"):
        os.sched_getaffinity = sched_getaffinity
        os.sched_setaffinity = sched_setaffinity

