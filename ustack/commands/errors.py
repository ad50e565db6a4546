"""The one error every command raises for the user: cli.py prints it and exits 2. Its own module,
so that cli.py and the command modules both import it and neither imports the other's code."""

from __future__ import annotations


class CliError(Exception):
    """A problem to report to the user in one line, with exit code 2 (never a traceback)."""
