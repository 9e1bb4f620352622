"""Kernel versions: parsing, the distributions' release kernels, and what each version can do."""

import re

from .errors import Problem

KernelVersion = tuple[int, int, int]

# The kernel each release ships (major.minor of its linux-image package).
DISTRO_KERNELS: dict[str, dict[str, KernelVersion]] = {
    "debian": {"buster": (4, 19, 0), "bullseye": (5, 10, 0), "bookworm": (6, 1, 0), "trixie": (6, 12, 0)},
    "ubuntu": {"focal": (5, 4, 0), "jammy": (5, 15, 0), "noble": (6, 8, 0), "oracular": (6, 11, 0),
               "plucky": (6, 14, 0)},
    "fedora": {"39": (6, 5, 0), "40": (6, 8, 0), "41": (6, 11, 0), "42": (6, 14, 0)},
    "centos": {"8": (4, 18, 0), "9": (5, 14, 0), "10": (6, 12, 0)},
}

MINIMUM_KERNEL: KernelVersion = (4, 2, 0)      # libnvdimm (PMEM, BLK, BTT) landed in 4.2
DAX_TRISTATE = {"ext4": (5, 9, 0), "xfs": (5, 8, 0)}  # dax=always|never|inode
MAP_SYNC_KERNEL: KernelVersion = (4, 15, 0)


def parse_version(text: str) -> KernelVersion:
    match = re.match(r"^([0-9]+)\.([0-9]+)(?:\.([0-9]+))?$", text)
    if not match:
        raise ValueError(f"{text!r} is not a kernel version like 6.1 or 6.1.192")
    return int(match[1]), int(match[2]), int(match[3] or 0)


def format_version(version: KernelVersion) -> str:
    """(6, 1, 0) -> "6.1"; (6, 1, 192) -> "6.1.192"."""
    return ".".join(str(part) for part in (version if version[2] else version[:2]))


def resolve_kernel_version(distribution: str, release: str, source: str, version: str | None
                           ) -> tuple[KernelVersion | None, list[Problem]]:
    """The kernel version a profile will boot, or the problems that prevent knowing it."""
    releases = DISTRO_KERNELS[distribution]
    if source == "distro":
        if release not in releases:
            known = ", ".join(releases)
            return None, [Problem(("distribution", "release"),
                                  f"unknown {distribution} release {release!r}",
                                  f"use one of: {known}")]
        distro_version = releases[release]
        if version is not None and parse_version(version)[:2] != distro_version[:2]:
            return None, [Problem(("kernel", "version"),
                                  f"{distribution} {release} ships kernel {format_version(distro_version[:2])}, "
                                  f"not {version}",
                                  "drop kernel.version for the distro kernel, or choose a kernel source that builds it")]
        return distro_version, []
    if version is None:
        return None, [Problem(("kernel", "version"), f"kernel.source {source!r} needs a version",
                              "add e.g. version: \"6.1.192\" (the version in the source's Makefile)")]
    return parse_version(version), []
