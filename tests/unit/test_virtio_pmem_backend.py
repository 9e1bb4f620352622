"""The virtio-pmem backend: its rules, its plan and launch contract, and its proof rows judged on real reports of
the shipped profile's two boots (TCG, `verify --fast --power-cycle`): they pass, and each row fails when what it
names is broken (MAP_SYNC accepted, PMDK seeing pmem, a device missing or moved, data lost)."""

import copy
import json
from pathlib import Path

import pytest

from builder.build.manifest import machine_needed
from builder.plan.backends import backend_for
from builder.profile.errors import ProfileError
from builder.render.launch import launch_argv, libvirt_domain, machine_arguments
from builder.verify.persistence_proof import power_cycle_checks
from builder.verify.proof import judge
from conftest import PROFILES, plan_of_file, plan_of_text

DATA = Path(__file__).parent.parent / "data"
FIRST = json.loads((DATA / "report-virtio-pmem-boot1.json").read_text())
SECOND = json.loads((DATA / "report-virtio-pmem-boot2.json").read_text())


@pytest.fixture(scope="module")
def plan():
    return plan_of_file(PROFILES / "virtio-pmem.yaml")[0]


def failed(plan, report):
    return [c.name for c in judge(plan, report) if not c.passed]


def rows(plan, report):
    return {c.name: c for c in judge(plan, report)}


def test_devices_are_numbered_as_given_without_address_labels_or_namespaces_to_make(plan):
    assert [(r.number, r.device, r.start, r.memmap, r.label_size, r.reconfigure) for r in plan.regions] == [
        (0, "pmem0", None, None, None, False), (1, "pmem1", None, None, None, False)]
    assert plan.pmem_modules == ["virtio_pmem", "nd_pmem"] and "virtio-pmem" in plan.kernel_fragments
    assert "VIRTIO_PMEM" in plan.kernel_options and "ACPI_NFIT" not in plan.kernel_options
    assert not any(a.startswith("memmap=") for a in plan.kernel_cmdline)


def test_qemu_gets_a_virtio_pmem_pci_device_per_region_on_share_on_files(plan, tmp_path):
    argv = machine_arguments(plan, tmp_path / "disk.qcow2", "tcg", state=tmp_path / "st,ate")
    assert argv[argv.index("-machine") + 1] == "q35"            # no nvdimm=on: no NFIT
    assert argv[argv.index("-m") + 1] == "2048M,slots=2,maxmem=4096M"   # 2G + 1G + 512M, in whole GiB
    objects = [argv[i + 1] for i, a in enumerate(argv) if a == "-object"]
    devices = [argv[i + 1] for i, a in enumerate(argv) if a == "-device"]
    assert objects == [f"memory-backend-file,id=pmem0,share=on,mem-path={tmp_path}/st,,ate/virtio-pmem0.img,"
                       f"size={1 << 30}",
                       f"memory-backend-file,id=pmem1,share=on,mem-path={tmp_path}/st,,ate/virtio-pmem1.img,"
                       f"size={512 << 20}"]
    assert devices == ["virtio-pmem-pci,id=virtio-pmem0,memdev=pmem0", "virtio-pmem-pci,id=virtio-pmem1,memdev=pmem1"]
    assert any("mem-path=state/virtio-pmem0.img" in a for a in launch_argv(plan))


def test_the_libvirt_domain_and_the_manifest_carry_the_devices(plan, tmp_path):
    import xml.etree.ElementTree as ET
    domain = ET.fromstring(libvirt_domain(plan, tmp_path / "out" / "virtio-pmem" / "virtio-pmem.raw"))
    memories = domain.findall("devices/memory")
    assert [(m.get("model"), m.get("access")) for m in memories] == [("virtio-pmem", "shared")] * 2
    assert [int(m.findtext("target/size")) for m in memories] == [1 << 20, 512 << 10]    # KiB
    assert all(m.find("target/label") is None and m.find("target/node") is None for m in memories)
    assert domain.find("maxMemory").get("slots") == "2"
    needed = machine_needed(plan)
    assert [d["state_file"] for d in needed["virtio_pmem"]] == ["state/virtio-pmem0.img", "state/virtio-pmem1.img"]
    assert "nvdimms" not in needed and "label_size" not in needed["virtio_pmem"][0]


