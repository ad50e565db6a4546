"""One module per `ustack` subcommand (see ustack/cli.py)."""
