"""Booting a template as its platform would: the export itself (not the raw disk it came from) on the
platform's disk bus, and a proof row that the root filesystem really came from that bus."""

import re
import shutil
import tarfile
from pathlib import Path
from typing import Optional

from ..build.manifest import read_manifest
from ..knowledge.formats import FORMATS, boot_bus
from ..plan.model import Plan
from ..profile.errors import PmemImageError, UsageError
from ..runner import Runner
from .result import Check

# The kernel's names for disks on each bus.
ROOT_DEVICE = {"virtio": r"^/dev/vd[a-z]+\d*$", "pvscsi": r"^/dev/sd[a-z]+\d*$", "ahci": r"^/dev/sd[a-z]+\d*$",
               "virtio-scsi": r"^/dev/sd[a-z]+\d*$",
               "nvme": r"^/dev/nvme\d+n\d+(p\d+)?$"}


def boot_disk(plan: Plan, directory: Path, work: Path, export_format: Optional[str], runner: Runner
              ) -> tuple[Path, str, str]:
    """(disk, its qemu format, bus): the raw disk on virtio, or the named export on its platform's bus
    (the vmdk out of an ova, disk.raw out of a gce tarball)."""
    if export_format is None:
        return directory / f"{plan.name}.raw", "raw", "virtio"
    artifact = next((a for a in (read_manifest(directory) or {}).get("artifacts", [])
                     if a.get("format") == export_format), None)
    if artifact is None or not (directory / artifact["file"]).exists():
        raise UsageError(f"{plan.name} has no {export_format} export in {directory}",
                         f"make it: pmem-image export {directory} --format {export_format} (or list it under formats:)")
    path, fmt = directory / artifact["file"], FORMATS[export_format]
    bus = boot_bus(export_format, plan.firmware)
    if export_format == "ova":
        with tarfile.open(path) as archive:
            member = next(m for m in archive.getmembers() if m.name.endswith(".vmdk"))
            vmdk = work / Path(member.name).name     # the member's own name, never a path out of work/
            source_stream = archive.extractfile(member)
            if source_stream is None:
                raise PmemImageError(f"{path}: {member.name} is not a regular file", "rebuild the ova export")
            with source_stream as source, open(vmdk, "wb") as target:
                shutil.copyfileobj(source, target, 1 << 20)
        return vmdk, "vmdk", bus
    if export_format == "gce":
        runner.run(["tar", "-xzSf", str(path), "-C", str(work), "disk.raw"])
        return work / "disk.raw", "raw", bus
    return path, fmt.qemu_format, bus


def root_disk_check(disk: Path, disk_format: str, bus: str, report: Optional[dict]) -> Check:
    source = (report or {}).get("root_source") or ""
    return Check(f"root disk: {disk.name} ({disk_format}) on {bus}", bool(re.match(ROOT_DEVICE[bus], source)),
                 f"/ is mounted from {source or 'an unknown device'} (the initrd found the disk on {bus})")
