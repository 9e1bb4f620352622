"""The package layer: mkosi's incremental cache (the image tree after package installation, the build
overlay with the build packages, and the default initrd's tree), kept under out/.cache/layers/KEY/.

KEY hashes what decides that tree and nothing else: the distribution and release, the package lists
(with a lock's pins), the package sources and apt preferences, the initrd's include file, the mkosi and
pmem-image versions. Not the profile's name, memory layout, command line, users or files: a profile that
changes only those (or another profile with the same packages) reuses the layer, and the image is still
bit-identical to a cold build, because a cold build also installs into the layer and copies it out.
Without a lock or a snapshot the layer keeps the package versions of the build that made it, until
`build --cold` (or `pmem-image gc`) drops it: the README says so.

The default initrd's tree (mkosi's fixed package list and mkosi.initrd.conf) does not depend on the image's
packages, so a new layer borrows it from out/.cache/initrds/KEY/, which the first layer of those inputs
lent it: every profile of a release installs the initrd's packages once, not once per package list. mkosi
still compares the borrowed tree's manifest with its own configuration and reinstalls on a mismatch.
"""

import hashlib
import json
import shutil
from pathlib import Path

from .. import __version__
from ..plan.model import Plan
from ..render.outputs import RenderedFile
from ..runner import Runner
from .mkosi import tools_dir
from .toolchain import toolchain

LAYERS = "layers"
INITRDS = "initrds"
# mkosi's names for the default initrd's cached tree and its manifest in a layer: DIST~RELEASE~ARCH + these.
_INITRD_TREE, _INITRD_MANIFEST = "~default-initrd.cache", "~default-initrd.manifest"
# Rendered files that reach the package layer: apt's sources and preferences (copied into the tree before
# apt runs) and the initrd's configuration (its own cached tree).
_LAYER_FILES = ("mkosi.pkgmngr/", "mkosi.initrd.conf")


def _shared_inputs(plan: Plan, files: dict[str, RenderedFile], mkosi_version: str) -> dict:
    """What decides both the image's and the initrd's installed trees."""
    return {
        "pmem-image": __version__, "mkosi": mkosi_version, "tools": toolchain(tools_dir()),
        "distribution": plan.distribution, "release": plan.release,
        "files": {path: [int(f.executable), f.content] for path, f in sorted(files.items())
                  if path.startswith(_LAYER_FILES)},
    }


def layer_key(plan: Plan, files: dict[str, RenderedFile], mkosi_version: str) -> str:
    pins = {p.name: p.version for p in plan.locked_packages}
    inputs = {
        **_shared_inputs(plan, files, mkosi_version),
        "packages": [f"{p}={pins.get(p, '')}" for p in plan.packages],
        "build_packages": [f"{p}={pins.get(p, '')}" for p in plan.build_packages],
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def initrd_key(plan: Plan, files: dict[str, RenderedFile], mkosi_version: str) -> str:
    """The default initrd's tree: the layer's inputs without the image's package lists, with every pin of a
    lock (apt's preferences, among the files, pin the initrd's packages too) and the build's epoch."""
    inputs = {**_shared_inputs(plan, files, mkosi_version), "epoch": plan.source_date_epoch,
              "pins": sorted(f"{p.name}={p.version}" for p in plan.locked_packages)}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def layers_root(out_root: Path) -> Path:
    return out_root / ".cache" / LAYERS


def layer_dir(out_root: Path, key: str) -> Path:
    return layers_root(out_root) / key[:32]


def initrd_dir(out_root: Path, key: str) -> Path:
    return out_root / ".cache" / INITRDS / key[:32]


def layer_is_built(directory: Path) -> bool:
    """mkosi writes the image's cache manifest last, after the trees are in place (the initrd's has its own)."""
    return any(not m.name.endswith(_INITRD_MANIFEST) for m in directory.glob("*.manifest"))


def _initrd_entries(directory: Path) -> list[Path]:
    """The initrd's tree and manifest in a layer or the store, both or none."""
    trees = sorted(directory.glob(f"*{_INITRD_TREE}")) if directory.is_dir() else []
    manifests = [t.with_name(t.name[:-len(_INITRD_TREE)] + _INITRD_MANIFEST) for t in trees]
    return [*trees, *manifests] if trees and all(m.is_file() for m in manifests) else []


def borrow_initrd(layer: Path, store: Path, runner: Runner) -> bool:
    """Put the store's initrd tree into a layer that has none, as hard links: mkosi only copies a cached tree
    out, and replaces it whole (removes, then moves a new one in), so the store's files are never written."""
    entries = _initrd_entries(store)
    if not entries or _initrd_entries(layer):
        return False
    layer.mkdir(parents=True, exist_ok=True)
    runner.run(["cp", "-al", *map(str, entries), str(layer)])
    runner.say(f"initrd tree {store.name[:16]}: borrowed (its packages are installed already)")
    return True


def lend_initrd(layer: Path, store: Path, runner: Runner, replace: bool = False) -> None:
    """After a build: the layer's initrd tree becomes the store's, if the store has none (or replace: a cold
    build's fresh one). Linked into a temporary directory and renamed, so the store never holds half a tree."""
    entries = _initrd_entries(layer)
    if not entries or (_initrd_entries(store) and not replace):
        return
    store.parent.mkdir(parents=True, exist_ok=True)
    partial = store.with_name(store.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    runner.run(["cp", "-al", *map(str, entries), str(partial)])
    shutil.rmtree(store, ignore_errors=True)
    partial.rename(store)


def drop_layer(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
