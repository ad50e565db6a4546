"""`ustack serve --workers N`: one process per TUN queue, so that N cores run ustack.

Python's GIL makes one process one core. User-space stacks scale the way multi-queue NICs do:
the device has N queues, each served by its own process with its own Stack, and the device keeps
every flow on one queue, so the workers never share a connection and never talk to each other.

    parent (ustack serve --workers 2)          kernel (namespace ust-lab)
      namespace, TUN ustun0 (IFF_MULTI_QUEUE)    curl -> 10.77.0.2:80
      queue fds 0..N-1, one shared secret          | TUN picks a queue per flow
      fork -> worker 1: Stack + queue 0  <---------+ (flow table, else flow hash)
           -> worker 2: Stack + queue 1  <---------+

- The device (link/tun.py): the parent opens it with IFF_MULTI_QUEUE, then opens it N-1 more
  times by name, each open adding a queue with its own fd (Documentation/networking/tuntap.rst
  3.3). It keeps all the fds until the end, so the device is removed once, by the parent, when
  the last worker has stopped.
- Which queue a packet from the kernel goes to (drivers/net/tun.c, tun_automq_select_queue): the
  device keeps a flow table filled by our writes, so a flow goes to the queue it was last written
  on; a NEW flow (the SYN of a connection the kernel opens) has no entry yet and goes to the queue
  its symmetric flow hash selects (the hash scaled onto the number of queues). The worker that got
  the SYN answers it on its own queue, which records the flow there; and as the hash is symmetric
  and the 4-tuple never changes, every later segment of that connection reaches that same worker.
- Every worker listens on the same ports at the same address with a Stack of its own. They share
  one secret, made by the parent before forking: it keys the ISNs (RFC 6528) and the SYN cookies
  (RFC 4987 3.6), so a cookie made by one worker still validates if its ACK lands on another
  (when the table entry expired in between and the queue count changed, say).
- Each worker has its own control socket (ustack/control.py) whose answers say which worker it
  is and who its parent is: `ustack ss` merges them into one table (`worker=1/2` in the Process
  column), `ustack stats` shows each worker and their sum.
- Ctrl-C reaches every process of the terminal's process group; SIGTERM reaches the parent,
  which passes it on. Either way each worker stops through its own cleanup (its connections
  aborted, its control socket removed), the parent waits for all of them (SIGKILL after
  STOP_GRACE seconds) and only then removes the device and the namespace. A worker that ends on
  its own stops the others: its queue would otherwise swallow the flows hashed to it. A parent
  killed outright (SIGKILL) takes its workers with it (PR_SET_PDEATHSIG); its device goes with
  the last fd, the namespace is left to `ustack cleanup` as for any ustack killed so.

Workers are forked, not started afresh: the queue fds, the secret and the parsed arguments are
simply inherited. The parent forks before any event loop or thread runs.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass
from typing import Callable

from .tcp.isn import SECRET_SIZE

MAX_WORKERS = 64  # the kernel allows 256 queues (MAX_TAP_QUEUES); far past the cores of any machine we run on
STOP_GRACE = 5.0  # seconds a worker has to stop after SIGTERM before it is killed
READY_BYTE = b"."


@dataclass
class WorkerPlace:
    """What one worker is given: which of the `count` it is, its queue, and the shared secret."""

    index: int  # 1..count
    count: int
    parent: int  # the pid of the `ustack serve` that started it
    link: object  # its queue's TunLink
    secret: bytes  # keys the ISNs and SYN cookies of every worker alike
    ready_fd: int  # write READY_BYTE here once listening

    def describe(self) -> dict:
        """For the control socket's answers (ustack/control.py)."""
        return {"index": self.index, "count": self.count, "parent": self.parent}

    def ready(self) -> None:
        """Tell the parent this worker listens on every port."""
        if self.ready_fd >= 0:
            os.write(self.ready_fd, READY_BYTE)
            os.close(self.ready_fd)
            self.ready_fd = -1


