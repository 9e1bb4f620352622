"""The initrd's kernel modules: mkosi 24 keeps a module when the joined KernelModulesInitrdInclude= patterns
search-match its path under /usr/lib/modules (kmod.filter_kernel_modules); checked here the same way on
paths of Debian 12's kernel."""

import re

from builder.knowledge.formats import initrd_modules
from builder.knowledge.initrd import initrd_module_patterns

KERNEL = "lib/modules/6.1.0-57-amd64/kernel/"


def kept(patterns: list[str], path: str) -> bool:
    return re.compile("|".join(patterns)).search(KERNEL + path) is not None


def test_the_disk_drivers_root_filesystem_and_crc32c_are_kept_and_mkosis_extras_are_not():
    patterns = initrd_module_patterns(initrd_modules(["vmdk", "vhd", "gce"]), "ext4", ["nd_pmem"], ".ko")
    for path in ("drivers/block/virtio_blk.ko", "drivers/scsi/virtio_scsi.ko", "drivers/virtio/virtio_pci.ko",
                 "drivers/scsi/vmw_pvscsi.ko", "drivers/message/fusion/mptspi.ko", "drivers/ata/ahci.ko",
                 "drivers/scsi/hv_storvsc.ko", "drivers/nvme/host/nvme.ko", "drivers/scsi/sd_mod.ko",
                 "fs/ext4/ext4.ko", "crypto/crc32c_generic.ko", "arch/x86/crypto/crc32c-intel.ko",
                 "fs/nls/nls_cp437.ko", "fs/fat/vfat.ko", "drivers/firmware/dmi-sysfs.ko",
                 "drivers/nvdimm/nd_pmem.ko"):
        assert kept(patterns, path), path
    # mkosi's "default" set has these; none finds or mounts a pmem-image root
    for path in ("drivers/crypto/qat/qat_c62x/qat_c62x.ko", "drivers/net/ethernet/chelsio/cxgb4/cxgb4.ko",
                 "drivers/crypto/ccp/ccp.ko", "fs/btrfs/btrfs.ko", "fs/xfs/xfs.ko", "drivers/md/dm-crypt.ko",
                 "drivers/md/raid456.ko", "fs/overlayfs/overlay.ko", "fs/squashfs/squashfs.ko",
                 "drivers/net/virtio_net.ko", "fs/ext4/ext4.ko.xz"):
        assert not kept(patterns, path), path


def test_the_root_filesystem_and_suffix_are_the_plans():
    patterns = initrd_module_patterns(initrd_modules([]), "xfs", [], ".ko.xz")
    assert kept(patterns, "fs/xfs/xfs.ko.xz") and not kept(patterns, "fs/xfs/xfs.ko")
    assert not kept(patterns, "fs/ext4/ext4.ko.xz") and not kept(patterns, "drivers/ata/ahci.ko.xz")


def test_each_module_is_named_once():
    patterns = initrd_module_patterns(["virtio_blk", "sd_mod"], "ext4", ["virtio_blk"], ".ko")
    assert len(patterns) == len(set(patterns))
