"""The Linux profile (linux_profile.py): defaults.sh as TcpConfig values, the net.ipv4 sysctls,
the suite's shell lines, and the GSO merge of what ustack sends."""

from __future__ import annotations

import dataclasses

import pytest

from ustack.conform.linux_profile import (
    LINUX_DEFAULTS,
    LINUX_SYSCTLS,
    apply_linux_sysctl,
    merge_offloaded,
)
from ustack.conform.parser import parse_text
from ustack.conform.profile import LINUX, Unsupported
from ustack.conform.runner import PASS, run_script
from ustack.conform.shell import LinuxSysctls, interpret_shell
from ustack.tcp.config import TcpConfig
from ustack.wire.tcp import ACK, FIN, PSH, SYN, TcpSegment


def test_every_default_is_a_tcp_config_field_and_valid():
    fields = {field.name for field in dataclasses.fields(TcpConfig)}
    assert set(LINUX_DEFAULTS) <= fields
    config = TcpConfig(**LINUX_DEFAULTS)
    assert (config.window_scale_shift, config.initial_window_segments, config.min_rto) == (8, 10, 0.2)


def test_defaults_sh_values_are_accepted_and_other_values_are_named():
    overrides = {}
    apply_linux_sysctl("net.ipv4.tcp_frto", "2", overrides)  # defaults.sh's own value: accepted
    assert overrides == {}
    with pytest.raises(Unsupported) as raised:
        apply_linux_sysctl("net.ipv4.tcp_frto", "0", overrides)
    assert raised.value.feature == "sysctl net.ipv4.tcp_frto=0"
    with pytest.raises(Unsupported, match="not in linux_profile.LINUX_SYSCTLS"):
        apply_linux_sysctl("net.ipv4.tcp_no_such_thing", "1", overrides)
    assert all(name.startswith("tcp_") for name in LINUX_SYSCTLS)


def test_rmem_sets_the_buffer_and_the_window_scale():
    overrides = {}
    apply_linux_sysctl("net/ipv4/tcp_rmem", "4096 65536 1048576", overrides)
    assert overrides == {"receive_buffer_size": 65536, "window_scale_shift": 5}


def test_the_suite_shell_lines():
    line = """../../common/defaults.sh
../../common/set_sysctls.py /proc/sys/net/ipv4/tcp_timestamps=0 \\
    /proc/sys/net/ipv4/tcp_wmem="4096 50000 4194304"
sysctl -q net.ipv4.tcp_sack=0  # no SACK"""
    action = interpret_shell(line)
    assert action == LinuxSysctls((("net.ipv4.tcp_timestamps", "0"), ("net.ipv4.tcp_wmem", "4096 50000 4194304"),
                                   ("net.ipv4.tcp_sack", "0")))
    assert interpret_shell("/tmp/sysctl_restore_${PPID}.sh") == LinuxSysctls(())
    assert interpret_shell("../common/defaults.sh\nethtool -K tun0 tso off gso off") == LinuxSysctls(())
    with pytest.raises(Unsupported, match="tc qdisc replace dev tun0 root fq"):
        interpret_shell("../common/defaults.sh\ntc qdisc replace dev tun0 root fq")


def segment(seq, length, flags=ACK):
    return TcpSegment(8080, 4000, seq, 1, flags, 502, payload=bytes(length))


def test_back_to_back_data_becomes_one_offloaded_segment():
    merged = merge_offloaded(segment(1, 1460), segment(1461, 1000, ACK | PSH))
    assert (merged.seq, len(merged.payload), merged.flags) == (1, 2460, ACK | PSH)
    assert merge_offloaded(segment(1, 1460), segment(2000, 10)) is None  # a gap
    assert merge_offloaded(segment(1, 1460, ACK | FIN), segment(1462, 10)) is None  # data after a FIN
    assert merge_offloaded(segment(0, 0, SYN), segment(1, 10)) is None
    assert merge_offloaded(segment(1, 1460), segment(1461, 10)._replace(window=1)) is None


WRITE_ONE_BURST = """`../common/defaults.sh`
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
  +.1 < S 0:0(0) win 32792 <mss 1000,nop,wscale 7>
   +0 > S. 0:0(0) ack 1 <mss 1460,nop,wscale 8>
  +.1 < . 1:1(0) ack 1 win 257
   +0 accept(3, ..., ...) = 4
   +0 write(4, ..., 3000) = 3000
   +0 > P. 1:3001(3000) ack 1
"""


def test_a_linux_script_runs_with_the_linux_profile_and_sees_one_burst():
    script = parse_text(WRITE_ONE_BURST, "linux/tcp/t.pkt")
    assert run_script(script, LINUX).status == PASS, run_script(script, LINUX).text()
    freebsd = run_script(parse_text(WRITE_ONE_BURST, "linux/tcp/t.pkt"))  # wscale 6, one MSS at a time
    assert freebsd.status != PASS
