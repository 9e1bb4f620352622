"""The proof rows of each namespace mode, judged on a real report of the pmem-modes profile (TCG boot):
the report passes, and each row fails when what it names is broken."""

import copy
import json
from pathlib import Path

import pytest

from builder.verify.proof import judge
from conftest import PROFILES, plan_of_file

REPORT = json.loads((Path(__file__).parent.parent / "data" / "report-pmem-modes.json").read_text())


@pytest.fixture(scope="module")
def plan():
    return plan_of_file(PROFILES / "pmem-modes.yaml")[0]


def failed(plan, report):
    return [c.name for c in judge(plan, report) if not c.passed]


def namespace(report, device):
    return next(n for n in report["ndctl_namespaces"] if n.get("blockdev", n.get("chardev")) == device)


def test_the_real_report_proves_every_mode(plan):
    names = [c.name for c in judge(plan, REPORT)]
    assert failed(plan, REPORT) == []
    assert {"/dev/pmem0 DAX active", "/dev/dax1.0 device DAX", "/dev/dax1.0 stores read back",
            "/dev/pmem2s without DAX (sector mode)", "/dev/pmem3 raw block device without DAX"} <= set(names)


@pytest.mark.parametrize("device, change, row", [
    ("pmem0", {"map": "mem"}, "/dev/pmem0 namespace"),            # ndctl left the struct pages in RAM
    ("dax1.0", {"mode": "fsdax"}, "/dev/dax1.0 namespace"),       # reconfiguration did not happen
    ("pmem2s", {"blockdev": "pmem2"}, "/dev/pmem2s namespace"),   # no BTT device
    ("pmem3", {"raw_size": 512 << 20}, "/dev/pmem3 namespace"),   # not the whole region
])
def test_a_namespace_other_than_planned_fails_its_row_and_stops_the_mode_rows(plan, device, change, row):
    report = copy.deepcopy(REPORT)
    namespace(report, device).update(change)
    names = [c.name for c in judge(plan, report)]
    assert failed(plan, report) == [row]
    assert not [n for n in names if n.startswith(row.split(" namespace")[0]) and n not in (row,) and "e820" not in n
            and not n.endswith("still mounted at the end")]


def test_a_missing_namespace_is_named(plan):
    report = copy.deepcopy(REPORT)
    report["ndctl_namespaces"] = [n for n in report["ndctl_namespaces"] if n["dev"] != "namespace3.0"]
    check = next(c for c in judge(plan, report) if c.name == "/dev/pmem3 namespace")
    assert not check.passed and "no namespace starts at 0x1c0000000" in check.detail


def test_devdax_rows_fail_when_daxctl_or_the_read_back_do(plan):
    report = copy.deepcopy(REPORT)
    report["dax_devices"][0]["flush_test"]["verification"] = "failed"
    assert failed(plan, report) == ["/dev/dax1.0 stores read back"]
    report = copy.deepcopy(REPORT)
    report["dax_devices"][0]["daxctl"] = None
    assert failed(plan, report) == ["/dev/dax1.0 device DAX"]
    report["dax_devices"] = []
    assert failed(plan, report) == ["/dev/dax1.0 device DAX"]


def test_a_device_dax_with_another_alignment_than_planned_fails_its_row(plan):
    report = copy.deepcopy(REPORT)
    report["dax_devices"][0]["daxctl"]["align"] = 4096      # planned: the default 2M
    (row,) = [c for c in judge(plan, report) if not c.passed]
    assert row.name == "/dev/dax1.0 device DAX" and "align 4 KiB; planned align 2 MiB" in row.detail


def test_sector_with_dax_or_map_sync_is_not_sector_mode(plan):
    report = copy.deepcopy(REPORT)
    mount = next(m for m in report["mounts"] if m["device"] == "/dev/pmem2s")
    mount["flush_test"]["map_sync"] = True
    assert failed(plan, report) == ["/dev/pmem2s without DAX (sector mode)"]
    mount["flush_test"]["map_sync"] = False
    mount["options"].append("dax=always")
    mount["flush_test"]["statx_dax"] = True
    assert failed(plan, report) == ["/dev/pmem2s without DAX (sector mode)"]


