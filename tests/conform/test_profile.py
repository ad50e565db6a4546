"""The FreeBSD profile (sysctl map, headers, tolerances) and the shell/code interpreters."""

from __future__ import annotations

import dataclasses
import re

import pytest

from ustack.conform.profile import (
    FREEBSD_DEFAULTS,
    MATCHER_TOLERANCES,
    SCRIPT_TOLERANCES,
    SCRIPT_OPTIONS,
    SYSCTLS,
    TOLERANCES,
    Unsupported,
    apply_script_options,
    apply_sysctl,
    freebsd_receive_buffer,
    window_shift_for_limit,
)
from ustack.conform.shell import (
    AssertOptions,
    AssertState,
    CountStates,
    DropTimeWait,
    SetSysctl,
    interpret_code,
    interpret_shell,
)
from ustack.tcp.config import TcpConfig
from ustack.tcp.state import State

from conform.suite_path import SUITE, SUITE6, needs_suite
CONFIG_FIELDS = {field.name for field in dataclasses.fields(TcpConfig)}


@needs_suite
def test_every_sysctl_the_suite_writes_is_in_the_table():
    names = set()
    for path in SUITE.rglob("*.pkt"):
        names |= set(re.findall(r"sysctl -w ([a-z_.0-9]+)=", path.read_text()))
    assert names - set(SYSCTLS) == set()


def test_buffers_and_switches_map_onto_tcp_config():
    overrides = {}
    apply_sysctl("net.inet.tcp.recvspace", 65536, overrides)
    apply_sysctl("net.inet.tcp.sendspace", 32768, overrides)
    apply_sysctl("net.inet.tcp.sack.enable", 0, overrides)
    apply_sysctl("net.inet.tcp.rfc1323", 0, overrides)
    apply_sysctl("net.inet.tcp.rexmit_initial", 1000, overrides)
    apply_sysctl("net.inet.tcp.rexmit_slop", 200, overrides)
    apply_sysctl("net.inet.tcp.delacktime", 40, overrides)
    assert overrides == {
        "receive_buffer_size": 65536,
        "send_buffer_size": 32768,
        "sack": False,
        "window_scaling": False,
        "timestamps": False,
        "initial_rto": 1.0,
        "rto_slop": 0.2,
        "delayed_ack_timeout": 0.04,
    }
    TcpConfig(**overrides)  # every mapped field is a real TcpConfig field


def test_freebsd_switches_map_onto_core_knobs():
    overrides = {}
    apply_sysctl("net.inet.tcp.insecure_rst", 1, overrides)
    apply_sysctl("net.inet.tcp.insecure_syn", 1, overrides)
    apply_sysctl("net.inet.tcp.drop_synfin", 1, overrides)
    apply_sysctl("net.inet.tcp.keepinit", 15000, overrides)
    apply_sysctl("kern.ipc.maxsockbuf", 73728, overrides)
    apply_sysctl("net.inet.tcp.tolerate_missing_ts", 0, overrides)
    apply_sysctl("net.inet.tcp.rexmit_drop_options", 1, overrides)
    apply_sysctl("net.inet.tcp.icmp_may_rst", 0, overrides)
    assert overrides == {
        "icmp_hard_error_codes": frozenset(),
        "rfc5961_rst_check": False,
        "rfc5961_syn_check": False,
        "drop_syn_fin": True,
        "connect_timeout": 15.0,
        "window_scale_shift": 1,
        "tolerate_missing_timestamps": False,
        "syn_retries_with_options": 3,
    }
    TcpConfig(**overrides)
    apply_sysctl("net.inet.tcp.rexmit_drop_options", 0, overrides)
    assert overrides["syn_retries_with_options"] is None


@needs_suite
def test_each_freebsd_deviation_names_a_script_and_the_rfc_it_contradicts():
    from ustack.conform.profile import FREEBSD_DEVIATIONS, freebsd_deviation

    for script, reason in FREEBSD_DEVIATIONS.items():
        suite = SUITE6 if script.endswith("-ipv6.pkt") else SUITE
        assert (suite / script).is_file(), script
        assert "RFC 9293 3." in reason, script
        assert freebsd_deviation(str(suite / script)) == reason
        # An IPv4 script's IPv6 twin fails for the same reason.
        twin = script.replace("-ipv4.pkt", "-ipv6.pkt")
        assert freebsd_deviation(str(SUITE6 / twin)) == reason
    assert freebsd_deviation(str(SUITE / "snippets/listen-ipv4.pkt")) is None


def test_the_freebsd_defaults_make_a_valid_config():
    config = TcpConfig(**{name: value for name, value in FREEBSD_DEFAULTS.items() if name in CONFIG_FIELDS})
    assert config.window_advertisement == "free_space" and config.window_scale_shift == 6


def test_settings_ustack_already_behaves_like_change_nothing():
    overrides = {}
    for name, value in [
        ("net.inet.tcp.hostcache.purgenow", 1),
        ("net.inet.tcp.blackhole", 0),
        ("net.inet.tcp.syncookies_only", 0),
    ]:
        apply_sysctl(name, value, overrides)
    assert overrides == {}


def test_ecn_enable_and_maxretries_set_the_ecn_settings():
    for value, mode in ((0, "off"), (1, "on"), (2, "passive")):
        overrides = {}
        apply_sysctl("net.inet.tcp.ecn.enable", value, overrides)
        assert overrides == {"ecn": mode}
    overrides = {}
    apply_sysctl("net.inet.tcp.ecn.maxretries", 0, overrides)
    assert overrides == {"ecn_syn_retries": 0}


