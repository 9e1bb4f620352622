"""Profile -> Plan: every default filled in and every derived value computed once.

Templates, the build and the proof only read the Plan; nothing downstream re-derives a memmap
argument, a mount option or a package name.
"""

import uuid
from pathlib import Path
from typing import Optional

from .. import __version__
from ..knowledge.distros import Release
from ..knowledge.formats import initrd_modules
from ..knowledge.host import AptMirror, snapshot_sources
from ..knowledge.kconfig import bundled_fragments_dir, load_fragments, required_options, resolve_fragments
from ..knowledge.kernels import DAX_TRISTATE, KernelVersion, format_version
from ..knowledge.memory import Span, memory_map
from ..knowledge.namespaces import BOOT_STATE, DEFAULT_LABEL_SIZE, DEVDAX_ALIGN, device_name
from ..profile.errors import Problem, ProfileError
from ..profile.loader import SourceMap, sort_problems
from ..profile.lock import PackageLock
from ..profile.model import Cxl, Profile
from ..profile.sizes import format_size
from .backends import backend_for
from ..knowledge.proof_paths import mount_unit_name
from .checks import CheckContext, default_mountpoints, resolve_kernel_version, resolve_release, run_checks
from . import access_checks, mode_checks, publish_checks  # noqa: F401  (register their checks)
from .model import MemorySpan, Plan, PlannedCxl, PlannedRegion, PlannedUser

SEED_NAMESPACE = uuid.UUID("6c1d3c2e-5b0f-4f7e-9a55-706d656d2d69")
# Fixed so an unchanged profile gives the same file timestamps; bumped only with the renderer.
SOURCE_DATE_EPOCH = 1767225600  # 2026-01-01T00:00:00Z
VM_GATE_KERNEL = (6, 2, 0)    # the first kernel whose CXL region commit flushes caches (and has the test option)
BASE_CMDLINE = ("console=tty0", "console=ttyS0", "rw", "systemd.firstboot=off")


def _dax_option(filesystem: str, mode: str, kernel: KernelVersion) -> Optional[str]:
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


def _plan_regions(profile: Profile, kernel: KernelVersion) -> list[PlannedRegion]:
    """Regions numbered as the kernel will number them: memmap ones by address, memory devices (NVDIMMs,
    virtio-pmem) in the order QEMU places them (the profile's)."""
    backend = backend_for(profile.pmem_backend)
    placed = backend.placed_by_qemu
    by_address = sorted(enumerate(profile.pmem), key=lambda item: 0 if placed else (item[1].offset or 0))
    mountpoints = default_mountpoints(profile)
    planned = []
    for number, (index, region) in enumerate(by_address):
        device = device_name(region.mode, number)
        filesystem = region.fs
        dax = _dax_option(filesystem, region.dax_mode, kernel) if region.mode == "fsdax" else None
        mountpoint = None if filesystem == "none" else mountpoints[index]
        options = [] if mountpoint is None else [
            *([dax] if dax else []), "nofail", f"x-systemd.requires=pmem-mkfs@{device}.service",
            "x-systemd.device-timeout=60s"]
        planned.append(PlannedRegion(
            index=index, number=number, device=device, mode=region.mode, map=region.struct_pages,
            align=(region.align or DEVDAX_ALIGN) if region.mode == "devdax" else None,
            # An NVDIMM's namespace is made once in its label area, so there is always something to do.
            reconfigure=backend.labelled or (region.mode, region.struct_pages) != BOOT_STATE,
            start=None if placed else region.offset, size=region.size,
            memmap=None if placed else f"{format_size(region.size or 0)}!{format_size(region.offset or 0)}",
            label_size=(region.label_size or DEFAULT_LABEL_SIZE) if backend.labelled else None, filesystem=filesystem,
            mountpoint=mountpoint, mount_unit=mount_unit_name(mountpoint) if mountpoint else None,
            dax_option=dax, mount_options=options, mkfs=_mkfs(filesystem, device)))
    return planned


def _planned_cxl(profile: Profile, from_source: bool, kernel: KernelVersion) -> Optional[PlannedCxl]:
    """The cxl topology, defaults filled in. A kernel built here gets the region-commit test option (its fragment
    cxl-vm-gate.config, from Linux 6.2, which brought the cache flush on commit), so only a distribution kernel
    needs the hypervisor bit hidden."""
    if profile.pmem_backend != "cxl":
        return None
    topology = profile.cxl or Cxl()
    return PlannedCxl(host_bridges=topology.host_bridges, interleave_ways=topology.interleave_ways,
                      interleave_granularity=topology.interleave_granularity,
                      vm_gate="kernel" if from_source and kernel >= VM_GATE_KERNEL else "cpuid")


def _network(profile: Profile) -> str:
    """DHCP when asked, or when there is an SSH server to reach; none otherwise."""
    return profile.network or ("dhcp" if profile.wants_ssh else "none")


def _image_packages(record: Release, profile: Profile) -> list[str]:
    """The pmem tools (both boot loaders, xfsprogs, daxctl) are in every image, whatever its layout and firmware:
    a change of filesystem, namespace mode or firmware is then a change of the image alone, which reuses the
    package layer (seconds, not a cold install of a minute or more), and profiles that differ only there share
    one layer. What the user opts into (PMDK, SSH, cloud-init, users, packages) still decides the layer."""
    chosen = record.packages
    names = [*(chosen.kernel if profile.kernel.source == "distro" else ()), *chosen.base, *chosen.efi_bootloader,
             *chosen.bios_bootloader, *chosen.xfs, *chosen.devdax]
    names += chosen.pmdk if profile.pmdk else ()
    names += chosen.cxl if profile.pmem_backend == "cxl" else ()
    names += chosen.cloud_init if profile.cloud_init else ()
    names += chosen.ssh if profile.wants_ssh else ()
    names += chosen.network if _network(profile) == "dhcp" else ()
    names += chosen.sudo if any(user.sudo for user in profile.users) else ()
    names += chosen.users if profile.users else ()
    return sorted(set(names) | set(profile.packages))


