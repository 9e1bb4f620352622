"""The profile: one pydantic model, the single source of truth for what a user may write.

Only shape and per-field syntax live here; checks that relate fields to each other (RAM
layout, kernel capabilities) are named functions in checks.py so each can say how to fix it.
"""

import re
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from .access import Disk, Network, PackageName, Root, TreePath, User
from .sizes import Size

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
# One kernel argument: no whitespace, quotes, '#', ';' (mkosi comments), '$' (GRUB variables),
# backslashes or control characters. '%' is allowed and escaped for mkosi as '%%'.
KERNEL_ARG_PATTERN = r"^[A-Za-z0-9_.,:=/+@!%\-]+$"
FRAGMENT_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
MOUNTPOINT_PATTERN = r"^(/[A-Za-z0-9_.-]+)+$"
VERSION_PATTERN = r"^[0-9]+\.[0-9]+(\.[0-9]+)?$"
MEMMAP_PATTERN = r"^[0-9]+[KMGTkmgt]?![0-9]+[KMGTkmgt]?$"
FILESYSTEM_MODES = frozenset({"fsdax", "sector"})       # namespace modes a filesystem can go on
STRUCT_PAGE_MODES = frozenset({"fsdax", "devdax"})      # namespace modes with struct pages (map: mem | dev)



class WrittenNumber(str):
    """A YAML number kept as the text it was written as (the loader makes these): `version: 6.10` is
    "6.10", not the float 6.1."""


def _as_text(value: object) -> object:
    """YAML reads `release: 9` or `version: 6.12` as numbers; they are names here, taken as written."""
    if isinstance(value, WrittenNumber):
        return str(value)
    if isinstance(value, float):
        raise ValueError(f"{value!r} is a number here and may have lost digits (6.10 reads as 6.1); "
                         "write it in quotes, e.g. \"6.10\"")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_as_text)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Distribution(StrictModel):
    name: Literal["debian", "ubuntu", "fedora", "centos"] = Field(description="Distribution of the image.")
    release: Text = Field(
        pattern=r"^[a-z0-9][a-z0-9.]*$",
        description="Release codename or number: bookworm, noble, 41, 9.",
        examples=["bookworm"],
    )


class Kernel(StrictModel):
    source: Literal["distro", "debian-source", "tarball", "tree"] = Field(
        "distro", description="distro: the distribution's kernel package; debian-source: Debian's linux-source-X.Y; "
                              "tarball: a kernel.org-style tarball (url + sha256); tree: a local source tree (path)."
    )
    version: Optional[Text] = Field(
        None, pattern=VERSION_PATTERN, description="Kernel version (>= 4.3); required unless source is distro."
    )
    url: Optional[str] = Field(
        None, pattern=r"^(https?://[A-Za-z0-9._~:/?@!&'()*+,=%-]+|[A-Za-z0-9._/-]+)$", max_length=500,
        description="source: tarball; an http(s) URL or a local path (relative to the profile).")
    sha256: Optional[str] = Field(None, pattern=r"^[0-9a-f]{64}$", description="source: tarball; its SHA-256.")
    path: Optional[str] = Field(None, pattern=r"^[A-Za-z0-9._/-]+$", max_length=500,
                                description="source: tree; the kernel source directory (relative to the profile).")
    base: Literal["tinyconfig", "defconfig"] = Field(
        "tinyconfig", description="Start config for kernels built from source, before the fragments.")
    fragments: list[Annotated[str, Field(pattern=FRAGMENT_PATTERN)]] = Field(
        default_factory=list, description="Extra Kconfig fragment names from kernel-fragments/."
    )
    cmdline: list[Annotated[str, Field(pattern=KERNEL_ARG_PATTERN, max_length=512)]] = Field(
        default_factory=list, description="Extra kernel arguments, one token per item."
    )


class Vm(StrictModel):
    memory: Size = Field(4 * 1024**3, description="Guest RAM (QEMU -m).")
    cpus: int = Field(2, ge=1, le=64, strict=True, description="Guest CPUs (QEMU -smp).")
    machine: Literal["q35", "pc"] = Field("q35", description="QEMU machine type.")
    firmware: Literal["bios", "uefi"] = Field("bios", description="SeaBIOS + GRUB, or OVMF + GRUB.")


