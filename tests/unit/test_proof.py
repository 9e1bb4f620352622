"""Judging the guest's report against the plan, on a real report captured from a TCG boot."""

import copy
import json
from pathlib import Path

import pytest

from builder.verify.proof import BEGIN, END, extract_report, judge
from builder.verify.boot import checks_table, diagnose_missing_report
from conftest import PROFILES, plan_of_file

REPORT = json.loads((Path(__file__).parent.parent / "data" / "report-default.json").read_text())


@pytest.fixture
def plan():
    return plan_of_file(PROFILES / "default.yaml")[0]


def failed(plan, report):
    return [c.name for c in judge(plan, report) if not c.passed]


def test_real_report_passes(plan):
    assert failed(plan, REPORT) == []


def test_missing_report(plan):
    assert failed(plan, None) == ["boot report"]


def test_memmap_missing_or_repeated(plan):
    report = copy.deepcopy(REPORT)
    report["cmdline"] = report["cmdline"].replace(" memmap=1G!4G", "")
    assert "cmdline memmap=1G!4G" in failed(plan, report)
    report["cmdline"] += " memmap=1G!4G memmap=1G!4G"
    assert "cmdline memmap=1G!4G" in failed(plan, report)


def test_region_at_the_wrong_address(plan):
    report = copy.deepcopy(REPORT)
    report["iomem_pmem"] = ["140000000-17fffffff : Persistent Memory (legacy)"]
    report["ndctl_namespaces"][0]["resource"] = "0x140000000"
    assert failed(plan, report) == ["/dev/pmem0 e820 range", "/dev/pmem0 namespace"]


def test_missing_namespace_stops_the_region_checks(plan):
    report = copy.deepcopy(REPORT)
    report["ndctl_namespaces"] = []
    assert failed(plan, report) == ["/dev/pmem0 namespace"]


def test_a_smaller_namespace_or_another_device_is_not_the_region(plan):
    report = copy.deepcopy(REPORT)
    report["ndctl_namespaces"][0]["raw_size"] = 512 << 20
    assert failed(plan, report) == ["/dev/pmem0 namespace"]
    report = copy.deepcopy(REPORT)
    report["ndctl_namespaces"][0]["blockdev"] = "pmem1"
    assert failed(plan, report) == ["/dev/pmem0 namespace"]


def test_dax_turned_off_by_the_kernel(plan):
    report = copy.deepcopy(REPORT)
    report["dax_messages"].append("[ 9.1] EXT4-fs (pmem0): DAX unsupported by block device. Turning off DAX.")
    assert failed(plan, report) == ["/dev/pmem0 DAX active"]


def test_mount_without_dax_and_map_sync_refused(plan):
    report = copy.deepcopy(REPORT)
    report["mounts"][0]["options"] = ["rw", "relatime"]
    report["mounts"][0]["flush_test"]["map_sync"] = False
    report["mounts"][0]["flush_test"]["statx_dax"] = False
    assert failed(plan, report) == ["/dev/pmem0 DAX active", "/dev/pmem0 MAP_SYNC"]


def test_flush_test_absent_or_failed(plan):
    report = copy.deepcopy(REPORT)
    report["mounts"][0]["flush_test"]["verification"] = "failed"
    assert failed(plan, report) == ["/dev/pmem0 stores reach the file"]
    report["mounts"][0]["flush_test"]["verification"] = "ok"
    report["mounts"][0]["flush_test"]["selected"] = "msync"      # no CPU flush path was exercised
    assert failed(plan, report) == ["/dev/pmem0 stores reach the file"]
    report["mounts"][0]["flush_test"] = "absent"
    assert failed(plan, report) == ["/dev/pmem0 MAP_SYNC"]


def test_not_mounted_and_failed_units(plan):
    report = copy.deepcopy(REPORT)
    report["mounts"] = []
    report["failed_units"] = ["pmem-mkfs@pmem0.service"]
    assert failed(plan, report) == ["/dev/pmem0 mounted", "no failed units"]


def test_any_failed_unit_fails_the_proof(plan):
    """Not only units named pmem: a degraded boot (ndctl-monitor did this) is a failed proof."""
    report = copy.deepcopy(REPORT)
    report["failed_units"] = ["ndctl-monitor.service"]
    assert failed(plan, report) == ["no failed units"]
    del report["failed_units"]
    assert failed(plan, report) == ["no failed units"]


def test_an_unreadable_namespace_address_is_not_a_correct_one(plan):
    report = copy.deepcopy(REPORT)
    report["ndctl_namespaces"][0]["resource"] = None
    (check,) = [c for c in judge(plan, report) if not c.passed]
    assert check.name == "/dev/pmem0 namespace" and "no namespace starts at 0x100000000" in check.detail


def test_a_region_over_the_kernel_or_initrd_fails(plan):
    report = copy.deepcopy(REPORT)
    report["iomem_kernel"] = ["100200000-100ffffff : Kernel code"]           # KASLR put it inside 4G-5G
    (check,) = [c for c in judge(plan, report) if not c.passed]
    assert check.name == "pmem clear of kernel and initrd" and "pmem0" in check.evidence[0]
    report = copy.deepcopy(REPORT)
    report["initrd"] = ["[    0.0] RAMDISK: [mem 0x13f000000-0x13fffffff]"]
    assert failed(plan, report) == ["pmem clear of kernel and initrd"]
    report["iomem_kernel"] = []
    assert failed(plan, report) == ["pmem clear of kernel and initrd"]


