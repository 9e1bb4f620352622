"""Templates from the raw disk: each export format written with qemu-img (and tar for ova and gce), then
checked as written: the container's format, subformat and virtual size (qemu-img info/check), the tar's
member list, and the OVF/MF pair (every SHA256 in the manifest matches its file)."""

import datetime
import hashlib
import json
import os
import shutil
import tarfile
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ..knowledge.formats import AZURE_ALIGN, FORMATS, boot_bus
from ..plan.model import Plan
from ..profile.errors import PmemImageError
from ..profile.sizes import round_up
from ..render.ovf import OVF, ovf_descriptor
from ..runner import Runner
from .hashing import sha256_file
from .mkosi import tools_dir
from .toolchain import export_tool

GCE_MEMBER = "disk.raw"


class ExportCheckFailed(PmemImageError):
    pass


def _tool(name: str) -> str:
    """The pinned qemu-img, tar or gzip (bootstrap's prefix), so that every host writes the same bytes."""
    return export_tool(name, tools_dir())


def _info(path: Path, runner: Runner, image_format: str) -> dict:
    return json.loads(runner.capture([_tool("qemu-img"), "info", "--output=json", "-f", image_format, str(path)]))


def _expect(condition: bool, path: Path, what: str) -> None:
    if not condition:
        raise ExportCheckFailed(f"{path.name}: {what}", "the export was removed; report this with the build log")


def _convert(raw: Path, target: Path, image_format: str, options: tuple[str, ...], plan: Plan,
             runner: Runner) -> None:
    """qemu-img convert, made repeatable. qemu-img draws the vmdk CID and the VHD/VHDX GUIDs from GLib's
    g_random, which seeds itself from /dev/urandom, and stamps a VHD footer with time(): here it reads a
    stream derived from the plan's seed in place of /dev/urandom (bubblewrap) and sees SOURCE_DATE_EPOCH as
    the wall clock (faketime, the monotonic clock left alone). So every export of one raw disk is the same
    file, and different profiles still get different identifiers."""
    stream = target.parent / ".qemu-img-random"
    stream.write_bytes(_seeded_stream(f"{plan.seed}/{image_format}"))
    when = datetime.datetime.fromtimestamp(plan.source_date_epoch, datetime.timezone.utc)
    try:
        runner.run(["bwrap", "--dev-bind", "/", "/", "--ro-bind", str(stream), "/dev/urandom",
                    "env", "TZ=UTC", "FAKETIME_DONT_FAKE_MONOTONIC=1",
                    "faketime", "-f", when.strftime("%Y-%m-%d %H:%M:%S"),
                    _tool("qemu-img"), "convert", "-f", "raw", "-O", image_format, *options, str(raw), str(target)])
    finally:
        stream.unlink(missing_ok=True)


