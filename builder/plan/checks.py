"""Semantic checks: each a named function over one CheckContext that yields Problems, registered with
@check in one place. Checks that only make sense for one pmem backend say so (@check(backend=...)).

Facts behind them: ../shared/reference/pmem-facts.md (memmap, DAX, KASLR) and QEMU's RAM layout
(knowledge/memory.py). Each problem says what is wrong and how to fix it.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

from ..knowledge.distros import Release, find_release, known_releases
from ..knowledge.kconfig import Fragment
from ..knowledge.kernels import (DAX_TRISTATE, MAP_SYNC_KERNEL, MINIMUM_KERNEL, MINIMUM_KERNEL_LACKS, KernelVersion,
                                 format_version, parse_version)
from ..knowledge.memory import pmem_windows, ram_spans
from ..knowledge.namespaces import device_name
from ..profile.errors import Problem
from ..profile.model import Profile
from ..profile.sizes import GIB, MIB, format_size, human_size, round_up

MIN_OS_RAM = 1 * GIB
STRUCT_PAGE_SHARE = 64             # fsdax with map=mem: a 64-byte struct page per 4 KiB page comes from RAM
XFS_MIN_SIZE = 300 * MIB           # xfsprogs >= 5.19 refuses smaller filesystems
SOURCE_FIELDS = {"distro": set(), "debian-source": set(), "tarball": {"url", "sha256"}, "tree": {"path"}}
# A mountpoint may not be one of these nor lie under them: a fresh mkfs at a cold boot would hide
# (or, before the mount, receive) system state.
SYSTEM_TREES = {"/bin", "/boot", "/dev", "/efi", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root",
                "/run", "/sbin", "/sys", "/tmp", "/usr", "/var"}
# These may hold a pmem mountpoint below them, but are not one themselves.
SYSTEM_DIRS = {"/", "/home", "/media", "/mnt", "/opt", "/srv"}


@dataclass(frozen=True)
class CheckContext:
    """Everything a check may look at: the profile, the kernel it boots, its release record, the fragments."""
    profile: Profile
    kernel: KernelVersion
    release: Release
    fragments: dict[str, Fragment]
    backend: str
    profile_dir: Optional[Path] = None          # where relative paths in the profile start
    allowed_dirs: tuple[Path, ...] = ()         # --allow-path: outside the profile's directory, allowed here


Check = Callable[[CheckContext], Iterable[Problem]]
_REGISTRY: list[tuple[Check, tuple[str, ...]]] = []


def check(function: Optional[Check] = None, *, backend: str | tuple[str, ...] = ()):
    """Register a check (for every plan, or only for plans with the given pmem backend or backends)."""
    only = (backend,) if isinstance(backend, str) else backend

    def register(fn: Check) -> Check:
        _REGISTRY.append((fn, only))
        return fn
    return register(function) if function is not None else register


def all_checks() -> list[tuple[Check, tuple[str, ...]]]:
    """Every registered check with the backends it is limited to (empty: every plan); the docs list them."""
    return list(_REGISTRY)


def registered_checks(backend: str) -> list[Check]:
    return [fn for fn, only in _REGISTRY if not only or backend in only]


def run_checks(context: CheckContext) -> list[Problem]:
    problems: list[Problem] = []
    for fn in registered_checks(context.backend):
        problems.extend(fn(context))
    return problems


def resolve_release(profile: Profile) -> tuple[Optional[Release], list[Problem]]:
    """The release record a profile names, or why it cannot be built."""
    name, release = profile.distribution.name, profile.distribution.release
    record = find_release(name, release)
    if record is None:
        return None, [Problem(("distribution", "release"), f"unknown {name} release {release!r}",
                              f"use one of: {', '.join(known_releases(name))}")]
    if record.unsupported:
        return None, [Problem(("distribution", "release"), f"{record.label} cannot be built: {record.unsupported}",
                              f"use one of: {', '.join(known_releases(name))}")]
    return record, []


def resolve_kernel_version(profile: Profile, record: Release) -> tuple[Optional[KernelVersion], list[Problem]]:
    """The kernel version a profile will boot, or the problems that prevent knowing it."""
    source, version = profile.kernel.source, profile.kernel.version
    if source == "distro":
        if version is not None and parse_version(version)[:2] != record.kernel[:2]:
            return None, [Problem(("kernel", "version"),
                                  f"{record.label} ships kernel {format_version(record.kernel)}, not {version}",
                                  "drop kernel.version for the distro kernel, or choose a kernel source that builds it")]
        return record.kernel, []
    if version is None:
        return None, [Problem(("kernel", "version"), f"kernel.source {source!r} needs a version",
                              "add e.g. version: \"6.1.192\" (the version in the source's Makefile)")]
    return parse_version(version), []


def default_mountpoints(profile: Profile) -> dict[int, str]:
    """Mountpoint per profile index: the one written, else /mnt/pmemN after the device it becomes."""
    by_address = sorted(range(len(profile.pmem)), key=lambda i: profile.pmem[i].offset or 0)
    return {index: profile.pmem[index].mountpoint or f"/mnt/{device_name(profile.pmem[index].mode, number)}"
            for number, index in enumerate(by_address)}


def multiples_near(value: int, unit: int) -> str:
    """'X or Y': the multiples of unit either side of value, for a hint (0 left out)."""
    down = value // unit * unit
    return " or ".join(format_size(v) for v in (down, down + unit) if v)


def describe_ram(profile: Profile) -> str:
    spans = ram_spans(profile.vm.memory, profile.vm.machine)
    windows = pmem_windows(profile.vm.memory, profile.vm.machine)
    ram = ", ".join(f"{format_size(s.start)}-{format_size(s.end)}" for s in spans)
    usable = ", ".join(f"offset {format_size(w.start)} up to {format_size(w.end)}" for w in windows)
    return (f"vm.memory {format_size(profile.vm.memory)} on {profile.vm.machine} puts RAM at {ram}; "
            f"pmem may use {usable or 'no range'}")


@check
def check_kernel_version_floor(ctx: CheckContext) -> Iterable[Problem]:
    if ctx.kernel < MINIMUM_KERNEL:
        yield Problem(("kernel", "version"), f"kernel {format_version(ctx.kernel)} is older than "
                      f"{format_version(MINIMUM_KERNEL)}: it lacks {MINIMUM_KERNEL_LACKS}",
                      f"use a kernel >= {format_version(MINIMUM_KERNEL)}; "
                      f"{format_version(MAP_SYNC_KERNEL)}+ also has MAP_SYNC, which the proof then checks")


@check
def check_kernel_source_fields(ctx: CheckContext) -> Iterable[Problem]:
    kernel = ctx.profile.kernel
    for key in ("url", "sha256", "path"):
        given = getattr(kernel, key) is not None
        if key in SOURCE_FIELDS[kernel.source] and not given:
            yield Problem(("kernel", key), f"kernel.source {kernel.source} needs {key}",
                          {"url": "the tarball's URL or local path", "sha256": "sha256sum of the tarball",
                           "path": "the kernel source directory"}[key])
        elif given and key not in SOURCE_FIELDS[kernel.source]:
            owner = next(s for s, keys in SOURCE_FIELDS.items() if key in keys)
            yield Problem(("kernel", key), f"{key} is only used with source: {owner}", f"drop {key}")
    if kernel.source == "debian-source" and ctx.profile.distribution.name != "debian":
        yield Problem(("kernel", "source"), "debian-source builds Debian's linux-source package",
                      "use distribution debian, or source: tarball")


@check
def check_region_sizes(ctx: CheckContext) -> Iterable[Problem]:
    for index, region in enumerate(ctx.profile.pmem):
        if region.size == 0:
            yield Problem(("pmem", index, "size"), "a pmem region needs a size above 0", "e.g. size: 1G")


@check
def check_ram_left_for_os(ctx: CheckContext) -> Iterable[Problem]:
    vm = ctx.profile.vm
    # memmap pmem is carved out of the RAM; an NVDIMM is memory of its own beside it.
    pmem = sum(region.size or 0 for region in ctx.profile.pmem) if ctx.backend == "memmap" else 0
    # fsdax/devdax with map: mem keep their struct pages in RAM: 1/64 of each such region. A memmap region
    # boots fsdax with its pages in RAM whatever its planned mode (pmem-namespaces changes it later, at every
    # cold boot), so there every region counts for the peak (review M6); NVDIMMs come up in their labelled mode.
    pages = sum((region.size or 0) // STRUCT_PAGE_SHARE for region in ctx.profile.pmem
                if region.struct_pages == "mem" or ctx.backend == "memmap")
    left = vm.memory - pmem - pages
    if left < MIN_OS_RAM:
        needed = round_up(pmem + pages + MIN_OS_RAM, 128 * MIB)
        taken = (f"pmem takes {human_size(pmem)} of {human_size(vm.memory)} and its struct pages "
                 f"{human_size(pages)} more" if pmem else
                 f"the struct pages of the map: mem regions take {human_size(pages)} of {human_size(vm.memory)}")
        if ctx.backend == "memmap" and any(region.struct_pages != "mem" for region in ctx.profile.pmem):
            taken += " (every memmap region boots fsdax with its struct pages in RAM, whatever mode it is given later)"
        yield Problem(("vm", "memory"), f"{taken}, leaving {human_size(max(left, 0))} for the OS "
                      "(at least 1 GiB is needed)",
                      f"raise vm.memory to at least {format_size(needed)} or shrink the regions")


@check
def check_xfs_minimum_size(ctx: CheckContext) -> Iterable[Problem]:
    for index, region in enumerate(ctx.profile.pmem):
        if region.fs == "xfs" and region.size and region.size < XFS_MIN_SIZE:
            yield Problem(("pmem", index, "size"),
                          f"an xfs filesystem of {format_size(region.size)} is too small: xfsprogs 5.19 and later "
                          "refuse xfs under 300 MiB, so mkfs would fail at boot",
                          "use size: 384M or more for xfs, or filesystem: ext4")


@check
def check_dax_supported(ctx: CheckContext) -> Iterable[Problem]:
    for index, region in enumerate(ctx.profile.pmem):
        if region.fs == "none" or region.dax_mode != "always":
            continue
        needed = DAX_TRISTATE[region.fs]
        if ctx.kernel < needed:
            yield Problem(("pmem", index, "dax"),
                          f"dax=always needs {region.fs} on kernel >= {format_version(needed)}; "
                          f"this profile boots {format_version(ctx.kernel)}",
                          "use dax: auto (or legacy) to mount with plain -o dax on this kernel")


@check
def check_mountpoints(ctx: CheckContext) -> Iterable[Problem]:
    seen: dict[str, int] = {}
    defaults = default_mountpoints(ctx.profile)
    for index, region in enumerate(ctx.profile.pmem):
        if region.fs == "none":
            if region.mountpoint is not None:
                yield Problem(("pmem", index, "mountpoint"), "a region without a filesystem is not mounted",
                              "drop mountpoint, or set filesystem: ext4 or xfs (modes fsdax and sector)")
            continue
        mountpoint = defaults[index].rstrip("/") or "/"
        under = next((t for t in sorted(SYSTEM_TREES) if mountpoint == t or mountpoint.startswith(t + "/")), None)
        if under or mountpoint in SYSTEM_DIRS or any(p in (".", "..") for p in mountpoint.split("/")):
            why = f" (it is in {under}, system state a fresh mkfs at a cold boot would hide)" if under else ""
            yield Problem(("pmem", index, "mountpoint"), f"{mountpoint} cannot hold a pmem filesystem{why}",
                          "use a directory of its own, e.g. /mnt/pmem0 or /data")
        if mountpoint in seen:
            yield Problem(("pmem", index, "mountpoint"), f"{mountpoint} is already used by pmem[{seen[mountpoint]}]",
                          "give each region its own mountpoint")
        for other, other_index in seen.items():
            inner, outer = (mountpoint, other) if len(mountpoint) > len(other) else (other, mountpoint)
            if inner != outer and inner.startswith(outer + "/"):
                yield Problem(("pmem", index, "mountpoint"),
                              f"{mountpoint} and pmem[{other_index}]'s {other} are nested: {inner} would live on a "
                              "filesystem that is made afresh at every cold boot",
                              "give each region a mountpoint of its own, side by side (e.g. /mnt/pmem0, /mnt/pmem1)")
        seen.setdefault(mountpoint, index)


# Arguments pmem-image sets itself, and ones that move or remove the RAM the pmem regions are carved from.
_OWNED_ARGUMENTS = {"root": "mkosi sets root=PARTUUID itself",
                    "console": "console=ttyS0 is always set; the boot proof reads the serial console"}
_MEMORY_MAP_ARGUMENTS = {"mem": "mem= truncates the RAM the pmem regions are carved from",
                         "efi_fake_mem": "efi_fake_mem= rewrites the EFI memory map the regions are planned on"}
# These reserve RAM early, wherever the kernel finds room: possibly inside a region below 4 GiB.
_EARLY_RESERVATIONS = ("crashkernel", "hugepages", "hugepagesz", "default_hugepagesz")


@check
def check_kernel_cmdline(ctx: CheckContext) -> Iterable[Problem]:
    low_region = any(region.offset is not None and region.offset < 4 * GIB for region in ctx.profile.pmem)
    for index, argument in enumerate(ctx.profile.kernel.cmdline):
        key = argument.split("=", 1)[0]
        if key in _OWNED_ARGUMENTS:
            yield Problem(("kernel", "cmdline", index), f"{argument!r} is set by pmem-image", _OWNED_ARGUMENTS[key])
        elif key in _MEMORY_MAP_ARGUMENTS or key.startswith("pmem_image."):
            why = _MEMORY_MAP_ARGUMENTS.get(key, "pmem_image.* arguments are pmem-image's own")
            yield Problem(("kernel", "cmdline", index), f"{argument!r} is not allowed: {why}",
                          "remove it; size the guest with vm.memory and the regions with pmem[]")
        elif key in _EARLY_RESERVATIONS and low_region:
            yield Problem(("kernel", "cmdline", index), f"{argument!r} reserves RAM at boot, and a pmem region lies "
                          "below 4 GiB: the kernel may take that memory from inside the region",
                          "move the regions to 4G and above, or drop the argument", severity="warning")


@check
def check_release_is_proven(ctx: CheckContext) -> Iterable[Problem]:
    if not ctx.release.proven:
        yield Problem(("distribution", "release"), f"{ctx.release.label} has not been built and booted by "
                      "pmem-image's own tests: the build or the boot proof may fail on it",
                      "debian bookworm and trixie are proven; report what you find on this one",
                      severity="warning")


@check
def check_fragments_exist(ctx: CheckContext) -> Iterable[Problem]:
    available = sorted(ctx.fragments)
    for index, name in enumerate(ctx.profile.kernel.fragments):
        if name not in ctx.fragments:
            yield Problem(("kernel", "fragments", index), f"no fragment {name!r} in kernel-fragments/",
                          f"available: {', '.join(available) or 'none'}")


@check
def check_kernel_paths_stay_with_the_profile(ctx: CheckContext) -> Iterable[Problem]:
    """A shared profile must not make a root build read or run files anywhere on the host: a local tarball
    or tree lies inside the profile's directory, unless the command line allows its place (--allow-path)."""
    if ctx.profile_dir is None:
        return
    home = ctx.profile_dir.resolve()
    for key in ("url", "path"):
        value = getattr(ctx.profile.kernel, key)
        if value is None or "://" in value:
            continue
        target = (home / value).resolve()   # symlinks followed: a link out of the directory is out
        if any(target == d or d in target.parents for d in (home, *(a.resolve() for a in ctx.allowed_dirs))):
            continue
        yield Problem(("kernel", key), f"{value} is outside the profile's directory ({home})",
                      "move the kernel source next to the profile, or allow its place on the command line: "
                      f"--allow-path {target.parent}")