def test_raw_with_dax_support_is_not_raw(plan):
    report = copy.deepcopy(REPORT)
    next(d for d in report["devices"] if d["name"] == "pmem3")["dax_capable"] = True
    assert failed(plan, report) == ["/dev/pmem3 raw block device without DAX"]
    report["devices"] = [d for d in report["devices"] if d["name"] != "pmem3"]
    assert failed(plan, report) == ["/dev/pmem3 raw block device without DAX"]


def test_fsdax_on_pfn_metadata_still_needs_dax_and_map_sync(plan):
    report = copy.deepcopy(REPORT)
    mount = next(m for m in report["mounts"] if m["device"] == "/dev/pmem0")
    mount["flush_test"]["map_sync"] = False
    mount["flush_test"]["map_sync_error"] = "Operation not supported"
    assert failed(plan, report) == ["/dev/pmem0 MAP_SYNC"]


PMDK_REPORT = json.loads((Path(__file__).parent.parent / "data" / "report-pmdk-dev.json").read_text())


@pytest.fixture(scope="module")
def pmdk_plan():
    return plan_of_file(PROFILES / "pmdk-dev.yaml")[0]


def pmdk_of(report):
    return next(m for m in report["mounts"] if m["device"] == "/dev/pmem0")["pmdk"]


def test_the_real_pmdk_report_passes_with_its_pmdk_rows(pmdk_plan):
    names = [c.name for c in judge(pmdk_plan, PMDK_REPORT)]
    assert failed(pmdk_plan, PMDK_REPORT) == []
    assert {"/dev/pmem0 PMDK sees pmem", "/dev/pmem0 PMDK pool", "/dev/dax1.0 PMDK sees pmem"} <= set(names)


@pytest.mark.parametrize("change", [
    lambda r: r["pmem2"].update(granularity="PAGE"),     # PMDK does not see pmem: it would msync
    lambda r: r.update(pmem_is_pmem=False),
    lambda r: r["pmem2"].update(read_back=False),
    lambda r: r.update(pmem2={"error": "pmem2_map_new: Operation not supported"}),
])
def test_pmdk_not_seeing_pmem_fails(pmdk_plan, change):
    report = copy.deepcopy(PMDK_REPORT)
    change(pmdk_of(report))
    assert failed(pmdk_plan, report) == ["/dev/pmem0 PMDK sees pmem"]


@pytest.mark.parametrize("change", [
    lambda r: r["pool"].update(value_read_back=False),
    lambda r: r["pool"].update(created=False, reopened=False, error="pmemobj_create: No space left on device"),
    lambda r: r["pmempool_check"].update(exit=1, output="pool header incorrect\n/mnt/pmem0/x.obj: not consistent"),
    lambda r: r["pmempool_check"].update(exit=0, output="/mnt/pmem0/x.obj: not consistent"),
])
def test_a_pool_that_does_not_hold_or_is_not_consistent_fails(pmdk_plan, change):
    report = copy.deepcopy(PMDK_REPORT)
    change(pmdk_of(report))
    assert failed(pmdk_plan, report) == ["/dev/pmem0 PMDK pool"]


def test_no_pmdk_result_on_a_pmdk_image_fails(pmdk_plan):
    report = copy.deepcopy(PMDK_REPORT)
    next(m for m in report["mounts"] if m["device"] == "/dev/pmem0")["pmdk"] = None
    report["dax_devices"][0]["pmdk"] = {"error": "cannot open", "exit": 2}
    assert failed(pmdk_plan, report) == ["/dev/pmem0 PMDK sees pmem", "/dev/dax1.0 PMDK sees pmem"]
