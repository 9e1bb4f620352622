"""Every export format written by the real qemu-img and tar from a small raw disk, and checked as written;
each check also fails on a container that is not what it claims (so none of them can pass by accident)."""

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from builder.build import exports
from builder.build.manifest import PACKER_MANIFEST, add_artifact, read_manifest, write_listings
from builder.knowledge.formats import FORMATS, boot_bus
from builder.runner import Runner
from conftest import PROFILES, ROOT, plan_of_file

pytestmark = pytest.mark.integration
MIB = 1 << 20


@pytest.fixture(scope="module")
def plan():
    return plan_of_file(PROFILES / "default.yaml")[0]


def fake_raw(directory: Path, size: int) -> Path:
    """A sparse disk with some bytes written, so the containers have data to carry."""
    raw = directory / "default.raw"
    with open(raw, "wb") as stream:
        stream.truncate(size)
        for offset in (0, size // 2, size - 4096):
            stream.seek(offset)
            stream.write(b"pmem-image" * 400)
    return raw


def qemu_info(path: Path, image_format: str) -> dict:
    return json.loads(subprocess.run(["qemu-img", "info", "--output=json", "-f", image_format, str(path)],
                                     capture_output=True, text=True, check=True).stdout)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_each_format_is_written_and_checked(tmp_path, plan, name):
    raw = fake_raw(tmp_path, 64 * MIB)
    entry = exports.export(plan, raw, name, tmp_path, Runner(out=io.StringIO()))
    path = tmp_path / entry["file"]
    assert path.exists() and entry["size"] == path.stat().st_size and entry["virtual_size"] == 64 * MIB
    assert entry["bus"] == boot_bus(name, plan.firmware) and not list(tmp_path.glob(".export-*"))
    if name in ("qcow2", "vmdk", "vhdx", "vhd"):
        info = qemu_info(path, FORMATS[name].qemu_format)
        assert info["virtual-size"] == 64 * MIB
        # The disk inside reads back as the raw it came from.
        same = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", FORMATS[name].qemu_format, str(raw),
                               str(path)], capture_output=True, text=True)
        assert same.returncode == 0, same.stdout + same.stderr


def test_vhd_of_an_odd_sized_disk_is_a_whole_number_of_mib(tmp_path, plan):
    """Azure: the fixed VHD's virtual size is a whole number of MiB, the file that plus a 512-byte footer."""
    raw = fake_raw(tmp_path, 64 * MIB + 5 * 512)
    entry = exports.export(plan, raw, "vhd", tmp_path, Runner(out=io.StringIO()))
    assert entry["virtual_size"] == 65 * MIB and entry["size"] == 65 * MIB + 512
    assert raw.stat().st_size == 64 * MIB + 5 * 512          # the build's raw disk is left as it was


def test_ova_holds_ovf_mf_vmdk_in_order_and_the_sums_match(tmp_path, plan):
    raw = fake_raw(tmp_path, 64 * MIB)
    entry = exports.export(plan, raw, "ova", tmp_path, Runner(out=io.StringIO()))
    ova = tmp_path / entry["file"]
    with tarfile.open(ova) as archive:
        assert archive.getnames() == ["default.ovf", "default.mf", "default.vmdk"]
        ovf = archive.extractfile("default.ovf").read().decode()
    assert 'vmw:value="bios"' in ovf and ">4096</rasd:VirtualQuantity>" in ovf and "VirtualSCSI" in ovf
    assert "streamOptimized" in ovf and "memmap=1G!4G" in ovf
    # A tampered member no longer matches the manifest's SHA256.
    tampered = tmp_path / "tampered.ova"
    with tarfile.open(ova) as source, tarfile.open(tampered, "w", format=tarfile.USTAR_FORMAT) as target:
        for member in source.getmembers():
            data = source.extractfile(member).read()
            if member.name.endswith(".ovf"):
                data = data.replace(b"VirtualSCSI", b"lsilogic\x20\x20\x20")
            target.addfile(member, io.BytesIO(data))
    with pytest.raises(exports.ExportCheckFailed, match="SHA256 of default.ovf"):
        exports.check_ova(tampered, 64 * MIB)


