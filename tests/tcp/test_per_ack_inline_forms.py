"""The sender's work per ACK of new data writes its sequence comparisons in place, in the forms
tcp/seq.py lists, and cancels the reorder timer only when it is armed (issue 12: 33.7 -> 26.7
Python calls per pure ACK received in `scripts/bench_core.py --calls`):

- RackState.on_delivered's scan of the acknowledged entries (seq_le) and _delivered_in_order
  (seq_lt, seq_gt twice), rack.py;
- RackProcessing._rack_detect's test of the oldest entry (seq_lt), and its cancel of
  REORDER_TIMER, which nearly every ACK of a bulk transfer made with nothing armed;
- SendSide.acknowledge's test of an ACK beyond SND.NXT (seq_lt), send_side.py.

A differential test on virtual time: two worlds, each a client and a server connection with
SACK and RACK-TLP wired back to back, see the same seeded traffic (writes, reads, losses, pauses
that let the reorder, probe and retransmission timers fire, closes), with ISSs far from 2**32,
just below it and just below 2**31. In one world the connections use the old forms (the helpers,
and cancel() always: written out below), in the other the code as it is now. Their segments,
states, armed timers, RACK's variables and the send side's must agree after every step. Seeded;
the seed is in the test's id."""

from __future__ import annotations

import dataclasses
import random

import pytest

from lockstep import drive_in_lockstep
from tcp_script import CONFIG, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT
from ustack.tcp import Connection
from ustack.tcp.rack import DELIVERED, RETRANSMITTED, RackState
from ustack.tcp.send_side import SendSide
from ustack.tcp.seq import seq_gt, seq_le, seq_lt
from ustack.tcp.timer_set import REORDER_TIMER, TLP_TIMER

SEEDS = range(60)
RACK_FIELDS = ("xmit_ts", "end_seq", "rtt", "min_rtt", "fack", "reordering_seen", "reo_wnd_mult", "dsack_round",
               "tlp_end_seq", "tlp_is_retrans", "probes_sent", "losses_detected")
SEND_FIELDS = ("una", "nxt", "max", "wnd", "recover", "duplicate_acks", "retransmissions", "probe_end")

# How often the old forms took the branches the new ones must take the same way (the test means
# something only if the traffic reaches them). The lockstep links deliver at once (every RTT is
# 0, so RACK's reordering window is too, and no reorder timer is ever armed), and an ACK of
# reordered segments reaches _delivered_in_order with one of them SACKed: those two branches
# have direct tests below.
taken = {"ack_beyond_nxt": 0, "oldest_late": 0}


class OldRackState(RackState):
    """on_delivered and _delivered_in_order as they were: through the seq.py helpers."""

    __slots__ = ()

    def on_delivered(self, snd, sacked, now):
        una = snd.una
        times = snd.sent_times
        acknowledged = 0
        flags_seen = 0
        newest_sent = None
        for entry in times:
            end = entry[1]
            if end != una and not seq_le(end, una):
                break
            acknowledged += 1
            flags_seen |= entry[3]
            if newest_sent is None or entry[2] > newest_sent:
                newest_sent = entry[2]
            if end == una:
                break
        if not acknowledged and sacked is None:
            return
        if sacked is None and not flags_seen and times[acknowledged - 1][2] == newest_sent:
            self._delivered_in_order(times[0][1], times[acknowledged - 1], now)
            snd.forget_first_sent_times(acknowledged)
            return
        delivered_newly = [entry for entry in times[:acknowledged] if not entry[3] & DELIVERED]
        if sacked is not None:
            for index in range(acknowledged, len(times)):
                entry = times[index]
                if not entry[3] & DELIVERED and sacked(entry[0], entry[1]):
                    delivered_newly.append(list(entry))
                    snd.sent_time_delivered(index)
        for start, end, sent_at, flags in delivered_newly:
            rtt = now - sent_at
            if flags & RETRANSMITTED and self.min_rtt is not None and rtt < self.min_rtt:
                continue
            if self.fack is not None and seq_lt(end, self.fack) and not flags & RETRANSMITTED:
                self.reordering_seen = True
            if self.fack is None or seq_gt(end, self.fack):
                self.fack = end
            if self.xmit_ts is None or sent_at > self.xmit_ts or (
                sent_at == self.xmit_ts and seq_gt(end, self.end_seq)
            ):
                self.xmit_ts, self.end_seq = sent_at, end
                if not flags & RETRANSMITTED:
                    self.rtt = rtt
                    if self.min_rtt is None or rtt < self.min_rtt:
                        self.min_rtt = rtt
        snd.forget_first_sent_times(acknowledged)

    def _delivered_in_order(self, first_end, last, now):
        fack = self.fack
        if fack is not None and seq_lt(first_end, fack):
            self.reordering_seen = True
        _, end, sent_at, _ = last
        if fack is None or seq_gt(end, fack):
            self.fack = end
        xmit_ts = self.xmit_ts
        if xmit_ts is None or sent_at > xmit_ts or (sent_at == xmit_ts and seq_gt(end, self.end_seq)):
            self.xmit_ts, self.end_seq = sent_at, end
            rtt = now - sent_at
            self.rtt = rtt
            if self.min_rtt is None or rtt < self.min_rtt:
                self.min_rtt = rtt


