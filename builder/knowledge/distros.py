"""One record per distribution release: everything pmem-image needs to know about it, in one place.

Kernel version (the release's GA kernel), packages, root filesystem, apt suites, module suffix and
whether mkosi 24.3 can still build it. Checks, plan and render read these records; nothing else
keys on a release name.
"""

from dataclasses import dataclass, replace
from typing import Optional

from .kernels import KernelVersion


@dataclass(frozen=True)
class Packages:
    kernel: tuple[str, ...]          # the distribution kernel (left out when pmem-image builds one)
    base: tuple[str, ...]            # always in the image
    bios_bootloader: tuple[str, ...]
    efi_bootloader: tuple[str, ...]  # always: mkosi always makes an ESP
    xfs: tuple[str, ...]
    build: tuple[str, ...]           # mkosi's build overlay (compiles the flush test)
    ssh: tuple[str, ...] = ()        # the SSH server
    sudo: tuple[str, ...] = ()
    users: tuple[str, ...] = ()      # useradd and friends
    devdax: tuple[str, ...] = ()     # daxctl, for device DAX regions
    pmdk: tuple[str, ...] = ()       # pmdk: true; empty where the release's repositories (as used here) lack PMDK
    pmdk_build: tuple[str, ...] = () # what the build overlay needs to compile the PMDK proof program
    cloud_init: tuple[str, ...] = ("cloud-init", "sudo")   # cloud-init's users get sudo rules
    network: tuple[str, ...] = ()    # network: dhcp (systemd-networkd is part of systemd on Debian/Ubuntu)
    cxl: tuple[str, ...] = ()        # the cxl backend: ndctl's cxl tool (cxl create-region)


@dataclass(frozen=True)
class Release:
    distribution: str
    release: str
    kernel: KernelVersion            # the release's own kernel (major.minor of its kernel package)
    packages: Packages
    root_filesystem: str             # mkosi's default root filesystem for this distribution
    module_suffix: str               # how the distribution kernel's modules end: .ko, .ko.xz, .ko.zst
    apt_suites: tuple[str, ...] = () # Debian/Ubuntu archive suites, then the security suite
    apt_security_suite: Optional[str] = None
    unsupported: str = ""            # why mkosi 24.3 cannot build it ("" when it can)
    # The service that brings the network up for network: dhcp: systemd-networkd where the release ships
    # it, NetworkManager where it does not (CentOS Stream has networkd only in EPEL).
    network_service: str = "systemd-networkd"
    proven: bool = False             # built and booted by pmem-image's own boot tests

    @property
    def label(self) -> str:
        return f"{self.distribution} {self.release}"


# jq writes the boot self-test's JSON report.
_DEBIAN_BASE = ("systemd", "systemd-sysv", "udev", "dbus", "kmod", "util-linux", "procps", "ndctl",
                "e2fsprogs", "jq")
_RPM_BASE = ("systemd", "systemd-udev", "util-linux", "procps-ng", "kmod", "ndctl", "e2fsprogs", "jq")
_DEBIAN = Packages(("linux-image-amd64",), _DEBIAN_BASE, ("grub-pc-bin",), ("grub-efi-amd64-bin",),
                   ("xfsprogs",), ("gcc", "libc6-dev"), ("openssh-server",), ("sudo",), ("passwd",), ("daxctl",),
                   cxl=("cxl",))
_UBUNTU = Packages(("linux-image-generic",), _DEBIAN_BASE, ("grub-pc-bin",), ("grub-efi-amd64-bin",),
                   ("xfsprogs",), ("gcc", "libc6-dev"), ("openssh-server",), ("sudo",), ("passwd",), ("daxctl",),
                   cxl=("cxl",))
# PMDK 1.12 (bookworm) and 1.13 (trixie): runtime and headers, pmempool and daxio (pmdk-tools), daxctl, a compiler.
# (Ubuntu has PMDK in universe, which the images do not enable; CentOS/Fedora: not verified here.)
_DEBIAN_PMDK = replace(_DEBIAN, pmdk=(
    "libpmem-dev", "libpmem2-dev", "libpmemobj-dev", "pmdk-tools", "daxctl", "gcc", "libc6-dev", "pkgconf"),
    pmdk_build=("libpmem-dev", "libpmem2-dev", "libpmemobj-dev"))
