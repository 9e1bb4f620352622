"""The virtio-pmem backend: each region a virtio-pmem-pci device backed by a host file (memory-backend-file,
share=on). The guest's virtio_pmem driver registers it as a label-less nd region whose flush is a request to
the host (QEMU fsyncs the file), so the kernel calls it asynchronous: DAX works, MAP_SYNC is refused, and a
program makes its stores durable with fsync/msync (libpmem2 reports page granularity). There are no ndctl
namespaces to make. Facts: qemu docs/system/devices/virtio-pmem.rst; ../shared/reference/anchors-2026-12.md §3."""

from pathlib import Path
from typing import Iterable

from ...knowledge.kernels import format_version, parse_version
from ...profile.errors import Problem
from ..checks import CheckContext, check
from . import PmemBackend, ProofExpectations, StateFile, register

NAME = "virtio-pmem"
FIRST_KERNEL = parse_version("5.3")    # virtio_pmem was merged in Linux 5.3


class VirtioPmemBackend(PmemBackend):
    name = NAME
    modules = ("virtio_pmem", "nd_pmem")
    placed_by_qemu = True
    device_words = "virtio-pmem device"
    libvirt_model = "virtio-pmem"
    # What the guest kernel needs (kernel-fragments/virtio-pmem.config): without it there is no /dev/pmemN.
    kernel_options = ("VIRTIO_PMEM", "LIBNVDIMM", "BLK_DEV_PMEM")

    def kernel_arguments(self, profile, regions) -> list[str]:
        return []   # the devices are found on the PCI bus

    def state_files(self, plan) -> list[StateFile]:
        return [StateFile(f"virtio-pmem{r.number}.img", r.size) for r in plan.regions]

    def qemu_arguments(self, plan, state: Path) -> list[str]:
        # QEMU places memory devices above the RAM in the order given, and they take PCI slots in that order,
        # where the guest probes them: region N is the Nth device, as the plan numbers them.
        argv = []
        for region, file in zip(plan.regions, self.state_files(plan), strict=True):
            path = str(state / file.name).replace(",", ",,")
            argv += ["-object", f"memory-backend-file,id=pmem{region.number},share=on,mem-path={path},size={file.size}",
                     "-device", f"virtio-pmem-pci,id=virtio-pmem{region.number},memdev=pmem{region.number}"]
        return argv

    def expectations(self, plan) -> ProofExpectations:
        return ProofExpectations(map_sync=False, legacy_e820=False, memmap_cmdline=False, survives_power_off=True,
                                 provider="virtio-pmem", cpu_flush_durable=False)


register(VirtioPmemBackend())


@check(backend=NAME)
def check_fsdax_only(ctx: CheckContext) -> Iterable[Problem]:
    """A virtio-pmem region is one label-less namespace that the host flushes on request: only a filesystem
    with DAX can pass that request on (fsync/msync); there is nothing for ndctl to reconfigure."""
    reasons = {
        "devdax": "device DAX has no callback to pass a flush to the host, so its stores would never be made "
                  "durable (the kernel's maintainers call such a device a bug)",
        "sector": "its one label-less namespace cannot be given a BTT (QEMU: ndctl is not supported on virtio-pmem)",
        "raw": "its one label-less namespace cannot be turned raw (QEMU: ndctl is not supported on virtio-pmem)"}
    for index, region in enumerate(ctx.profile.pmem):
        if region.mode in reasons:
            yield Problem(("pmem", index, "mode"), f"mode {region.mode} on virtio-pmem: {reasons[region.mode]}",
                          "use mode: fsdax (a DAX filesystem), or pmem_backend: nvdimm for device DAX, sector and raw")
        elif region.map == "dev":
            yield Problem(("pmem", index, "map"), "map: dev on virtio-pmem: its namespace boots with struct pages "
                          "in RAM and ndctl cannot move them onto the device", "drop map (mem is what it has)")
        if region.label_size is not None:
            yield Problem(("pmem", index, "label_size"), "a virtio-pmem device has no label area",
                          "drop label_size, or use pmem_backend: nvdimm for labelled namespaces")
        if region.align is not None:
            yield Problem(("pmem", index, "align"), "align is for device DAX, which virtio-pmem does not offer",
                          "drop align")


@check(backend=NAME)
def check_kernel_has_virtio_pmem(ctx: CheckContext) -> Iterable[Problem]:
    if ctx.kernel < FIRST_KERNEL:
        yield Problem(("pmem_backend",), f"kernel {format_version(ctx.kernel)} has no virtio_pmem driver (it came "
                      "in Linux 5.3), so the guest would see no pmem", "use a newer distribution or kernel, or "
                      "pmem_backend: memmap")