class OldSendSide(SendSide):
    """acknowledge as it was: seq_lt(SND.NXT, ack) through the helper."""

    __slots__ = ()

    def acknowledge(self, ack):
        buffer = self.buffer
        released = 0
        if buffer is not None:
            released = buffer.acknowledge(ack)
            if not released:
                data_end = buffer.end_seq
                if seq_gt(ack, data_end):
                    released = buffer.acknowledge(data_end)
        self.una = ack
        scoreboard = self._scoreboard
        if scoreboard is not None and scoreboard.blocks:
            scoreboard.forget_below(ack)
        if ack != self.nxt and seq_lt(self.nxt, ack):
            taken["ack_beyond_nxt"] += 1
            self.nxt = ack
            if seq_lt(self.max, ack):
                self.max = ack
        self.probe_end = None
        if self.up is not None and seq_le(self.up, ack):
            self.up = None
        self.retransmit_count = 0
        return released


class OldForms(Connection):
    """_rack_detect as it was (seq_lt, and cancel() always); the parts above in place."""

    @classmethod
    def _converted(cls, connection):
        connection.snd.__class__ = OldSendSide
        return connection

    def _rack_start(self):
        super()._rack_start()
        if self.rack is not None and type(self.rack) is RackState:
            self.rack.__class__ = OldRackState

    def _rack_detect(self, now, has_sacked=None):
        rack = self.rack
        snd = self.snd
        timers = self.timers
        times = snd.sent_times
        if not times or rack.xmit_ts is None:
            timers.cancel(REORDER_TIMER)
            return
        if has_sacked is None:
            has_sacked = snd.has_sacked
        congestion = self.congestion
        if not has_sacked and not congestion.in_recovery:
            _, end, sent_at, _ = times[0]
            if sent_at > rack.xmit_ts or (sent_at == rack.xmit_ts and not seq_lt(end, rack.end_seq)):
                timers.cancel(REORDER_TIMER)
                return
            taken["oldest_late"] += 1
        sacked_segments = snd.scoreboard.sacked_bytes() // self.send_mss if snd.has_sacked else 0
        reo_wnd = rack.reordering_window(congestion.in_recovery, sacked_segments, self.rtt.srtt)
        lost_end, timeout = rack.detect_losses(snd, reo_wnd, now)
        if lost_end is not None:
            snd.scoreboard.rack_lost(lost_end)
            if not congestion.in_recovery:
                self._enter_fast_recovery(now)
                timers.cancel(TLP_TIMER)
        if timeout is None:
            timers.cancel(REORDER_TIMER)
        else:
            timers.arm(REORDER_TIMER, now + timeout)


class World:
    """`reorder`: the chance that two neighbouring segments of a transmit swap places on the way
    (a stream of its own, the same in both worlds: they transmit in lockstep)."""

    def __init__(self, cls, config, client_iss: int, server_iss: int, seed: int, reorder: float) -> None:
        self.rng = random.Random(seed)
        self.reorder = reorder
        client = cls.open_active(config, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, client_iss, 0.0)
        server = cls.open_passive(config, REMOTE_ADDRESS, REMOTE_PORT, server_iss, 0.0)
        if cls is OldForms:
            client, server = OldForms._converted(client), OldForms._converted(server)
        self.ends = (client, server)

    def transmit(self, index: int, now: float) -> list:
        connection = self.ends[index]
        deadline = connection.next_deadline()
        if deadline is not None and deadline <= now:
            connection.on_timer(now)
        segments = connection.transmit(now)
        for index in range(len(segments) - 1):
            if self.rng.random() < self.reorder:
                segments[index], segments[index + 1] = segments[index + 1], segments[index]
        return segments

    def picture(self, index: int, segments: list) -> tuple:
        connection = self.ends[index]
        rack = connection.rack
        snd = connection.snd
        return (
            segments, connection.state, connection.timers_armed(),
            None if rack is None else tuple(getattr(rack, name) for name in RACK_FIELDS),
            tuple(getattr(snd, name) for name in SEND_FIELDS),
            None if snd.sent_times is None else [list(entry) for entry in snd.sent_times],
            list(snd.scoreboard.blocks), connection.congestion.cwnd, connection.congestion.ssthresh,
        )  # fmt: skip