class Cxl(StrictModel):
    """cxl backend: the CXL topology QEMU builds. Each region is one fixed memory window (the host's address
    range for it) over interleave_ways type-3 devices, each on a root port of its own; the root ports are
    spread over the host bridges in turn (device k of a region sits behind host bridge k mod host_bridges)."""

    host_bridges: int = Field(1, ge=1, le=4, strict=True, description=(
        "CXL host bridges (QEMU pxb-cxl); a region interleaves across them when its devices sit behind more "
        "than one."))
    interleave_ways: Literal[1, 2, 4] = Field(1, description=(
        "Devices per region; its size is split evenly over them (each a multiple of 256M)."))
    interleave_granularity: Literal[256, 512, 1024, 2048, 4096, 8192, 16384] = Field(4096, description=(
        "Bytes: how much of a region lies on one device before the next one's turn (cxl create-region -g)."))


class PmemRegion(StrictModel):
    """One pmem region. memmap backend: size + offset, or memmap SIZE!OFFSET; nvdimm backend: size and
    label_size (QEMU places the NVDIMM, so there is no offset); virtio-pmem backend: size, mode fsdax; cxl
    backend: size and label_size (each device's label storage area)."""

    size: Optional[Size] = Field(None, description="Region size, e.g. 1G.")
    offset: Optional[Size] = Field(None, description="Physical start address, e.g. 4G.")
    memmap: Optional[str] = Field(
        None, pattern=MEMMAP_PATTERN, description="The kernel's own form SIZE!OFFSET, e.g. 1G!4G."
    )
    label_size: Optional[Size] = Field(None, description=(
        "nvdimm, cxl backends: the label area (>= 128K, default 128K) of each NVDIMM or CXL device, where its "
        "namespaces are kept."))
    mode: Literal["fsdax", "devdax", "sector", "raw"] = Field("fsdax", description=(
        "Namespace mode, set with ndctl at boot: fsdax (/dev/pmemN, DAX filesystems), devdax (/dev/daxN.0, "
        "no filesystem), sector (BTT /dev/pmemNs, no DAX), raw (/dev/pmemN without struct pages, no DAX)."))
    map: Optional[Literal["mem", "dev"]] = Field(None, description=(
        "fsdax/devdax: where the struct pages live; mem (default) takes 1/64 of the region from RAM, "
        "dev keeps them on the pmem itself."))
    filesystem: Optional[Literal["ext4", "xfs", "none"]] = Field(
        None, description="Filesystem made at boot; default ext4 for fsdax and sector, none for devdax and raw.")
    mountpoint: Optional[str] = Field(
        None, pattern=MOUNTPOINT_PATTERN, max_length=200, description="Where it is mounted; default /mnt/pmemN."
    )
    align: Optional[Size] = Field(None, description=(
        "devdax: the device's mapping alignment, the page size programs fault it in with: 2M (default) or 4K "
        "(PMDK's test suite wants two of each)."))
    dax: Optional[Literal["auto", "always", "legacy"]] = Field(
        None, description="fsdax: auto (default): dax=always where the kernel supports it, else -o dax; legacy: -o dax."
    )

    @property
    def fs(self) -> str:
        """The filesystem made on the region, defaults filled in."""
        return self.filesystem or ("ext4" if self.mode in FILESYSTEM_MODES else "none")

    @property
    def dax_mode(self) -> str:
        return self.dax or "auto"

    @property
    def struct_pages(self) -> Optional[str]:
        """Where the region's struct pages live: mem, dev, or None (sector and raw have none)."""
        return (self.map or "mem") if self.mode in STRUCT_PAGE_MODES else None

    @model_validator(mode="before")
    @classmethod
    def _split_memmap(cls, data: object) -> object:
        """Turn `memmap: 1G!4G` into size and offset so everything downstream sees one form."""
        if not isinstance(data, dict) or data.get("memmap") is None:
            return data
        if data.get("size") is not None or data.get("offset") is not None:
            raise ValueError("give either memmap or size + offset, not both")
        memmap = data["memmap"]
        if not isinstance(memmap, str) or not re.match(MEMMAP_PATTERN, memmap):
            return data  # the field's own pattern reports it
        size, offset = memmap.split("!")
        return {**data, "size": size, "offset": offset}

    @model_validator(mode="after")
    def _need_size(self) -> "PmemRegion":
        # The offset is the memmap backend's to require (an nvdimm region has none): plan/backends/memmap.py.
        if self.size is None:
            raise ValueError("missing size: write size: 1G (with offset: 4G, or memmap: 1G!4G, for memmap pmem)")
        return self