def _lock_problems(lock: PackageLock, record: Release, packages: list[str], build_packages: list[str]) -> list[Problem]:
    """A lock fits when it was made for this release and names every package the plan asks for."""
    if (lock.distribution, lock.release) != (record.distribution, record.release):
        return [Problem(("distribution",), f"the lock was made for {lock.distribution} {lock.release}, the profile "
                        f"builds {record.label}", "pmem-image lock PROFILE again after a build")]
    named = {p.name for p in lock.packages}
    missing = sorted(set(packages + build_packages) - named)
    return [Problem(("packages",), f"the lock does not name {', '.join(missing)}",
                    "build without the lock (move PROFILE.lock away), then pmem-image lock PROFILE again")] \
        if missing else []


def make_plan(profile: Profile, filename: str = "<profile>", source: Optional[SourceMap] = None,
              mirror: Optional[AptMirror] = None, fragments_dir: Optional[Path] = None,
              allowed_dirs: tuple[Path, ...] = (), lock: Optional[PackageLock] = None) -> tuple[Plan, list[Problem]]:
    """Resolve a validated profile (and its warnings), or raise ProfileError with every problem.
    allowed_dirs: places outside the profile's directory that its kernel paths may name (--allow-path).
    lock: the profile's PROFILE.lock (every package pinned to its version)."""
    fragments = load_fragments(fragments_dir or bundled_fragments_dir())
    record, problems = resolve_release(profile)
    kernel = None
    if record is not None:
        kernel, problems = resolve_kernel_version(profile, record)
    base_dir = Path(filename).parent if source is not None else Path.cwd()
    if kernel is not None and record is not None:
        problems += run_checks(CheckContext(profile, kernel, record, fragments, profile.pmem_backend,
                                            base_dir if source is not None else None, allowed_dirs))
    if source is not None:
        problems = [source.locate(p) for p in problems]
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ProfileError(filename, sort_problems(problems))
    warnings = [p for p in problems if p.severity == "warning"]
    assert record is not None and kernel is not None      # resolving either failing is an error above

    regions = _plan_regions(profile, kernel)
    packages = _image_packages(record, profile)
    build_packages = sorted({*record.packages.build, *(record.packages.pmdk_build if profile.pmdk else ())})
    if lock is not None and (problems := _lock_problems(lock, record, packages, build_packages)):
        raise ProfileError(filename, sort_problems([source.locate(p) for p in problems] if source else problems))
    backend = backend_for(profile.pmem_backend)
    cmdline = [*BASE_CMDLINE, *backend.kernel_arguments(profile, regions), *profile.kernel.cmdline]
    spans = memory_map(profile.vm.memory, profile.vm.machine,
                       [Span(r.start, r.start + r.size, "pmem", f"/dev/{r.device}") for r in regions
                        if r.start is not None])
    bios = profile.vm.firmware == "bios"
    from_source = profile.kernel.source != "distro"
    # The root filesystem too: a kernel built from source must mount the image's own root.
    filesystems = {r.filesystem for r in regions} | {record.root_filesystem}
    chosen = resolve_fragments(fragments, kernel, filesystems, profile.kernel.fragments, from_source,
                                profile.pmem_backend)
    plan = Plan(
        renderer_version=__version__, name=profile.name, distribution=record.distribution, release=record.release,
        apt_suites=list(record.apt_suites), apt_security_suite=record.apt_security_suite,
        root_filesystem=record.root_filesystem, module_suffix=record.module_suffix if not from_source else ".ko",
        kernel_source=profile.kernel.source, kernel_version=format_version(kernel),
        kernel_sha256=profile.kernel.sha256, kernel_base=profile.kernel.base,
        kernel_fragments=[f.name for f in chosen], kernel_options=required_options(chosen), kernel_cmdline=cmdline,
        memory=profile.vm.memory, cpus=profile.vm.cpus, machine=profile.vm.machine, firmware=profile.vm.firmware,
        bios_bootloader=bios, pmem_backend=profile.pmem_backend, regions=regions,
        cxl=_planned_cxl(profile, from_source, kernel),
        pmem_modules=list(backend.modules),
        packages=packages, build_packages=build_packages,
        locked_packages=list(lock.packages) if lock else [],
        users=[PlannedUser(**user.model_dump()) for user in profile.users],
        root_ssh_keys=list(profile.root.ssh_authorized_keys), ssh=profile.wants_ssh,
        network=_network(profile), network_service=record.network_service, disk_size=profile.disk.size,
        console_autologin=profile.console_autologin, pmdk=profile.pmdk, formats=list(profile.formats),
        initrd_modules=initrd_modules(profile.formats), cloud_init=profile.cloud_init,
        snapshot=snapshot_sources(record.distribution, profile.mirror) if profile.mirror else None,
        extra_trees=len(profile.extra_trees),
        extra_tree_paths=[str((base_dir / tree).resolve()) for tree in profile.extra_trees],
        seed=str(uuid.uuid5(SEED_NAMESPACE, profile.name)), source_date_epoch=SOURCE_DATE_EPOCH,
        description=profile.description, mirror=mirror if profile.distribution.name == "debian" else None,
        kernel_url=_local_or_url(profile.kernel.url, base_dir),
        kernel_path=str((base_dir / profile.kernel.path).resolve()) if profile.kernel.path else None,
        memory_map=[MemorySpan(start=s.start, end=s.end, kind=s.kind, label=s.label) for s in spans],
    )
    return plan, warnings
