"""verify --fast: boot the image's own kernel and initrds straight from QEMU (-kernel/-initrd/-append),
skipping the firmware's disk boot and GRUB, with the command line GRUB would pass (and DIRECT_BOOT_HINTS).

What is booted is read from the disk itself, not from the build's side outputs: the boot entry in the
ESP's grub.cfg names the kernel, the initrds (GRUB loads them one after another, each 4-byte aligned, and
the kernel unpacks them in that order) and the command line (mkosi adds root=PARTUUID=... there). So a
fast proof is a proof of the bytes a published image boots, minus the firmware and the boot loader, and
minus the guest's own zstd: the initrds are decompressed here (see decompressed())."""

import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..build.contents import ESP_TYPE, partition_table
from ..profile.errors import PmemImageError
from ..runner import Runner

GRUB_CONFIGS = ("/grub/grub.cfg", "/grub2/grub.cfg")   # mkosi's grub prefix: Debian and Ubuntu; CentOS
_MTOOLS = ["env", "MTOOLS_SKIP_CHECK=1"]               # a disk image is no floppy: skip the geometry check


@dataclass(frozen=True)
class BootEntry:
    kernel: str             # paths inside the ESP
    initrds: tuple[str, ...]
    cmdline: str


def parse_grub_entry(config: str) -> BootEntry:
    """The first menuentry's kernel, initrds and command line, from the grub.cfg mkosi 24 writes."""
    kernel, cmdline, initrds = "", "", tuple[str, ...]()
    for line in config.splitlines():
        words = line.split(None, 1)
        if not words:
            continue
        if words[0] == "linux" and not kernel and len(words) == 2:
            kernel, _, cmdline = words[1].partition(" ")
        elif words[0] == "initrd" and kernel and not initrds and len(words) == 2:
            initrds = tuple(shlex.split(words[1]))
    if not kernel:
        raise PmemImageError("the image's grub.cfg has no 'linux' line to boot directly",
                             "verify without --fast (the firmware boot reads the disk as it is)")
    return BootEntry(kernel, initrds, cmdline.strip())


def _esp_image(image: Path, runner: Runner) -> str:
    """mtools' name for the image's ESP: FILE@@BYTE-OFFSET."""
    table = partition_table(image, runner)
    sector = table.get("sectorsize", 512)
    esp = next((p for p in table.get("partitions", []) if p["type"].upper() == ESP_TYPE), None)
    if esp is None:
        raise PmemImageError(f"{image.name} has no EFI system partition to read the boot entry from",
                             "verify without --fast")
    return f"{image}@@{esp['start'] * sector}"


def boot_entry(image: Path, runner: Runner) -> tuple[str, BootEntry]:
    esp = _esp_image(image, runner)
    for config in GRUB_CONFIGS:
        found = runner.query([*_MTOOLS, "mtype", "-i", esp, "::" + config])
        if found.returncode == 0:
            return esp, parse_grub_entry(found.stdout)
    raise PmemImageError(f"no grub.cfg in {image.name}'s EFI system partition ({', '.join(GRUB_CONFIGS)})",
                         "verify without --fast")


def _copy_out(esp: str, path: str, destination: Path, runner: Runner) -> bytes:
    destination.unlink(missing_ok=True)
    copied = runner.query([*_MTOOLS, "mcopy", "-n", "-i", esp, "::" + path, str(destination)])
    if copied.returncode != 0 or not destination.is_file():
        raise PmemImageError(f"cannot read {path} from the image's EFI system partition: {copied.stderr.strip()}",
                             "verify without --fast")
    return destination.read_bytes()


# What a direct boot adds to the entry's command line: the initrd loads the virtio disk's driver when it starts
# (systemd-modules-load) instead of when udev's coldplug reaches the virtio bus, which it triggers last, after
# every ACPI, PCI and platform device of the machine. The driver must still be in the initrd: without it the
# root is never found and the proof fails as it would have. A published image's command line is GRUB's.
DIRECT_BOOT_HINTS = ("rd.modules_load=virtio_blk",)

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def decompressed(part: Path, blob: bytes, runner: Runner) -> bytes:
    """An initrd as the kernel has it once it has decompressed it: a zstd cpio decompressed here, where it takes
    a fraction of a second, instead of by the guest's emulated CPU (under TCG 2.7-3.6 s for default's 40 MB;
    the kernel unpacks a plain cpio as it does the decompressed stream). What zstd cannot read, or anything
    that is not zstd, is passed on as it is, so the kernel judges those bytes as it would have. blob: the
    bytes of the file `part`, as _copy_out read them."""
    if not blob.startswith(ZSTD_MAGIC) or shutil.which("zstd") is None:
        return blob
    plain = part.with_name(part.name + ".cpio")
    done = runner.query(["zstd", "-q", "-d", "-f", str(part), "-o", str(plain)])
    try:
        return plain.read_bytes() if done.returncode == 0 else blob
    finally:
        plain.unlink(missing_ok=True)


def direct_boot_arguments(image: Path, work: Path, runner: Runner) -> list[str]:
    """QEMU's -kernel/-initrd/-append for the image's boot entry (and DIRECT_BOOT_HINTS); the files are copied
    into `work`, the initrds decompressed."""
    esp, entry = boot_entry(image, runner)
    kernel = work / "vmlinuz"
    _copy_out(esp, entry.kernel, kernel, runner)
    initrd = bytearray()
    for path in entry.initrds:
        part = work / "initrd.part"
        initrd += decompressed(part, _copy_out(esp, path, part, runner), runner)
        initrd += bytes(-len(initrd) % 4)            # GRUB's alignment between initrds
    (work / "initrd.part").unlink(missing_ok=True)
    argv = ["-kernel", str(kernel), "-append", " ".join([entry.cmdline, *DIRECT_BOOT_HINTS])]
    if entry.initrds:
        (work / "initrd").write_bytes(bytes(initrd))
        argv += ["-initrd", str(work / "initrd")]
    return argv
