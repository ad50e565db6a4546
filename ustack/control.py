"""The control socket: how `ustack ss` sees the connections of every running ustack.

Each running ustack (`ustack serve`, `ustack connect`, a program using AsyncStack) listens on a
UNIX stream socket named after its process id:

    /run/ustack/<pid>.sock        (the directory is created with mode 0700: root's business only)

The protocol is one JSON object per direction, each on one line:

    request:  {"request": "snapshots"}
    answer:   {"pid": 4242, "program": "ustack serve", "address": "10.77.0.2", "now": 1234.5,
               "connections": [{"state": "ESTABLISHED", "local": {"address": ..., "port": ...},
                                "remote": {...}, "receive_queue": 0, "send_queue": 0, ...}, ...]}

    request:  {"request": "statistics"}           (what `ustack stats` asks)
    answer:   {"pid": ..., "program": ..., "address": ..., "now": ...,
               "statistics": {"stack": {"counters": {...}, "drops": {...}}, "reassembly": {...},
                              "listeners": [{"local": {...}, "drops": {...}, ...}],
                              "connections": {"open": 3, "drops": {...}, ...}, "runtime": {...}}}

A worker of `ustack serve --workers N` (ustack/workers.py) is a ustack of its own with its own
socket; its answers also carry "worker": {"index": 1, "count": N, "parent": <the parent's pid>},
which `ustack ss` and `ustack stats` show (worker_label) and use to find the parent's network
record (network_owner).

`now` is the answering process's monotonic clock, so a reader can turn timer deadlines (which are
on that clock) into "fires in N seconds". The socket is removed when the ustack exits; a socket
left by a ustack that died without cleaning up (its pid no longer runs) is removed by the next
reader. Nothing else in the directory is touched.

The directory can be moved with the USTACK_RUN_DIR environment variable (the tests do, so that
they never see or disturb a real running ustack).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import os
import socket
from pathlib import Path
from collections import Counter
from typing import Any, Callable, NamedTuple

from .stack import counter_attributes
from .wire.ipv4 import address_text

DEFAULT_RUN_DIRECTORY = "/run/ustack"
RUN_DIRECTORY_VARIABLE = "USTACK_RUN_DIR"
SOCKET_SUFFIX = ".sock"
MAX_REQUEST_BYTES = 4096
QUERY_TIMEOUT = 2.0  # seconds a reader waits for one ustack to answer

SnapshotProvider = Callable[[], list]
StatisticsProvider = Callable[[], dict]


def run_directory() -> Path:
    return Path(os.environ.get(RUN_DIRECTORY_VARIABLE) or DEFAULT_RUN_DIRECTORY)


def socket_path(pid: int | None = None, directory: Path | None = None) -> Path:
    return (directory or run_directory()) / f"{pid if pid is not None else os.getpid()}{SOCKET_SUFFIX}"


# --------------------------------------------------------------------------------------------
# Snapshots as JSON
# --------------------------------------------------------------------------------------------
def to_jsonable(value: Any) -> Any:
    """Plain JSON values from the core's snapshot objects (dataclasses, NamedTuples, enums)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value) if not isinstance(value.value, int) else value.name
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _field_to_jsonable(field.name, getattr(value, field.name))
                for field in dataclasses.fields(value)}
    if hasattr(value, "_asdict"):  # a NamedTuple
        return {name: _field_to_jsonable(name, item) for name, item in value._asdict().items()}
    if isinstance(value, dict):
        return {str(name): _field_to_jsonable(str(name), item) for name, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(item) for item in value]
    return str(value)


def _field_to_jsonable(name: str, value: Any) -> Any:
    # Endpoints are (address as int, port) in the core; readers want "10.77.0.2" and 80.
    if name in ("local", "remote") and isinstance(value, tuple) and len(value) == 2 \
            and all(isinstance(part, int) for part in value):
        return {"address": address_text(value[0]), "port": value[1]}
    return to_jsonable(value)


# --------------------------------------------------------------------------------------------
# Statistics: every counter of one stack, read generically
# --------------------------------------------------------------------------------------------
def stack_statistics(stack: Any, runtime: Any = None) -> dict:
    """Every counter of `stack` (a ustack.stack.Stack) as plain JSON.

    Counters are found by type, not by name: every collections.Counter attribute of the stack, of
    each listener and of each connection appears under its attribute name, so a counter someone
    adds to the core shows up in `ustack stats` without a change here. Connections are summed
    (like Linux's TcpExt counters, which are per host), including those that have ended, whose
    counters the stack keeps in `ended_connection_counters`."""
    connections: dict[str, Counter] = {name: Counter(counter) for name, counter
                                       in getattr(stack, "ended_connection_counters", {}).items()}
    live = list(stack.connections.values())
    for connection in live:
        for name, counter in counter_attributes(connection).items():
            connections.setdefault(name, Counter()).update(counter)
    listeners = []
    for (address, port), listener in sorted(stack.listeners.items()):
        listeners.append({"local": {"address": address_text(address), "port": port},
                          **{name: dict(counter) for name, counter in counter_attributes(listener).items()}})
    statistics = {
        "stack": {name: dict(counter) for name, counter in counter_attributes(stack).items()},
        "listeners": listeners,
        "connections": {"open": len(live), **{name: dict(counter) for name, counter in connections.items()}},
    }
    reassembly = getattr(stack, "reassembly", None)
    if reassembly is not None:
        statistics["reassembly"] = reassembly.statistics()
    if runtime is not None and isinstance(getattr(runtime, "counters", None), dict):
        statistics["runtime"] = dict(runtime.counters)
    return statistics


