"""What running one script gives: its status and, for anything but a pass, why.

The runner (runner.py) makes a Result for a script it will not run; the driver (driver.py) for
one it ran. Both import this module, which imports neither of them.

    result.status     # PASS, FAIL, SKIPPED or ERROR (the script could not be parsed)
    result.reason     # one line: the unsupported feature, the first mismatch, the parse error
    result.mismatch   # for a failed packet: expected and actual segment in tcpdump form
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ustack.conform.matcher import Mismatch

PASS = "pass"
FAIL = "fail"
SKIPPED = "skipped"
ERROR = "error"


@dataclass
class Result:
    path: str
    status: str
    reason: str = ""
    line: int | None = None  # the script line the reason is about
    mismatch: Mismatch | None = None
    warnings: list[str] = field(default_factory=list)
    key: str = ""  # short and stable: the unsupported feature, or "line N what" for a failure

    def text(self) -> str:
        where = f":{self.line}" if self.line else ""
        head = f"{self.status.upper():7} {self.path}{where}"
        if self.mismatch is not None:
            return f"{head}  {self.mismatch.text()}"
        return f"{head}  {self.reason}" if self.reason else head
