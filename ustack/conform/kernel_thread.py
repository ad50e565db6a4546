"""Where and on which thread the kernel backend makes a script's system calls.

packetdrill (run_system_call.c) makes a call that should not block in its main thread, at once,
and hands only a blocking one (`0...0.5 accept(...)`) to a second "syscall thread", so that the
packet loop goes on while the call waits. The main thread moves on only once that thread is
asleep in the kernel, and the call's return is stamped by the syscall thread right after the
kernel returns. `ustack drill` does the same:

    with network_namespace_entered("/run/netns/NAME"):   # this thread's calls are the namespace's
        job = run_inline(calls, event, clock)             # a call that should not block
        thread = SyscallThread(calls, clock)              # made inside: it inherits the namespace
        job = thread.submit(event); thread.wait_until_blocked(job)
        job.done.wait(); job.returned_at                  # stamped on the thread, at the return

Handing every call to a thread (as the first version did) cost a wake-up of that thread and one of
the main thread per call: on a loaded 2-core machine each is a scheduler slice, milliseconds that
showed as calls "returning late". setns(2) moves only the calling thread, so the main thread
enters the namespace for the run and goes back to where it was after it, whatever happens.
"""

from __future__ import annotations


import ctypes
import os
import queue
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from ustack.conform.profile import Unsupported
from ustack.conform.script import SyscallEvent
from ustack.conform.syscalls import Outcome

CLONE_NEWNET = 0x40000000  # linux/sched.h
FUTEX_SYSCALL = 202  # x86_64: a thread waiting for Python's GIL (a futex), not in the script's call
BLOCKED_WAIT_LIMIT = 0.5  # packetdrill waits for the syscall thread to block without a limit; we stop looking


def enter_network_namespace(path: str) -> None:
    """Move the calling thread into the network namespace at `path`; OSError if it cannot (then
    the thread is where it was: never on the machine's own network by mistake)."""
    libc = ctypes.CDLL(None, use_errno=True)
    descriptor = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(descriptor, CLONE_NEWNET) != 0:
            number = ctypes.get_errno()
            raise OSError(number, f"setns {path}: {os.strerror(number)}")
    finally:
        os.close(descriptor)


REALTIME = os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0x40000000)  # linux/sched.h; PyPy 3.9 lacks the name


@contextmanager
def realtime_scheduling(enabled: bool = True) -> Iterator[None]:
    """This thread, and the drill threads it starts (join_realtime), on the real-time scheduling
    class (SCHED_FIFO at the lowest priority) for the block; then back to normal.

    The script's timing is packetdrill's 4 ms. On a busy machine a woken thread of the normal
    class can wait longer than that for a CPU (measured: blocking calls and segments 5-80 ms
    late with three busy processes on the 2 cores); a real-time thread runs as soon as it wakes.
    Children (the shell lines) start on the normal class (SCHED_RESET_ON_FORK, which also
    covers threads: each drill thread joins by itself). Our threads sleep between events and
    spin at most SPIN_TIME before one, and the kernel caps the real-time class at 95 % of each
    second, so the machine's other work is not starved. Without CAP_SYS_NICE the block runs
    unchanged."""
    if not enabled:
        yield
        return
    previous = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, REALTIME, os.sched_param(1))
    except OSError:
        yield
        return
    global realtime_threads
    realtime_threads = True
    try:
        yield
    finally:
        realtime_threads = False
        os.sched_setscheduler(0, previous[0], previous[1])


realtime_threads = False  # inside realtime_scheduling: the drill's threads join it


def join_realtime() -> None:
    """Called first by each thread of the drill: real-time too if the run is."""
    if realtime_threads:
        try:
            os.sched_setscheduler(0, REALTIME, os.sched_param(1))
        except OSError:
            pass


@contextmanager
def network_namespace_entered(path: str) -> Iterator[None]:
    """The calling thread inside the namespace at `path` for the block, back home after it."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        enter_network_namespace(path)
        try:
            yield
        finally:
            enter_network_namespace(f"/proc/self/fd/{home}")
    finally:
        os.close(home)


class CallBlocked(BaseException):
    """A call that should return at once was still in the kernel when time_limit ran out (a
    BaseException, so that _perform lets it through instead of calling it an unsupported call)."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block with CallBlocked after `seconds` (SIGALRM: a blocked system call
    returns EINTR and Python raises from the handler). Only the main thread gets signals;
    elsewhere the block runs without a limit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signal_number, frame) -> None:
        raise CallBlocked()

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Job:
    event: SyscallEvent
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome | None = None
    unsupported: Unsupported | None = None
    mismatch: str | None = None  # what the call gave beyond its result that the script says otherwise
    started_at: float | None = None  # the script clock just before the call went in
    returned_at: float | None = None  # the script clock when the call returned


def run_inline(calls, event: SyscallEvent, clock) -> Job:
    """Make the call on this thread (which must be in the namespace); a done Job."""
    job = Job(event)
    _perform(calls, job, clock)
    return job


def _perform(calls, job: Job, clock) -> None:
    try:
        job.started_at = clock()
        job.outcome = calls.call(job.event)
        job.returned_at = clock()  # first thing after the return: the GIL is ours already
    except Unsupported as problem:
        job.unsupported = problem
    except Exception as error:  # a bug or an argument we cannot express: say which
        job.unsupported = Unsupported(f"syscall {job.event.name}", f"{type(error).__name__}: {error}")
    if job.returned_at is None:
        job.returned_at = clock()
    job.mismatch, calls.mismatch = calls.mismatch, None
    job.done.set()


class SyscallThread:
    """packetdrill's syscall thread: makes blocking calls, one at a time. Create it from a thread
    inside the namespace (a new thread starts in its creator's namespace)."""

    def __init__(self, calls, clock) -> None:
        self.calls = calls
        self.clock = clock
        self.jobs: queue.Queue = queue.Queue()
        self.current: Job | None = None  # the job being made, for wait_until_blocked
        self.thread = threading.Thread(target=self._main, name="drill-syscalls", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        join_realtime()
        while True:
            job = self.jobs.get()
            if job is None:
                return
            self.current = job
            _perform(self.calls, job, self.clock)
            self.current = None

    def submit(self, event: SyscallEvent) -> Job:
        job = Job(event)
        self.jobs.put(job)
        return job

    def wait_until_blocked(self, job: Job) -> None:
        """Return once the call is asleep in the kernel or done (run_system_call.c
        enqueue_system_call): what the script does next then happens with the call in place, as
        an inbound SYN after `accept` reaching a socket that waits for it."""
        deadline = time.monotonic() + BLOCKED_WAIT_LIMIT
        path = f"/proc/self/task/{self.thread.native_id}/syscall"
        while not job.done.is_set() and time.monotonic() < deadline:
            if self.current is job:
                try:
                    with open(path) as status:
                        number = status.read().split(" ", 1)[0]
                except OSError:
                    return
                # A number is a system call the thread sleeps in; "running" means it is on a CPU.
                if number.isdigit() and int(number) != FUTEX_SYSCALL:
                    return
            # Sleep a little rather than yield: as real-time threads of one priority, the syscall
            # thread would not get this CPU back from a thread that only yields.
            time.sleep(0.0001)

    def stop(self) -> None:
        """End the thread; a call still blocked is woken by closing its socket (calls.close_all)."""
        self.jobs.put(None)
        self.thread.join(timeout=2.0)
