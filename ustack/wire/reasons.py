"""The named reasons a packet is rejected for, one list shared by C and Python.

The C enum `ustack_reason` (csrc/wire.h) is the single source: every constant
USTACK_REASON_<NAME> becomes the string "<name>" here, once, at import time. The stack counts its
drops under these names and `ustack decode` prints them after "invalid".
"""

from __future__ import annotations

from ._wire import lib

_PREFIX = "USTACK_REASON_"

# reason code (the C enum value) -> snake_case name, in code order; code 0 is "ok".
REASON_NAMES: dict[int, str] = dict(
    sorted(
        [(lib.USTACK_OK, "ok")]
        + [
            (getattr(lib, constant), constant[len(_PREFIX) :].lower())
            for constant in dir(lib)
            if constant.startswith(_PREFIX) and constant != "USTACK_REASON_COUNT"
        ]
    )
)

# Reasons the Python side adds (not packets, but values handed to the builders).
BUILD_BAD_FIELD = "build_bad_field"

# Every reason a WireError from parse_packet can carry.
PARSE_REASONS: frozenset[str] = frozenset(
    name for code, name in REASON_NAMES.items() if code != lib.USTACK_OK and not name.startswith("build_")
)