def test_gce_is_disk_raw_alone_in_an_oldgnu_gzip_tar(tmp_path, plan):
    raw = fake_raw(tmp_path, 64 * MIB)
    entry = exports.export(plan, raw, "gce", tmp_path, Runner(out=io.StringIO()))
    listing = subprocess.run(["tar", "-tvzf", str(tmp_path / entry["file"])], capture_output=True, text=True,
                             check=True).stdout.split()
    assert listing[-1] == "disk.raw" and str(64 * MIB) in listing
    with tarfile.open(tmp_path / entry["file"], "r:gz") as archive:
        (member,) = archive.getmembers()
        assert member.name == "disk.raw" and member.issparse()        # sparse handling: holes are not stored
    with pytest.raises(exports.ExportCheckFailed, match="expected disk.raw"):
        wrong = tmp_path / "wrong.tar.gz"
        subprocess.run(["tar", "-czf", str(wrong), "-C", str(tmp_path), "default.raw"], check=True)
        exports.check_gce(wrong, 64 * MIB)


def test_a_container_that_is_not_what_it_claims_fails_its_check(tmp_path):
    raw = fake_raw(tmp_path, 64 * MIB)
    sparse_vmdk = tmp_path / "sparse.vmdk"           # monolithicSparse: ESXi-importable it is not
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", str(raw), str(sparse_vmdk)], check=True)
    with pytest.raises(exports.ExportCheckFailed, match="expected streamOptimized"):
        exports._check_container(sparse_vmdk, "vmdk", 64 * MIB, Runner(out=io.StringIO()))
    dynamic = tmp_path / "dynamic.vhd"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vpc", str(raw), str(dynamic)], check=True)
    with pytest.raises(exports.ExportCheckFailed):
        exports._check_container(dynamic, "vpc", 64 * MIB, Runner(out=io.StringIO()))


def test_listings_cover_every_file_and_take_later_exports(tmp_path, plan):
    raw = fake_raw(tmp_path, 64 * MIB)
    manifest = {"name": "default", "build_key": "k" * 64, "plan_hash": "p" * 64, "memmap": ["memmap=1G!4G"],
                "launch": {"firmware": "bios", "memory": 4 << 30}, "artifacts": [],
                "files": [{"name": raw.name, "size": raw.stat().st_size, "sha256": "0" * 64}]}
    write_listings(tmp_path, manifest)
    entry = exports.export(plan, raw, "qcow2", tmp_path, Runner(out=io.StringIO()))
    add_artifact(tmp_path, plan, entry)
    recorded = read_manifest(tmp_path)
    assert [a["format"] for a in recorded["artifacts"]] == ["qcow2"]
    assert recorded["artifacts"][0]["machine"]["memory_layout"] == ["memmap=1G!4G"]
    assert recorded["artifacts"][0]["machine"]["minimum_memory"] == 4 << 30
    sums = (tmp_path / "SHA256SUMS").read_text()
    assert f"{entry['sha256']}  default.qcow2" in sums and "default.raw" in sums
    packer = json.loads((tmp_path / PACKER_MANIFEST).read_text())
    files = {f["name"]: f["size"] for f in packer["builds"][0]["files"]}
    assert files["default.qcow2"] == entry["size"] and packer["builds"][0]["artifact_id"].startswith("default:")


def test_ova_takes_the_vmdk_export_of_the_same_build_as_it_is(tmp_path, plan):
    raw = fake_raw(tmp_path, 64 * MIB)
    runner = Runner(out=io.StringIO())
    vmdk = exports.export(plan, raw, "vmdk", tmp_path, runner)
    exports.export(plan, raw, "ova", tmp_path, runner)
    with tarfile.open(tmp_path / "default.ova") as archive:
        inner = archive.extractfile("default.vmdk").read()
    assert hashlib.sha256(inner).hexdigest() == vmdk["sha256"]
    assert runner.out.getvalue().count("qemu-img convert ") == 1       # the ova made no second conversion


def test_sha256sums_cover_the_metadata_files_too(tmp_path, plan):
    raw = fake_raw(tmp_path, 64 * MIB)
    (tmp_path / "plan.json").write_text("{}\n")
    manifest = {"name": "default", "build_key": "k" * 64, "plan_hash": "p" * 64, "memmap": ["memmap=1G!4G"],
                "launch": {"firmware": "bios", "memory": 4 << 30}, "artifacts": [],
                "files": [{"name": raw.name, "size": raw.stat().st_size,
                           "sha256": hashlib.sha256(raw.read_bytes()).hexdigest()}]}
    write_listings(tmp_path, manifest)
    checked = subprocess.run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=tmp_path, capture_output=True,
                             text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert {line.split(":")[0] for line in checked.stdout.splitlines()} == {
        "default.raw", "plan.json", "manifest.json", "packer-manifest.json"}


