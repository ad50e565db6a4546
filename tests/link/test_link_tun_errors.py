"""TunLink's refusals are one clear line (a LinkError the CLI prints), never a traceback. The TUN
traffic itself is tested against the real kernel in tests/interop/test_plumbing.py."""

from __future__ import annotations

import pytest
import pytun

from ustack.link import LinkError, TunLink
from ustack.link import tun


def test_missing_dev_net_tun_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(tun, "TUN_PATH", "/nonexistent/net/tun")
    with pytest.raises(LinkError, match="modprobe tun"):
        TunLink("ustun0")


def test_permission_problems_say_root_is_needed(monkeypatch):
    def refuse(**kwargs):
        raise pytun.Error("Operation not permitted")

    monkeypatch.setattr(pytun, "TunTapDevice", refuse)
    monkeypatch.setattr(tun.os, "geteuid", lambda: 1000)
    with pytest.raises(LinkError, match=r"cannot create TUN ustun0: Operation not permitted \(needs root"):
        TunLink("ustun0")


@pytest.mark.parametrize("arguments, message", [
    ({"name": "a-name-of-16-chr"}, "longer than 15"),
    ({"mtu": 67}, "outside 68..65535"),
    ({"mtu": 65536}, "outside 68..65535"),
])
def test_bad_arguments_are_refused_before_touching_the_kernel(arguments, message):
    with pytest.raises(LinkError, match=message):
        TunLink(**arguments)
