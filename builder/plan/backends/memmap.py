"""The memmap= backend: memmap=SIZE!OFFSET turns guest RAM into legacy e820 pmem (type 12), which
nd_e820 exposes as /dev/pmemN. Works on any VM or bare metal; the content is RAM (lost at power-off)."""

from typing import Iterable

from ...knowledge.kernels import MAP_SYNC_KERNEL, parse_version
from ...knowledge.memory import SECTION_SIZE, pmem_windows
from ...profile.errors import Problem
from ...profile.sizes import format_size
from ..checks import CheckContext, check, describe_ram, multiples_near
from . import PmemBackend, ProofExpectations, register

KASLR_MEMMAP_LIMIT = 4             # the decompressor tracks at most 4 memmap= regions
NAME = "memmap"


def needs_nokaslr(region_count: int, cmdline: list[str], firmware: str = "bios") -> bool:
    """Whether physical KASLR could put the kernel into a region, unless the user already said nokaslr:
    - more regions than the decompressor tracks (it then gives up avoiding them);
    - any UEFI boot: kernels that decompress in the EFI stub (about 6.6 on) choose the physical address
      without reading memmap= until upstream taught the stub to; nokaslr is harmless everywhere."""
    return (region_count > KASLR_MEMMAP_LIMIT or firmware == "uefi") and "nokaslr" not in cmdline


class MemmapBackend(PmemBackend):
    name = NAME
    modules = ("nd_e820", "nd_pmem")

    def kernel_arguments(self, profile, regions) -> list[str]:
        arguments = [f"memmap={r.memmap}" for r in regions]
        nokaslr = needs_nokaslr(len(regions), profile.kernel.cmdline, profile.vm.firmware)
        return arguments + (["nokaslr"] if nokaslr else [])

    def qemu_arguments(self, plan, state) -> list[str]:
        return []   # the regions are carved out of -m RAM by the kernel itself

    def expectations(self, plan) -> ProofExpectations:
        # Before 4.15 there is no MAP_SYNC: the proof then expects mmap to refuse it.
        map_sync = parse_version(plan.kernel_version) >= MAP_SYNC_KERNEL
        return ProofExpectations(map_sync=map_sync, legacy_e820=True, memmap_cmdline=True)


register(MemmapBackend())


@check(backend=NAME)
def check_regions_placed(ctx: CheckContext) -> Iterable[Problem]:
    """memmap= names an address: every region needs one; the label area belongs to the nvdimm backend."""
    for index, region in enumerate(ctx.profile.pmem):
        if region.offset is None:
            yield Problem(("pmem", index), "missing offset: memmap pmem is placed at a physical address",
                          "write size: 1G and offset: 4G, or memmap: 1G!4G (or pmem_backend: nvdimm)")
        if region.label_size is not None:
            yield Problem(("pmem", index, "label_size"), "memmap pmem has no label area",
                          "drop label_size, or use pmem_backend: nvdimm for labelled namespaces")


@check(backend=NAME)
def check_region_alignment(ctx: CheckContext) -> Iterable[Problem]:
    for index, region in enumerate(ctx.profile.pmem):
        for key, value in (("offset", region.offset), ("size", region.size)):
            if value and value % SECTION_SIZE:
                yield Problem(("pmem", index, key),
                              f"{key} {format_size(value)} is not a multiple of 128M (the x86-64 memory section)",
                              f"use {multiples_near(value, SECTION_SIZE)}; 1G multiples are best for fsdax/devdax "
                              "alignment")


@check(backend=NAME)
def check_regions_disjoint(ctx: CheckContext) -> Iterable[Problem]:
    placed = [(index, r.offset, r.size) for index, r in enumerate(ctx.profile.pmem)
              if r.offset is not None and r.size]
    ordered = sorted(placed, key=lambda item: item[1])
    for (i, start, size), (j, next_start, _) in zip(ordered, ordered[1:], strict=False):
        if start + size > next_start:
            yield Problem(("pmem", j, "offset"),
                          f"region overlaps pmem[{i}] ({format_size(start)}-{format_size(start + size)})",
                          f"start it at {format_size(start + size)} or later")


@check(backend=NAME)
def check_regions_inside_ram(ctx: CheckContext) -> Iterable[Problem]:
    windows = pmem_windows(ctx.profile.vm.memory, ctx.profile.vm.machine)
    for index, region in enumerate(ctx.profile.pmem):
        if not region.size or region.offset is None:
            continue
        start, end = region.offset, region.offset + region.size
        if any(w.start <= start and end <= w.end for w in windows):
            continue
        yield Problem(("pmem", index, "offset"),
                      f"region {format_size(region.size)}!{format_size(start)} "
                      f"({format_size(start)}-{format_size(end)}) is not inside usable guest RAM",
                      describe_ram(ctx.profile) + "; move the region or raise vm.memory")


@check(backend=NAME)
def check_kaslr_region_limit(ctx: CheckContext) -> Iterable[Problem]:
    if len(ctx.profile.pmem) > KASLR_MEMMAP_LIMIT and "nokaslr" not in ctx.profile.kernel.cmdline:
        yield Problem(("pmem",), f"{len(ctx.profile.pmem)} memmap= regions: KASLR tracks at most 4 and would "
                      "give up physical randomisation, so nokaslr is added to the kernel command line",
                      "use at most 4 regions, or add nokaslr to kernel.cmdline yourself to silence this",
                      severity="warning")


@check(backend=NAME)
def check_memmap_not_in_cmdline(ctx: CheckContext) -> Iterable[Problem]:
    for index, argument in enumerate(ctx.profile.kernel.cmdline):
        if argument.split("=", 1)[0] == "memmap":
            yield Problem(("kernel", "cmdline", index), f"{argument!r} is set by pmem-image",
                          "describe the region under pmem: instead")
