"""The nvdimm and power-cycle proof rows, judged on real reports of nvdimm-lab's two boots (TCG,
`verify --power-cycle`): they pass, and each row fails when what it names is broken."""

import copy
import json
from pathlib import Path

import pytest

from builder.plan.backends import backend_for
from builder.verify.persistence_proof import power_cycle_checks
from builder.verify.proof import judge
from conftest import PROFILES, plan_of_file

DATA = Path(__file__).parent.parent / "data"
FIRST = json.loads((DATA / "report-nvdimm-lab-boot1.json").read_text())
SECOND = json.loads((DATA / "report-nvdimm-lab-boot2.json").read_text())
DEFAULT = json.loads((DATA / "report-default.json").read_text())


@pytest.fixture(scope="module")
def lab():
    return plan_of_file(PROFILES / "nvdimm-lab.yaml")[0]


@pytest.fixture(scope="module")
def default():
    return plan_of_file(PROFILES / "default.yaml")[0]


def failed(plan, report):
    return [c.name for c in judge(plan, report) if not c.passed]


WROTE_SEEDS = {"seeded": [{"mountpoint": "/mnt/pmem0", "seed": "ok", "pool": None}]}    # the first boot's report


def cycle(plan, second, first=WROTE_SEEDS):
    checks = power_cycle_checks(plan, second, backend_for(plan.pmem_backend).expectations(plan), judge, first)
    return {c.name: c for c in checks}


def test_both_real_boots_pass_with_the_nvdimm_rows_and_without_the_memmap_ones(lab):
    names = [c.name for c in judge(lab, FIRST)]
    assert failed(lab, FIRST) == [] and failed(lab, SECOND) == []
    assert "ACPI NFIT NVDIMM regions" in names and not any("e820" in n or "memmap=" in n for n in names)
    assert all(c.passed for c in cycle(lab, SECOND).values())


def test_a_missing_nfit_table_or_region_fails(lab):
    report = copy.deepcopy(FIRST)
    report["nfit_table"] = False
    assert failed(lab, report) == ["ACPI NFIT NVDIMM regions"]
    report = copy.deepcopy(FIRST)
    report["regions"] = report["regions"][:1]      # the second NVDIMM never appeared
    assert set(failed(lab, report)) == {"ACPI NFIT NVDIMM regions", "/dev/dax1.0 namespace"}


def test_an_nvdimm_of_another_size_fails(lab):
    report = copy.deepcopy(FIRST)
    report["regions"][0]["size"] = 512 << 20
    assert failed(lab, report) == ["ACPI NFIT NVDIMM regions"]


def test_a_label_less_namespace_fails(lab):
    """Without a label (the kernel's fixed namespace of an uninitialised label area) nothing outlives the boot."""
    report = copy.deepcopy(FIRST)
    next(n for n in report["ndctl_namespaces"] if n.get("blockdev") == "pmem0").pop("uuid")
    assert failed(lab, report) == ["/dev/pmem0 namespace"]


def test_the_namespace_is_looked_for_where_qemu_put_the_nvdimm(lab):
    report = copy.deepcopy(FIRST)
    report["regions"][0]["resource"] = "0x180000000"
    assert "/dev/pmem0 namespace" in failed(lab, report)


def test_lost_seeds_or_pool_after_power_off_fail_on_an_nvdimm(lab):
    second = copy.deepcopy(SECOND)
    second["power_cycle"][0]["check_seed"] = "failed"
    second["power_cycle"][0]["pmdk_pool"]["read"] = 0
    rows = cycle(lab, second)
    assert not rows["/dev/pmem0 survives power-off"].passed
    assert not rows["/dev/pmem0 PMDK pool survives power-off"].passed
    second["power_cycle"] = None                   # the seeds were never checked
    assert not cycle(lab, second)["/dev/pmem0 survives power-off"].passed


def test_a_namespace_made_again_after_power_off_fails(lab):
    second = copy.deepcopy(SECOND)
    second["namespace_setup"][1]["action"] = "created"
    assert not cycle(lab, second)["/dev/dax1.0 namespace found in its labels"].passed


def test_a_second_boot_that_fails_its_proof_fails_the_power_cycle(lab):
    second = copy.deepcopy(SECOND)
    second["failed_units"] = ["pmem-mkfs@pmem0.service"]
    row = cycle(lab, second)["power-cycle: second boot proof"]
    assert not row.passed and row.evidence == ["no failed units"]
    assert not cycle(lab, None)["power-cycle: second boot report"].passed


def test_memmap_power_off_passes_only_when_the_pattern_is_gone(default):
    second = copy.deepcopy(DEFAULT)
    second["power_cycle"] = [{"mountpoint": "/mnt/pmem0", "check_seed": "failed", "output": "seed file missing",
                              "pmdk_pool": None}]
    rows = cycle(default, second)
    assert rows["/dev/pmem0 power-off loses memmap pmem (expected)"].passed
    assert "/dev/pmem0 survives power-off" not in rows and "/dev/pmem0 namespace found in its labels" not in rows
    second["power_cycle"][0]["check_seed"] = "ok"    # RAM that survived: no real power-off happened
    assert not cycle(default, second)["/dev/pmem0 power-off loses memmap pmem (expected)"].passed
    second["power_cycle"] = None
    assert not cycle(default, second)["/dev/pmem0 power-off loses memmap pmem (expected)"].passed


def test_memmap_power_off_proves_nothing_when_the_first_boot_wrote_no_seeds(default):
    """Review L7: a seed that was never written is also 'gone'; the row needs the first boot's word it wrote it."""
    second = copy.deepcopy(DEFAULT)
    second["power_cycle"] = [{"mountpoint": "/mnt/pmem0", "check_seed": "failed", "output": "seed file missing",
                              "pmdk_pool": None}]
    row = "/dev/pmem0 power-off loses memmap pmem (expected)"
    for first in (None, {"seeded": None}, {"seeded": [{"mountpoint": "/mnt/pmem0", "seed": "failed", "pool": None}]}):
        assert not cycle(default, second, first)[row].passed
        assert "did not write the seeds" in cycle(default, second, first)[row].detail
    assert cycle(default, second)[row].passed
