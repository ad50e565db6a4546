"""py-spy on `ustack serve` for scripts/bench.py --profile: one recording per measurement, and a
summary of each by where the time went (DESIGN.md's layers) and by function."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path


class ProfileError(Exception):
    """py-spy is missing or cannot attach: bench.py says so in one line."""


class Profiler:
    """py-spy attached to the ustack serve process for one measurement at a time."""

    def __init__(self, directory: Path, pid: int) -> None:
        self.py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(self.py_spy).exists():
            raise ProfileError("--profile needs py-spy: .venv/bin/pip install -e '.[bench]'")
        self.directory = directory.resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.pid = pid
        self.recorded: list[tuple[str, Path]] = []

    def start(self, name: str) -> subprocess.Popen:
        raw = self.directory / f"{name}.raw"
        recorder = subprocess.Popen([self.py_spy, "record", "--pid", str(self.pid), "--rate", "1000", "--nonblocking",
                                     "--format", "raw", "-o", str(raw)], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
        # py-spy says "Sampling process ..." once attached: the measurement starts after that.
        for line in recorder.stdout:
            if "Sampling process" in line:
                break
        else:
            raise ProfileError(f"py-spy could not attach to {self.pid} (is ptrace allowed?)")
        self.recorded.append((name, raw))
        return recorder

    def stop(self, recorder: subprocess.Popen) -> None:
        recorder.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        try:
            recorder.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.wait()


class profiling:
    """`with profiling(profiler, name):` records that block (does nothing without --profile)."""

    def __init__(self, profiler: Profiler | None, name: str) -> None:
        self.profiler, self.name, self.recorder = profiler, name, None

    def __enter__(self) -> None:
        if self.profiler is not None:
            self.recorder = self.profiler.start(self.name)

    def __exit__(self, *exc_info) -> None:
        if self.recorder is not None:
            self.profiler.stop(self.recorder)


# Where a frame's file is, as a part of the house (DESIGN.md's layers), for the summary by area.
AREAS = [
    ("ustack/link/", "link (TUN read/write)"),
    ("ustack/wire/", "wire (parse/build, C)"),
    ("ustack/tcp/", "tcp core"),
    ("ustack/timer_heap.py", "timer heap (the stack's deadlines)"),
    ("ustack/stack", "stack.py (IP, demux)"),
    ("ustack/aio/", "aio runtime"),
    ("ustack/apps/", "apps (HTTP, echo)"),
    ("ustack/commands/", "serve (its log lines)"),
    ("h11/", "h11 (HTTP parsing)"),
    ("asyncio/", "asyncio event loop"),
    ("selectors.py", "asyncio event loop"),
]


def _area(frame: str) -> str:
    for marker, area in AREAS:
        if marker in frame:
            return area
    return "other (stdlib, files)"


def summarize_py_spy(raw_path: Path, top: int = 20) -> str:
    """Own time by area, then the top functions by own time and by total time, from py-spy's raw
    (collapsed stacks) output: one line per distinct stack, "frame;frame;...;frame count"."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    samples = 0
    for line in raw_path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[_short(frames[-1])] += count
        areas[_area(frames[-1])] += count
        for frame in set(map(_short, frames)):
            total[frame] += count
    if not samples:
        return "py-spy recorded no samples"
    lines = [f"{samples} samples while busy; own time by area:"]
    lines += [f"  {100 * count / samples:5.1f}%  {area}" for area, count in areas.most_common()]
    lines.append("own time (the function itself):")
    lines += [f"  {100 * count / samples:5.1f}%  {frame}" for frame, count in own.most_common(top)]
    lines.append("total time (the function and what it calls), below the event loop:")
    inner = [(frame, count) for frame, count in total.most_common() if count < 0.9 * samples]
    lines += [f"  {100 * count / samples:5.1f}%  {frame}" for frame, count in inner[:top]]
    return "\n".join(lines)


def _short(frame: str) -> str:
    # "function (path/to/file.py:123)" -> "function (file.py:123)"
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.rstrip(')')).name})" if where else name
