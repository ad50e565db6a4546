"""`ustack serve --cpu N`: serve runs on CPU N alone and its TUN device's received packets (what
serve writes) are steered to the other CPUs by RPS (ustack.netns.steer_received_packets, which
bench.py also uses on the kernel twin's veth ends). Read back from where the kernel keeps it: the
process's CPU list in /proc, the device's rps_cpus in the namespace's own sysfs; the device and
the namespace are gone when serve stops; a bad value is one line and exit 2."""

from __future__ import annotations

import hashlib
import os
import sys

import pytest
from interop_helpers import STACK_ADDRESS, inside, run_cli

from ustack.netns import Namespace, NamespaceError, create_veth_pair, namespace_exists, steer_received_packets

ALLOWED = sorted(os.sched_getaffinity(0))


def rps_masks(namespace: str, device: str) -> list[int]:
    """The rps_cpus mask of each receive queue of `device`, as the namespace's sysfs shows it."""
    result = inside(namespace, "sh", "-c", f"cat /sys/class/net/{device}/queues/rx-*/rps_cpus")
    assert result.returncode == 0, result.stderr
    return [int(text.replace(",", ""), 16) for text in result.stdout.split()]


def mask_of(cpus) -> int:
    return sum(1 << cpu for cpu in cpus)


def test_serve_runs_on_its_cpu_steers_its_device_to_the_others_and_leaves_nothing(ustack_serve, tmp_path, namespace_name):
    if len(ALLOWED) < 2:  # nothing to steer to: the option says so rather than doing nothing
        result = run_cli("serve", "--netns", namespace_name(), "--cpu", str(ALLOWED[0]))
        assert result.returncode == 2 and "none left to steer" in result.stderr, result.stderr
        return
    cpu = ALLOWED[-1]  # the last CPU, so that "the others" are not just "CPU 1"
    others = [c for c in ALLOWED if c != cpu]
    site = tmp_path / "site"
    site.mkdir()
    data = os.urandom(3 * 1024 * 1024)
    (site / "data.bin").write_bytes(data)
    serve = ustack_serve("--http", str(site), "--no-offload", "--cpu", str(cpu))
    assert f"ustack: on CPU {cpu}; the kernel receives what it writes on CPU {','.join(map(str, others))} " \
           f"(RPS on ustun0)" in serve.output
    # Every thread of serve may run on that CPU only.
    for task in os.listdir(f"/proc/{serve.process.pid}/task"):
        status = open(f"/proc/{serve.process.pid}/task/{task}/status").read()
        assert f"Cpus_allowed_list:\t{cpu}\n" in status
    assert rps_masks(serve.namespace, "ustun0") == [mask_of(others)]
    got = serve.inside("curl", "-sS", "--fail", f"http://{STACK_ADDRESS}/data.bin", text=False)
    assert got.returncode == 0, got.stderr
    assert hashlib.sha256(got.stdout).digest() == hashlib.sha256(data).digest()
    assert serve.stop() == 0
    assert not namespace_exists(serve.namespace)  # the device went with it, and serve's namespace


@pytest.mark.parametrize("arguments, message", [
    (["--cpu", "two"], "cpu must be a CPU number, not 'two'"),
    (["--cpu", "-1"], "cpu -1 is not one this process may run on"),
    (["--cpu", "4096"], "cpu 4096 is not one this process may run on"),
    (["--cpu", str(ALLOWED[0]), "--workers", "2"], "--cpu takes one process"),
])
def test_a_bad_cpu_is_one_line_and_exit_2_and_makes_nothing(require_interop_environment, namespace_name, arguments,
                                                             message):
    name = namespace_name()
    result = run_cli("serve", "--netns", name, "--echo", *arguments)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not namespace_exists(name)


def test_steering_a_veth_pair_in_namespaces_reads_back_and_goes_with_the_namespaces(require_interop_environment,
                                                                                   namespace_name):
    first, second = Namespace(namespace_name()), Namespace(namespace_name())
    with first, second:
        create_veth_pair(first, second, "ust-rps-a", "ust-rps-b")
        steer_received_packets(first, "ust-rps-a", ALLOWED[-1:])
        steer_received_packets(second.name, "ust-rps-b", ALLOWED)
        assert rps_masks(first.name, "ust-rps-a") == [mask_of(ALLOWED[-1:])]
        assert rps_masks(second.name, "ust-rps-b") == [mask_of(ALLOWED)]
        steer_received_packets(first, "ust-rps-a", [])  # none: back to the kernel's default
        assert rps_masks(first.name, "ust-rps-a") == [0]
        # From inside the namespace (serve without --netns steers its own namespace's device).
        code = ("import sys; from ustack.netns import steer_received_packets; "
                f"steer_received_packets(None, 'ust-rps-a', [{ALLOWED[0]}])")
        result = inside(first.name, sys.executable, "-c", code)
        assert result.returncode == 0, result.stderr
        assert rps_masks(first.name, "ust-rps-a") == [mask_of(ALLOWED[:1])]
        with pytest.raises(NamespaceError, match="cannot steer ust-rps-x's received packets to CPUs .*no such device"):
            steer_received_packets(first, "ust-rps-x", ALLOWED)
        with pytest.raises(NamespaceError, match="cannot steer ust-rps-a's received packets to CPUs 4096"):
            steer_received_packets(first, "ust-rps-a", [4096])  # beyond any CPU: the kernel refuses
        assert rps_masks(first.name, "ust-rps-a") == [mask_of(ALLOWED[:1])]  # unchanged
    assert not namespace_exists(first.name) and not namespace_exists(second.name)
