"""What a finished build records beside its image: SHA256SUMS, plan.json and manifest.json."""

import json
import os
import struct
import time
from pathlib import Path
from typing import Optional

from .. import __version__
from ..plan.backends import backend_for
from ..plan.backends.cxl import devices as cxl_devices
from ..plan.model import Plan
from ..profile.errors import PmemImageError
from ..render.launch import launch_argv, libvirt_domain
from .hashing import sha256_file
from .kernel import KernelArtifact
from .contents import CONTENTS
from .mkosi import KEPT_SUFFIXES, tools_dir
from .toolchain import code_sha256, toolchain

MANIFEST = "manifest.json"
PACKER_MANIFEST = "packer-manifest.json"   # the shape of Packer's manifest post-processor, for pipelines
SUMS = "SHA256SUMS"


def kernel_release_from_bzimage(path: Path) -> str:
    """The kernel release string a bzImage carries (setup header field kernel_version)."""
    with open(path, "rb") as stream:
        header = stream.read(0x210)
        if len(header) < 0x210 or header[0x202:0x206] != b"HdrS":
            return ""
        (offset,) = struct.unpack_from("<H", header, 0x20E)
        stream.seek(offset + 0x200)
        return stream.read(256).split(b"\0")[0].decode(errors="replace").split(" ")[0]


def file_stamp(path: Path) -> dict:
    """Size, modification time and inode: a file written in place (a booted .raw) no longer matches, without
    hashing gigabytes on every no-op build."""
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino}


def read_manifest(directory: Path) -> Optional[dict]:
    try:
        return json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def machine_needed(plan: Plan) -> dict:
    """What an imported template needs to get its pmem: the firmware, and exactly the memory layout the
    regions assume (more or less RAM moves or drops them)."""
    return {"firmware": plan.firmware, "machine": plan.machine, "minimum_memory": plan.memory, "cpus": plan.cpus,
            "memory_layout": [f"memmap={r.memmap}" for r in plan.regions if r.memmap],
            **_memory_devices(plan)}


def _memory_devices(plan: Plan) -> dict[str, list[dict]]:
    """The memory devices a launch must give, under the backend's name ("nvdimms", "virtio_pmem"; memmap has
    none): each one's backing file in state/, its size, and an NVDIMM's label area."""
    if plan.pmem_backend == "cxl":
        return {"cxl_devices": _cxl_devices(plan)}
    backend = backend_for(plan.pmem_backend)
    files = backend.state_files(plan)
    devices = [{"device": f"/dev/{r.device}", "state_file": f"state/{f.name}", "file_size": f.size, "size": r.size,
                **({"label_size": r.label_size} if backend.labelled else {})}
               for r, f in zip(plan.regions, files, strict=False)]
    return {"virtio_pmem": devices} if plan.pmem_backend == "virtio-pmem" else {"nvdimms": devices}


def _cxl_devices(plan: Plan) -> list[dict]:
    """The CXL type-3 devices: which region (window) each serves at which interleave position, where it sits
    (host bridge, root port), its serial number (how the image finds it) and its two backing files."""
    regions = {r.number: r for r in plan.regions}
    return [{"device": f"/dev/{regions[d.region].device}", "window": d.region, "position": d.position,
             "host_bridge": d.host_bridge, "root_port": d.root_port, "serial": d.serial,
             "state_file": f"state/cxl{d.number}.img", "size": d.size,
             "label_file": f"state/cxl{d.number}-labels.img", "label_size": d.label_size} for d in cxl_devices(plan)]


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    partial.replace(path)


