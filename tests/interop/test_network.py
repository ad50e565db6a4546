"""ustack.network, the one network set-up of serve, connect, the labs and bench.py: the chain of
links it builds, in its order; the kernel's side configured with ustack's defaults; and everything
taken down at the end, also when building it fails half way."""

from __future__ import annotations

import io

import pytest

from ustack.labs.watch import Gate, SceneWatch
from ustack.link import FaultInjector, PcapWriter, Tracer, TunLink
from ustack.netns import Namespace, namespace_exists
from ustack.network import (KERNEL_ADDRESS, KERNEL_INTERFACE, TUN_NAME, USTACK_ADDRESS, NetworkError,
                            NetworkSettings, UstackNetwork)
from ustack.trace.live import WireTap
from ustack.wire import address_value


def chain_of(link) -> list[type]:
    layers = []
    while link is not None:
        layers.append(type(link))
        link = getattr(link, "inner", None)
    return layers


def test_the_whole_chain_in_its_order_and_all_of_it_gone_after(require_interop_environment, namespace_name, tmp_path):
    name = namespace_name()
    settings = NetworkSettings(namespace=name, pcap=str(tmp_path / "wire.pcap"), trace_output=io.StringIO(),
                               faults=True)
    watch = SceneWatch(address_value(USTACK_ADDRESS), address_value(KERNEL_ADDRESS))
    with UstackNetwork(settings, watch=watch, wire_layer=Gate) as network:
        assert network.created_namespace and namespace_exists(name)
        assert chain_of(network.link) == [Tracer, FaultInjector, WireTap, Gate, PcapWriter, TunLink]
        assert network.fault.on_drop == watch.on_drop  # the ladders hear of every drop
        assert isinstance(network.gate, Gate)
        assert network.make_stack().address == address_value(USTACK_ADDRESS)
        shown = network.namespace.run(["ip", "-4", "-o", "addr", "show", "dev", TUN_NAME])
        assert KERNEL_INTERFACE in shown.stdout, shown
        assert network.how_to_run("ss -tan") == f"ip netns exec {name} ss -tan"
    assert network.link is None and network.namespace is None
    assert not namespace_exists(name)
    assert (tmp_path / "wire.pcap").stat().st_size > 0  # its header at least: flushed and closed


def test_only_what_is_asked_for(require_interop_environment, namespace_name):
    name = namespace_name()
    with UstackNetwork(NetworkSettings(namespace=name)) as network:
        assert chain_of(network.link) == [TunLink]
        assert network.fault is None and network.gate is None


def test_a_failure_half_way_leaves_nothing_behind(require_interop_environment, namespace_name, tmp_path):
    name = namespace_name()
    settings = NetworkSettings(namespace=name, pcap=str(tmp_path / "no-such-directory" / "wire.pcap"))
    network = UstackNetwork(settings)
    with pytest.raises(NetworkError, match=r"^cannot write .*wire\.pcap: No such file or directory$"):
        with network:
            pass
    assert not namespace_exists(name)  # made for us, so removed again


def test_a_namespace_that_was_there_before_stays(require_interop_environment, namespace_name):
    with Namespace(namespace_name()) as existing:
        with UstackNetwork(NetworkSettings(namespace=existing.name)) as network:
            assert not network.created_namespace
        assert namespace_exists(existing.name)  # not ours to remove; the TUN device is gone
        with existing.ipr() as ipr:
            assert ipr.link_lookup(ifname=TUN_NAME) == []