_RPM = Packages(("kernel",), _RPM_BASE, ("grub2-pc", "grub2-pc-modules"), ("grub2-efi-x64", "grub2-efi-x64-modules"),
                ("xfsprogs",), ("gcc", "glibc-devel"), ("openssh-server",), ("sudo",), ("shadow-utils",),
                ("daxctl",), cxl=("cxl-cli",))
_FEDORA = replace(_RPM, network=("systemd-networkd",))           # a subpackage of its own on Fedora
_CENTOS = replace(_RPM, network=("NetworkManager",))
_EOL_FEDORA = "end of life: its packages moved to Fedora's archive, which mkosi 24.3's repositories do not use"
_EOL_UBUNTU = "end of life: its packages moved to old-releases.ubuntu.com, which mkosi 24.3 does not use"


def _debian(release: str, kernel: KernelVersion, suffix: str, unsupported: str = "",
            packages: Packages = _DEBIAN, proven: bool = False) -> Release:
    return Release("debian", release, kernel, packages, "ext4", suffix,
                   (release, f"{release}-updates"), f"{release}-security", unsupported, proven=proven)


def _ubuntu(release: str, kernel: KernelVersion, suffix: str, unsupported: str = "") -> Release:
    return Release("ubuntu", release, kernel, _UBUNTU, "ext4", suffix,
                   (release, f"{release}-updates"), f"{release}-security", unsupported)


def _rpm(distribution: str, release: str, kernel: KernelVersion, unsupported: str = "") -> Release:
    fedora = distribution == "fedora"
    return Release(distribution, release, kernel, _FEDORA if fedora else _CENTOS, "btrfs" if fedora else "xfs",
                   ".ko.xz", unsupported=unsupported,
                   network_service="systemd-networkd" if fedora else "NetworkManager")


RELEASES: tuple[Release, ...] = (
    _debian("buster", (4, 19, 0), ".ko", "archived at archive.debian.org, and its security suite is "
            "buster/updates, which mkosi 24.3 does not write"),
    _debian("bullseye", (5, 10, 0), ".ko"),
    # the boot tier builds and boots these (tests/boot): the rest validate and render, unproven
    _debian("bookworm", (6, 1, 0), ".ko", packages=_DEBIAN_PMDK, proven=True),
    _debian("trixie", (6, 12, 0), ".ko.xz", packages=_DEBIAN_PMDK, proven=True),
    _ubuntu("focal", (5, 4, 0), ".ko"),
    _ubuntu("jammy", (5, 15, 0), ".ko"),
    _ubuntu("noble", (6, 8, 0), ".ko.zst"),
    _ubuntu("oracular", (6, 11, 0), ".ko.zst", _EOL_UBUNTU),
    _ubuntu("plucky", (6, 14, 0), ".ko.zst", _EOL_UBUNTU),
    _rpm("fedora", "39", (6, 5, 0), _EOL_FEDORA),
    _rpm("fedora", "40", (6, 8, 0), _EOL_FEDORA),
    _rpm("fedora", "41", (6, 11, 0), _EOL_FEDORA),
    _rpm("fedora", "42", (6, 14, 0), _EOL_FEDORA),
    _rpm("fedora", "43", (6, 17, 0)),
    _rpm("centos", "8", (4, 18, 0), "end of life: CentOS 8 moved to vault.centos.org, which mkosi 24.3 does not use"),
    _rpm("centos", "9", (5, 14, 0)),
    _rpm("centos", "10", (6, 12, 0)),
)
_BY_NAME = {(r.distribution, r.release): r for r in RELEASES}


def find_release(distribution: str, release: str) -> Optional[Release]:
    return _BY_NAME.get((distribution, release))


def known_releases(distribution: str, buildable_only: bool = True) -> list[str]:
    return [r.release for r in RELEASES if r.distribution == distribution and not (buildable_only and r.unsupported)]
