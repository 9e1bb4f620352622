"""verify --fast with the real tools: the boot entry and its files read from a disk's ESP with sfdisk and
mtools, the initrds joined as GRUB joins them (each 4-byte aligned)."""

import subprocess
from pathlib import Path

import pytest

from builder.build.contents import ESP_TYPE
from builder.profile.errors import PmemImageError
from builder.runner import Runner
from builder.verify.direct_boot import DIRECT_BOOT_HINTS, direct_boot_arguments

pytestmark = pytest.mark.integration
MIB = 1024 * 1024


def disk_with_esp(tmp_path: Path, files: dict[str, bytes]) -> Path:
    """A GPT disk whose first partition is a FAT ESP holding `files` (ESP path -> bytes)."""
    disk, esp = tmp_path / "disk.raw", tmp_path / "esp.fat"
    with open(disk, "wb") as handle:
        handle.truncate(40 * MIB)
    subprocess.run(["sfdisk", "-q", str(disk)], input=f"label: gpt\nstart=2048, size=65536, type={ESP_TYPE}\n",
                   text=True, check=True)
    with open(esp, "wb") as handle:
        handle.truncate(32 * MIB)
    subprocess.run(["mkfs.fat", str(esp)], capture_output=True, check=True)
    for path, content in files.items():
        local = tmp_path / "file"
        local.write_bytes(content)
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts)):
            subprocess.run(["mmd", "-D", "s", "-i", str(esp), "::/" + "/".join(parts[:depth])], capture_output=True,
                           env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"})
        subprocess.run(["mcopy", "-i", str(esp), str(local), "::" + path], check=True,
                       env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"})
    subprocess.run(["dd", f"if={esp}", f"of={disk}", "bs=1M", "seek=1", "conv=notrunc", "status=none"], check=True)
    return disk


GRUB = """set timeout=0
menuentry "x" {
    linux /x/vmlinuz root=PARTUUID=abc rw memmap=1G!4G
    initrd /x/initrd /x/modules.initrd
}
"""


def test_the_entrys_kernel_and_initrds_come_out_of_the_esp(tmp_path):
    disk = disk_with_esp(tmp_path, {"/grub/grub.cfg": GRUB.encode(), "/x/vmlinuz": b"KERNEL",
                                    "/x/initrd": b"12345", "/x/modules.initrd": b"MODULES"})
    work = tmp_path / "work"
    work.mkdir()
    argv = direct_boot_arguments(disk, work, Runner())
    # GRUB's command line as it is, then what a direct boot adds (and nothing else)
    assert argv == ["-kernel", str(work / "vmlinuz"), "-append",
                    " ".join(["root=PARTUUID=abc rw memmap=1G!4G", *DIRECT_BOOT_HINTS]), "-initrd", str(work / "initrd")]
    assert (work / "vmlinuz").read_bytes() == b"KERNEL"
    assert (work / "initrd").read_bytes() == b"12345\0\0\0MODULES\0"


def test_a_disk_without_a_boot_entry_is_a_clear_error(tmp_path):
    disk = disk_with_esp(tmp_path, {"/EFI/BOOT/README": b"nothing to boot"})
    with pytest.raises(PmemImageError) as error:
        direct_boot_arguments(disk, tmp_path, Runner())
    assert "no grub.cfg" in error.value.message and "without --fast" in error.value.hint


def test_zstd_initrds_are_handed_over_decompressed_and_what_zstd_cannot_read_as_it_is(tmp_path):
    """The initrds as the kernel has them once it has decompressed them (two zstd cpio archives, as mkosi
    writes them, joined 4-byte aligned); a part that only looks like zstd (its magic, then garbage) and a
    part that is no zstd at all are passed on byte for byte, for the kernel to judge."""
    def zstd(data: bytes) -> bytes:
        return subprocess.run(["zstd", "-q", "-c", "-19"], input=data, capture_output=True, check=True).stdout
    main, modules = b"070701" + b"M" * 1001, b"070701" + b"K" * 2000        # plain cpio stand-ins
    bogus = b"\x28\xb5\x2f\xfd" + b"not a zstd frame"
    disk = disk_with_esp(tmp_path, {"/grub/grub.cfg": GRUB.replace("/x/initrd /x/modules.initrd",
                                                                   "/x/initrd /x/modules.initrd /x/bogus /x/plain")
                                    .encode(),
                                    "/x/vmlinuz": b"KERNEL", "/x/initrd": zstd(main),
                                    "/x/modules.initrd": zstd(modules), "/x/bogus": bogus, "/x/plain": b"PLAIN"})
    work = tmp_path / "work"
    work.mkdir()
    direct_boot_arguments(disk, work, Runner())
    joined = b""
    for part in (main, modules, bogus, b"PLAIN"):
        joined += part
        joined += bytes(-len(joined) % 4)
    assert (work / "initrd").read_bytes() == joined
    assert sorted(p.name for p in work.iterdir()) == ["initrd", "vmlinuz"]        # no part left behind