def test_other_values_are_unsupported_with_a_named_feature():
    with pytest.raises(Unsupported) as raised:
        apply_sysctl("net.inet.tcp.blackhole", 2, {})
    assert raised.value.feature == "sysctl net.inet.tcp.blackhole=2"
    with pytest.raises(Unsupported, match="not in profile.SYSCTLS"):
        apply_sysctl("net.inet.tcp.no_such_thing", 1, {})


def test_a_knob_the_core_lacks_is_reported_with_the_field_it_needs():
    field = SYSCTLS["net.inet.tcp.insecure_rst"].field
    if field in CONFIG_FIELDS:
        overrides = {}
        apply_sysctl("net.inet.tcp.insecure_rst", 1, overrides)
        assert overrides == {field: False}
    else:
        with pytest.raises(Unsupported, match=f"needs TcpConfig.{field}"):
            apply_sysctl("net.inet.tcp.insecure_rst", 1, {})
        apply_sysctl("net.inet.tcp.insecure_rst", 0, {})  # what ustack always does


def test_freebsd_window_shift_and_buffer_rounding():
    assert window_shift_for_limit(2097152) == 6
    assert window_shift_for_limit(73728) == 1
    assert window_shift_for_limit(4294967295) == 14
    assert freebsd_receive_buffer(65536, 1460) == 65700
    assert freebsd_receive_buffer(65700, 1460) == 65700


def test_script_headers():
    overrides = {}
    apply_script_options({"ip_version": "ipv4", "tolerance_usecs": "10000", "mtu": "9000", "non_fatal": "syscall"}, overrides)
    assert overrides == {"mss": 8960}
    overrides = {}
    apply_script_options({"ip_version": "ipv6", "mtu": "9000"}, overrides)
    assert overrides == {"mss": 8940}  # IPv6's header is 40 bytes
    with pytest.raises(Unsupported, match="ipv4-mapped-ipv6"):
        apply_script_options({"ip_version": "ipv4-mapped-ipv6"}, {})
    overrides = {}
    apply_script_options({"mtu": "72"}, overrides)  # the smallest IPv4 MTU is 68 (RFC 791)
    assert overrides == {"mss": 32}
    with pytest.raises(Unsupported, match="--mtu=60"):
        apply_script_options({"mtu": "60"}, {})
    with pytest.raises(Unsupported, match="--udp_encapsulation"):
        apply_script_options({"udp_encapsulation": "tcp"}, {})


def test_the_documented_tables_are_complete():
    assert set(TOLERANCES) == {"option_order", "ts_val_unchecked", "ack_without_ack_flag", "repeated_fin"}
    assert MATCHER_TOLERANCES <= set(TOLERANCES)
    for name, reason in SCRIPT_TOLERANCES.values():
        assert name and reason
    assert all(len(reason) > 40 for reason in TOLERANCES.values())
    assert {"ip_version", "tolerance_usecs", "mtu"} <= set(SCRIPT_OPTIONS)
    for sysctl in SYSCTLS.values():
        assert sysctl.freebsd, sysctl.name
        assert sysctl.field or sysctl.builtin or sysctl.note, sysctl.name
    known = {name for name in FREEBSD_DEFAULTS if name in CONFIG_FIELDS}
    assert {"receive_buffer_size", "send_buffer_size", "sack", "timestamps", "window_scaling"} <= known


# --------------------------------------------------------------------------- shell and code


@pytest.mark.parametrize(
    "command, action",
    [
        ("sysctl -w net.inet.tcp.sack.enable=1", SetSysctl("net.inet.tcp.sack.enable", 1)),
        ("sockstat -4 -P tcp -s | grep packetdril | grep -c TIME_WAIT | grep 1", CountStates(State.TIME_WAIT, 1, None)),
        ("sockstat -4 -P tcp -p 8080 -s | grep -c SYN_RCVD | grep 0", CountStates(State.SYN_RECEIVED, 0, 8080)),
        ("sockstat -4 -P tcp -s -p 8080 | grep -c SYN_RCVD | grep 2", CountStates(State.SYN_RECEIVED, 2, 8080)),
        ("sockstat -4 -P tcp -s | grep packetdril | grep -c CLOSED | grep 1", CountStates(State.CLOSED, 1, None)),
        ("tcpdrop -s TIME_WAIT", DropTimeWait()),
    ],
)
def test_shell_commands(command, action):
    assert interpret_shell(command) == action


def test_unknown_shell_commands_are_reported():
    with pytest.raises(Unsupported) as raised:
        interpret_shell("rm -rf /tmp/x")
    assert raised.value.feature == "shell command"
    with pytest.raises(Unsupported, match="tcp_md5"):
        interpret_shell("setkey -F")


def test_code_blocks():
    assert interpret_code("assert tcpi_state == TCPI_CLOSE_WAIT") == AssertState(State.CLOSE_WAIT)
    assert interpret_code("assert tcpi_state == TCPI_SYN_RECEIVED") == AssertState(State.SYN_RECEIVED)
    assert interpret_code("assert tcpi_options == 0") == AssertOptions(0)
    assert interpret_code(
        "assert tcpi_options == (TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE | TCPI_OPT_ECN)"
    ) == AssertOptions(0x0F)
    with pytest.raises(Unsupported, match="code block"):
        interpret_code("print(tcpi_rtt)")
