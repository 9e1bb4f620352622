"""What an image's initrd carries: enough to find and mount the root disk, in place of mkosi 24's "default"
module set (resources/mkosi-initrd/mkosi.conf).

mkosi's set is made for any machine: btrfs, xfs, dm-crypt, dm-verity, RAID, overlay, squashfs, erofs,
virtiofs, vsock, networking, and every module under any "crypto/" directory, so drivers/crypto (Intel QAT,
AMD CCP, Chelsio, which pulls in the cxgb4 network driver). In default's initrd that was 10 of its 40 MB of
zstd, decompressed and unpacked on every boot and probed by udev. A pmem-image boot needs the root disk's
driver (knowledge.formats), the root filesystem, and the few modules below that systemd itself asks for."""

# Every module under these (kernel tree paths): the checksums and ciphers the filesystems ask for by name,
# which no module dependency names (ext4 and xfs: "crc32c", served by crc32c_generic or crc32c-intel), and
# the code pages of the ESP's vfat.
INITRD_MODULE_DIRS = ("/kernel/crypto/", "/kernel/arch/x86/crypto/", "/kernel/fs/nls/")

# By name, each as mkosi's set has it:
INITRD_MODULES = (
    "virtio_pci",       # the transport of every virtio disk (bound by PCI ID, so no driver depends on it)
    "sd_mod",           # the disk on SCSI, SATA and Hyper-V storage (bound by device type, likewise)
    "vfat",             # the ESP
    "autofs4",          # systemd's automounts
    "configfs",
    "efivarfs",         # systemd in the initrd mounts these when the firmware has them
    "efi-pstore",
    "dmi-sysfs",        # /sys/firmware/dmi/entries: the SMBIOS OEM strings that ask for the self-test
    "qemu_fw_cfg",
    "loop",
    "virtio_console",
    "virtio-rng",       # entropy early: the initrd's systemd and the root's random seed
)


def initrd_module_patterns(disk_modules: list[str], root_filesystem: str, pmem_modules: list[str],
                           suffix: str) -> list[str]:
    """mkosi's KernelModulesInitrdInclude= regular expressions (searched in each module's path): the
    directories, then each module by file name (suffix: .ko, .ko.xz or .ko.zst)."""
    names = dict.fromkeys([*disk_modules, root_filesystem, *INITRD_MODULES, *pmem_modules])   # once each, in order
    escaped = suffix.replace(".", "\\.")
    return [*INITRD_MODULE_DIRS, *(f"/{name}{escaped}$" for name in names)]
