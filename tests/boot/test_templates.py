"""Templates booted as their platforms would: the templates profile builds every export (each checked as
written), then qcow2 on virtio, vmdk on PVSCSI, vhd on AHCI and the GCE tarball's disk.raw on NVMe each
pass the pmem proof, and a NoCloud seed provisions a user once across two boots of the qcow2 export."""

import json
import os
import subprocess

import pytest

from cli import OUT, pmem_image, proven
from conftest import PMEM_IMAGE, PROFILES, debugfs, root_filesystem

pytestmark = [pytest.mark.boot, pytest.mark.skipif(os.geteuid() != 0, reason="mkosi builds need root")]
PROFILE = str(PROFILES / "templates.yaml")


def test_every_export_is_built_checked_and_listed():
    built = pmem_image("build", PROFILE)
    assert built.returncode == 0, built.stderr[-4000:]
    directory = OUT / "templates"
    manifest = json.loads((directory / "manifest.json").read_text())
    artifacts = {a["format"]: a for a in manifest["artifacts"]}
    assert sorted(artifacts) == ["gce", "ova", "qcow2", "vhd", "vhdx", "vmdk"]
    for artifact in artifacts.values():
        print(f"\n{artifact['format']:<6} {artifact['size'] / 2**20:8.1f} MiB in {artifact['seconds']:5.1f} s")
        assert artifact["machine"]["minimum_memory"] == 4 << 30 and artifact["machine"]["memory_layout"] == [
            "memmap=1G!4G"]
    assert artifacts["vhd"]["virtual_size"] % (1 << 20) == 0
    # SHA256SUMS covers every file the build lists, artifacts included, and every sum holds.
    sums = subprocess.run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=directory, capture_output=True,
                          text=True)
    assert sums.returncode == 0, sums.stdout + sums.stderr
    listed = {line.split()[1] for line in (directory / "SHA256SUMS").read_text().splitlines() if line}
    assert {a["file"] for a in artifacts.values()} | {"templates.raw"} <= listed
    packer = json.loads((directory / "packer-manifest.json").read_text())
    assert {f["name"] for f in packer["builds"][0]["files"]} >= {a["file"] for a in artifacts.values()}
    again = pmem_image("build", PROFILE)
    assert again.returncode == 0 and "up to date" in again.stderr      # exports are part of the no-op


# qcow2 on virtio is booted by the cloud-init test below (its two boots are that export's proof).
@pytest.mark.parametrize("export_format, bus, disk_format", [("vmdk", "pvscsi", "vmdk"), ("vhd", "ahci", "vpc")])
def test_each_template_boots_on_its_platform_bus_and_proves_pmem(export_format, bus, disk_format):
    report = proven("verify", "--format", export_format, "--json", PROFILE)
    rows = {c["name"]: c for c in report["checks"]}
    (disk_row,) = [name for name in rows if name.startswith("root disk:")]
    assert f"({disk_format}) on {bus}" in disk_row
    assert rows["/dev/pmem0 DAX active"]["passed"] and report["disk"]["bus"] == bus


def test_the_qcow2_template_boots_on_virtio_and_cloud_init_provisions_a_user_once_across_two_boots():
    """As a KVM cloud starts the template: the qcow2 export on virtio with a NoCloud seed; both boots go through
    the firmware and GRUB of the export (a template is what gets published)."""
    report = proven("verify", "--format", "qcow2", "--cloud-init", "--json", PROFILE)
    names = [c["name"] for c in report["checks"] if c["passed"]]
    assert any(n.startswith("root disk:") and n.endswith("(qcow2) on virtio") for n in names), names
    assert report["disk"] == {**report["disk"], "format": "qcow2", "bus": "virtio", "export": "qcow2"}
    assert "/dev/pmem0 DAX active" in names and "ssh login as cloudy" in names
    assert "cloud-init user logs in, provisioned once" in names and "cloud-init second boot: not provisioned again" \
        in names


def test_the_template_ships_no_cloud_init_instance_state():
    source, _ = root_filesystem(OUT / "templates" / "templates.raw")
    listing = debugfs(source, "ls -l /var/lib/cloud")
    assert "instances" not in listing and "instance" not in listing.split()
    config = debugfs(source, "cat /etc/cloud/cloud.cfg.d/90-pmem-image.cfg")
    assert "- [ephemeral0]" in config


# The tests that build come last: the boots above can run while the other worker builds (a source kernel
# compile holds the build lock for minutes), and they do not need the lock.
def test_a_forced_rebuild_gives_every_export_bit_identical(tmp_path):
    """build --force of the unchanged templates profile: the raw disk, kernel, initrd and all six exports
    (qcow2, vmdk, ova, vhd, vhdx, gce) have the same sha256 as the first build; `pmem-image diff` says
    which differ otherwise. (The rebuild takes its packages from the package layer.)"""
    import shutil
    import time
    directory = OUT / "templates"
    before = tmp_path / "before"
    before.mkdir()
    for name in ("manifest.json", "templates.manifest", "contents.json"):
        shutil.copy(directory / name, before / name)
    # The exports' first 4 MiB (headers, logs, allocation tables: where a format keeps its identifiers), so
    # that a mismatch can say where the bytes differ (CI once saw the vhdx differ, and never since).
    heads = {path.name: _head(path) for path in directory.iterdir() if path.suffix in (".qcow2", ".vmdk", ".vhdx")}
    started = time.monotonic()
    rebuilt = pmem_image("build", "--force", PROFILE)
    assert rebuilt.returncode == 0, rebuilt.stderr[-4000:]
    diff = subprocess.run([str(PMEM_IMAGE), "diff", str(before), str(directory)], capture_output=True, text=True)
    assert diff.returncode == 0, diff.stdout + diff.stderr + "".join(
        f"\n{name}: first 4 MiB differ at {_differing_ranges(head, _head(directory / name))}"
        for name, head in heads.items())
    exports = {a["file"] for a in json.loads((directory / "manifest.json").read_text())["artifacts"]}
    compared = {f["name"] for f in json.loads((before / "manifest.json").read_text())["files"]}
    assert len(exports) == 6 and exports <= compared
    print(f"\nforced rebuild of templates with 6 exports: {time.monotonic() - started:.0f} s, bit-identical")


def _head(path, size: int = 4 << 20) -> bytes:
    with open(path, "rb") as file:
        return file.read(size)


def _differing_ranges(a: bytes, b: bytes) -> list[str]:
    """Where two byte strings differ, as hex offset ranges (runs closer than 16 bytes merged), at most 20."""
    offsets = [i for i in range(min(len(a), len(b))) if a[i] != b[i]] + ([min(len(a), len(b))] if len(a) != len(b) else [])
    ranges: list[list[int]] = []
    for offset in offsets:
        if ranges and offset - ranges[-1][1] <= 16:
            ranges[-1][1] = offset
        else:
            ranges.append([offset, offset])
    return [f"{start:#x}+{end - start + 1}" for start, end in ranges[:20]] or ["none"]


def test_the_gce_tarball_of_a_uefi_template_boots_on_nvme():
    """GCE's NVMe needs UEFI here too: SeaBIOS cannot reach an NVMe controller mapped above 4 GiB."""
    uefi = str(PROFILES / "templates-uefi.yaml")
    built = pmem_image("build", uefi)
    assert built.returncode == 0, built.stderr[-4000:]
    report = proven("verify", "--format", "gce", "--json", uefi)
    rows = {c["name"]: c for c in report["checks"]}
    assert "root disk: disk.raw (raw) on nvme" in rows and report["disk"]["bus"] == "nvme"
    assert rows["/dev/pmem0 MAP_SYNC"]["passed"]
