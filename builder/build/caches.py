"""The caches under out/.cache that every profile shares, which lock guards each, and trimming them (gc)."""

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .lock import ARCHIVES, referenced_packages
from .locks import CacheLock
from .manifest import read_manifest
from .mkosi import package_cache_dirs

# name -> what it holds (for gc's summary)
CACHES = {
    "packages": "downloaded distribution packages (mkosi's package cache)",
    "layers": "installed package trees (mkosi's incremental cache), each keyed by what decides it",
    "initrds": "the default initrd's installed tree, which new package layers borrow",
    "kernel-src": "unpacked kernel sources",
    "kernel-build": "kernel build trees (O= directories)",
    "kernels": "compiled kernels, each keyed by source, .config and compiler",
    "ccache": "the compiler cache of kernel builds",
    "downloads": "kernel tarballs fetched by URL",
    "bin": "host builds of the flush test",
}


# The lock that guards each cache: everything a kernel build touches shares one ("kernels"), since
# prepare_kernel uses all of it in one go.
LOCK_OF = {"packages": "packages", "layers": "packages", "initrds": "packages", "kernel-src": "kernels",
           "kernel-build": "kernels", "kernels": "kernels", "ccache": "kernels", "downloads": "kernels", "bin": "bin"}


def cache_root(out_root: Path) -> Path:
    return out_root / ".cache"


def tree_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


@dataclass(frozen=True)
class Trimmed:
    cache: str
    freed: int
    kept: int


def in_use(out_root: Path) -> dict[str, set[str]]:
    """Per cache, the entries an existing output under out_root was built with: its compiled kernel and its
    package layer (kept by gc, so the next build of a current output is still quick)."""
    used: dict[str, set[str]] = {"kernels": set(), "layers": set()}
    for manifest in out_root.glob("*/manifest.json"):
        built = read_manifest(manifest.parent) or {}
        if built.get("kernel_build_key"):
            used["kernels"].add(built["kernel_build_key"])
        if isinstance(built.get("package_layer"), dict):
            used["layers"].add(built["package_layer"]["name"])
    return used


@dataclass(frozen=True)
class StoreTrim:
    freed: int             # bytes
    removed: int           # files
    kept: int              # files
    kept_bytes: int


def trim_package_store(out_root: Path, locks: Iterable[Path] = ()) -> StoreTrim:
    """Remove the package files no build under out_root and no given lock names (their package lists and
    apt's metadata stay: `build --offline` of a locked profile needs both). Under the packages cache's lock,
    so a running build is waited for."""
    keep = referenced_packages(out_root, list(locks))
    freed = removed = kept = kept_bytes = 0
    with CacheLock(out_root, "packages"):
        for path in sorted(p for cache in package_cache_dirs(out_root) for p in (cache / ARCHIVES).glob("*.deb")):
            size = path.stat().st_size
            if path.name in keep:
                kept, kept_bytes = kept + 1, kept_bytes + size
                continue
            freed, removed = freed + size, removed + 1
            os.unlink(path)
    return StoreTrim(freed, removed, kept, kept_bytes)


def gc(out_root: Path, say: Callable[[str], None], locks: Iterable[Path] = ()) -> list[Trimmed]:
    """Empty every shared cache except the compiled kernels and package layers that a current output uses,
    and trim the package store as `store gc` does (review L9: the packages builds and the given locks name
    stay, so a locked profile still builds offline). Each cache is trimmed under its lock, so a running build
    is waited for, never cut short."""
    root, used, trimmed = cache_root(out_root), in_use(out_root), []
    for name in CACHES:
        directory = root / name
        if not directory.is_dir():
            continue
        if name == "packages":
            store = trim_package_store(out_root, locks)
            trimmed.append(Trimmed(name, store.freed, store.kept_bytes))
            continue
        with CacheLock(out_root, LOCK_OF[name], say):
            freed = kept = 0
            for entry in directory.iterdir():
                size = tree_size(entry) if entry.is_dir() else entry.stat().st_size
                if entry.name in used.get(name, ()):
                    kept += size
                    continue
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
                freed += size
        trimmed.append(Trimmed(name, freed, kept))
    return trimmed