def test_old_kernels_and_cloud_templates_are_told_apart():
    text = (PROFILES / "virtio-pmem.yaml").read_text()
    with pytest.raises(ProfileError, match="has no virtio_pmem driver"):
        plan_of_text(text.replace("vm:", 'kernel: {source: tarball, version: "5.2", url: "https://cdn.kernel.org/'
                                       'pub/linux/kernel/v5.x/linux-5.2.tar.xz", sha256: "' + "0" * 64 + '"}\nvm:', 1))
    _, warnings = plan_of_text(text + "formats: [qcow2, vhd]\n")
    assert [(w.path, w.severity) for w in warnings] == [(("formats", 1), "warning")]
    assert "virtio-pmem device" in warnings[0].message


def test_both_real_boots_pass_with_the_virtio_rows_and_without_nfit_or_memmap_ones(plan):
    names = [c.name for c in judge(plan, FIRST)]
    assert failed(plan, FIRST) == [] and failed(plan, SECOND) == []
    assert "virtio-pmem regions" in names and "/dev/pmem1 PMDK flushes by msync" in names
    assert not any("NFIT" in n or "e820" in n or "memmap=" in n or "PMDK sees pmem" in n for n in names)
    expect = backend_for(plan.pmem_backend).expectations(plan)
    cycle = power_cycle_checks(plan, SECOND, expect, judge, FIRST)
    assert all(c.passed for c in cycle) and "/dev/pmem1 survives power-off" in [c.name for c in cycle]


def test_map_sync_accepted_fails_because_the_backend_cannot_give_it(plan):
    report = copy.deepcopy(FIRST)
    report["mounts"][0]["flush_test"]["map_sync"] = True
    assert failed(plan, report) == ["/dev/pmem0 MAP_SYNC"]


def test_pmdk_seeing_pmem_fails_it_would_skip_the_msync_the_host_needs(plan):
    report = copy.deepcopy(FIRST)
    report["mounts"][1]["pmdk"]["pmem2"]["granularity"] = "CACHE_LINE"
    assert failed(plan, report) == ["/dev/pmem1 PMDK flushes by msync"]
    report = copy.deepcopy(FIRST)
    report["mounts"][1]["pmdk"]["pmem_is_pmem"] = True
    assert failed(plan, report) == ["/dev/pmem1 PMDK flushes by msync"]


def test_msync_stores_that_do_not_read_back_fail(plan):
    report = copy.deepcopy(FIRST)
    msync = next(r for r in report["mounts"][0]["flush_test"]["results"] if r["method"] == "msync")
    msync["verified"] = False
    assert failed(plan, report) == ["/dev/pmem0 stores reach the file"]


def test_a_missing_or_resized_device_fails(plan):
    report = copy.deepcopy(FIRST)
    report["regions"] = report["regions"][:1]          # the second device never appeared
    assert set(failed(plan, report)) == {"virtio-pmem regions", "/dev/pmem1 namespace"}
    report = copy.deepcopy(FIRST)
    report["regions"][1]["size"] = 256 << 20
    assert failed(plan, report) == ["virtio-pmem regions"]
    report = copy.deepcopy(FIRST)
    for region in report["regions"]:                    # an NVDIMM is not a virtio-pmem device
        region["provider"] = "ACPI.NFIT"
    assert "virtio-pmem regions" in failed(plan, report)


def test_devices_probed_in_another_order_fail_on_their_names(plan):
    """Were the second device pmem0, the namespace found at the first device's address would not be /dev/pmem0."""
    report = copy.deepcopy(FIRST)
    for namespace in report["ndctl_namespaces"]:
        namespace["blockdev"] = {"pmem0": "pmem1", "pmem1": "pmem0"}[namespace["blockdev"]]
    assert {"/dev/pmem0 namespace", "/dev/pmem1 namespace"} <= set(failed(plan, report))


def test_lost_data_after_power_off_fails(plan):
    second = copy.deepcopy(SECOND)
    second["power_cycle"][1]["check_seed"] = "failed"
    expect = backend_for(plan.pmem_backend).expectations(plan)
    cycle = {c.name: c for c in power_cycle_checks(plan, second, expect, judge, FIRST)}
    assert not cycle["/dev/pmem1 survives power-off"].passed and cycle["/dev/pmem0 survives power-off"].passed
