"""Paths in an image that an extra tree may not write (review M11): the boot proof's units, scripts and
binaries, what decides which programs and libraries it runs, and the files pmem-image writes itself. mkosi
copies extra trees after everything else, so a tree that wrote any of these could make a verified image report
PASS with a fake report, or silently lose a planned mount (pure)."""

from pathlib import PurePosixPath
from typing import Optional

# Directories systemd reads units and drop-ins from (Debian and CentOS, /lib merged or not).
UNIT_DIRECTORIES = ("etc/systemd/system", "usr/lib/systemd/system", "lib/systemd/system", "usr/local/lib/systemd/system",
                    "etc/systemd/system.control", "run/systemd/system")
# Where the self-test finds its commands (PATH order has /usr/local first).
BIN_DIRECTORIES = ("usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin")
# Every command the proof's scripts (pmem-selftest, pmem-mkfs, pmem-namespaces, pmem-layout-guard) and
# pmem-test (which reports the exit code of `pmem-image test`) run.
PROOF_COMMANDS = frozenset({
    "pmem-flush-test", "pmem-pmdk-check", "jq", "ndctl", "daxctl", "pmempool", "findmnt", "dmesg", "systemctl",
    "awk", "mawk", "gawk", "grep", "sed", "cut", "readlink", "cat", "tr", "timeout", "tee", "zcat", "gzip", "mktemp",
    "uname", "sh", "dash", "bash", "blkid", "mkfs.ext4", "mke2fs", "mkfs.xfs", "mkdir", "rm", "sync", "sleep", "head",
    "printf", "echo", "test", "[", "env", "ls", "wc", "sort", "id", "stat", "setpriv", "mount", "mv", "modprobe",
    "chgrp", "chmod", "chown", "getent", "paste"})
# Files and directories pmem-image writes into every image (render/outputs.py; a unit test keeps the two in step).
OWN_PATHS = ("etc/fstab", "etc/hosts", "etc/kernel/cmdline", "etc/modules-load.d/pmem-image.conf", "usr/lib/pmem-image",
             "usr/lib/systemd/system-preset/50-pmem-image.preset", "etc/ssh/sshd_config.d/pmem-image.conf",
             "etc/cloud/cloud.cfg.d/90-pmem-image.cfg", "etc/systemd/network/80-pmem-image-dhcp.network",
             "etc/profile.d/pmem-ready.sh", "usr/lib/udev/rules.d/60-pmem-image-access.rules", "etc/pmem-image")
# What changes how every service starts or what it loads: the manager's defaults and the dynamic linker's.
GLOBAL_PATHS = ("etc/systemd/system.conf", "etc/systemd/system.conf.d", "usr/lib/systemd/system.conf.d",
                "etc/ld.so.preload", "etc/ld.so.conf", "etc/ld.so.conf.d", "etc/environment")


def mount_unit_name(path: str) -> str:
    """systemd-escape --path --suffix=mount, for the characters a mountpoint may hold here."""
    escaped = []
    for part in path.strip("/").split("/"):
        text = "".join(c if c.isalnum() or c in "_." else f"\\x{ord(c):02x}" for c in part)
        escaped.append(("\\x2e" + text[1:]) if text.startswith(".") else text)
    return "-".join(escaped) + ".mount"


def _under(path: PurePosixPath, prefix: str) -> bool:
    return path == PurePosixPath(prefix) or PurePosixPath(prefix) in path.parents


def protected_reason(path: PurePosixPath, mountpoints: tuple[str, ...] = ()) -> Optional[str]:
    """Why an extra tree may not write `path` (relative to the image's /), or None when it may."""
    for own in OWN_PATHS:
        if _under(path, own):
            return "pmem-image writes it (its launch contract, mounts or boot proof)"
    for prefix in GLOBAL_PATHS:
        if _under(path, prefix):
            return "it changes how every service, the boot proof's included, starts or which libraries it loads"
    mount_units = {mount_unit_name(m) for m in mountpoints}
    for directory in UNIT_DIRECTORIES:
        if path.parent == PurePosixPath(directory) or (path.parent.parent == PurePosixPath(directory)
                                                       and path.parent.name.endswith(".d")):
            unit = path.parent.name.removesuffix(".d") if path.parent != PurePosixPath(directory) else path.name
            if unit.startswith("pmem-") or unit in mount_units or unit in ("service.d", "service", "-.service"):
                return f"it would change or mask {unit}, which the boot proof or a planned pmem mount relies on"
    if str(path.parent) in BIN_DIRECTORIES and path.name in PROOF_COMMANDS:
        return f"the boot proof runs {path.name}: a tree's copy would decide what the proof reports"
    return None


def must_stay_directory(path: PurePosixPath) -> bool:
    """Whether `path` is a directory pmem-image's own files live in (a tree's file or link there would clash)."""
    wanted = [PurePosixPath(p) for p in (*OWN_PATHS, "usr/lib/systemd/system/pmem-selftest.service")]
    return any(path in p.parents for p in wanted)
