"""The nvdimm backend: QEMU vNVDIMMs. Each region is an NVDIMM backed by a host file (memory-backend-file,
share=on), described to the guest by ACPI NFIT, with a label area where ndctl keeps its namespace; the
content is on the host's disk, so it survives a power-off. Facts: qemu docs/nvdimm.txt, pmem/run_qemu."""

from pathlib import Path
from typing import Iterable

from ...knowledge.namespaces import MIN_LABEL_SIZE
from ...profile.errors import Problem
from ...profile.sizes import KIB, format_size, round_up
from ..checks import CheckContext, check
from . import PmemBackend, ProofExpectations, StateFile, register

NAME = "nvdimm"
LABEL_ALIGN = 4 * KIB


def backing_size(region) -> int:
    """The file behind an NVDIMM: the region, then its label area (QEMU keeps labels at the end)."""
    return region.size + region.label_size


class NvdimmBackend(PmemBackend):
    name = NAME
    modules = ("nfit", "nd_pmem")
    placed_by_qemu = True
    labelled = True
    device_words = "NVDIMM"
    libvirt_model = "nvdimm"
    # What the guest kernel needs (kernel-fragments/nvdimm.config): without it the kernel sees no NVDIMM.
    kernel_options = ("ACPI", "ACPI_NFIT", "LIBNVDIMM", "BLK_DEV_PMEM")

    def kernel_arguments(self, profile, regions) -> list[str]:
        return []   # the firmware (NFIT) describes the regions

    def machine_options(self, plan) -> str:
        return ",nvdimm=on"

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
                                 survives_power_off=True, provider="ACPI.NFIT")


register(NvdimmBackend())


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
                          f"use a multiple of 4K, e.g. {format_size(round_up(label, LABEL_ALIGN))}")
        elif region.size and label >= region.size:
            yield Problem(("pmem", index, "label_size"), f"label_size {format_size(label)} is not smaller than "
                          f"the region ({format_size(region.size)})", "use label_size: 128K")


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