def run_workers(queues: list, serve_one: Callable[[WorkerPlace], int], announce: Callable[[list[int]], None]) -> int:
    """Fork one worker per queue, each running serve_one(place); once all are ready call
    announce(pids); then wait until one ends or Ctrl-C / SIGTERM (KeyboardInterrupt here, see
    commands/signals.sigterm_as_interrupt) and stop them all. The exit status: 0 when stopped by
    a signal, 1 when a worker failed or ended on its own."""
    secret = secrets.token_bytes(SECRET_SIZE)
    read_end, write_end = os.pipe()
    children: dict[int, int] = {}  # pid -> worker index
    sys.stdout.flush()  # or the children would print what the parent had buffered, once each
    sys.stderr.flush()
    try:
        for index, queue in enumerate(queues, start=1):
            place = WorkerPlace(index, len(queues), os.getpid(), queue, secret, write_end)
            pid = os.fork()
            if pid == 0:
                _worker_main(place, read_end, serve_one)  # never returns
            children[pid] = index
        os.close(write_end)
        write_end = -1
        if _count_ready(read_end, len(queues)) < len(queues):
            print("ustack: a worker failed while starting; stopping the others", file=sys.stderr)
            return 1
        announce(sorted(children))
        pid, status = os.wait()  # until a worker ends (or a signal ends the wait)
        index = children.pop(pid)
        print(f"ustack: worker {index} (pid {pid}) ended on its own ({_describe_status(status)}); "
              "stopping the others", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        if write_end >= 0:
            os.close(write_end)
        os.close(read_end)
        stop_workers(children)


def stop_workers(children: dict[int, int], grace: float = STOP_GRACE) -> None:
    """SIGTERM each worker still running (by its pid), wait for all; SIGKILL what is left after
    `grace` seconds. Ctrl-C and SIGTERM are held meanwhile, so they cannot cut this short."""
    from .netns import signals_held

    with signals_held():
        for pid in children:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while children:
            for pid in list(children):
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done:
                    del children[pid]
            if children and time.monotonic() > deadline:
                for pid in children:
                    _signal(pid, signal.SIGKILL)
                deadline = float("inf")
            if children:
                time.sleep(0.02)  # polling the children's exit: they have no fd to wait on together


def _worker_main(place: WorkerPlace, read_end: int, serve_one: Callable[[WorkerPlace], int]) -> None:
    """The child's whole life: serve, then leave at once with os._exit, so that nothing of the
    parent's (the network's `with`, its cleanup) runs a second time in the child."""
    status = 1
    try:
        os.close(read_end)
        _end_with_parent(place.parent)
        status = serve_one(place)
    except KeyboardInterrupt:
        status = 0  # stopped while starting
    except SystemExit as leaving:
        status = leaving.code if isinstance(leaving.code, int) else 1
    except BaseException as error:  # never a traceback from a worker: one line, then exit 1
        print(f"ustack: worker {place.index}: {error}", file=sys.stderr)
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)


def _end_with_parent(parent: int) -> None:
    """Ask the kernel for a SIGTERM when the parent dies (prctl PR_SET_PDEATHSIG), so that a
    parent killed with SIGKILL leaves no worker behind; the worker then stops as on Ctrl-C."""
    import ctypes

    PR_SET_PDEATHSIG = 1  # include/uapi/linux/prctl.h
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return  # not Linux's libc: the parent's stop_workers is then the only way
    if os.getppid() != parent:  # it died before the request took effect
        raise SystemExit(1)


def _count_ready(read_end: int, count: int) -> int:
    """How many workers said ready before every write end closed (a worker that fails closes its
    own; a ready one closes it after writing)."""
    ready = 0
    while ready < count:
        data = os.read(read_end, count)
        if not data:
            break
        ready += data.count(READY_BYTE)
    return ready


def _signal(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass  # ended just now; waitpid collects it


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
