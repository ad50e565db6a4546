"""`python -m ustack ...` is the same as the `ustack` console script."""

from __future__ import annotations

import sys

from ustack.cli import main

sys.exit(main())