def test_kernel_options_row_says_where_the_config_came_from(plan):
    names = [c.name for c in judge(plan, REPORT)]
    assert "kernel options (installed config file)" in names
    report = copy.deepcopy(REPORT)
    report["kernel_config_source"] = "/proc/config.gz"
    assert "kernel options (running kernel)" in [c.name for c in judge(plan, report)]


def test_map_sync_is_expected_refused_before_4_15():
    """An old kernel has no MAP_SYNC: the proof expects the refusal instead of failing on it."""
    from conftest import plan_of_text
    old, _ = plan_of_text("name: t\ndistribution: {name: debian, release: bookworm}\nkernel: {source: tree, "
                          "version: \"4.14\", path: linux}\npmem:\n  - {size: 1G, offset: 4G}\n")
    report = copy.deepcopy(REPORT)
    report["mounts"][0]["flush_test"]["map_sync"] = False
    rows = {c.name: c for c in judge(old, report)}
    assert rows["/dev/pmem0 MAP_SYNC"].passed and "expected" in rows["/dev/pmem0 MAP_SYNC"].detail


def test_extract_report_survives_noise_and_takes_the_last():
    body = json.dumps({"format": 1, "n": 1})
    text = f"noise\n{BEGIN}\n{{broken\n{END}\nmore\n{BEGIN}\n{body}\n{END}\ntrailing"
    assert extract_report(text) == {"format": 1, "n": 1}
    assert extract_report(f"{BEGIN}\n{{\"a\": 1") is None


@pytest.mark.parametrize("serial, says", [
    ("SeaBIOS\nBooting from Hard Disk...", "the kernel never started"),
    ("Linux version 6.1\n---[ end Kernel panic - not syncing: VFS", "the kernel panicked"),
    ("Linux version 6.1\nStarting pmem-selftest.service\ndefault login:", "the self-test wrote no report"),
    ("Linux version 6.1\nProbing EDD", "no report after 600s: the boot hangs"),
])
def test_missing_report_is_diagnosed(serial, says):
    check = diagnose_missing_report(serial, 600, exit_code=None)
    assert says in check.detail and check.evidence


@pytest.mark.parametrize("exit_code, says", [
    (-11, "QEMU was killed by SIGSEGV after 6s"),
    (-9, "QEMU was killed by SIGKILL after 6s"),
    (0, "QEMU exited (the guest powered off or reset) after 6s"),
    (1, "QEMU exited with code 1 after 6s"),
])
def test_a_qemu_that_ended_mid_boot_is_not_called_a_hang(exit_code, says):
    """The kernel had started and QEMU ended by itself: how it ended (a signal is a crash or the OOM killer,
    not the guest), never "the boot hangs"."""
    serial = "Linux version 6.1\n[    1.57] acpi PNP0A08:00: _OSC"
    check = diagnose_missing_report(serial, 6, exit_code)
    assert check.detail == says, check.detail
    assert serial.splitlines()[-1] in check.evidence


def test_table_shows_evidence_for_failures(plan):
    report = copy.deepcopy(REPORT)
    report["ndctl_namespaces"][0]["resource"] = "0x140000000"
    text = checks_table(judge(plan, report))
    assert "FAIL" in text and "| namespace0.0 at 0x140000000" in text


def test_kernel_option_missing_in_the_guest(plan):
    report = copy.deepcopy(REPORT)
    report["kernel_config"]["ZONE_DEVICE"] = "n"
    (check,) = [c for c in judge(plan, report) if not c.passed]
    assert check.name == "kernel options (installed config file)" and check.evidence == [
        "CONFIG_ZONE_DEVICE: wanted y, got n: not set in "
                                                                  "this kernel's configuration"]
    report["kernel_config"] = {}
    assert failed(plan, report) == ["kernel options (installed config file)"]


def test_built_kernel_must_be_the_one_running(plan):
    assert failed(plan, REPORT, ) == []
    assert [c.name for c in judge(plan, REPORT, "6.1.192-pmem") if not c.passed] == ["kernel release"]
    assert [c.name for c in judge(plan, REPORT, REPORT["kernel_release"]) if not c.passed] == []


def test_warm_reboot_results(plan):
    report = copy.deepcopy(REPORT)
    report["warm_reboot"] = [{"mountpoint": "/mnt/pmem0", "check_seed": "ok", "output": "{}"}]
    assert failed(plan, report) == [] and [c.name for c in judge(plan, report, "", True)][-2] == \
        "/dev/pmem0 survives warm reboot"
    assert [c.name for c in judge(plan, report, "", True) if not c.passed] == []
    report["warm_reboot"][0]["check_seed"] = "failed"
    assert [c.name for c in judge(plan, report, "", True) if not c.passed] == ["/dev/pmem0 survives warm reboot"]
    report["warm_reboot"] = None
    assert [c.name for c in judge(plan, report, "", True) if not c.passed] == ["/dev/pmem0 survives warm reboot"]


def test_a_mount_gone_by_the_end_of_the_proof_fails_its_row():
    """Issue 22: a pmem mount stopped seconds after it was made (its namespace replaced under it) left an empty
    directory on the root disk; the proof's last look at the mounts must still find every planned one."""
    plan = plan_of_file(PROFILES / "default.yaml")[0]
    report = copy.deepcopy(REPORT)
    rows = {c.name: c for c in judge(plan, report)}
    assert rows["/dev/pmem0 still mounted at the end"].passed
    report["mounts_at_end"] = []
    row = {c.name: c for c in judge(plan, report)}["/dev/pmem0 still mounted at the end"]
    assert not row.passed and "no longer mounted" in row.detail
    del report["mounts_at_end"]
    assert not {c.name: c for c in judge(plan, report)}["/dev/pmem0 still mounted at the end"].passed
