"""Fresh Debian host trees for the host-matrix test: a debootstrapped minbase of a release, provisioned the
way a new machine of this workplace comes up (the release's suites with -updates and -security listed, so
updates are pending; this machine's CA certificates and pip configuration, which its network needs), with
the checkout's files copied in, entered with chroot. Nothing of the build host's pmem-image state goes in
but the image package store and layers, which the trees share (the issue: one download for both)."""

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from conftest import ROOT

MIRROR = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"
# What a stock cloud or CI image of the release has beyond minbase: git to clone, CA certificates, sudo.
EXTRA = "ca-certificates,git,sudo"
_MOUNTS = ("proc", "sys", "dev", "dev/pts")


def debian_sources(release: str) -> str:
    return (f"Types: deb\nURIs: {MIRROR}\nSuites: {release} {release}-updates\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
            f"Types: deb\nURIs: {SECURITY}\nSuites: {release}-security\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")


def _run(argv: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def make_tree(root: Path, release: str) -> None:
    """debootstrap RELEASE into ROOT and provision it like a new machine here."""
    result = _run(["debootstrap", "--variant=minbase", f"--include={EXTRA}", release, str(root), MIRROR])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    (root / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(debian_sources(release))
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    local_ca = Path("/usr/local/share/ca-certificates")
    if local_ca.is_dir():
        shutil.copytree(local_ca, root / "usr/local/share/ca-certificates", dirs_exist_ok=True)
        result = _run(["chroot", str(root), "update-ca-certificates"])
        assert result.returncode == 0, result.stdout + result.stderr
    for config in (Path("/etc/pip.conf"), Path("/etc/xdg/pip")):
        if config.is_dir():
            shutil.copytree(config, root / config.relative_to("/"), dirs_exist_ok=True)
        elif config.is_file():
            shutil.copy(config, root / config.relative_to("/"))


def copy_checkout(destination: Path) -> None:
    """The checkout's tracked and untracked-but-not-ignored files, as they are in the work tree."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "-co", "--exclude-standard"],
                            capture_output=True, check=True).stdout
    destination.mkdir(parents=True)
    for name in filter(None, listed.split(b"\0")):
        source = ROOT / os.fsdecode(name)
        if source.is_file() and not source.is_symlink():
            target = destination / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


@contextmanager
def entered(root: Path, shared_cache: Path, checkout: str = "root/pmem-image") -> Iterator[Path]:
    """The tree's mounts for chroot (its root a mount point, as mkosi's findmnt wants), and the shared image
    package store and layers at the checkout's out/.cache; all unmounted afterwards."""
    mounted: list[Path] = []

    def bind(source: Path, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
        mounted.append(target)

    try:
        bind(root, root)
        for name in _MOUNTS:
            bind(Path("/") / name, root / name)
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(root / "tmp")], check=True)
        mounted.append(root / "tmp")
        shared_cache.mkdir(parents=True, exist_ok=True)
        bind(shared_cache, root / checkout / "out" / ".cache")
        yield root / checkout
    finally:
        for target in reversed(mounted):
            subprocess.run(["umount", "-l", str(target)], check=False)


def in_tree(root: Path, command: str, timeout: float) -> subprocess.CompletedProcess:
    """A login-like shell in the tree as root: a clean environment, as a new user's terminal has."""
    env = ["env", "-i", "HOME=/root", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "LANG=C.UTF-8", "TERM=dumb"]
    return subprocess.run(["chroot", str(root), *env, "/bin/bash", "-c", command], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