# --------------------------------------------------------------------------------------------
# The server side, inside a running ustack
# --------------------------------------------------------------------------------------------
class ControlServer:
    """Answers snapshot and statistics requests on /run/ustack/<pid>.sock while it is open.

        async with ControlServer(astack.snapshots, program="ustack serve", address="10.77.0.2",
                                 statistics_provider=lambda: stack_statistics(astack.stack, astack)):
            ...
    """

    def __init__(self, snapshot_provider: SnapshotProvider, *, program: str = "ustack",
                 address: str | None = None, directory: Path | None = None,
                 statistics_provider: StatisticsProvider | None = None, worker: dict | None = None) -> None:
        self.snapshot_provider = snapshot_provider
        self.worker = worker  # {"index", "count", "parent"} for a worker of `ustack serve --workers`
        self.statistics_provider = statistics_provider
        self.program = program
        self.address = address
        self.directory = directory or run_directory()
        self.path = socket_path(directory=self.directory)
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> "ControlServer":
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except PermissionError:
            raise PermissionError(f"cannot create {self.directory} for the control socket "
                                  f"(needs root, or set {RUN_DIRECTORY_VARIABLE})") from None
        # A socket file with our pid can only be left over from an earlier process that had the
        # same pid and died without cleaning up: it is ours to replace.
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._answer, path=str(self.path))
        os.chmod(self.path, 0o600)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            self.path.unlink(missing_ok=True)

    async def __aenter__(self) -> "ControlServer":
        return await self.start()

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    def answer_for(self, request: dict) -> dict:
        kind = request.get("request")
        if kind not in ("snapshots", "statistics"):
            return {"error": f"unknown request {kind!r}"}
        answer = {"pid": os.getpid(), "program": self.program, "address": self.address,
                  "now": asyncio.get_running_loop().time()}
        if self.worker is not None:
            answer["worker"] = self.worker
        if kind == "snapshots":
            answer["connections"] = [to_jsonable(snapshot) for snapshot in self.snapshot_provider()]
        elif self.statistics_provider is not None:
            answer["statistics"] = to_jsonable(self.statistics_provider())
        else:
            answer["error"] = "this ustack does not report statistics"
        return answer

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), QUERY_TIMEOUT)
            try:
                request = json.loads(line[:MAX_REQUEST_BYTES] or b"{}")
                if not isinstance(request, dict):
                    raise ValueError("not an object")
                answer = self.answer_for(request)
            except ValueError as error:
                answer = {"error": f"bad request: {error}"}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError, OSError):
            pass  # a reader that went away or never asked: nothing to do
        finally:
            writer.close()


# --------------------------------------------------------------------------------------------
# The client side: `ustack ss`
# --------------------------------------------------------------------------------------------
class Survey(NamedTuple):
    answers: list[dict]  # one per running ustack that answered, ordered by pid
    problems: list[str]  # one line per ustack that could not be asked


def query(path: Path, timeout: float = QUERY_TIMEOUT, request: str = "snapshots") -> dict:
    """Ask one control socket for its snapshots or statistics (blocking; for command-line tools)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(str(path))
        client.sendall(json.dumps({"request": request}).encode() + b"\n")
        chunks = []
        while chunk := client.recv(65536):
            chunks.append(chunk)
    answer = json.loads(b"".join(chunks))
    if not isinstance(answer, dict):
        raise ValueError("the answer is not a JSON object")
    return answer


def survey(directory: Path | None = None, timeout: float = QUERY_TIMEOUT, request: str = "snapshots") -> Survey:
    """Ask every running ustack on this machine for its connections (or its statistics).

    Raises PermissionError if the directory exists but cannot be read."""
    directory = directory or run_directory()
    answers: list[dict] = []
    problems: list[str] = []
    if not directory.is_dir():
        return Survey(answers, problems)
    candidates = []
    for path in directory.iterdir():
        if path.suffix == SOCKET_SUFFIX and path.stem.isdigit():
            candidates.append((int(path.stem), path))
    for pid, path in sorted(candidates):
        if not _process_exists(pid):
            # Left by a ustack that died without cleaning up: its name says it is a ustack
            # control socket and its process is gone, so removing it harms nothing.
            path.unlink(missing_ok=True)
            continue
        try:
            answers.append(query(path, timeout, request))
        except (ConnectionRefusedError, FileNotFoundError):
            # Closing down right now, or the pid was reused by another program: not ours to judge
            # or remove; just skip it.
            continue
        except (OSError, ValueError) as error:
            problems.append(f"pid {pid}: no usable answer from {path} ({error})")
    return Survey(answers, problems)


def worker_label(answer: dict) -> str:
    """" worker=1/2" for a worker's answer, "" for a ustack on its own."""
    worker = answer.get("worker")
    if not isinstance(worker, dict):
        return ""
    return f" worker={worker.get('index', '?')}/{worker.get('count', '?')}"


def network_owner(answer: dict):
    """The pid whose network record (ustack/network.py) describes this answer's device: a
    worker's parent, who made the device and namespace, or the ustack itself."""
    worker = answer.get("worker")
    if isinstance(worker, dict) and isinstance(worker.get("parent"), int):
        return worker["parent"]
    return answer.get("pid")


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is just not ours to signal
    return True
