"""The nvdimm backend: QEMU vNVDIMMs. Each region is an NVDIMM backed by a host file (memory-backend-file,
share=on), described to the guest by ACPI NFIT, with a label area where ndctl keeps its namespace; the
content is on the host's disk, so it survives a power-off. Facts: qemu docs/nvdimm.txt, pmem/run_qemu."""

from pathlib import Path
from typing import Iterable

from ...knowledge.memory import SECTION_SIZE
from ...knowledge.namespaces import DEFAULT_LABEL_SIZE, MIN_LABEL_SIZE
from ...profile.errors import Problem
from ...profile.sizes import GIB, KIB, MIB, TIB, format_size
from ..checks import CheckContext, check, multiples_near
from . import PmemBackend, ProofExpectations, StateFile, register

NAME = "nvdimm"
LABEL_ALIGN = 4 * KIB
# TCG's -cpu max has 40 physical address bits; QEMU puts DIMMs above RAM with 1 GiB of slack per slot.
ADDRESS_SPACE = 1 * TIB
# What the guest kernel needs for this backend (kernel-fragments/nvdimm.config); a profile fragment may
# not turn these off.
NFIT_OPTIONS = ("ACPI", "ACPI_NFIT", "LIBNVDIMM", "BLK_DEV_PMEM")


def backing_size(region) -> int:
    """The file behind an NVDIMM: the region, then its label area (QEMU keeps labels at the end)."""
    return region.size + region.label_size


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


class NvdimmBackend(PmemBackend):
    name = NAME
    modules = ("nfit", "nd_pmem")

    def kernel_arguments(self, profile, regions) -> list[str]:
        return []   # the firmware (NFIT) describes the regions

    def machine_options(self, plan) -> str:
        return ",nvdimm=on"

    def max_memory(self, plan) -> int:
        """RAM and every NVDIMM's backing file, in whole GiB: QEMU's maxmem and libvirt's maxMemory (QEMU
        refuses maxmem == RAM)."""
        return _round_up(plan.memory + sum(backing_size(r) for r in plan.regions), GIB)

    def memory_argument(self, plan) -> str:
        return f"{plan.memory // MIB}M,slots={len(plan.regions)},maxmem={self.max_memory(plan) // MIB}M"

    def state_files(self, plan) -> list[StateFile]:
        return [StateFile(f"nvdimm{r.number}.img", backing_size(r)) for r in plan.regions]

    def qemu_arguments(self, plan, state: Path) -> list[str]:
        # QEMU places DIMMs in the order they are given: region N is the Nth NVDIMM, as the plan numbers them.
        argv = []
        for region, file in zip(plan.regions, self.state_files(plan), strict=True):
            path = str(state / file.name).replace(",", ",,")
            argv += ["-object", f"memory-backend-file,id=pmem{region.number},share=on,mem-path={path},size={file.size}",
                     "-device", f"nvdimm,id=nvdimm{region.number},memdev=pmem{region.number},"
                                f"label-size={region.label_size}"]
        return argv

    def expectations(self, plan) -> ProofExpectations:
        return ProofExpectations(map_sync=True, legacy_e820=False, memmap_cmdline=False, nfit=True,
                                 survives_power_off=True)


register(NvdimmBackend())


@check(backend=NAME)
def check_regions_unplaced(ctx: CheckContext) -> Iterable[Problem]:
    for index, region in enumerate(ctx.profile.pmem):
        if region.offset is not None:
            yield Problem(("pmem", index, "offset"), "an NVDIMM has no offset: QEMU places it above the RAM",
                          "drop offset (and memmap); give size and, if you like, label_size")


@check(backend=NAME)
def check_region_alignment(ctx: CheckContext) -> Iterable[Problem]:
    for index, region in enumerate(ctx.profile.pmem):
        if region.size and region.size % SECTION_SIZE:
            yield Problem(("pmem", index, "size"),
                          f"size {format_size(region.size)} is not a multiple of 128M: an NVDIMM is added to the "
                          "guest by whole memory sections (2M, the least pmem alignment, is not enough here)",
                          f"use {multiples_near(region.size, SECTION_SIZE)}")


