"""`python -m ustack ...` is the same as the `ustack` console script."""

import sys

from ustack.cli import main

sys.exit(main())
