"""Namespace modes (ndctl create-namespace --mode): what each makes of a pmem region, and the device the
kernel names for it. A label-less (memmap=) region boots as fsdax with its struct pages in RAM; ndctl
reconfigures it, and writing force_raw makes it raw (ndctl's --mode=raw leaves such a region fsdax)."""

from ..profile.sizes import KIB, MIB

DEVDAX_ALIGN = 2 * MIB                                   # ndctl's default device DAX alignment
# The alignments a profile may give a device DAX: base pages and huge pages, what x86-64 maps at the 2M
# section granularity both backends keep (1G would need 1G-aligned data past the info block: not offered).
DEVDAX_ALIGNS = (4 * KIB, DEVDAX_ALIGN)
BOOT_STATE = ("fsdax", "mem")                            # what a label-less region is at a cold boot
MIN_LABEL_SIZE = 128 * KIB                               # QEMU's floor for an NVDIMM label area
DEFAULT_LABEL_SIZE = MIN_LABEL_SIZE                      # room for hundreds of namespace labels


def device_name(mode: str, region_number: int) -> str:
    """/dev name of a region's namespace: pmemN, pmemNs (BTT), or daxN.0; N is the region number."""
    if mode == "devdax":
        return f"dax{region_number}.0"
    return f"pmem{region_number}s" if mode == "sector" else f"pmem{region_number}"
