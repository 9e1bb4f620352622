"""The cxl backend: its rules, its plan and launch contract, and its proof rows judged on real reports of the
shipped cxl-lab profile's two boots (TCG, `verify --fast --power-cycle`; the second boot's kernel named the
devices the other way round, and the regions were found by serial number): they pass, and each row fails when
what it names is broken (a device missing or resized, a window gone, a region in the wrong place or order)."""

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from builder.plan.backends.cxl import devices
from builder.profile.errors import ProfileError
from builder.render.launch import QEMU_NAMESPACE, libvirt_domain, machine_arguments
from builder.render.outputs import render
from builder.verify.proof import judge
from conftest import PROFILES, plan_of_file, plan_of_text

DATA = Path(__file__).parent.parent / "data"
FIRST = json.loads((DATA / "report-cxl-lab-boot1.json").read_text())
SECOND = json.loads((DATA / "report-cxl-lab-boot2.json").read_text())
INTERLEAVED = """
name: il
distribution: {name: debian, release: trixie}
vm: {memory: 2G}
pmem_backend: cxl
cxl: {host_bridges: 2, interleave_ways: 4, interleave_granularity: 1024}
pmem:
  - size: 1G
  - {size: 2G, mode: devdax}
"""


@pytest.fixture(scope="module")
def plan():
    return plan_of_file(PROFILES / "cxl-lab.yaml")[0]


def failed(plan, report):
    return [c.name for c in judge(plan, report) if not c.passed]


def test_each_region_is_a_window_over_its_devices_found_by_serial(plan):
    assert [(d.number, d.region, d.position, d.host_bridge, d.root_port, d.size >> 20, d.serial)
            for d in devices(plan)] == [(0, 0, 0, 0, 0, 512, 1), (1, 1, 0, 0, 1, 256, 2)]
    assert [(r.device, r.start, r.label_size, r.reconfigure) for r in plan.regions] == [
        ("pmem0", None, 128 << 10, True), ("dax1.0", None, 128 << 10, True)]
    assert "cxl" in plan.packages and plan.cxl.vm_gate == "cpuid" and "cxl" in plan.kernel_fragments
    assert "cxl-vm-gate" not in plan.kernel_fragments   # a distribution kernel: the CPUID hides the hypervisor


def test_interleaved_devices_alternate_over_the_host_bridges_with_a_port_each():
    plan = plan_of_text(INTERLEAVED)[0]
    assert [(d.region, d.position, d.host_bridge, d.root_port, d.size >> 20) for d in devices(plan)] == [
        (0, 0, 0, 0, 256), (0, 1, 1, 0, 256), (0, 2, 0, 1, 256), (0, 3, 1, 1, 256),
        (1, 0, 0, 2, 512), (1, 1, 1, 2, 512), (1, 2, 0, 3, 512), (1, 3, 1, 3, 512)]
    argv = machine_arguments(plan, Path("d.qcow2"), "tcg", state=Path("st"))
    assert argv[2] == ("q35,cxl=on,cxl-fmw.0.targets.0=cxl.0,cxl-fmw.0.targets.1=cxl.1,cxl-fmw.0.size=1024M,"
                       "cxl-fmw.0.interleave-granularity=1024,cxl-fmw.1.targets.0=cxl.0,cxl-fmw.1.targets.1=cxl.1,"
                       "cxl-fmw.1.size=2048M,cxl-fmw.1.interleave-granularity=1024")
    assert argv[argv.index("-m") + 1] == "2048M"          # windows are not DIMM slots
    assert argv[argv.index("-cpu") + 1] == "max,-hypervisor"
    assert "pxb-cxl,bus_nr=28,bus=pcie.0,id=cxl.1" in argv and "virtio-blk-pci,drive=root,bus=pcie.0" in argv
    assert "cxl-type3,bus=cxl-rp7,persistent-memdev=cxl-mem7,lsa=cxl-lsa7,id=cxl-pmem7,sn=8" in argv
    script = render(plan)["mkosi.extra/usr/lib/pmem-image/pmem-cxl-regions"].content
    assert "commit 0 1073741824 4 1024 1 2 3 4\n" in script and "commit 1 2147483648 4 1024 5 6 7 8\n" in script


