"""Export formats for VM and cloud templates: the container each platform imports, the disk bus it boots
from, and the storage drivers its initrd needs to find the root disk there. Facts and sources:
../shared/reference/publish-repro-nvdimm.md section 1."""

from collections.abc import Sequence
from dataclasses import dataclass

from ..profile.sizes import MIB


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str                      # the artifact is out/<name>/<name><suffix>
    platform: str                    # who imports it, in words
    bus: str                         # the disk bus `verify --format` boots it on (as the platform would)
    initrd_modules: tuple[str, ...]  # storage drivers the initrd needs on that platform
    qemu_format: str = ""            # qemu-img -O (the disk inside, for ova and gce)
    qemu_options: tuple[str, ...] = ()


VIRTIO = ("virtio_blk", "virtio_scsi")
VMWARE = ("vmw_pvscsi", "mptspi")                       # PVSCSI, and LSI Logic parallel (the vmdk's adapter type)
HYPERV = ("hv_vmbus", "hv_storvsc", "ata_piix", "ahci")  # Gen2 synthetic SCSI, and Gen1-style IDE/AHCI boots
CLOUD_RAW = ("nvme", "virtio_scsi")                     # GCE and AWS Nitro: NVMe, or virtio-scsi
FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("qcow2", ".qcow2", "QEMU/KVM, OpenStack, libvirt", "virtio", VIRTIO, "qcow2", ("-c", "-o", "compat=1.1")),
    Format("vmdk", ".vmdk", "VMware ESXi/vSphere (import), AWS ImportImage", "pvscsi", VMWARE, "vmdk",
           ("-o", "subformat=streamOptimized,adapter_type=lsilogic")),
    Format("ova", ".ova", "VMware, VirtualBox, AWS ImportImage (OVF 1.0 in a tar)", "pvscsi", VMWARE, "vmdk",
           ("-o", "subformat=streamOptimized,adapter_type=lsilogic")),
    Format("vhd", ".vhd", "Azure, Hyper-V (fixed VHD, a whole number of MiB)", "ahci", HYPERV, "vpc",
           ("-o", "subformat=fixed,force_size")),
    Format("vhdx", ".vhdx", "Hyper-V", "ahci", HYPERV, "vhdx", ("-o", "subformat=dynamic")),
    Format("gce", ".gce.tar.gz", "Google Compute Engine (disk.raw in an oldgnu tar, gzip)", "nvme", CLOUD_RAW, "raw"),
)}
AZURE_ALIGN = MIB                    # Azure: the VHD's virtual size is a whole number of MiB


def boot_bus(name: str, firmware: str) -> str:
    """The bus `verify --format` boots an export on, as close to its platform as this host's firmware gets:
    - gce on BIOS: virtio-scsi (GCE's SCSI disk interface). SeaBIOS cannot boot NVMe here: with RAM above
      4 GiB (always, with pmem at 4G or higher) it maps the controller's 64-bit BAR above 4 GiB, out of its reach;
    - vmdk/ova on UEFI: AHCI (VMware's SATA controller); Debian's OVMF has no PVSCSI driver."""
    bus = FORMATS[name].bus
    if bus == "nvme" and firmware == "bios":
        return "virtio-scsi"
    if bus == "pvscsi" and firmware == "uefi":
        return "ahci"
    return bus


def initrd_modules(formats: Sequence[str]) -> list[str]:
    """The initrd's storage drivers: virtio always (pmem-image's own QEMU boots), then each format's."""
    chosen = list(VIRTIO)
    for name in formats:
        chosen += [m for m in FORMATS[name].initrd_modules if m not in chosen]
    return chosen
