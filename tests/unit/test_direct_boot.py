"""verify --fast reads the boot entry mkosi wrote (pure parsing), and the QEMU command it gives."""

from dataclasses import replace
from pathlib import Path

import pytest

from conftest import PROFILES, plan_of_file
from builder.profile.errors import PmemImageError
from builder.verify.direct_boot import parse_grub_entry
from builder.verify.boot_request import BootRequest, qemu_argv

# What mkosi 24.3 writes for a BIOS + UEFI disk (copied from a built default image's ESP).
GRUB_CFG = """set timeout=0
if [ "${grub_platform}" = efi ] || [ "${grub_platform}" = pc ]; then
menuentry "default-6.1.0-57-amd64" {
    linux /default/6.1.0-57-amd64/vmlinuz root=PARTUUID=f6731cca-c7d7-4718-9461-043726f6ca29 console=ttyS0 rw memmap=1G!4G
    initrd /default/initrd /default/6.1.0-57-amd64/kernel-modules.initrd
}
fi
"""


def test_the_first_entrys_kernel_initrds_and_command_line():
    entry = parse_grub_entry(GRUB_CFG)
    assert entry.kernel == "/default/6.1.0-57-amd64/vmlinuz"
    assert entry.initrds == ("/default/initrd", "/default/6.1.0-57-amd64/kernel-modules.initrd")
    assert entry.cmdline == "root=PARTUUID=f6731cca-c7d7-4718-9461-043726f6ca29 console=ttyS0 rw memmap=1G!4G"


def test_a_later_entry_does_not_replace_the_first():
    second = GRUB_CFG + 'menuentry "old" {\n    linux /old/vmlinuz root=/dev/sda1\n    initrd /old/initrd\n}\n'
    entry = parse_grub_entry(second)
    assert entry.kernel.startswith("/default/") and entry.initrds[0] == "/default/initrd"


def test_a_config_without_a_kernel_says_to_boot_through_the_firmware():
    with pytest.raises(PmemImageError) as error:
        parse_grub_entry("set timeout=0\n")
    assert "verify without --fast" in error.value.hint


def test_a_direct_boot_has_no_firmware_drive_and_only_the_devices_it_names(tmp_path):
    plan = plan_of_file(PROFILES / "debian-xfs-uefi.yaml")[0]
    direct = ["-kernel", "k", "-append", "root=x", "-initrd", "i"]
    proof = BootRequest(plan, tmp_path / "d.qcow2", "tcg", "proof", tmp_path / "s", tmp_path / "r", ovmf_vars=Path("vars"))
    argv = qemu_argv(replace(proof, direct=tuple(direct)))
    assert not any("pflash" in a for a in argv) and argv[argv.index("-kernel"):argv.index("-kernel") + 6] == direct
    assert "-nodefaults" in argv and argv[argv.index("-vga") + 1] == "none"
    firmware = qemu_argv(proof)
    assert sum("if=pflash" in a for a in firmware) == 2 and "-kernel" not in firmware


def test_the_direct_boot_passes_the_entrys_command_line_and_loads_the_disk_driver_early(tmp_path, monkeypatch):
    """GRUB's command line as the entry has it, then the hint (the initrd's systemd-modules-load loads
    virtio_blk at once instead of after udev's coldplug of every other bus); the initrds concatenated."""
    from builder.verify import direct_boot

    def copy_out(esp, path, destination, runner):
        destination.write_bytes(path.encode())
        return path.encode()
    monkeypatch.setattr(direct_boot, "boot_entry", lambda image, runner: (
        "esp", direct_boot.BootEntry("/vmlinuz", ("/a", "/bb"), "root=PARTUUID=x rw memmap=1G!4G")))
    monkeypatch.setattr(direct_boot, "_copy_out", copy_out)
    argv = direct_boot.direct_boot_arguments(tmp_path / "disk.raw", tmp_path, None)
    assert argv[argv.index("-append") + 1] == "root=PARTUUID=x rw memmap=1G!4G rd.modules_load=virtio_blk"
    assert (tmp_path / "initrd").read_bytes() == b"/a\0\0/bb\0"      # each initrd 4-byte aligned, as GRUB loads them
