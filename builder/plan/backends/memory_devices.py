"""Checks shared by the backends whose regions are QEMU memory devices backed by host files (nvdimm,
virtio-pmem): QEMU places each one above the RAM, adds it to the guest by whole memory sections, and only a
QEMU or libvirt host can give it."""

from typing import Iterable

from ...knowledge.memory import SECTION_SIZE
from ...knowledge.namespaces import DEFAULT_LABEL_SIZE
from ...profile.errors import Problem
from ...profile.sizes import GIB, TIB, format_size, round_up
from ..checks import CheckContext, check, multiples_near
from . import backend_for

BACKENDS = ("nvdimm", "virtio-pmem")
FILE_BACKED = (*BACKENDS, "cxl")       # regions QEMU places, in host files: also CXL devices (PCI, not memory slots)
# TCG's -cpu max has 40 physical address bits; QEMU puts memory devices above RAM with 1 GiB of slack per slot.
ADDRESS_SPACE = 1 * TIB


def _device(ctx: CheckContext) -> str:
    return backend_for(ctx.backend).device_words


def _a_device(ctx: CheckContext) -> str:
    words = _device(ctx)
    return f"{'an' if words.startswith('NVDIMM') else 'a'} {words}"


@check(backend=FILE_BACKED)
def check_regions_unplaced(ctx: CheckContext) -> Iterable[Problem]:
    for index, region in enumerate(ctx.profile.pmem):
        if region.offset is not None:
            yield Problem(("pmem", index, "offset"), f"{_a_device(ctx)} has no offset: QEMU places it above the RAM",
                          "drop offset (and memmap); give size"
                          + (" and, if you like, label_size" if backend_for(ctx.backend).labelled else ""))


@check(backend=BACKENDS)
def check_region_alignment(ctx: CheckContext) -> Iterable[Problem]:
    for index, region in enumerate(ctx.profile.pmem):
        if region.size and region.size % SECTION_SIZE:
            yield Problem(("pmem", index, "size"),
                          f"size {format_size(region.size)} is not a multiple of 128M: {_a_device(ctx)} is added to "
                          "the guest by whole memory sections (2M, the least pmem alignment, is not enough here)",
                          f"use {multiples_near(region.size, SECTION_SIZE)}")


@check(backend=BACKENDS)
def check_address_space(ctx: CheckContext) -> Iterable[Problem]:
    vm = ctx.profile.vm
    labels = backend_for(ctx.backend).labelled
    devices = sum((r.size or 0) + ((r.label_size or DEFAULT_LABEL_SIZE) if labels else 0) for r in ctx.profile.pmem)
    # Device memory starts at the first 1 GiB boundary above RAM (which begins at 4G past 2-3 GiB below it).
    top = round_up(4 * GIB + vm.memory, GIB) + round_up(devices, GIB) + len(ctx.profile.pmem) * GIB
    if top > ADDRESS_SPACE:
        yield Problem(("pmem",), f"RAM {format_size(vm.memory)} and {_device(ctx)}s of {format_size(devices)} reach "
                      f"{format_size(top)}, beyond the 1T of guest physical addresses QEMU's -cpu max has",
                      f"shrink the {_device(ctx)}s or the RAM")


@check(backend=FILE_BACKED)
def check_kernel_keeps_backend(ctx: CheckContext) -> Iterable[Problem]:
    """The fragments a profile names come last and win: one that turns the backend's driver off leaves no pmem."""
    needed = backend_for(ctx.backend).kernel_options
    for position, name in enumerate(ctx.profile.kernel.fragments):
        fragment = ctx.fragments.get(name)
        for symbol, value in fragment.options if fragment else ():
            if symbol in needed and value == "n":
                yield Problem(("kernel", "fragments", position),
                              f"fragment {name} turns off CONFIG_{symbol}, without which the kernel sees no "
                              f"{_device(ctx)}", "drop that line from the fragment, or use pmem_backend: memmap")


@check(backend=FILE_BACKED)
def check_templates_have_devices(ctx: CheckContext) -> Iterable[Problem]:
    """Cloud platforms give a VM no emulated memory devices: a template for them would boot without its pmem."""
    for index, name in enumerate(ctx.profile.formats):
        if name != "qcow2":
            yield Problem(("formats", index), f"{name} templates are imported where the VM gets no {_device(ctx)}, so "
                          "the image would boot without its pmem", "use pmem_backend: memmap for cloud and VMware "
                          "templates (qcow2 for QEMU/libvirt is fine)", severity="warning")
