"""The nvdimm backend on real images booted in QEMU: nvdimm-lab is built and proven with --power-cycle (the
first boot makes labelled namespaces in fresh NVDIMM files and passes the whole proof; a new QEMU process
finds namespaces, filesystem, seeds and PMDK pool in those files), and the same command on the memmap
default profile shows its pmem lost at power-off, as RAM is. Both on the direct kernel boot (--fast): what
persists is the NVDIMM's host file, whatever loaded the kernel."""

import os

import pytest

from cli import OUT, pmem_image, proven, rows, running
from conftest import PROFILES

pytestmark = [pytest.mark.boot, pytest.mark.skipif(os.geteuid() != 0, reason="mkosi builds need root")]


def test_nvdimm_lab_is_proven_and_its_pmem_survives_a_power_off():
    report = proven("build", "--verify", "--power-cycle", "--fast", "--json", str(PROFILES / "nvdimm-lab.yaml"))
    passed = rows(report)
    for row in ("ACPI NFIT NVDIMM regions", "/dev/pmem0 namespace", "/dev/pmem0 DAX active", "/dev/pmem0 MAP_SYNC",
                "/dev/pmem0 PMDK pool", "/dev/dax1.0 namespace", "/dev/dax1.0 stores read back", "ssh login as dev",
                "power-cycle: second boot proof", "/dev/pmem0 namespace found in its labels",
                "/dev/dax1.0 namespace found in its labels", "/dev/pmem0 survives power-off",
                "/dev/pmem0 PMDK pool survives power-off"):
        assert row in passed, row
    assert "e820" not in " ".join(passed) and not any(r.startswith("cmdline memmap=") for r in passed)
    first, second = report["first_boot_report"], report["guest_report"]
    # The first boot made the namespaces in empty label areas; the second found them there.
    assert [s["action"] for s in first["namespace_setup"]] == ["created", "created"]
    assert [s["action"] for s in second["namespace_setup"]] == ["kept", "kept"]
    assert {s["mountpoint"]: (s["seed"], s["pool"]) for s in first["seeded"]} == {"/mnt/pmem0": ("ok", "ok")}
    assert "memmap=" not in second["cmdline"]
    state = OUT / "nvdimm-lab" / "verify" / "state"
    sizes = sorted(path.stat().st_size for path in state.glob("nvdimm*.img"))
    assert sizes == [(512 << 20) + (128 << 10), (1 << 30) + (128 << 10)]
    print(f"\nnvdimm-lab power-cycle: first boot {report['first_boot_seconds']:.0f} s, "
          f"second boot {report['boot_seconds']:.0f} s")



def test_pmem_image_test_runs_as_the_labs_user_on_its_nvdimm_pmem(tmp_path):
    """`pmem-image test` on the nvdimm backend: the command runs as the profile's first user (dev) once both
    namespaces are in their modes, the xfs mount stands, the group pmem has its access and PMDK's testconfig
    names the NVDIMM's device DAX, writes into the share (made writable for dev's uid:
    9p keeps the host's permissions) and its exit code (1) comes back."""
    tmp_path.chmod(0o777)
    script = ("id -un; findmnt -no FSTYPE /mnt/pmem0; test -c /dev/dax1.0 && echo devdax; "
              "systemctl is-active pmem-ready.target pmem-access.service; "
              "grep -h '^DEVICE_DAX_PATH=\\|^PMEM_FS_DIR=' /etc/pmem-image/pmdk/testconfig.sh; "
              "echo by dev > written; exit 1")
    result = pmem_image("test", "--share", str(tmp_path), str(OUT / "nvdimm-lab"), "--", "sh", "-c", script,
                        timeout=900)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines() == ["dev", "xfs", "devdax", "active", "active", "PMEM_FS_DIR=/mnt/pmem0/pmdk-tests",
                                          "DEVICE_DAX_PATH=(/dev/dax1.0)"], result.stdout + result.stderr
    assert (tmp_path / "written").read_text() == "by dev\n"

def test_a_file_on_the_labs_pmem_outlives_a_changed_build_a_clean_and_a_forced_build(tmp_path):
    """Written in a `run` (the instance state in out/.state/nvdimm-lab/), the file is there after a build of
    the profile changed where the layout stays (a kernel argument), then `clean` and `build --force`: one
    `run` after all three (each could only have lost it; the new image's command line shows it booted)."""
    profile = tmp_path / "nvdimm-lab.yaml"
    profile.write_text((PROFILES / "nvdimm-lab.yaml").read_text())
    with running(profile, "nvdimm-lab", tmp_path / "first.log") as ssh:
        wrote = ssh("sudo -n sh -c 'echo kept > /mnt/pmem0/lab-data && sync && cat /mnt/pmem0/lab-data'")
        assert wrote.returncode == 0 and wrote.stdout == "kept\n", wrote.stdout + wrote.stderr
    layout = sorted(p.relative_to(OUT) for p in (OUT / ".state" / "nvdimm-lab").glob("pmem-*/nvdimm*.img"))
    assert len(layout) == 2, layout
    profile.write_text(profile.read_text() + "kernel:\n  cmdline: [quiet]\n")
    rebuilt = pmem_image("build", str(profile))
    assert rebuilt.returncode == 0 and "up to date" not in rebuilt.stderr, rebuilt.stderr[-3000:]
    assert sorted(p.relative_to(OUT) for p in (OUT / ".state" / "nvdimm-lab").glob("pmem-*/nvdimm*.img")) == layout
    cleaned = pmem_image("clean", "nvdimm-lab")
    assert cleaned.returncode == 0 and "kept nvdimm-lab's instance state" in cleaned.stdout, cleaned.stdout
    assert pmem_image("build", "--force", str(profile)).returncode == 0
    with running(profile, "nvdimm-lab", tmp_path / "second.log") as ssh:
        assert ssh("cat", "/mnt/pmem0/lab-data").stdout == "kept\n"
        assert "quiet" in ssh("cat", "/proc/cmdline").stdout          # the changed image booted
    assert sorted(p.relative_to(OUT) for p in (OUT / ".state" / "nvdimm-lab").glob("pmem-*/nvdimm*.img")) == layout
