"""Checks of namespace modes (fsdax, devdax, sector, raw) and PMDK: what each mode can carry, and
whether the release's repositories have PMDK."""

from typing import Iterable

from ..knowledge.distros import RELEASES
from ..knowledge.kernels import DEVDAX_KERNEL, format_version
from ..knowledge.namespaces import DEVDAX_ALIGN, DEVDAX_ALIGNS
from ..profile.errors import Problem
from ..profile.sizes import format_size
from .checks import CheckContext, check

WHY_NO_FILESYSTEM = {
    "devdax": "a devdax region is a character device (/dev/daxN.0) that programs map whole; it holds no filesystem",
    "raw": "raw is the bare block device without struct pages, for programs that want exactly that",
}
WHY_NO_DAX = {
    "sector": "sector mode puts the BTT between the filesystem and the pmem, so DAX is impossible",
    "raw": "a raw region has no struct pages, so DAX is impossible",
    "devdax": "devdax has no filesystem to mount with DAX; programs map /dev/daxN.0 directly",
}


@check
def check_mode_filesystem(ctx: CheckContext) -> Iterable[Problem]:
    for index, region in enumerate(ctx.profile.pmem):
        if region.mode in WHY_NO_FILESYSTEM and region.filesystem not in (None, "none"):
            yield Problem(("pmem", index, "filesystem"),
                          f"mode {region.mode} cannot hold a filesystem: {WHY_NO_FILESYSTEM[region.mode]}",
                          "drop filesystem, or use mode: fsdax (DAX) or mode: sector (no DAX, atomic sectors)")


@check
def check_mode_dax(ctx: CheckContext) -> Iterable[Problem]:
    for index, region in enumerate(ctx.profile.pmem):
        if region.mode in WHY_NO_DAX and region.dax is not None:
            yield Problem(("pmem", index, "dax"), f"dax: {region.dax} on a {region.mode} region: "
                          f"{WHY_NO_DAX[region.mode]}", "drop dax, or use mode: fsdax")


@check
def check_mode_map(ctx: CheckContext) -> Iterable[Problem]:
    for index, region in enumerate(ctx.profile.pmem):
        if region.map is not None and region.struct_pages is None:
            yield Problem(("pmem", index, "map"), f"map: {region.map} on a {region.mode} region, which has no "
                          "struct pages to place", "drop map (it applies to fsdax and devdax only)")


@check
def check_devdax(ctx: CheckContext) -> Iterable[Problem]:
    for index, region in enumerate(ctx.profile.pmem):
        if region.mode != "devdax":
            continue
        if ctx.kernel < DEVDAX_KERNEL:
            yield Problem(("pmem", index, "mode"), f"device DAX through ndctl needs kernel >= "
                          f"{format_version(DEVDAX_KERNEL)}; this profile boots {format_version(ctx.kernel)}",
                          "use mode: fsdax, or a newer kernel")
        align = region.align or DEVDAX_ALIGN
        if align not in DEVDAX_ALIGNS:
            yield Problem(("pmem", index, "align"), f"align {format_size(align)}: a device DAX here is aligned to "
                          f"{' or '.join(format_size(a) for a in DEVDAX_ALIGNS)}",
                          "use align: 2M (huge pages, the default) or align: 4K (base pages)")
            continue
        for key in ("offset", "size"):
            value = getattr(region, key)
            if value and value % align:
                yield Problem(("pmem", index, key), f"devdax {key} {format_size(value)} is not a multiple of "
                              f"{format_size(align)}, the device's alignment",
                              f"round it to a multiple of {format_size(align)} (1G multiples are best)")


@check
def check_align_mode(ctx: CheckContext) -> Iterable[Problem]:
    for index, region in enumerate(ctx.profile.pmem):
        if region.align is not None and region.mode != "devdax":
            yield Problem(("pmem", index, "align"), f"align on a {region.mode} region: only a device DAX has a "
                          "mapping alignment to choose", "drop align, or use mode: devdax")


@check
def check_pmdk_available(ctx: CheckContext) -> Iterable[Problem]:
    if ctx.profile.pmdk and not ctx.release.packages.pmdk:
        carried = ", ".join(r.label for r in RELEASES if r.packages.pmdk and not r.unsupported)
        yield Problem(("pmdk",), f"{ctx.release.label}: the repositories pmem-image builds it from do not "
                      "carry PMDK (libpmem2, libpmemobj, pmempool)", f"use {carried}, or drop pmdk")