class Profile(StrictModel):
    """A pmem emulation image: distribution, kernel, the VM it boots on and its pmem regions."""

    name: str = Field(pattern=NAME_PATTERN, description="Image name; outputs go to out/<name>/.")
    description: str = Field("", max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$", description="One line.")
    distribution: Distribution
    kernel: Kernel = Field(default_factory=Kernel)
    vm: Vm = Field(default_factory=Vm)
    pmem_backend: Literal["memmap", "nvdimm", "virtio-pmem", "cxl"] = Field("memmap", description=(
        "memmap: memmap= turns guest RAM into pmem (any VM or bare metal; lost at power-off); nvdimm: QEMU "
        "vNVDIMMs backed by host files, with labels and namespaces, surviving power-off (QEMU/libvirt labs); "
        "virtio-pmem: paravirtual pmem backed by host files (QEMU, Cloud Hypervisor, Firecracker, Kata), "
        "fsdax only, flushed by fsync/msync: MAP_SYNC is refused; cxl: CXL type-3 memory devices with persistent "
        "capacity backed by host files, a region made on them at every boot (QEMU on x86 q35)."))
    cxl: Optional[Cxl] = Field(None, description="cxl backend: host bridges and interleave (default: one host "
                                                  "bridge, one device per region).")
    pmem: list[PmemRegion] = Field(min_length=1, max_length=16, description="Emulated pmem regions.")
    users: list[User] = Field(default_factory=list, max_length=64, description="Login users; none by default.")
    root: Root = Field(default_factory=Root, description="Root stays locked unless it gets SSH keys here.")
    packages: list[PackageName] = Field(default_factory=list, max_length=500,
                                        description="Extra distribution packages.")
    extra_trees: list[TreePath] = Field(default_factory=list, max_length=16, description=(
        "Directories (relative to the profile) copied onto the image's /."))
    ssh: Optional[bool] = Field(None, description="openssh-server; host keys are made at first boot, never baked "
                                                  "in. Default: true with cloud_init (its users log in over SSH), "
                                                  "else false.")
    network: Optional[Network] = Field(None, description="dhcp (systemd-networkd on every ethernet link) or "
                                                         "none; default: dhcp with ssh, else none.")
    disk: Disk = Field(default_factory=Disk)
    console_autologin: bool = Field(False, description="Root autologin on the serial console (throwaway labs).")
    formats: list[Literal["qcow2", "vmdk", "ova", "vhd", "vhdx", "gce"]] = Field(
        default_factory=list, max_length=6, description=(
            "Templates made beside the raw disk by build: qcow2, vmdk (streamOptimized), ova, vhd (fixed, Azure), "
            "vhdx, gce (disk.raw in a tar.gz); the initrd gets each one's storage drivers."))
    cloud_init: bool = Field(False, description=(
        "cloud-init with the NoCloud, ConfigDrive, GCE, Azure, Ec2 and VMware datasources; it never touches the "
        "kernel command line or the pmem entries of fstab."))
    mirror: Optional[str] = Field(None, pattern=r"^snapshot:[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$",
                                  description=(
        "snapshot:YYYY-MM-DDTHH:MM:SSZ: install the packages as Debian's or Ubuntu's snapshot service had "
        "them then, every suite and security included; default: this host's Debian mirror."))
    pmdk: bool = Field(False, description="PMDK: libpmem, libpmem2, libpmemobj with headers, pmempool and daxio, "
                                          "daxctl and a compiler; the proof then checks PMDK on every DAX mount.")

    @property
    def wants_ssh(self) -> bool:
        """ssh as written, else on for cloud-init images (whose users log in over SSH)."""
        return self.ssh if self.ssh is not None else self.cloud_init