def test_a_kernel_built_here_gets_the_commit_test_option_and_keeps_the_hypervisor_bit():
    text = INTERLEAVED.replace("vm: {memory: 2G}", "vm: {memory: 2G}\nkernel: {source: debian-source, version: "
                               "\"6.12\"}")
    plan = plan_of_text(text)[0]
    assert plan.cxl.vm_gate == "kernel" and plan.kernel_options["CXL_REGION_INVALIDATION_TEST"] == "y"
    argv = machine_arguments(plan, Path("d.qcow2"), "tcg")
    assert argv[argv.index("-cpu") + 1] == "max"


def test_libvirt_carries_the_topology_through_qemu_passthrough_and_hides_the_hypervisor(plan):
    domain = ET.fromstring(libvirt_domain(plan, Path("/srv/out/cxl-lab/cxl-lab.raw")))
    args = [a.get("value") for a in domain.iter(f"{{{QEMU_NAMESPACE}}}arg")]
    assert args[:2] == ["-machine", "cxl=on,cxl-fmw.0.targets.0=cxl.0,cxl-fmw.0.size=512M,"
                                    "cxl-fmw.1.targets.0=cxl.0,cxl-fmw.1.size=256M"]
    assert any(a.endswith("/srv/out/.state/cxl-lab/" + a.split("/.state/cxl-lab/")[1]) and "cxl0-labels.img" in a
               for a in args if a and "/.state/" in a)
    assert domain.find("cpu/feature").attrib == {"policy": "disable", "name": "hypervisor"}
    assert domain.find("maxMemory") is None and domain.find("devices/memory") is None


def test_both_real_boots_pass_every_row(plan):
    assert failed(plan, FIRST) == [] and failed(plan, SECOND) == []
    names = [c.name for c in judge(plan, SECOND)]
    assert {"CXL memdevs", "CXL ports", "CXL decoders", "CXL region 0", "CXL region 1", "CXL nd regions"} <= set(names)


def _broken(report, change):
    report = copy.deepcopy(report)
    change(report["cxl"])
    return report


@pytest.mark.parametrize("change, row", [
    (lambda c: c["memdevs"].pop(), "CXL memdevs"),
    (lambda c: c["memdevs"][0].update(pmem_size=128 << 20), "CXL memdevs"),
    (lambda c: c["ports"][0]["dports"].pop(), "CXL ports"),
    (lambda c: c["root_decoders"].pop(), "CXL decoders"),
    (lambda c: c["regions"][0].update(decode_state="reset"), "CXL region 0"),
    (lambda c: c["regions"][1].update(resource=c["regions"][1]["resource"] + (256 << 20)), "CXL region 1"),
    (lambda c: c["regions"][0].update(size=256 << 20), "CXL region 0"),
    (lambda c: c["regions"][0]["mappings"][0].update(memdev=c["regions"][1]["mappings"][0]["memdev"]), "CXL region 0"),
    (lambda c: c["setup"][1].update(action="failed"), "CXL region 1"),
])
def test_each_cxl_row_fails_when_what_it_names_is_broken(plan, change, row):
    assert row in failed(plan, _broken(SECOND, change))


def test_a_report_without_the_cxl_listing_fails():
    plan = plan_of_file(PROFILES / "cxl-lab.yaml")[0]
    report = {k: v for k, v in SECOND.items() if k != "cxl"}
    assert "CXL memdevs" in failed(plan, report)


def test_the_manifest_names_every_device_with_its_place_serial_and_files():
    from builder.build.manifest import machine_needed
    needed = machine_needed(plan_of_text(INTERLEAVED)[0])
    assert needed["memory_layout"] == [] and len(needed["cxl_devices"]) == 8
    assert needed["cxl_devices"][5] == {
        "device": "/dev/dax1.0", "window": 1, "position": 1, "host_bridge": 1, "root_port": 2, "serial": 6,
        "state_file": "state/cxl5.img", "size": 512 << 20, "label_file": "state/cxl5-labels.img",
        "label_size": 128 << 10}


def test_windows_beyond_the_guest_address_space_are_refused():
    with pytest.raises(ProfileError, match="beyond the 1T of guest physical addresses"):
        plan_of_text(INTERLEAVED.replace("size: 1G", "size: 1020G"))
