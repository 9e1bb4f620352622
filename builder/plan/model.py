"""The Plan: every default filled in and every derived value computed once (the contract that render,
build and verify read). Split in two: the identity (what changes the image, hashed into the build
key) and the view (where things are on this host and how to show them: never hashed).
"""

import hashlib
import json
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict

from ..knowledge.host import AptMirror, Snapshot
from ..profile.lock import LockedPackage


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PlannedRegion(Frozen):
    index: int                    # position in the profile's pmem list
    number: int                   # the kernel's region number (regions are numbered by address)
    device: str                   # /dev name: pmemN (fsdax, raw), pmemNs (sector), daxN.0 (devdax)
    mode: Literal["fsdax", "devdax", "sector", "raw"]
    map: Optional[Literal["mem", "dev"]]   # where struct pages live (fsdax, devdax); None: there are none
    align: Optional[int]          # devdax: the device's alignment (ndctl --align); None for other modes
    reconfigure: bool             # ndctl must change the namespace at boot (it boots as fsdax, map mem)
    start: Optional[int]          # physical address (memmap); None: QEMU places it (nvdimm)
    size: int
    memmap: Optional[str]         # SIZE!OFFSET (memmap backend)
    label_size: Optional[int]     # the NVDIMM's label area (nvdimm backend); its backing file is size + this
    filesystem: Literal["ext4", "xfs", "none"]
    mountpoint: Optional[str]
    dax_option: Optional[str]     # dax=always or dax
    mount_options: list[str]
    mount_unit: Optional[str]     # systemd's name for the mountpoint's .mount unit
    mkfs: list[str]               # argv, device last


class PlannedCxl(Frozen):
    """The cxl backend's topology; backends/cxl.py derives the devices, windows and QEMU arguments from it."""
    host_bridges: int
    interleave_ways: int          # devices per region
    interleave_granularity: int   # bytes
    # How a region may commit in a VM (Linux flushes CPU caches with WBINVD on commit, which x86 refuses under a
    # hypervisor): "cpuid": the guest's CPUID hides the hypervisor bit (a distribution kernel); "kernel": the kernel
    # built here has CONFIG_CXL_REGION_INVALIDATION_TEST=y, and the guest sees the hypervisor as usual.
    vm_gate: Literal["cpuid", "kernel"]


class PlannedUser(Frozen):
    name: str
    ssh_authorized_keys: list[str]
    sudo: bool
    password_hash: Optional[str]   # None: no password (key login only); the account is not locked
    groups: list[str]


class MemorySpan(Frozen):
    """One piece of the guest's physical memory picture (for people; not part of the identity)."""
    start: int
    end: int                      # exclusive
    kind: Literal["ram", "reserved", "hole", "pmem"]
    label: str


# Fields that do not change the image: the profile's prose, host paths and the host's mirror
# (the same profile elsewhere must get the same build key), and display data.
VIEW_FIELDS = frozenset({"description", "mirror", "kernel_url", "kernel_path", "extra_tree_paths", "memory_map"})


class Plan(Frozen):
    # identity
    renderer_version: str
    name: str
    distribution: str
    release: str
    apt_suites: list[str]              # Debian/Ubuntu: archive suites of the release record
    apt_security_suite: Optional[str]
    root_filesystem: str
    module_suffix: str                 # the image kernel's module file suffix (.ko, .ko.xz, .ko.zst)
    kernel_source: str
    kernel_version: str
    kernel_sha256: Optional[str]
    kernel_base: str                   # tinyconfig | defconfig (kernels built from source)
    kernel_fragments: list[str]        # resolved: automatic ones, then those the profile names
    kernel_options: dict[str, str]     # SYMBOL -> y/m/n the kernel must end up with
    kernel_cmdline: list[str]
    memory: int
    cpus: int
    machine: str
    firmware: Literal["bios", "uefi"]
    bios_bootloader: bool
    pmem_backend: Literal["memmap", "nvdimm", "virtio-pmem", "cxl"]
    cxl: Optional[PlannedCxl]          # the cxl backend's topology; None for the others
    pmem_modules: list[str]            # kernel modules loaded at boot that make the backend's regions
    regions: list[PlannedRegion]       # in the kernel's numbering: region 0 first (NVDIMMs: QEMU's order)
    packages: list[str]
    build_packages: list[str]
    locked_packages: list[LockedPackage]   # PROFILE.lock: every package pinned ([] without a lock)
    users: list[PlannedUser]
    root_ssh_keys: list[str]
    ssh: bool
    network: Literal["dhcp", "none"]
    network_service: str               # what brings DHCP up: systemd-networkd, or NetworkManager
    disk_size: Optional[int]           # root partition bytes; None: as small as its contents (mkosi's guess)
    console_autologin: bool
    pmdk: bool                         # PMDK installed, and proven on every DAX mount
    formats: list[str]                 # exports made beside the raw disk (knowledge/formats.py)
    initrd_modules: list[str]          # storage drivers the initrd carries (virtio + each format's platform)
    cloud_init: bool
    snapshot: Optional[Snapshot]       # dated package sources (every suite); None: this host's mirror
    extra_trees: int                   # how many; their content is hashed into the build key, not their paths
    seed: str
    source_date_epoch: int
    # view
    description: str
    mirror: Optional[AptMirror]        # this host's Debian mirror (rendered into the package sources)
    kernel_url: Optional[str]          # tarball: URL, or absolute local path
    kernel_path: Optional[str]         # tree: absolute path
    extra_tree_paths: list[str]        # absolute paths of the profile's extra trees, in order
    memory_map: list[MemorySpan]

    def identity(self) -> dict:
        return self.model_dump(mode="json", exclude=set(VIEW_FIELDS))

    def view(self) -> dict:
        return self.model_dump(mode="json", include=set(VIEW_FIELDS))

    def canonical_json(self) -> str:
        """The identity as canonical JSON: what the build key hashes."""
        return json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()
