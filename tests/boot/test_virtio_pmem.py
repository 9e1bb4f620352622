"""The virtio-pmem backend on a real image booted in QEMU: the shipped profile is built and proven with
--power-cycle on the direct kernel boot. Both devices come up as the planned /dev/pmemN at the addresses QEMU
gave them, DAX filesystems mount on them, MAP_SYNC is refused (the row passes because it was), PMDK reports page
granularity and keeps its pool, and a new QEMU process finds the seeds and the pool in the host files."""

import os

import pytest

from cli import OUT, proven, rows
from conftest import PROFILES

pytestmark = [pytest.mark.boot, pytest.mark.skipif(os.geteuid() != 0, reason="mkosi builds need root")]


def test_virtio_pmem_is_proven_without_map_sync_and_its_pmem_survives_a_power_off():
    report = proven("build", "--verify", "--power-cycle", "--fast", "--json", str(PROFILES / "virtio-pmem.yaml"))
    passed = rows(report)
    for device in ("pmem0", "pmem1"):
        for row in ("namespace", "DAX active", "MAP_SYNC", "stores reach the file", "PMDK flushes by msync",
                    "PMDK pool", "survives power-off", "PMDK pool survives power-off"):
            assert f"/dev/{device} {row}" in passed, (device, row)
        assert passed[f"/dev/{device} MAP_SYNC"].startswith("MAP_SYNC refused"), passed[f"/dev/{device} MAP_SYNC"]
        assert "granularity PAGE" in passed[f"/dev/{device} PMDK flushes by msync"]
    assert {"virtio-pmem regions", "power-cycle: second boot proof", "ssh login as dev"} <= set(passed)
    assert not any("NFIT" in r or "e820" in r or r.startswith("cmdline memmap=") for r in passed)
    first, second = report["first_boot_report"], report["guest_report"]
    assert [r["provider"] for r in second["regions"]] == ["virtio-pmem", "virtio-pmem"]
    assert {s["mountpoint"]: (s["seed"], s["pool"]) for s in first["seeded"]} == {
        "/mnt/pmem0": ("ok", "ok"), "/mnt/pmem1": ("ok", "ok")}
    state = OUT / "virtio-pmem" / "verify" / "state"
    assert sorted(path.stat().st_size for path in state.glob("virtio-pmem*.img")) == [512 << 20, 1 << 30]
    print(f"\nvirtio-pmem power-cycle: first boot {report['first_boot_seconds']:.0f} s, "
          f"second boot {report['boot_seconds']:.0f} s")
