"""What each distribution needs in the image: package names differ, the plan does not."""

from dataclasses import dataclass


@dataclass(frozen=True)
class DistroPackages:
    kernel: tuple[str, ...]
    base: tuple[str, ...]
    bios_grub: tuple[str, ...]
    efi_grub: tuple[str, ...]
    xfs: tuple[str, ...]
    build: tuple[str, ...]


# jq writes the boot self-test's JSON report.
_DEBIAN_BASE = ("systemd", "systemd-sysv", "udev", "dbus", "kmod", "util-linux", "procps", "ndctl",
                "e2fsprogs", "jq")
_RPM_BASE = ("systemd", "systemd-udev", "util-linux", "procps-ng", "kmod", "ndctl", "e2fsprogs", "jq")

PACKAGES: dict[str, DistroPackages] = {
    "debian": DistroPackages(("linux-image-amd64",), _DEBIAN_BASE, ("grub-pc-bin",), ("grub-efi-amd64-bin",),
                             ("xfsprogs",), ("gcc", "libc6-dev")),
    "ubuntu": DistroPackages(("linux-image-generic",), _DEBIAN_BASE, ("grub-pc-bin",), ("grub-efi-amd64-bin",),
                             ("xfsprogs",), ("gcc", "libc6-dev")),
    "fedora": DistroPackages(("kernel",), _RPM_BASE, ("grub2-pc", "grub2-pc-modules"),
                             ("grub2-efi-x64", "grub2-efi-x64-modules"), ("xfsprogs",), ("gcc", "glibc-devel")),
    "centos": DistroPackages(("kernel",), _RPM_BASE, ("grub2-pc", "grub2-pc-modules"),
                             ("grub2-efi-x64", "grub2-efi-x64-modules"), ("xfsprogs",), ("gcc", "glibc-devel")),
}


def image_packages(distribution: str, bios: bool, xfs: bool, distro_kernel: bool = True) -> list[str]:
    """Every package the image gets; GRUB's EFI modules always (mkosi always makes an ESP)."""
    chosen = PACKAGES[distribution]
    names = [*(chosen.kernel if distro_kernel else ()), *chosen.base, *chosen.efi_grub]
    if bios:
        names += chosen.bios_grub
    if xfs:
        names += chosen.xfs
    return sorted(set(names))


def build_packages(distribution: str) -> list[str]:
    return sorted(PACKAGES[distribution].build)
