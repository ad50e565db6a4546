"""Middlewares compose: each is a link, the chain behaves as one link."""

from __future__ import annotations

import select

from ustack.link import FaultInjector, Faults, MemoryLink, PcapWriter, Tracer
from ustack.wire import pcap

from link_helpers import numbered_packets


def test_tracer_over_pcap_over_faults_over_memory(tmp_path):
    a, b = MemoryLink.pair(mtu=9000)
    lines = []
    faults = FaultInjector(a, seed=3, outbound=Faults(delay=0.5))
    chain = Tracer(PcapWriter(faults, tmp_path / "a.pcap", timestamp_offset=0.0), output=lines.append)
    try:
        assert chain.mtu == 9000
        assert chain.fileno() == a.fileno()
        assert chain.innermost() is a
        packets = numbered_packets(3)
        chain.send_batch(packets, 1.0)
        assert b.receive_batch(1.0) == []  # held by the FaultInjector, under the other layers
        assert chain.next_deadline() == 1.5
        chain.on_timer(1.5)
        assert select.select([b.fileno()], [], [], 1.0)[0]
        assert b.receive_batch(1.5) == packets
        b.send(packets[0], 2.0)
        assert list(chain.receive_batch(2.0)) == [packets[0]]
        chain.flush()
        assert [line.split()[1] for line in lines] == [">", ">", ">", "<"]
        _, records = pcap.read_records((tmp_path / "a.pcap").read_bytes())
        assert [r.data for r in records] == packets + [packets[0]]  # what the stack saw
        assert list(chain.stats()) == ["Tracer", f"PcapWriter({tmp_path / 'a.pcap'})",
                                       "FaultInjector(seed=3)", "MemoryLink(memory-a)"]
        assert chain.stats()["FaultInjector(seed=3)"]["delayed_outbound"] == 3
    finally:
        chain.close()
        b.close()
    assert a.closed and faults.closed
