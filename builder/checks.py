"""Semantic checks: each a named function over a validated Profile that returns Problems.

Facts behind them: ../shared/reference/pmem-facts.md (memmap, DAX, KASLR) and QEMU's RAM layout
(memory.py). Each problem says what is wrong and how to fix it.
"""

from pathlib import Path
from typing import Callable, Iterable

from .errors import Problem
from .kernels import DAX_TRISTATE, MINIMUM_KERNEL, KernelVersion, format_version
from .memory import pmem_windows, ram_spans
from .model import Profile
from .sizes import GIB, MIB, format_size, human_size

SECTION_ALIGN = 128 * MIB          # x86-64 memory section: pfn/devdax code pads collisions to it
MIN_OS_RAM = 1 * GIB
KASLR_MEMMAP_LIMIT = 4             # the decompressor tracks at most 4 memmap= regions
SOURCE_FIELDS = {"distro": set(), "debian-source": set(), "tarball": {"url", "sha256"}, "tree": {"path"}}
SYSTEM_DIRS = {"/", "/bin", "/boot", "/dev", "/efi", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc",
               "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var"}

Check = Callable[[Profile, KernelVersion], Iterable[Problem]]


def default_mountpoints(profile: Profile) -> dict[int, str]:
    """Mountpoint per profile index: the one written, else /mnt/pmemN after the device it becomes."""
    by_address = sorted(range(len(profile.pmem)), key=lambda i: profile.pmem[i].offset or 0)
    return {index: profile.pmem[index].mountpoint or f"/mnt/pmem{number}"
            for number, index in enumerate(by_address)}


def _describe_ram(profile: Profile) -> str:
    spans = ram_spans(profile.vm.memory, profile.vm.machine)
    windows = pmem_windows(profile.vm.memory, profile.vm.machine)
    ram = ", ".join(f"{format_size(s.start)}-{format_size(s.end)}" for s in spans)
    usable = ", ".join(f"offset {format_size(w.start)} up to {format_size(w.end)}" for w in windows)
    return (f"vm.memory {format_size(profile.vm.memory)} on {profile.vm.machine} puts RAM at {ram}; "
            f"pmem may use {usable or 'no range'}")


def check_kernel_version_floor(profile: Profile, kernel: KernelVersion) -> Iterable[Problem]:
    if kernel < MINIMUM_KERNEL:
        yield Problem(("kernel", "version"), f"kernel {format_version(kernel)} is older than 4.2, "
                      "the first with libnvdimm (PMEM, BLK, BTT)", "use a kernel >= 4.2 (4.15+ for MAP_SYNC)")


def check_kernel_source_fields(profile: Profile, kernel: KernelVersion) -> Iterable[Problem]:
    source = profile.kernel.source
    for key in ("url", "sha256", "path"):
        given = getattr(profile.kernel, key) is not None
        if key in SOURCE_FIELDS[source] and not given:
            yield Problem(("kernel", key), f"kernel.source {source} needs {key}",
                          {"url": "the tarball's URL or local path", "sha256": "sha256sum of the tarball",
                           "path": "the kernel source directory"}[key])
        elif given and key not in SOURCE_FIELDS[source]:
            owner = next(s for s, keys in SOURCE_FIELDS.items() if key in keys)
            yield Problem(("kernel", key), f"{key} is only used with source: {owner}", f"drop {key}")
    if source == "debian-source" and profile.distribution.name != "debian":
        yield Problem(("kernel", "source"), "debian-source builds Debian's linux-source package",
                      "use distribution debian, or source: tarball")


def check_region_sizes(profile: Profile, kernel: KernelVersion) -> Iterable[Problem]:
    for index, region in enumerate(profile.pmem):
        if region.size == 0:
            yield Problem(("pmem", index, "size"), "a pmem region needs a size above 0", "e.g. size: 1G")


def check_region_alignment(profile: Profile, kernel: KernelVersion) -> Iterable[Problem]:
    for index, region in enumerate(profile.pmem):
        for key, value in (("offset", region.offset), ("size", region.size)):
            if value and value % SECTION_ALIGN:
                down = value // SECTION_ALIGN * SECTION_ALIGN
                up = down + SECTION_ALIGN
                choices = " or ".join(format_size(v) for v in (down, up) if v)
                yield Problem(("pmem", index, key),
                              f"{key} {format_size(value)} is not a multiple of 128M (the x86-64 memory section)",
                              f"use {choices}; 1G multiples are best for fsdax/devdax alignment")


def check_regions_disjoint(profile: Profile, kernel: KernelVersion) -> Iterable[Problem]:
    ordered = sorted(enumerate(profile.pmem), key=lambda item: item[1].offset or 0)
    for (i, a), (j, b) in zip(ordered, ordered[1:]):
        if a.size and b.size and a.offset + a.size > b.offset:
            yield Problem(("pmem", j, "offset"),
                          f"region overlaps pmem[{i}] ({format_size(a.offset)}-{format_size(a.offset + a.size)})",
                          f"start it at {format_size(a.offset + a.size)} or later")


