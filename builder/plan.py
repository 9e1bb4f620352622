"""Profile -> Plan: every default filled in and every derived value computed once.

Templates and the build only read the Plan; nothing downstream re-derives a memmap argument,
a mount option or a package name.
"""

import hashlib
import json
import uuid
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict

from . import __version__
from .checks import KASLR_MEMMAP_LIMIT, default_mountpoints, run_checks
from .distros import build_packages, image_packages
from .errors import Problem, ProfileError
from .host import AptMirror
from .kconfig import load_fragments, required_options, resolve_fragments
from .kernels import DAX_TRISTATE, format_version, resolve_kernel_version
from .loader import SourceMap, sort_problems
from .memory import Span, memory_map
from .model import Profile
from .sizes import format_size

FRAGMENTS_DIR = Path(__file__).resolve().parent.parent / "kernel-fragments"
SEED_NAMESPACE = uuid.UUID("6c1d3c2e-5b0f-4f7e-9a55-706d656d2d69")
# Fixed so an unchanged profile gives the same file timestamps; bumped only with the renderer.
SOURCE_DATE_EPOCH = 1767225600  # 2026-01-01T00:00:00Z
BASE_CMDLINE = ("console=tty0", "console=ttyS0", "rw", "systemd.firstboot=off")


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PlannedRegion(Frozen):
    index: int                    # position in the profile's pmem list
    device: str                   # pmem0: the kernel numbers e820 regions by address
    start: int
    size: int
    memmap: str                   # SIZE!OFFSET
    filesystem: Literal["ext4", "xfs", "none"]
    mountpoint: Optional[str]
    dax_option: Optional[str]     # dax=always or dax
    mount_options: list[str]
    mount_unit: Optional[str]     # systemd's name for the mountpoint's .mount unit
    mkfs: list[str]               # argv, device last


class Plan(Frozen):
    renderer_version: str
    name: str
    description: str
    distribution: str
    release: str
    mirror: Optional[AptMirror]
    kernel_source: str
    kernel_version: str
    kernel_url: Optional[str]          # tarball: URL, or absolute local path
    kernel_sha256: Optional[str]
    kernel_path: Optional[str]         # tree: absolute path
    kernel_base: str                   # tinyconfig | defconfig (kernels built from source)
    kernel_fragments: list[str]        # resolved: automatic ones, then those the profile names
    kernel_options: dict[str, str]     # SYMBOL -> y/m/n the kernel must end up with
    kernel_cmdline: list[str]
    memory: int
    cpus: int
    machine: str
    firmware: Literal["bios", "uefi"]
    bios_bootloader: bool
    regions: list[PlannedRegion]
    packages: list[str]
    build_packages: list[str]
    seed: str
    source_date_epoch: int
    memory_map: list[dict]

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


def _dax_option(filesystem: str, mode: str, kernel: tuple) -> Optional[str]:
    if filesystem == "none":
        return None
    if mode == "legacy" or (mode == "auto" and kernel < DAX_TRISTATE[filesystem]):
        return "dax"
    return "dax=always"


def _mkfs(filesystem: str, device: str) -> list[str]:
    if filesystem == "ext4":
        # mke2fs picks 1 KiB blocks below 512 MiB; DAX needs page-sized blocks.
        return ["mkfs.ext4", "-q", "-F", "-b", "4096", "-L", device, f"/dev/{device}"]
    if filesystem == "xfs":
        # DAX and reflink cannot be used together; xfsprogs >= 5.1 defaults to reflink=1.
        return ["mkfs.xfs", "-q", "-f", "-m", "reflink=0", "-L", device, f"/dev/{device}"]
    return []


def _local_or_url(url: Optional[str], base_dir: Path) -> Optional[str]:
    if url is None or "://" in url:
        return url
    return str((base_dir / url).resolve())


def mount_unit_name(path: str) -> str:
    """systemd-escape --path --suffix=mount, for the characters a mountpoint may hold here."""
    escaped = []
    for index, part in enumerate(path.strip("/").split("/")):
        text = "".join(c if c.isalnum() or c in "_." else f"\\x{ord(c):02x}" for c in part)
        escaped.append(("\\x2e" + text[1:]) if text.startswith(".") else text)
    return "-".join(escaped) + ".mount"