@check(backend=NAME)
def check_label_size(ctx: CheckContext) -> Iterable[Problem]:
    for index, region in enumerate(ctx.profile.pmem):
        label = region.label_size
        if label is None:
            continue
        if label < MIN_LABEL_SIZE:
            yield Problem(("pmem", index, "label_size"), f"label_size {format_size(label)} is below QEMU's minimum "
                          "of 128K", "use label_size: 128K (the default) or more")
        elif label % LABEL_ALIGN:
            yield Problem(("pmem", index, "label_size"), f"label_size {format_size(label)} is not a multiple of 4K",
                          f"use a multiple of 4K, e.g. {format_size(_round_up(label, LABEL_ALIGN))}")
        elif region.size and label >= region.size:
            yield Problem(("pmem", index, "label_size"), f"label_size {format_size(label)} is not smaller than "
                          f"the region ({format_size(region.size)})", "use label_size: 128K")


@check(backend=NAME)
def check_address_space(ctx: CheckContext) -> Iterable[Problem]:
    vm = ctx.profile.vm
    dimms = sum((r.size or 0) + (r.label_size or DEFAULT_LABEL_SIZE) for r in ctx.profile.pmem)
    # Device memory starts at the first 1 GiB boundary above RAM (which begins at 4G past 2-3 GiB below it).
    top = _round_up(4 * GIB + vm.memory, GIB) + _round_up(dimms, GIB) + len(ctx.profile.pmem) * GIB
    if top > ADDRESS_SPACE:
        yield Problem(("pmem",), f"RAM {format_size(vm.memory)} and NVDIMMs of {format_size(dimms)} reach "
                      f"{format_size(top)}, beyond the 1T of guest physical addresses QEMU's -cpu max has",
                      "shrink the NVDIMMs or the RAM")


@check(backend=NAME)
def check_kernel_keeps_nfit(ctx: CheckContext) -> Iterable[Problem]:
    """The fragments a profile names come last and win: one that turns NFIT off leaves no NVDIMM."""
    for position, name in enumerate(ctx.profile.kernel.fragments):
        fragment = ctx.fragments.get(name)
        for symbol, value in fragment.options if fragment else ():
            if symbol in NFIT_OPTIONS and value == "n":
                yield Problem(("kernel", "fragments", position),
                              f"fragment {name} turns off CONFIG_{symbol}, without which the kernel sees no NVDIMM "
                              "(ACPI NFIT)", "drop that line from the fragment, or use pmem_backend: memmap")


@check(backend=NAME)
def check_templates_have_nvdimms(ctx: CheckContext) -> Iterable[Problem]:
    """Cloud platforms give a VM no emulated NVDIMM: a template for them would boot without its pmem."""
    for index, name in enumerate(ctx.profile.formats):
        if name != "qcow2":
            yield Problem(("formats", index), f"{name} templates are imported where the VM gets no vNVDIMM, so "
                          "the image would boot without its pmem", "use pmem_backend: memmap for cloud and VMware "
                          "templates (qcow2 for QEMU/libvirt is fine)", severity="warning")


# The guest kernel numbers NVDIMM regions (regionN, so pmemN and daxN.0) in the order of QEMU's ACPI NFIT,
# and QEMU lists NVDIMMs there in the order of a hash table of their device ids, not the order they are
# given or placed in (util/nvdimm-utils.c). With two it is the given order; with three or more the /dev names
# this plan promises would belong to other regions (seen: five NVDIMMs came up as regions 0, 3, 1, 4, 2).
MAX_NVDIMMS = 2


@check(backend=NAME)
def check_nvdimm_count(ctx: CheckContext) -> Iterable[Problem]:
    if len(ctx.profile.pmem) > MAX_NVDIMMS:
        yield Problem(("pmem",), f"{len(ctx.profile.pmem)} NVDIMMs: QEMU hands NVDIMMs to the guest's ACPI table in "
                      "an order of its own (a hash of their device ids), so beyond two the kernel's region numbers, "
                      "and the /dev names planned here, cannot be known before boot",
                      f"use at most {MAX_NVDIMMS} regions with pmem_backend: nvdimm, or pmem_backend: memmap for more")
