"""Locked inputs: `pmem-image lock` records a build's exact package set (image, build overlay and default
initrd: name, version, architecture, the sha256 of the package file in the package cache); a build with the
lock checks that it got exactly that (versions from mkosi's manifest and the overlay's and initrd's dpkg
lists, files by sha256)."""

import json
from pathlib import Path

from .. import __version__
from ..plan.model import Plan
from ..profile.errors import PmemImageError
from ..profile.lock import LockedPackage, PackageLock, load_lock
from ..runner import Runner
from .hashing import sha256_file
from .manifest import read_manifest

BUILD_PACKAGES = "build-packages.tsv"      # written by mkosi.build.chroot: the overlay's dpkg list
INITRD_PACKAGES = "initrd-packages.tsv"    # written after mkosi from the initrd's tree in the package layer
ARCHIVES = Path("cache/apt/archives")      # where apt keeps package files in mkosi's package cache


def installed(directory: Path, name: str) -> dict[str, tuple[str, str, str]]:
    """name -> (version, architecture, scope) of what a build installed: the image's packages (mkosi's
    manifest), then what only the build overlay had."""
    try:
        packages = json.loads((directory / f"{name}.manifest").read_text())["packages"]
    except (OSError, ValueError, KeyError):
        raise PmemImageError(f"{directory} has no package manifest ({name}.manifest)",
                             "build the profile (pmem-image build), then lock it") from None
    found = {p["name"]: (p["version"], p["architecture"], "image") for p in packages}
    for listing, scope in ((BUILD_PACKAGES, "build"), (INITRD_PACKAGES, "initrd")):
        path = directory / listing
        for line in path.read_text().splitlines() if path.exists() else ():
            package, version, architecture = line.split("\t")
            found.setdefault(package, (version, architecture, scope))
    return found


def write_initrd_packages(layer: Path, result: Path, runner: Runner) -> None:
    """The packages of mkosi's default initrd (lvm2 and others the image may lack), from the dpkg database
    of the initrd's tree that mkosi keeps in the package layer (the initrd itself has none left)."""
    databases = sorted(layer.glob("*~default-initrd.cache/var/lib/dpkg"))
    if not databases:
        raise PmemImageError(f"the package layer {layer} holds no default-initrd tree",
                             "mkosi 24.x keeps one with --incremental; rebuild with build --cold")
    listed = runner.capture(["dpkg-query", "--admindir", str(databases[0]), "-W",
                             "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n"])
    rows = sorted(line.split("\t", 1)[1] for line in listed.splitlines() if line.startswith("ii"))
    (result / INITRD_PACKAGES).write_text("".join(row + "\n" for row in rows))


def package_file(name: str, version: str, architecture: str) -> str:
    """apt's file name for a package in its archives (':' in a version is written %3a)."""
    return f"{name}_{version.replace(':', '%3a')}_{architecture}.deb"


def make_lock(plan: Plan, directory: Path, package_cache: Path, mkosi_version: str) -> PackageLock:
    packages, missing = [], []
    for name, (version, architecture, scope) in sorted(installed(directory, plan.name).items()):
        file = package_file(name, version, architecture)
        path = package_cache / ARCHIVES / file
        if not path.is_file():
            missing.append(file)
            continue
        packages.append(LockedPackage(name=name, version=version, architecture=architecture, scope=scope,
                                      file=file, sha256=sha256_file(path)))
    if missing:
        raise PmemImageError(f"{len(missing)} package file(s) of the build are not in {package_cache / ARCHIVES}: "
                             + ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else ""),
                             "build it again with --force (gc may have trimmed the package cache), then lock")
    return PackageLock(lock_version=1, name=plan.name, distribution=plan.distribution, release=plan.release,
                       renderer_version=__version__, mkosi_version=mkosi_version, kernel_sha256=plan.kernel_sha256,
                       packages=packages)


def check_against_lock(plan: Plan, result: Path, package_cache: Path) -> None:
    """After mkosi: every package the build installed is the locked version, no package the lock lacks
    came in, and each locked package's file in the cache has the locked sha256."""
    locked = {p.name: p for p in plan.locked_packages}
    got = installed(result, plan.name)
    wrong = [f"{name} {version} (locked {locked[name].version})" if name in locked else f"{name} {version} (not locked)"
             for name, (version, _, _) in sorted(got.items())
             if name not in locked or locked[name].version != version]
    files = [p.file for p in plan.locked_packages if p.name in got and
             (not (package_cache / ARCHIVES / p.file).is_file() or
              sha256_file(package_cache / ARCHIVES / p.file) != p.sha256)]
    if wrong or files:
        raise PmemImageError(
            "the build did not get the locked packages: "
            + "; ".join(wrong[:10] + [f"{f} differs from the lock's sha256" for f in files[:10]])
            + "".join(f" (and {n - 10} more {what})" for n, what in ((len(wrong), "versions"), (len(files), "files"))
                      if n > 10),
            "the sources no longer have these versions: use mirror: snapshot:TIME, or build --offline from the "
            "package store that has them; or move PROFILE.lock away, build, and lock again")


def referenced_packages(out: Path, locks: list[Path]) -> set[str]:
    """Package files named by a build under out/ (its package lists) or by a lock."""
    names: set[str] = set()
    for manifest in out.glob("*/manifest.json"):
        built = read_manifest(manifest.parent) or {}
        if "name" in built and (manifest.parent / f"{built['name']}.manifest").exists():
            names |= {package_file(n, v, a) for n, (v, a, _) in installed(manifest.parent, built["name"]).items()}
    for path in locks:
        names |= {p.file for p in load_lock(path).packages}
    return names
