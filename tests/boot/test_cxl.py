"""The cxl backend on real images booted in QEMU (direct kernel boot, TCG, Debian trixie's own kernel with the
hypervisor bit hidden). The shipped cxl-lab profile is built and proven with --power-cycle: its two devices
enumerate by serial number, each region commits in its own window, the fsdax xfs and device DAX namespaces come
from the labels, and a new QEMU process replays the regions and finds the seeds and the PMDK pool in the host
files. A second image interleaves one region over two devices behind one host bridge."""

import os

import pytest

from cli import OUT, proven, rows
from conftest import FIXTURES, PROFILES

pytestmark = [pytest.mark.boot, pytest.mark.skipif(os.geteuid() != 0, reason="mkosi builds need root")]
CXL_ROWS = ("CXL memdevs", "CXL ports", "CXL decoders", "CXL nd regions")


def test_cxl_lab_is_proven_and_its_regions_are_replayed_after_a_power_off():
    report = proven("build", "--verify", "--power-cycle", "--fast", "--json", str(PROFILES / "cxl-lab.yaml"))
    passed = rows(report)
    assert {*CXL_ROWS, "CXL region 0", "CXL region 1", "power-cycle: second boot proof", "ssh login as dev"} <= set(passed)
    for row in ("namespace", "DAX active", "MAP_SYNC", "stores reach the file", "PMDK sees pmem", "PMDK pool",
                "survives power-off", "PMDK pool survives power-off"):
        assert f"/dev/pmem0 {row}" in passed, row
    for row in ("namespace", "device DAX", "stores read back", "PMDK sees pmem"):
        assert f"/dev/dax1.0 {row}" in passed, row
    assert passed["/dev/pmem0 MAP_SYNC"].startswith("MAP_SYNC accepted")
    first, second = report["first_boot_report"], report["guest_report"]
    assert [s["action"] for s in first["cxl"]["setup"]] == ["committed", "committed"]
    assert [s["action"] for s in second["cxl"]["setup"]] == ["committed", "committed"]   # replayed, not kept
    assert [n["action"] for n in first["namespace_setup"]] == ["created", "created"]
    assert [n["action"] for n in second["namespace_setup"]] == ["kept", "kept"]          # found in the labels
    state = OUT / "cxl-lab" / "verify" / "state"
    assert sorted(path.stat().st_size for path in state.glob("cxl*.img")) == [128 << 10, 128 << 10, 256 << 20,
                                                                               512 << 20]
    print(f"\ncxl-lab power-cycle: first boot {report['first_boot_seconds']:.0f} s, "
          f"second boot {report['boot_seconds']:.0f} s; stores {passed['/dev/pmem0 stores reach the file']}")


def test_a_region_interleaved_over_two_devices_is_proven():
    report = proven("build", "--verify", "--fast", "--json", str(FIXTURES / "valid" / "cxl-interleave.yaml"))
    passed = rows(report)
    assert {*CXL_ROWS, "CXL region 0", "/dev/pmem0 DAX active", "/dev/pmem0 stores reach the file"} <= set(passed)
    assert "2 way(s) of 4096 bytes over serials [1, 2]" in passed["CXL region 0"]
    assert "1 host bridge(s) with [2] root port(s)" in passed["CXL ports"]
