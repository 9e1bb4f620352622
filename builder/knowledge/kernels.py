"""Kernel versions: parsing, formatting, and the versions at which pmem capabilities appeared."""

import re

KernelVersion = tuple[int, int, int]

# libnvdimm came in 4.2, but DAX needs struct pages for pmem (ZONE_DEVICE), which came in 4.3.
MINIMUM_KERNEL: KernelVersion = (4, 3, 0)
MINIMUM_KERNEL_LACKS = "ZONE_DEVICE (struct pages for pmem), without which DAX cannot work; libnvdimm alone came in 4.2"
DAX_TRISTATE = {"ext4": (5, 9, 0), "xfs": (5, 8, 0)}  # dax=always|never|inode
MAP_SYNC_KERNEL: KernelVersion = (4, 15, 0)    # mmap(MAP_SHARED_VALIDATE | MAP_SYNC) on DAX files
DEVDAX_KERNEL: KernelVersion = (4, 10, 0)      # device DAX on pfn metadata (kernel-fragments/pmem-pfn-dax)


def parse_version(text: str) -> KernelVersion:
    match = re.match(r"^([0-9]+)\.([0-9]+)(?:\.([0-9]+))?$", text)
    if not match:
        raise ValueError(f"{text!r} is not a kernel version like 6.1 or 6.1.192")
    return int(match[1]), int(match[2]), int(match[3] or 0)


def format_version(version: KernelVersion) -> str:
    """(6, 1, 0) -> "6.1"; (6, 1, 192) -> "6.1.192"."""
    return ".".join(str(part) for part in (version if version[2] else version[:2]))
