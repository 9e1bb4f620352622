"""One boot request, four purposes: what QEMU is told for a proof, a published boot, run and test."""

from dataclasses import replace
from pathlib import Path

import pytest

from builder.verify.boot_request import BootRequest, oem_strings, qemu_argv
from builder.verify.shares import Share
from conftest import PROFILES, plan_of_file


@pytest.fixture
def request_for(tmp_path: Path):
    plan, _ = plan_of_file(PROFILES / "default.yaml")
    return BootRequest(plan, tmp_path / "o.qcow2", "tcg", "proof", tmp_path / "serial.log", tmp_path / "report.log")


def _oem(argv: list[str]) -> str:
    return argv[argv.index("-smbios") + 1] if "-smbios" in argv else ""


def test_a_proof_reports_powers_off_and_names_only_its_own_devices(request_for):
    argv = qemu_argv(request_for)
    assert _oem(argv) == "type=11,value=pmem-image:selftest,value=pmem-image:poweroff"
    assert "-nodefaults" in argv and "-no-reboot" in argv and argv[argv.index("-nic") + 1] == "none"
    assert argv.count("-serial") == 2 and "chardev:report" in argv and "mon:stdio" not in argv


def test_a_proof_with_a_login_stays_up_for_it_and_forwards_ssh(request_for):
    argv = qemu_argv(replace(request_for, ssh_port=2200, ssh_key="ssh-ed25519 AAAA k"))
    assert "pmem-image:poweroff" not in _oem(argv) and "value=pmem-image:ssh-key=ssh-ed25519 AAAA k" in _oem(argv)
    assert argv[argv.index("-nic") + 1] == "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:2200-:22"


def test_a_warm_reboot_is_a_reset_in_the_same_process(request_for):
    argv = qemu_argv(replace(request_for, warm_reboot=True))
    assert "-no-reboot" not in argv and "value=pmem-image:warm-reboot" in _oem(argv)


def test_a_published_boot_is_asked_nothing(request_for):
    argv = qemu_argv(replace(request_for, purpose="published"))
    assert "-smbios" not in argv and oem_strings(replace(request_for, purpose="published")) == []


def test_run_gets_the_terminal_and_the_launch_contracts_devices(request_for):
    argv = qemu_argv(replace(request_for, purpose="interactive", console=None, report=None, ssh_port=2222))
    assert argv[-4:] == ["-serial", "mon:stdio", "-nic", "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:2222-:22"]
    assert "-nodefaults" not in argv and "-monitor" not in argv and "-smbios" not in argv


def test_test_runs_a_command_over_its_9p_shares(request_for, tmp_path):
    share = Share(tmp_path, "/src", "pmem-image.share0")
    argv = qemu_argv(replace(request_for, purpose="test", control=tmp_path / "control", shares=(share,)))
    assert _oem(argv) == "type=11,value=pmem-image:test"
    assert f"local,id=fs1,path={tmp_path},security_model=none" in argv
    assert "virtio-9p-pci,fsdev=fs0,mount_tag=pmem-image.control" in argv


def test_a_boot_that_is_not_interactive_needs_its_console_file(request_for):
    with pytest.raises(AssertionError, match="console"):
        qemu_argv(replace(request_for, console=None))