def _seeded_stream(seed: str, size: int = 4096) -> bytes:
    blocks = (hashlib.sha256(f"{seed}/{n}".encode()).digest() for n in range(size // 32))
    return b"".join(blocks)


def _check_container(path: Path, image_format: str, virtual_size: int, runner: Runner) -> dict:
    """qemu-img's reading of what was written: format, virtual size, the format's own consistency check."""
    info = _info(path, runner, image_format)
    _expect(info.get("format") == image_format, path, f"qemu-img reads it as {info.get('format')}, not {image_format}")
    _expect(info.get("virtual-size") == virtual_size, path,
            f"virtual size {info.get('virtual-size')}, expected {virtual_size}")
    data = (info.get("format-specific") or {}).get("data") or {}
    if image_format == "qcow2":
        _expect(data.get("compat") == "1.1", path, f"qcow2 compat {data.get('compat')}, expected 1.1")
    if image_format == "vmdk":
        _expect(data.get("create-type") == "streamOptimized", path,
                f"vmdk create type {data.get('create-type')}, expected streamOptimized")
    if image_format == "vpc":
        # A fixed VHD is the disk's bytes and a 512-byte footer, nothing else.
        _expect(path.stat().st_size == virtual_size + 512, path,
                f"{path.stat().st_size} bytes is not a fixed VHD of {virtual_size} (+512)")
        _expect(virtual_size % AZURE_ALIGN == 0, path, "virtual size is not a whole number of MiB (Azure)")
    if image_format in ("qcow2", "vmdk", "vhdx"):
        result = runner.query([_tool("qemu-img"), "check", "-f", image_format, str(path)])
        _expect(result.returncode == 0, path, f"qemu-img check: {(result.stdout + result.stderr).strip()[-300:]}")
    return info


def _azure_sized(raw: Path, scratch: Path, runner: Runner) -> tuple[Path, int]:
    """The raw disk, grown to a whole number of MiB when it is not already one (a sparse copy: the build's
    raw disk stays as it is)."""
    size = raw.stat().st_size
    aligned = round_up(size, AZURE_ALIGN)
    if aligned == size:
        return raw, size
    copy = scratch / "azure.raw"
    runner.run(["cp", "--sparse=always", str(raw), str(copy)])
    os.truncate(copy, aligned)
    return copy, aligned


def _ova(plan: Plan, raw: Path, target: Path, scratch: Path, runner: Runner) -> int:
    vmdk = scratch / f"{plan.name}.vmdk"
    fmt = FORMATS["vmdk"]
    made = scratch.parent / vmdk.name
    if made.exists():
        os.link(made, vmdk)     # the vmdk export of this very raw disk (same build directory): no second convert
    else:
        _convert(raw, vmdk, fmt.qemu_format, fmt.qemu_options, plan, runner)
    capacity = raw.stat().st_size
    _check_container(vmdk, "vmdk", capacity, runner)
    ovf = scratch / f"{plan.name}.ovf"
    ovf.write_text(ovf_descriptor(plan, vmdk.name, vmdk.stat().st_size, capacity))
    mf = scratch / f"{plan.name}.mf"
    mf.write_text("".join(f"SHA256({p.name})= {sha256_file(p)}\n" for p in (ovf, vmdk)))
    # The OVF descriptor first, then the manifest, then the disk (OVF 1.0 section 5.3); plain ustar.
    with tarfile.open(target, "w", format=tarfile.USTAR_FORMAT) as archive:
        for member in (ovf, mf, vmdk):
            info = archive.gettarinfo(str(member), arcname=member.name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644        # not the scratch file's, which the build host's umask decides
            info.mtime = plan.source_date_epoch
            with open(member, "rb") as stream:
                archive.addfile(info, stream)
    return capacity


def check_ova(path: Path, capacity: int) -> None:
    """Member order, the MF's SHA256 of each member, and the OVF's file size and disk capacity."""
    with tarfile.open(path) as archive:
        members = archive.getmembers()
        names = [m.name for m in members]
        _expect(len(names) == 3 and names[0].endswith(".ovf") and names[1].endswith(".mf")
                and names[2].endswith(".vmdk"), path, f"members {names}, expected .ovf, .mf, .vmdk in that order")
        contents: dict[str, Any] = {}      # member -> bytes (ovf, mf); member:sha256 -> hex
        for member in members:
            digest = hashlib.sha256()
            stream = archive.extractfile(member)
            _expect(stream is not None, path, f"member {member.name} is not a regular file")
            assert stream is not None
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
                if member.name.endswith((".ovf", ".mf")):
                    contents[member.name] = contents.get(member.name, b"") + chunk
            contents[member.name + ":sha256"] = digest.hexdigest()
    listed = dict(line[len("SHA256("):].split(")= ") for line in contents[names[1]].decode().splitlines())
    _expect(set(listed) == {names[0], names[2]}, path, f"the manifest lists {sorted(listed)}")
    for name, digest in listed.items():
        _expect(contents[name + ":sha256"] == digest, path, f"SHA256 of {name} does not match the manifest")
    root = ET.fromstring(contents[names[0]])
    file_element = root.find(f"{{{OVF}}}References/{{{OVF}}}File")
    disk = root.find(f"{{{OVF}}}DiskSection/{{{OVF}}}Disk")
    vmdk = members[2]
    _expect(file_element is not None and file_element.get(f"{{{OVF}}}href") == vmdk.name
            and file_element.get(f"{{{OVF}}}size") == str(vmdk.size), path, "the OVF's File does not match the vmdk")
    _expect(disk is not None and disk.get(f"{{{OVF}}}capacity") == str(capacity), path,
            "the OVF's disk capacity is not the disk's size")


def _gce(raw: Path, target: Path, scratch: Path, epoch: int, runner: Runner) -> int:
    member = scratch / GCE_MEMBER
    os.link(raw, member)            # the same inode under the name GCE wants: no copy, sparseness kept
    # The member's time is SOURCE_DATE_EPOCH and gzip -n stores no time either: two builds give one archive.
    # tar runs the compressor by name: the pinned gzip is found first on its PATH.
    gzip = Path(_tool("gzip"))
    path = os.pathsep.join([str(gzip.parent)] * gzip.is_absolute() + [os.environ.get("PATH", os.defpath)])
    runner.run([_tool("tar"), "--format=oldgnu", "-S", "-cf", str(target), "-I", "gzip -n", "-C", str(scratch),
                "--owner=0", "--group=0", "--numeric-owner", "--mode=0644", f"--mtime=@{epoch}", GCE_MEMBER],
               env={**os.environ, "PATH": path})
    return raw.stat().st_size


def check_gce(path: Path, size: int) -> None:
    with tarfile.open(path, "r:gz") as archive:
        members = archive.getmembers()
    _expect([m.name for m in members] == [GCE_MEMBER], path, f"members {[m.name for m in members]}, expected disk.raw")
    _expect(members[0].size == size, path, f"disk.raw holds {members[0].size} bytes, expected {size}")


def export(plan: Plan, raw: Path, name: str, directory: Path, runner: Runner) -> dict:
    """Write the `name` export of raw into directory, check it, and return its manifest entry. Written under a
    temporary name and renamed: a failed or killed export leaves no half file under the real name."""
    fmt = FORMATS[name]
    target = directory / f"{plan.name}{fmt.suffix}"
    scratch = directory / f".export-{name}-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    partial = scratch / target.name
    started = time.monotonic()
    try:
        if name == "ova":
            virtual_size = _ova(plan, raw, partial, scratch, runner)
            check_ova(partial, virtual_size)
        elif name == "gce":
            virtual_size = _gce(raw, partial, scratch, plan.source_date_epoch, runner)
            check_gce(partial, virtual_size)
        else:
            source, virtual_size = _azure_sized(raw, scratch, runner) if name == "vhd" else (raw, raw.stat().st_size)
            _convert(source, partial, fmt.qemu_format, fmt.qemu_options, plan, runner)
            _check_container(partial, fmt.qemu_format, virtual_size, runner)
        os.replace(partial, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"format": name, "file": target.name, "size": target.stat().st_size, "sha256": sha256_file(target),
            "virtual_size": virtual_size, "bus": boot_bus(name, plan.firmware), "platform": fmt.platform,
            "seconds": round(time.monotonic() - started, 1)}


# Slowest first (each is one single-threaded compressor: gzip, zlib for vmdk and qcow2), so two workers
# finish together; ova follows vmdk in the same worker, since it packs the vmdk export's file.
_SLOWEST_FIRST = ("gce", "vmdk", "qcow2", "vhd", "vhdx", "ova")
WORKERS = 2


def export_all(plan: Plan, raw: Path, directory: Path, runner: Runner, workers: int = WORKERS) -> tuple[dict, ...]:
    """Every export the plan asks for, `workers` at a time, as manifest entries in the plan's order. A
    failure or an interrupt stops the exports still running and starts no other."""
    chains = [[name] for name in _SLOWEST_FIRST if name in plan.formats and name != "ova"]
    if "ova" in plan.formats:
        vmdk = next((chain for chain in chains if chain == ["vmdk"]), None)
        if vmdk is not None:
            vmdk.append("ova")
        else:
            chains.append(["ova"])
    entries: dict[str, dict] = {}
    cancelled = threading.Event()

    def run_chain(chain: list[str]) -> None:
        try:
            for name in chain:
                if cancelled.is_set():
                    return
                entries[name] = export(plan, raw, name, directory, runner)
        except BaseException:
            cancelled.set()         # before this worker takes the next chain
            raise

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="export")
    try:
        futures = [pool.submit(run_chain, chain) for chain in chains]
        wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            if future.done() and (error := future.exception()) is not None:
                raise error
        for future in futures:
            future.result()
    except BaseException:
        cancelled.set()
        runner.stop_all()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return tuple(entries[name] for name in plan.formats)
