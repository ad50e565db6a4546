"""Settings for the whole suite."""

from __future__ import annotations

import signal

# A suite started in the background of a non-interactive shell (`nohup ./scripts/test &`, some CI
# runners) inherits SIGINT ignored, and an ignored signal stays ignored across exec: every ustack
# process the tests start would then ignore Ctrl-C, and the tests that check what Ctrl-C does
# (tests/interop/test_interruptions.py, the drill's and the labs') would fail for a reason that is
# not ustack's. A handled signal is reset to its default at exec, so handling it here gives the
# processes the tests start the disposition a terminal would.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