@pytest.mark.parametrize("name, inner, image_format", [("ova", "default.vmdk", "vmdk"), ("gce", "disk.raw", "raw")])
def test_verify_boots_the_disk_inside_an_ova_or_a_gce_tarball(tmp_path, plan, name, inner, image_format):
    from builder.verify.templates import boot_disk
    raw = fake_raw(tmp_path, 64 * MIB)
    entry = exports.export(plan, raw, name, tmp_path, Runner(out=io.StringIO()))
    write_listings(tmp_path, {"name": "default", "build_key": "k" * 64, "plan_hash": "p" * 64, "memmap": [],
                              "launch": {"firmware": "bios", "memory": 4 << 30}, "artifacts": [entry], "files": []})
    work = tmp_path / "work"
    work.mkdir()
    disk, disk_format, bus = boot_disk(plan, tmp_path, work, name, Runner(out=io.StringIO()))
    assert (disk, disk_format) == (work / inner, image_format) and bus in ("pvscsi", "virtio-scsi")
    same = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", image_format, str(raw), str(disk)],
                          capture_output=True, text=True)
    assert same.returncode == 0, same.stdout + same.stderr


def _export_all(directory: Path, plan, later: float = 0) -> dict:
    import os
    import time
    directory.mkdir()
    raw = fake_raw(directory, 64 * MIB)
    os.utime(raw, (time.time() + later,) * 2)
    return {name: exports.export(plan, raw, name, directory, Runner(out=io.StringIO()))["sha256"]
            for name in sorted(FORMATS)}


def _identifiers(path: Path, name: str) -> bytes:
    """The bytes qemu-img draws at random: the vmdk descriptor's CID, the VHD footer's unique id and the
    VHDX headers' GUIDs (first 64 KiB of header 1)."""
    data = path.read_bytes()
    if name == "vmdk":
        return next(line for line in data[512:4096].splitlines() if line.startswith(b"CID="))
    if name == "vhd":
        return data[-512 + 68:-512 + 84]
    return data[64 * 1024 + 16:64 * 1024 + 64]


def test_every_export_is_bit_identical_between_two_builds(tmp_path, plan):
    """The same raw disk exported twice, seconds apart (a new file time, a new wall clock): every format comes
    out identical: qemu-img's random CID/GUIDs come from the plan's seed and the VHD's creation time is
    SOURCE_DATE_EPOCH; gce's member time and gzip header carry no build time. It fails if any of them does
    not."""
    import time
    first = _export_all(tmp_path / "a", plan)
    time.sleep(1.1)
    second = _export_all(tmp_path / "b", plan, later=5)
    assert first == second


def test_another_profile_gets_other_disk_identifiers(tmp_path, plan):
    """Repeatable is not constant: a profile with another seed gets another vmdk CID, VHD id and VHDX GUIDs
    (two different templates imported side by side must not share a disk id)."""
    other = plan.model_copy(update={"seed": "6f1d1c1e-0000-4000-8000-000000000000"})
    for name in ("vmdk", "vhd", "vhdx"):
        ids = []
        for which, p in (("a", plan), ("b", other)):
            directory = tmp_path / f"{name}-{which}"
            directory.mkdir()
            entry = exports.export(p, fake_raw(directory, 64 * MIB), name, directory, Runner(out=io.StringIO()))
            ids.append(_identifiers(directory / entry["file"], name))
        assert ids[0] != ids[1] and len(set(ids[0])) > 1, (name, ids)


def test_all_exports_two_at_a_time_equal_one_at_a_time(tmp_path, plan):
    """export_all runs two workers: the files are the same bytes as exported one by one, the entries come
    in the plan's order, and the ova packs the vmdk export (4 qemu-img conversions for 6 formats)."""
    wanted = ["vhdx", "ova", "qcow2", "gce", "vmdk", "vhd"]
    several = plan.model_copy(update={"formats": wanted})
    one_by_one = _export_all(tmp_path / "sequential", plan)
    directory = tmp_path / "parallel"
    directory.mkdir()
    runner = Runner(out=io.StringIO())
    entries = exports.export_all(several, fake_raw(directory, 64 * MIB), directory, runner)
    assert [e["format"] for e in entries] == wanted
    assert {e["format"]: e["sha256"] for e in entries} == one_by_one
    assert runner.out.getvalue().count("qemu-img convert ") == 4
    # bootstrap's pinned writers, not the host's: the same qemu-img, tar and gzip on every host
    prefix = ROOT / ".tools" / "exports"
    assert all(f"{prefix / tool} " in runner.out.getvalue() for tool in ("qemu-img", "tar")), runner.out.getvalue()