def check_regions_inside_ram(profile: Profile, kernel: KernelVersion) -> Iterable[Problem]:
    windows = pmem_windows(profile.vm.memory, profile.vm.machine)
    for index, region in enumerate(profile.pmem):
        if not region.size:
            continue
        start, end = region.offset, region.offset + region.size
        if any(w.start <= start and end <= w.end for w in windows):
            continue
        yield Problem(("pmem", index, "offset"),
                      f"region {format_size(region.size)}!{format_size(start)} "
                      f"({format_size(start)}-{format_size(end)}) is not inside usable guest RAM",
                      _describe_ram(profile) + "; move the region or raise vm.memory")


def check_ram_left_for_os(profile: Profile, kernel: KernelVersion) -> Iterable[Problem]:
    taken = sum(region.size or 0 for region in profile.pmem)
    left = profile.vm.memory - taken
    if left < MIN_OS_RAM:
        yield Problem(("vm", "memory"),
                      f"pmem takes {human_size(taken)} of {human_size(profile.vm.memory)}, "
                      f"leaving {human_size(max(left, 0))} for the OS (at least 1 GiB is needed)",
                      f"raise vm.memory to at least {format_size(taken + MIN_OS_RAM)} or shrink the regions")


def check_kaslr_region_limit(profile: Profile, kernel: KernelVersion) -> Iterable[Problem]:
    if len(profile.pmem) > KASLR_MEMMAP_LIMIT and "nokaslr" not in profile.kernel.cmdline:
        yield Problem(("pmem",), f"{len(profile.pmem)} memmap= regions: KASLR tracks at most 4 and would "
                      "give up physical randomisation, so nokaslr is added to the kernel command line",
                      "use at most 4 regions, or add nokaslr to kernel.cmdline yourself to silence this",
                      severity="warning")


def check_dax_supported(profile: Profile, kernel: KernelVersion) -> Iterable[Problem]:
    for index, region in enumerate(profile.pmem):
        if region.filesystem == "none" or region.dax != "always":
            continue
        needed = DAX_TRISTATE[region.filesystem]
        if kernel < needed:
            yield Problem(("pmem", index, "dax"),
                          f"dax=always needs {region.filesystem} on kernel >= {format_version(needed)}; "
                          f"this profile boots {format_version(kernel)}",
                          "use dax: auto (or legacy) to mount with plain -o dax on this kernel")


def check_mountpoints(profile: Profile, kernel: KernelVersion) -> Iterable[Problem]:
    seen: dict[str, int] = {}
    defaults = default_mountpoints(profile)
    for index, region in enumerate(profile.pmem):
        mountpoint = region.mountpoint
        if region.filesystem == "none":
            if mountpoint is not None:
                yield Problem(("pmem", index, "mountpoint"), "a region without a filesystem is not mounted",
                              "drop mountpoint, or set filesystem: ext4 or xfs")
            continue
        mountpoint = defaults[index]
        if mountpoint.rstrip("/") in SYSTEM_DIRS or any(p in (".", "..") for p in mountpoint.split("/")):
            yield Problem(("pmem", index, "mountpoint"), f"{mountpoint} cannot hold a pmem filesystem",
                          "use a directory of its own, e.g. /mnt/pmem0")
        if mountpoint in seen:
            yield Problem(("pmem", index, "mountpoint"), f"{mountpoint} is already used by pmem[{seen[mountpoint]}]",
                          "give each region its own mountpoint")
        seen.setdefault(mountpoint, index)


def check_kernel_cmdline(profile: Profile, kernel: KernelVersion) -> Iterable[Problem]:
    owned = {"memmap": "describe the region under pmem: instead", "root": "mkosi sets root=PARTUUID itself",
             "console": "console=ttyS0 is always set; the boot proof reads the serial console"}
    for index, argument in enumerate(profile.kernel.cmdline):
        key = argument.split("=", 1)[0]
        if key in owned:
            yield Problem(("kernel", "cmdline", index), f"{argument!r} is set by pmem-image", owned[key])


def check_fragments_exist(fragments_dir: Path) -> Check:
    def check_fragments(profile: Profile, kernel: KernelVersion) -> Iterable[Problem]:
        available = sorted(p.stem for p in fragments_dir.glob("*.config"))
        for index, name in enumerate(profile.kernel.fragments):
            if name not in available:
                yield Problem(("kernel", "fragments", index), f"no fragment {name!r} in {fragments_dir.name}/",
                              f"available: {', '.join(available) or 'none'}")
    return check_fragments


ALL_CHECKS: tuple[Check, ...] = (
    check_kernel_version_floor, check_kernel_source_fields, check_region_sizes, check_region_alignment,
    check_regions_disjoint, check_regions_inside_ram, check_ram_left_for_os, check_kaslr_region_limit,
    check_dax_supported, check_mountpoints, check_kernel_cmdline,
)


def run_checks(profile: Profile, kernel: KernelVersion, fragments_dir: Path) -> list[Problem]:
    problems: list[Problem] = []
    for check in (*ALL_CHECKS, check_fragments_exist(fragments_dir)):
        problems.extend(check(profile, kernel))
    return problems