def write_listings(directory: Path, manifest: dict) -> None:
    """manifest.json, packer-manifest.json, then SHA256SUMS over every file of the build (the images and
    exports by the sums the manifest holds, the rest hashed now), each file replaced whole."""
    entries = manifest["files"]
    packer = {"builds": [{
        "name": manifest["name"], "builder_type": "pmem-image", "build_time": manifest.get("built_at_epoch", 0),
        "files": [{"name": e["name"], "size": e["size"]} for e in entries],
        "artifact_id": f"{manifest['name']}:{manifest['build_key'][:16]}",
        "packer_run_uuid": manifest["build_key"][:32],
        "custom_data": {"plan_hash": manifest["plan_hash"], "memmap": " ".join(manifest["memmap"]),
                        "formats": ",".join(a["format"] for a in manifest.get("artifacts", [])),
                        "firmware": manifest["launch"]["firmware"], "memory": str(manifest["launch"]["memory"])},
    }], "last_run_uuid": manifest["build_key"][:32]}
    _write_atomically(directory / PACKER_MANIFEST, json.dumps(packer, indent=2) + "\n")
    _write_atomically(directory / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    known = {e["name"]: e["sha256"] for e in entries}
    others = sorted(p.name for p in directory.iterdir()
                    if p.is_file() and p.name not in known and p.name != SUMS and not p.name.startswith("."))
    sums = {**known, **{name: sha256_file(directory / name) for name in others}}
    _write_atomically(directory / SUMS, "".join(f"{sums[name]}  {name}\n" for name in sorted(sums)))


def add_artifact(directory: Path, plan: Plan, artifact: dict) -> dict:
    """Record an export made after the build (pmem-image export): manifest, SHA256SUMS, packer manifest."""
    manifest = read_manifest(directory)
    if manifest is None:
        raise PmemImageError(f"{directory} holds no manifest.json", "build the profile first")
    path = directory / artifact["file"]
    manifest["files"] = [e for e in manifest["files"] if e["name"] != artifact["file"]] + [
        {"name": artifact["file"], **file_stamp(path), "sha256": artifact["sha256"]}]
    manifest["artifacts"] = [a for a in manifest.get("artifacts", []) if a["format"] != artifact["format"]] + [
        {**artifact, "machine": machine_needed(plan)}]
    write_listings(directory, manifest)
    return manifest


def write_results(result: Path, plan: Plan, key: str, mkosi_version: str, profile_sha256: str,
                  seconds: float, kernel: Optional[KernelArtifact], config_release: str,
                  final_directory: Optional[Path] = None, artifacts: tuple[dict, ...] = (),
                  package_layer: Optional[dict] = None) -> dict:
    exported = {a["file"]: a["sha256"] for a in artifacts}   # hashed when written: not read again
    images = sorted(p for p in result.iterdir()
                    if p.name.endswith(KEPT_SUFFIXES) or p.name in ("kernel.config", CONTENTS) or p.name in exported)
    raw = result / f"{plan.name}.raw"
    if not raw.exists():
        raise PmemImageError(f"mkosi finished but produced no {raw.name}", f"see {result / 'build.log'}")
    entries = [{"name": p.name, **file_stamp(p), "sha256": exported.get(p.name) or sha256_file(p)} for p in images]
    vmlinuz = result / f"{plan.name}.vmlinuz"
    manifest = {
        "name": plan.name,
        "profile_sha256": profile_sha256,
        "plan_hash": plan.digest(),
        "build_key": key,
        "pmem_image_version": __version__,
        "mkosi_version": mkosi_version,
        # every tool version that writes bytes, and the byte-writing code (both are in the build key)
        "toolchain": toolchain(tools_dir()),
        "code_sha256": code_sha256(),
        "distribution": plan.distribution,
        "release": plan.release,
        "kernel_release": kernel_release_from_bzimage(vmlinuz) if vmlinuz.exists() else config_release,
        "kernel_source": plan.kernel_source,
        "kernel_version": plan.kernel_version,
        "kernel_build_key": kernel.key if kernel else None,
        "kernel_built_now": kernel.built if kernel else None,
        # out/.cache/layers/NAME, and whether this build took its packages from it (gc keeps the ones in use)
        "package_layer": package_layer,
        "kernel_fragments": plan.kernel_fragments,
        "kernel_cmdline": plan.kernel_cmdline,
        "pmem_backend": plan.pmem_backend,
        "memmap": [f"memmap={r.memmap}" for r in plan.regions if r.memmap],
        "image": raw.name,
        # The launch contract: the regions exist only on this machine type with exactly this much RAM (memmap),
        # or with these NVDIMMs (nvdimm).
        "launch": {"machine": plan.machine, "memory": plan.memory, "cpus": plan.cpus, "firmware": plan.firmware,
                   **_memory_devices(plan),
                   "qemu_argv": launch_argv(plan), "libvirt_domain": f"{plan.name}.libvirt.xml"},
        "files": entries,
        "artifacts": [{**a, "machine": machine_needed(plan)} for a in artifacts],
        "build_seconds": round(seconds, 1),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "built_at_epoch": int(time.time()),
    }
    write_local_files(result, plan, final_directory or result, manifest)
    return manifest


def write_local_files(directory: Path, plan: Plan, final_directory: Path, manifest: dict) -> None:
    """What a build directory holds of this machine (never pushed): the libvirt domain with this machine's
    paths, plan.json (the whole plan, users' password hashes and keys among it: readable by root only, like
    the image's /etc/shadow), then the listings over everything."""
    (directory / f"{plan.name}.libvirt.xml").write_text(libvirt_domain(plan, final_directory / manifest["image"]))
    descriptor = os.open(directory / "plan.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(json.dumps(plan.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
    write_listings(directory, manifest)