def run(seed: int) -> None:
    rng = random.Random(seed)
    config = dataclasses.replace(
        CONFIG,
        sack=True,
        loss_detection="rack",
        timestamps=rng.random() < 0.5,
        window_scaling=rng.random() < 0.5,
        receive_buffer_size=rng.choice([16384, 65536]),
        send_buffer_size=rng.choice([65536, 262144]),
        ack_every_segments=rng.choice([1, 2, 2, 3]),
        congestion_control=rng.choice(["reno", "cubic"]),
        nagle=rng.random() < 0.7,
    )
    client_iss, server_iss = rng.choice([(0x1000, 0x9000), (0xFFFFF000, 0xFFFF8000), (0x7FFFF000, 0xFFFFFFF0)])
    reorder = rng.choice([0.0, 0.05, 0.2])
    worlds = tuple(World(cls, config, client_iss, server_iss, seed, reorder) for cls in (OldForms, Connection))
    assert type(worlds[0].ends[0].snd) is OldSendSide and type(worlds[1].ends[0].snd) is SendSide
    loss = rng.choice([0.0, 0.02, 0.1, 0.2])
    for step in drive_in_lockstep(worlds, rng, seed, pauses=(0.0, 0.0, 0.001, 0.01, 0.05, 0.3, 1.5), send_below=0.3,
                                  recv_below=0.45, close_below=0.46, close_after=250, loss=loss, steps=400):
        for world_index in (0, 1):
            pictures = [world.picture(world_index, []) for world in worlds]
            assert pictures[0] == pictures[1], f"seed {seed} step {step} after receiving"


@pytest.mark.parametrize("seed", SEEDS)
def test_the_inline_forms_change_nothing(seed):
    run(seed)


def test_the_traffic_takes_the_branches_whose_forms_changed():
    # The differential test means something only if its traffic makes the old forms decide both
    # ways: ACKs beyond SND.NXT (after a go-back), an oldest entry that may be late.
    for key in taken:
        taken[key] = 0
    for seed in SEEDS[:20]:
        run(seed)
    assert all(count > 0 for count in taken.values()), taken


def test_an_ack_that_fills_the_hole_stops_the_armed_reorder_timer():
    # Four segments leave at 0.1; the peer gets the second first (SACK: the first may be late,
    # so RACK arms the reorder timer for a quarter of min_RTT), then the first: its cumulative
    # ACK leaves nothing SACKed, and the oldest entry (the third) was sent with the newest
    # delivered one, so the reorder timer stops (_rack_detect's cancel, when armed).
    config = dataclasses.replace(CONFIG, sack=True, loss_detection="rack")
    client = Connection.open_active(config, LOCAL_ADDRESS, LOCAL_PORT, REMOTE_ADDRESS, REMOTE_PORT, 0xFFFFF000, 0.0)
    server = Connection.open_passive(config, REMOTE_ADDRESS, REMOTE_PORT, 0x9000, 0.0)
    for sender, receiver, sent, arrives in ((client, server, 0.0, 0.05), (server, client, 0.05, 0.1),
                                            (client, server, 0.1, 0.15)):
        for segment in sender.transmit(sent):
            receiver.receive(segment, arrives)  # SRTT 0.1 from the handshake
    client.send(b"x" * (4 * 1460), 0.1)
    first, second, *_ = client.transmit(0.1)
    server.receive(second, 0.2)
    for ack in server.transmit(0.2):
        client.receive(ack, 0.2)
    assert client.timers_armed().get("reorder") == pytest.approx(0.225)
    server.receive(first, 0.21)
    for ack in server.transmit(0.21):
        client.receive(ack, 0.21)
    assert "reorder" not in client.timers_armed()
    assert client.rack.reordering_seen


@pytest.mark.parametrize("seed", range(5))
def test_delivered_in_order_decides_as_the_helpers_do(seed):
    # RackState._delivered_in_order against the old forms, on states near 0, 2**31 and 2**32:
    # every branch (reordering seen, FACK moved, the newest delivered segment replaced, by time
    # or by its end at the same time) both ways.
    rng = random.Random(seed)
    bases = (0, 0x7FFFFF00, 0xFFFFFF00)
    branches = set()
    for _ in range(3000):
        base = rng.choice(bases)
        number = lambda: (base + rng.randrange(-3000, 3000)) & 0xFFFFFFFF  # noqa: E731
        fack = rng.choice([None, number()])
        first_end, end = number(), number()
        sent_at = rng.choice([1.0, 2.0])
        xmit_ts = rng.choice([None, 1.0, 2.0])
        end_seq = None if xmit_ts is None else number()
        min_rtt = rng.choice([None, 0.5])
        states = []
        for cls in (OldRackState, RackState):
            rack = cls()
            rack.fack, rack.xmit_ts, rack.end_seq, rack.min_rtt = fack, xmit_ts, end_seq, min_rtt
            rack._delivered_in_order(first_end, [first_end, end, sent_at, 0], 2.5)
            states.append(tuple(getattr(rack, name) for name in RACK_FIELDS))
        assert states[0] == states[1], (seed, fack, first_end, end, sent_at, xmit_ts, end_seq)
        rack_fields = dict(zip(RACK_FIELDS, states[1]))
        branches.add((rack_fields["reordering_seen"], rack_fields["fack"] == end, rack_fields["end_seq"] == end))
    assert len(branches) == 8