def _plan_regions(profile: Profile, kernel: tuple) -> list[PlannedRegion]:
    by_address = sorted(enumerate(profile.pmem), key=lambda item: item[1].offset)
    mountpoints = default_mountpoints(profile)
    planned = []
    for number, (index, region) in enumerate(by_address):
        device = f"pmem{number}"
        dax = _dax_option(region.filesystem, region.dax, kernel)
        mountpoint = None if region.filesystem == "none" else mountpoints[index]
        options = [] if dax is None else [
            dax, "nofail", f"x-systemd.requires=pmem-mkfs@{device}.service", "x-systemd.device-timeout=60s"]
        planned.append(PlannedRegion(
            index=index, device=device, start=region.offset, size=region.size,
            memmap=f"{format_size(region.size)}!{format_size(region.offset)}", filesystem=region.filesystem,
            mountpoint=mountpoint, mount_unit=mount_unit_name(mountpoint) if mountpoint else None, dax_option=dax, mount_options=options, mkfs=_mkfs(region.filesystem, device)))
    return planned


def make_plan(profile: Profile, filename: str = "<profile>", source: Optional[SourceMap] = None,
              mirror: Optional[AptMirror] = None, fragments_dir: Path = FRAGMENTS_DIR) -> tuple[Plan, list[Problem]]:
    """Resolve a validated profile (and its warnings), or raise ProfileError with every problem."""
    kernel, problems = resolve_kernel_version(profile.distribution.name, profile.distribution.release,
                                              profile.kernel.source, profile.kernel.version)
    if kernel is not None:
        problems += run_checks(profile, kernel, fragments_dir)
    if source is not None:
        problems = [source.locate(p) for p in problems]
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ProfileError(filename, sort_problems(problems))
    warnings = [p for p in problems if p.severity == "warning"]

    regions = _plan_regions(profile, kernel)
    cmdline = [*BASE_CMDLINE, *(f"memmap={r.memmap}" for r in regions)]
    if len(regions) > KASLR_MEMMAP_LIMIT and "nokaslr" not in profile.kernel.cmdline:
        cmdline.append("nokaslr")
    cmdline += profile.kernel.cmdline
    spans = memory_map(profile.vm.memory, profile.vm.machine,
                       [Span(r.start, r.start + r.size, "pmem", f"/dev/{r.device}") for r in regions])
    bios = profile.vm.firmware == "bios"
    from_source = profile.kernel.source != "distro"
    fragments = resolve_fragments(load_fragments(fragments_dir), kernel, {r.filesystem for r in regions},
                                  profile.kernel.fragments, from_source)
    base_dir = Path(filename).parent if source is not None else Path.cwd()
    plan = Plan(
        renderer_version=__version__, name=profile.name, description=profile.description,
        distribution=profile.distribution.name, release=profile.distribution.release,
        mirror=mirror if profile.distribution.name == "debian" else None,
        kernel_source=profile.kernel.source, kernel_version=format_version(kernel),
        kernel_url=_local_or_url(profile.kernel.url, base_dir), kernel_sha256=profile.kernel.sha256,
        kernel_path=str((base_dir / profile.kernel.path).resolve()) if profile.kernel.path else None,
        kernel_base=profile.kernel.base, kernel_fragments=[f.name for f in fragments],
        kernel_options=required_options(fragments), kernel_cmdline=cmdline,
        memory=profile.vm.memory, cpus=profile.vm.cpus, machine=profile.vm.machine, firmware=profile.vm.firmware,
        bios_bootloader=bios, regions=regions,
        packages=image_packages(profile.distribution.name, bios, any(r.filesystem == "xfs" for r in regions),
                                distro_kernel=not from_source),
        build_packages=build_packages(profile.distribution.name),
        seed=str(uuid.uuid5(SEED_NAMESPACE, profile.name)), source_date_epoch=SOURCE_DATE_EPOCH,
        memory_map=[{"start": s.start, "end": s.end, "kind": s.kind, "label": s.label} for s in spans],
    )
    return plan, warnings
